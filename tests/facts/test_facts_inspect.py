"""`gpuhost inspect`: the fleet table and plan from real facts, and its behaviour as a command.

The pure parts (summary, table, JSON) run on real snapshots (tests/fixtures/); the command runs
for real in a subprocess, with pyinfra's @local connector on this GPU-less machine and an SSH
host that does not answer (127.0.0.1 port 1). Over SSH to lab hosts: tests/e2e/test_inspect.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from facts.host import HostState
from facts.snapshot import HostSnapshot
from gpuhost.commands.inspect import (
    COMMANDS_PER_HOST,
    HostReading,
    assess,
    render_table,
    to_document,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
TODAY = date(2026, 11, 23)


def snapshot(name: str) -> dict:
    return HostSnapshot().process((FIXTURES / name).read_text().splitlines())


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([GPUHOST, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_h100_row_and_plan():
    reading = assess(HostReading("gpu-h100", {}, snapshot("device-h100/facts/snapshot.out")), today=TODAY)
    s = reading.summary
    assert s["status"] == "planned"
    assert s["os"] == "ubuntu 24.04"
    assert s["gpus"] == [{"model": "NVIDIA H100 80GB HBM3", "count": 1, "compute_capability": "9.0"}]
    assert (s["driver"], s["flavour"]) == ("580.159.04", "open")
    assert s["docker"] is None and s["image_present"] is False
    assert reading.plan["plan"]["driver"]["kernel_module"] == "open"
    table = render_table([reading])
    assert "NVIDIA H100 80GB HBM3 x1 (cc 9.0)" in table
    assert "580.159.04 open" in table
    assert "gpu-h100: driver " in table and "image pytorch/pytorch:" in table


def test_gpu_less_host_says_no_nvidia_gpu():
    reading = assess(HostReading("lab", {}, snapshot("debian12-lab-host/snapshot-docker.out")), today=TODAY)
    assert reading.summary["status"] == "skipped"
    assert reading.summary["gpus"] == []
    table = render_table([reading])
    assert "no NVIDIA GPU" in table.splitlines()[1]
    assert "lab: skipped: no NVIDIA GPU" in table
    assert "20.10.24+dfsg1 +nvidia" in table  # the nvidia runtime is configured there


def test_declared_gpus_are_planned_on_a_gpu_less_host_and_flags_show():
    facts = snapshot("debian12-lab-host/snapshot-docker.out")
    facts["host"] = HostState().process((FIXTURES / "debian12-lab-host/host-apt-locked.out").read_text().splitlines())
    reading = assess(HostReading("build", {"target_gpus": ["H100"]}, facts), today=TODAY)
    assert reading.summary["status"] == "planned"
    assert reading.summary["gpus"] == []  # none attached: the plan is for the declared H100
    assert "apt-locked" in reading.summary["flags"]
    assert "apt-locked" in render_table([reading]).splitlines()[1]


def test_unreachable_host_is_a_row_not_a_traceback():
    reading = assess(HostReading("down", {}, None, error="Could not connect (refused)"))
    table = render_table([reading])
    assert table.splitlines()[1].split()[:3] == ["down", "?", "unreachable"]
    assert "Could not connect (refused)" in table
    doc = to_document([reading])
    assert doc["hosts"][0]["reachable"] is False and doc["hosts"][0]["plan"] is None


def test_command_on_local_and_an_unreachable_host(tmp_path):
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        'hosts = [("down", {"ssh_hostname": "127.0.0.1", "ssh_port": 1}), ("@local", {})]\n')
    result = run("inspect", str(inventory), "--json")
    assert result.returncode == 1, result.stderr  # a host was not read: exit 1 (each row says why)
    assert "1 of 2 host(s) not read: down" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["commands_per_host"] == COMMANDS_PER_HOST == 1
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["down"]["reachable"] is False
    assert hosts["down"]["error"] == "connection refused: nothing listens on 127.0.0.1:1"
    local = hosts["@local"]
    assert local["reachable"] is True
    assert set(local["facts"]) == {"gpu", "host", "container", "managed", "workspace", "health"}
    if not local["facts"]["gpu"]["gpus"]:  # this machine: no NVIDIA GPU
        assert local["plan"]["status"] == "skipped"
        assert local["summary"]["health"]["verdict"] == "ok" and local["summary"]["health"]["gpus"] == []
        assert local["summary"]["plan"].startswith("skipped: no NVIDIA GPU")

    table = run("inspect", str(inventory), "--limit", "down")
    assert table.returncode == 1 and "unreachable" in table.stdout and "@local" not in table.stdout


@pytest.mark.parametrize("content, args, message", [
    ('hosts = [("@local", {"torch": "two"})]\n', [], "bad inventory data (no host was contacted): host @local: torch is 'two'"),
    ("hosts = [\n", [], "inventory "),
    ('hosts = [("@local", {})]\n', ["--limit", "nope"], "--limit nope: not in inventory"),
    ("x = 1\n", [], "lists no hosts"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, args, message):
    inventory = tmp_path / "inventory.py"
    inventory.write_text(content)
    result = run("inspect", str(inventory), *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpuhost: error: ") and message in lines[0], result.stderr


def test_missing_inventory_file(tmp_path):
    result = run("inspect", str(tmp_path / "nope.py"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"gpuhost: error: inventory {tmp_path / 'nope.py'} not found: give an "
                                     "inventory file, a host list (a,b) or a connector (@local)")
