"""First e2e scenarios: the gpu_host deploy over real SSH, and the lab itself.

Each pyinfra run is the real CLI (`pyinfra <lab inventory> deploys/gpu_host.py -y`) over
paramiko SSH to systemd containers; host state is checked afterwards with pytest-testinfra.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from gpuhost.lab import Lab
from gpuhost.lab.engine import docker
from gpuhost.lab.image import one_file_image
from gpuhost.lab.results import changed, host_statuses, summary_rows
from gpuhost.lab.state import LABEL, state_dir

pytestmark = pytest.mark.e2e
DEPLOY = "deploys/gpu_host.py"
REPORT = "/var/lib/gpuhost/report.json"


def read_report(host) -> dict:
    """The deploy's report on a lab host, read over SSH."""
    proc = host.ssh(f"cat {REPORT}")
    assert proc.returncode == 0, f"{host.name}: no report: {proc.stderr}"
    return json.loads(proc.stdout)


def _lab_leftovers(lab_id: str) -> list[str]:
    containers = docker("ps", "-aq", "--filter", f"label={LABEL}={lab_id}").stdout.split()
    networks = docker("network", "ls", "-q", "--filter", f"label={LABEL}={lab_id}").stdout.split()
    return containers + networks


# -- (a) the deploy over SSH, twice -----------------------------------------------------


def test_deploy_runs_over_ssh_and_second_run_changes_nothing(lab):
    first = lab.pyinfra(DEPLOY, "-y", "--limit", "fresh")
    assert first.returncode == 0, first.stdout[-3000:]
    assert re.search(r"\[fresh\]\s+Connected", first.stdout)  # over SSH, not @local
    assert changed(first.stdout, "fresh") > 0, "a fresh host should have been changed"

    second = lab.pyinfra(DEPLOY, "-y", "--limit", "fresh")
    assert second.returncode == 0, second.stdout[-3000:]
    statuses = host_statuses(second.stdout).get("fresh", Counter())
    assert statuses["Success"] == 0 and statuses["Error"] == 0, second.stdout[-3000:]
    row = summary_rows(second.stdout)["fresh"]  # the fleet table at the end of the run
    assert (row["CHANGES"], row["RESULT"]) == ("0", "skipped"), second.stdout[-3000:]

    # The host's state, checked the way infrastructure tests do (testinfra over SSH).
    remote = lab.host("fresh").testinfra()
    report_file = remote.file(REPORT)
    assert report_file.is_file
    assert report_file.user == "root"
    assert report_file.mode & 0o002 == 0, "the report must not be world-writable"
    report = json.loads(report_file.content_string)
    assert report["status"] in ("skipped", "planned", "verified", "failed")
    assert remote.service("ssh").is_running
    assert remote.check_output("systemctl is-system-running || true") in ("running", "degraded")


# -- (b) a host without an NVIDIA GPU ----------------------------------------------------


def test_host_without_gpu_is_skipped_with_a_clear_reason(lab):
    run = lab.pyinfra(DEPLOY, "-y", "--limit", "nogpu")
    assert run.returncode == 0, run.stdout[-3000:]
    report = read_report(lab.host("nogpu"))
    assert report["gpus"] == []
    assert report["status"] == "skipped"
    assert report["reason"].startswith("no NVIDIA GPU found"), report["reason"]
    assert "[nogpu]" in run.stdout and "no NVIDIA GPU" in run.stdout


def test_failing_host_does_not_stop_the_others(lab):
    """strict's policy fails a host without GPU; nogpu, in the same run, still completes."""
    lab.host("nogpu").exec(f"rm -f {REPORT}")
    run = lab.pyinfra(DEPLOY, "-y", "--limit", "nogpu", "--limit", "strict")
    assert run.returncode != 0, "a failed host must make pyinfra exit non-zero"
    strict_lines = [line for line in run.stdout.splitlines() if "[strict]" in line]
    assert any("no NVIDIA GPU" in line for line in strict_lines), run.stdout[-3000:]
    statuses = host_statuses(run.stdout)
    assert statuses["strict"]["Error"] >= 1
    assert statuses["nogpu"]["Error"] == 0
    report = read_report(lab.host("nogpu"))  # written again in this very run
    assert report["status"] == "skipped"


# -- (c) the lab's services ----------------------------------------------------------------


def test_registry_accepts_a_push_and_serves_it_back(lab):
    registry = lab.registry()
    ref = f"{registry.local_address}/lab/probe:{lab.id}"
    one_file_image(ref, "probe.txt", "gpuhost lab registry probe\n")
    image_id = docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    docker("push", ref)
    docker("image", "rm", ref)
    docker("pull", ref)
    assert docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
    docker("image", "rm", ref)

    # The hosts reach it by name on the lab network.
    tags = lab.host("nogpu").exec(f"curl -fsS {registry.url}/v2/lab/probe/tags/list")
    assert tags.returncode == 0, tags.stderr
    assert lab.id in json.loads(tags.stdout)["tags"]


def test_directory_is_served_to_the_hosts(lab, tmp_path):
    (tmp_path / "dists").mkdir()
    (tmp_path / "dists" / "Release").write_text(f"Origin: gpuhost lab {lab.id}\n")
    served = lab.serve_directory(tmp_path, name="localrepo")
    got = lab.host("nogpu").exec(f"curl -fsS {served.url}/dists/Release")
    assert got.returncode == 0, got.stderr
    assert got.stdout == f"Origin: gpuhost lab {lab.id}\n"


# -- (d) teardown leaves nothing -------------------------------------------------------------


def test_teardown_after_a_normal_exit(engine):
    with Lab(["t-ok"]) as lab:
        lab_id = lab.id
        assert len(_lab_leftovers(lab_id)) == 2  # the host and the network exist while open
        assert lab.hosts[0].ssh("systemctl is-active ssh").stdout.strip() == "active"
    assert _lab_leftovers(lab_id) == []


def test_teardown_when_the_body_raises(engine):
    with pytest.raises(RuntimeError, match="boom"):
        with Lab(["t-raise"]) as lab:
            lab_id = lab.id
            lab.registry()
            raise RuntimeError("boom")
    assert _lab_leftovers(lab_id) == []


LAB_IN_CHILD = """
import sys, time
from gpuhost.lab import Lab
with Lab(["t-signal"]) as lab:
    print(lab.id, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_teardown_on_ctrl_c_and_sigterm(engine, signum):
    child = subprocess.Popen([sys.executable, "-c", LAB_IN_CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env={**os.environ})
    try:
        lab_id = child.stdout.readline().strip()
        assert lab_id, "the child lab did not start"
        assert _lab_leftovers(lab_id)
        child.send_signal(signum)
        assert child.wait(timeout=60) != 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _lab_leftovers(lab_id) == []


def test_cleanup_removes_what_a_killed_run_left(engine):
    from gpuhost.lab import cleanup

    child = subprocess.Popen([sys.executable, "-c", LAB_IN_CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    lab_id = child.stdout.readline().strip()
    child.kill()  # SIGKILL: no handler runs, the containers stay
    child.wait()
    time.sleep(0.2)
    assert _lab_leftovers(lab_id), "SIGKILL should have left the lab behind"
    run_dir = state_dir() / "runs" / lab_id
    assert (run_dir / "inventory.py").exists()
    cleanup()
    assert _lab_leftovers(lab_id) == []
    assert not run_dir.exists()
