"""`gpuhost inspect` over real SSH to a lab host: a GPU-less host, read in one command.

The host's sshd logs every command it is asked to run (LogLevel DEBUG1 for this test), so the
number of round trips `inspect` costs is counted on the host itself, not assumed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab

pytestmark = pytest.mark.e2e
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")


def test_gpu_less_host_over_ssh_in_one_command(engine):
    with Lab([HostSpec("inspect-nogpu")]) as lab:
        host = lab.host("inspect-nogpu")
        host.log_commands()
        before = host.commands_started()

        result = subprocess.run([GPUHOST, "inspect", str(lab.inventory_path), "--json"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        after = host.commands_started()
        assert after - before == 1, f"inspect ran {after - before} commands on the host"

        (entry,) = json.loads(result.stdout)["hosts"]
        assert entry["reachable"] is True
        assert entry["facts"]["host"]["os"]["id"] == "debian"
        assert entry["facts"]["host"]["systemd"] is True
        assert entry["facts"]["gpu"]["gpus"] == []
        assert entry["plan"]["status"] == "skipped"
        assert entry["summary"]["plan"].startswith("skipped: no NVIDIA GPU")

        table = subprocess.run([GPUHOST, "inspect", str(lab.inventory_path)],
                               capture_output=True, text=True, timeout=300)
        assert table.returncode == 0, table.stderr
        row = table.stdout.splitlines()[1]
        assert row.startswith("inspect-nogpu") and "debian 12" in row and "no NVIDIA GPU" in row
