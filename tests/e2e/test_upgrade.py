"""`gpuhost upgrade` for real: five Debian 12 lab hosts over SSH, the driver stage per batch.

The driver packages come from the signed fixture repository of tests/e2e/driver_fixture.py
(TEST FIXTURE packages named like NVIDIA's; the module says why). Every host declares an H100
(target_gpus), so each has a plan without a GPU. Two hosts are made to misbehave for real:

- n3 gets a malformed apt source (/etc/apt/sources.list.d/broken.list), so `apt-get update` fails
  in the driver stage: a real failure, which stops the rollout at --max-failed 0. Removing the
  file fixes it, and the next invocation resumes with it.
- busy gets the TEST FIXTURE nvidia-smi (driver_fixture.FAKE_SMI) reporting a compute process:
  gpuhost's facts read it as they read the real tool, and the rollout skips the host without
  deploying to it. Its "drain" is a command on this machine that ends the simulated job (removes
  the fake nvidia-smi through the lab engine), as a scheduler's drain would end or move the job.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from tests.e2e.driver_fixture import FAKE_SMI_PATH, build_repository, install_fake_smi, planned_branch, repository_data

pytestmark = pytest.mark.e2e
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
HOSTS = ["n1", "n2", "n3", "n4", "busy"]
SOURCES = "/etc/apt/sources.list.d/gpuhost-nvidia-cuda.sources"


@pytest.fixture(scope="module")
def fleet(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("upgrade-repo")
    data = repository_data(build_repository(root))
    with Lab([HostSpec(name, data) for name in HOSTS]) as lab:
        lab.serve_directory(root / "repo", name="apt")
        lab.host("n3").exec("echo 'deb broken' > /etc/apt/sources.list.d/broken.list", check=True)
        install_fake_smi(lab.host("busy"))
        yield lab


def upgrade(lab, state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GPUHOST, "upgrade", str(lab.inventory_path), "--state", str(state), *args],
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


def record_of(proc) -> dict:
    assert proc.stdout.lstrip().startswith("{"), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def results(record: dict) -> dict:
    return {name: record["hosts"][name]["result"] for name in HOSTS}


def has_driver(host) -> bool:
    return host.exec("dpkg-query -W -f='${Status}' nvidia-open 2>/dev/null").stdout.endswith("installed")


def untouched(host) -> bool:
    """No driver package, no driver repository: the deploy never ran here."""
    return not has_driver(host) and host.exec(f"test -e {SOURCES}").returncode != 0


def test_canary_batches_stop_at_threshold_resume_skip_busy_then_drain(fleet, tmp_path):
    state = tmp_path / "rollout.json"
    undrained = tmp_path / "undrained"

    # 1. Canary n1, then [n2, n3]: n3 fails, which is more than --max-failed 0: stop there.
    first = upgrade(fleet, state, "--canary", "1", "--batch", "2", "--json")
    assert first.returncode == 1, first.stderr
    record = record_of(first)
    assert record["status"] == "stopped", first.stderr
    assert record["stop_reason"] == "1 failed host(s), more than --max-failed 0"
    assert results(record) == {"n1": "upgraded", "n2": "upgraded", "n3": "failed", "n4": "pending",
                               "busy": "pending"}, first.stderr
    assert record["hosts"]["n1"]["batch"] == "canary" and record["canary_passed"]
    assert "E: Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list" in record["hosts"]["n3"]["reason"]
    assert json.loads(state.read_text()) == {k: v for k, v in record.items() if k != "state_file"}
    n1 = fleet.host("n1").testinfra()
    assert n1.package("nvidia-open").is_installed
    assert {f"nvidia-driver-pinning-{planned_branch()}", "nvidia-open"} <= set(n1.check_output("apt-mark showhold").split())
    assert untouched(fleet.host("n4")) and untouched(fleet.host("busy"))  # after the stop: not reached

    # 2. Fixed, the same command resumes: n3 retried, n4 done, busy skipped and left alone.
    fleet.host("n3").exec("rm /etc/apt/sources.list.d/broken.list", check=True)
    second = upgrade(fleet, state, "--canary", "1", "--batch", "2")
    assert second.returncode == 1, second.stdout + second.stderr
    record = json.loads(state.read_text())
    assert record["status"] == "incomplete"
    assert results(record) == {"n1": "upgraded", "n2": "upgraded", "n3": "upgraded", "n4": "upgraded",
                               "busy": "skipped-busy"}, second.stdout
    assert record["hosts"]["n3"]["attempts"] == 2 and record["hosts"]["n1"]["run"] == 1
    assert [b["hosts"] for b in record["runs"][1]["batches"]] == [["n3", "n4"], ["busy"]]  # no second canary
    assert record["hosts"]["busy"]["reason"].startswith("GPU work running: python3 (pid 4242)")
    table = second.stdout.splitlines()
    assert table[0].split() == ["HOST", "RUN", "BATCH", "RESULT", "DRIVER", "NOTES"]
    busy_row = next(line for line in table if line.startswith("busy "))
    assert "skipped-busy" in busy_row and "535.104.05" in busy_row
    assert table[-1].startswith("rollout incomplete: 1 skipped with GPU work")
    assert has_driver(fleet.host("n3")) and has_driver(fleet.host("n4"))
    assert untouched(fleet.host("busy"))
    deployed = "".join(p.read_text().splitlines()[0] for p in state.with_name(state.name + ".logs").iterdir())
    assert "--limit busy" not in deployed  # pyinfra was never pointed at it

    # 3. Drained (the simulated job ends), busy is upgraded; the undrain command follows.
    drain = f"docker exec {fleet.prefix}-{{host}} rm -f {FAKE_SMI_PATH}"
    third = upgrade(fleet, state, "--canary", "1", "--batch", "2", "--drain-command", drain,
                    "--undrain-command", f"echo {{host}} >> {undrained}", "--drain-timeout", "60", "--json")
    assert third.returncode == 0, third.stderr
    record = record_of(third)
    assert record["status"] == "complete" and set(results(record).values()) == {"upgraded"}
    assert record["hosts"]["busy"]["driver_before"] == "535.104.05"
    assert has_driver(fleet.host("busy"))
    assert undrained.read_text().split() == ["busy"]

    # 4. Nothing left: no host is contacted.
    logs = sorted(state.with_name(state.name + ".logs").iterdir())
    fourth = upgrade(fleet, state)
    assert fourth.returncode == 0 and "0 to do" in fourth.stderr, fourth.stderr
    assert sorted(state.with_name(state.name + ".logs").iterdir()) == logs

    # 5. A new rollout over converged hosts (canary, then 50% of 5 = 3 per batch): all current.
    fifth = upgrade(fleet, state, "--restart", "--batch", "50%", "--json")
    assert fifth.returncode == 0, fifth.stderr
    record = record_of(fifth)
    assert len(record["runs"]) == 1 and set(results(record).values()) == {"current"}, fifth.stderr
    assert [b["hosts"] for b in record["runs"][0]["batches"]] == [["n1"], ["n2", "n3", "n4"], ["busy"]]
