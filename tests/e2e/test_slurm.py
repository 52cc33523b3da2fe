"""`gpuhost upgrade --scheduler slurm` with a real Slurm: Debian's slurmctld on `slurmctl`, slurmd
on three GPU lab hosts (n1, n2, n3), real `sbatch` jobs that sleep (gpuhost/lab/slurm.py).

The driver comes from the signed TEST FIXTURE repository (tests/e2e/driver_fixture.py), as in
test_upgrade.py. One lab serves every scenario, in this order (each reuses the state the last left):

1. bad input: an unknown scheduler, a host Slurm does not know, a controller that does not
   answer: one line each, exit 2, no node changed;
2. the rollout (canary 1, batch 1): the canary n1 is drained while its job runs and the rollout
   is interrupted (Ctrl-C) while it waits; the same command again waits for n1's job (a second job
   queued for n1 stays pending meanwhile), upgrades, verifies and resumes it; n2's deploy fails (a
   broken apt source): it stays drained with gpuhost's cause as its reason; n3, drained by an
   operator beforehand, is upgraded and not resumed; fixed, a third run finishes n2 and resumes it;
3. health: a lost GPU on n1 (TEST FIXTURE nvidia-smi printing a published report's line) drains its
   node with the cause (`gpuhost health-sync`), healthy again it is resumed; n3's operator drain
   stays;
4. the same through Slurm's HealthCheckProgram wrapper (deploys/health.py and
   deploys/slurm_healthcheck.py install it), run on the node as slurmd runs it.

A background thread samples `sinfo` and `squeue` on the controller: the states each node went
through are Slurm's own.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.slurm import CONTROLLER, SlurmCluster, slurm_specs
from tests.e2e.driver_fixture import build_repository, repository_data

pytestmark = pytest.mark.e2e
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
NODES = ["n1", "n2", "n3"]
BROKEN = "/etc/apt/sources.list.d/broken.list"


@pytest.fixture(scope="module")
def cluster(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm-repo")
    data = repository_data(build_repository(root))
    with Lab(slurm_specs([HostSpec(name, data) for name in NODES])) as lab:
        lab.serve_directory(root / "repo", name="apt")
        yield SlurmCluster.start(lab, NODES)


class Sampler(threading.Thread):
    """sinfo + squeue on the controller, twice a second: [(time, {node: (state, reason)}, {job: state})]."""

    def __init__(self, cluster: SlurmCluster):
        super().__init__(daemon=True)
        self.cluster, self.samples, self.stopped = cluster, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            out = self.cluster.run("sinfo -h -N -o '%N|%T|%E'; echo ---; squeue -h -o '%i|%T'", check=False).stdout
            nodes_text, _, jobs_text = out.partition("---")
            nodes = {}
            for row in nodes_text.strip().splitlines():
                name, state, reason = (row.split("|", 2) + ["", ""])[:3]
                nodes[name] = (state, reason)
            jobs = dict(row.split("|", 1) for row in jobs_text.split() if "|" in row)
            self.samples.append((time.monotonic(), nodes, jobs))
            self.stopped.wait(0.5)

    def states(self, node: str) -> list[str]:
        """The node's sinfo states in order, repeats removed."""
        seen: list[str] = []
        for _, nodes, _ in self.samples:
            state = nodes.get(node, ("?", ""))[0]
            if not seen or seen[-1] != state:
                seen.append(state)
        return seen

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def upgrade(cluster, state: Path, *args: str, limit=NODES) -> subprocess.CompletedProcess:
    return subprocess.run(command(cluster, state, *args, limit=limit), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def command(cluster, state: Path, *args: str, limit=NODES) -> list[str]:
    limits = [arg for name in limit for arg in ("--limit", name)]
    return [GPUHOST, "upgrade", str(cluster.lab.inventory_path), "--state", str(state), *limits, *args]


ROLLOUT = ("--scheduler", "slurm", "--canary", "1", "--batch", "1", "--max-failed", "1", "--drain-timeout", "120")


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not {what} after {timeout:.0f}s")


def test_bad_input_is_one_line_and_changes_no_node(cluster, tmp_path):
    before = cluster.states()

    unknown = upgrade(cluster, tmp_path / "s.json", "--scheduler", "pbs")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("gpuhost: error: --scheduler 'pbs' is unknown: use slurm, or "
                                      "--drain-command/--undrain-command for another scheduler")

    stranger = upgrade(cluster, tmp_path / "s.json", "--scheduler", "slurm", limit=[CONTROLLER, "n1"])
    assert stranger.returncode == 2, stranger.stderr
    line = stranger.stderr.strip().splitlines()[-1]
    assert line == (f"gpuhost: error: --scheduler slurm: host {CONTROLLER}: Slurm has no node {CONTROLLER} "
                    f"(scontrol show node: Node {CONTROLLER} not found): the host's short hostname must be its "
                    f"NodeName in slurm.conf (no host was changed)")

    cluster.run("systemctl stop slurmctld")
    try:
        silent = upgrade(cluster, tmp_path / "s.json", "--scheduler", "slurm")
    finally:
        cluster.run("systemctl start slurmctld")
    assert silent.returncode == 2, silent.stderr
    line = silent.stderr.strip().splitlines()[-1]
    assert line.startswith("gpuhost: error: --scheduler slurm: host n1, n2, n3: the Slurm controller does not "
                           "answer (scontrol show node: slurm_load_node error: Unable to contact slurm controller")
    assert line.endswith("start slurmctld or fix SlurmctldHost in slurm.conf (no host was changed)")
    for node in NODES:
        cluster.wait_for(node, "idle")
    assert cluster.states() == before
    assert not (tmp_path / "s.json").exists()


def test_rollout_drains_waits_upgrades_resumes_and_finishes_after_interruption(cluster, tmp_path):
    state = tmp_path / "rollout.json"
    lab = cluster.lab
    lab.host("n2").exec(f"echo 'deb broken' > {BROKEN}", check=True)
    jobs = {"n1": cluster.submit("n1", 15), "n2": cluster.submit("n2", 3), "n3": cluster.submit("n3", 3)}
    queued = cluster.submit("n1", 1)  # CPUs=1: waits for n1's first job, and must not start on a drained n1
    wait_until(lambda: cluster.job_state(jobs["n1"]) == "RUNNING", 60, "n1's job running")
    cluster.drain("n3", "operator: fan check")
    sampler = Sampler(cluster)
    sampler.start()
    try:
        # 1. The canary n1 is drained while its job runs; the rollout is interrupted (Ctrl-C) while it waits.
        proc = subprocess.Popen(command(cluster, state, *ROLLOUT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)
        wait_until(lambda: sampler.samples and sampler.samples[-1][1].get("n1", ("",))[0] == "draining", 120,
                   "n1 draining")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert json.loads(state.read_text())["status"] == "interrupted", err
        n1_state, n1_reason = cluster.states()["n1"]
        assert n1_state == "draining" and n1_reason.startswith("gpuhost upgrade: driver R"), (n1_state, n1_reason)
        assert cluster.job_state(jobs["n1"]) == "RUNNING"  # never killed

        # 2. The same command again: n1 (drained by the interrupted run) waits for its job, is upgraded,
        #    verified and resumed; n2's deploy fails (apt): it stays drained with the cause as its reason;
        #    n3, drained by an operator beforehand, is upgraded and left drained with the operator's reason.
        second = upgrade(cluster, state, *ROLLOUT)
        assert second.returncode == 1, second.stderr
        record = json.loads(state.read_text())
        assert {n: record["hosts"][n]["result"] for n in NODES} == {"n1": "upgraded", "n2": "failed",
                                                                    "n3": "upgraded"}, second.stderr
        assert [b["hosts"] for b in record["runs"][1]["batches"]] == [["n1"], ["n2"], ["n3"]]
        assert cluster.job_state(jobs["n1"]) == "COMPLETED"  # waited for, never killed
        n1_states = sampler.states("n1")
        assert n1_states[:3] == ["allocated", "draining", "drained"], n1_states
        assert n1_states[3].rstrip("*") in ("idle", "allocated"), n1_states  # resumed; the queued job may run
        drained_at = next(t for t, nodes, _ in sampler.samples if nodes["n1"][0] == "draining")
        resumed_at = next(t for t, nodes, _ in sampler.samples
                          if t > drained_at and nodes["n1"][0].rstrip("*") in ("idle", "allocated"))
        during = [queue for t, _, queue in sampler.samples if drained_at <= t < resumed_at]
        assert during and all(queue.get(queued) == "PENDING" for queue in during)  # no new job landed on n1
        assert "resumed in Slurm" in " ".join(record["hosts"]["n1"]["notes"])

        n2_state, n2_reason = cluster.states()["n2"]
        assert n2_state == "drained"
        assert n2_reason.startswith("gpuhost upgrade failed: ") and "Malformed entry" in n2_reason, n2_reason
        assert cluster.states()["n3"] == ("drained", "operator: fan check")
        row = next(line for line in second.stdout.splitlines() if line.startswith("n3 "))
        assert "drained before the rollout by someone else (operator: fan check): left drained" in row, row

        # 3. Fixed, the same command finishes n2 and resumes it; n3 stays the operator's.
        lab.host("n2").exec(f"rm {BROKEN}", check=True)
        third = upgrade(cluster, state, *ROLLOUT)
        assert third.returncode == 0, third.stdout + third.stderr
        record = json.loads(state.read_text())
        assert record["status"] == "complete" and record["hosts"]["n2"]["result"] == "upgraded", third.stdout
        assert cluster.states()["n2"][0].rstrip("*") == "idle"
        assert cluster.states()["n3"] == ("drained", "operator: fan check")
    finally:
        sampler.stop()
    assert "drained" in sampler.states("n2")


# TEST FIXTURE nvidia-smi for a lost GPU: it prints the line the real tool printed in a published report
# (marian-nmt/marian issue 251, 2019-02-27; tests/health/fixtures/published-gpu-lost-marian-251.txt) and
# exits non-zero. gpuhost's health reading runs it as it runs the real tool.
LOST_SMI = """#!/bin/sh
# TEST FIXTURE (gpuhost e2e): nvidia-smi on a lost GPU, as published in marian-nmt/marian#251.
cat <<'OUT'
{line}
OUT
exit 1
"""
SMI = "/usr/local/bin/nvidia-smi"
HEALTH_COMMAND = "/usr/local/sbin/gpuhost-health"
WRAPPER = "/usr/local/sbin/gpuhost-slurm-healthcheck"


def health_sync(cluster) -> subprocess.CompletedProcess:
    limits = [arg for name in NODES for arg in ("--limit", name)]
    return subprocess.run([GPUHOST, "health-sync", str(cluster.lab.inventory_path), "--scheduler", "slurm", *limits],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_a_failed_gpu_drains_its_node_and_healthy_again_it_is_resumed(cluster):
    published = (Path(__file__).resolve().parents[1] / "health" / "fixtures" / "published-gpu-lost-marian-251.txt")
    n1 = cluster.lab.host("n1")
    n1.exec(f"cat > {SMI} && chmod 755 {SMI}", input=LOST_SMI.format(line=published.read_text().strip()), check=True)
    job = cluster.submit("n1", 3)
    wait_until(lambda: cluster.job_state(job) == "RUNNING", 60, "the job running")
    operator = cluster.states()["n3"]

    sick = health_sync(cluster)
    assert sick.returncode == 1, sick.stdout + sick.stderr
    state, reason = cluster.states()["n1"]
    assert state in ("draining", "drained")  # the running job is left to finish
    assert reason.startswith("gpuhost health: GPU 0000:03:00.0: ") and "GPU is lost" in reason, reason
    assert cluster.states()["n3"] == operator  # someone else's drain: left as it is
    row = next(line for line in sick.stdout.splitlines() if line.startswith("n1 "))
    assert row.split()[1:3] == ["failed", "drain"], sick.stdout
    assert health_sync(cluster).returncode == 1 and cluster.states()["n1"][1] == reason  # again: no change

    n1.exec(f"rm {SMI}", check=True)
    well = health_sync(cluster)
    assert well.returncode == 0, well.stdout + well.stderr
    assert cluster.states()["n1"][0].rstrip("*") in ("idle", "allocated", "mixed"), cluster.states()
    assert cluster.states()["n3"] == operator
    assert cluster.job_state(job) in ("RUNNING", "COMPLETED")  # never killed


def test_the_health_check_program_drains_and_resumes_the_node_itself(cluster):
    """gpuhost-slurm-healthcheck, installed with gpuhost-health by their deploys (real pyinfra), run as
    slurmd runs it (root, on the node)."""
    published = (Path(__file__).resolve().parents[1] / "health" / "fixtures" / "published-gpu-lost-marian-251.txt")
    run = cluster.lab.pyinfra("deploys/health.py", "deploys/slurm_healthcheck.py", "-y", "--limit", "n1",
                              "--limit", "n3", timeout=600)
    assert run.returncode == 0, run.stdout[-2000:]
    for name in ("n1", "n3"):
        host = cluster.lab.host(name)
        assert host.exec(f"test -x {HEALTH_COMMAND} && test -x {WRAPPER}").returncode == 0, run.stdout[-2000:]
        host.exec(f"cat > {SMI} && chmod 755 {SMI}", input=LOST_SMI.format(line=published.read_text().strip()),
                  check=True)
    operator = cluster.states()["n3"]
    assert operator[1] == "operator: fan check"

    for name in ("n1", "n3"):
        assert cluster.lab.host(name).exec(WRAPPER).returncode == 0
    state, reason = cluster.states()["n1"]
    assert state == "drained" and reason.startswith("gpuhost health: GPU 0000:03:00.0: "), (state, reason)
    assert cluster.states()["n3"] == operator
    sync = health_sync(cluster)  # the admin-side command reads the same: nothing to change
    assert cluster.states()["n1"] == (state, reason), sync.stdout

    cluster.lab.host("n1").exec(f"rm {SMI}", check=True)
    assert cluster.lab.host("n1").exec(WRAPPER).returncode == 0
    assert cluster.states()["n1"][0].rstrip("*") == "idle"
    assert cluster.states()["n3"] == operator
