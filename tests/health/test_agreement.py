"""The snapshot and the on-host command read the same and judge the same: both real scripts run
here with the e2e TEST FIXTURE nvidia-smi and dmesg on PATH (tests/e2e/health_fixture.py: the real
H100's values, the faulty one from a published output), this machine having no NVIDIA GPU."""

from __future__ import annotations

import os
import subprocess

import pytest

from facts.snapshot import COMMAND as SNAPSHOT, HostSnapshot
from gpuhost.health import probe
from gpuhost.health.verdict import host_health, one_line
from tests.e2e import health_fixture


@pytest.mark.parametrize("case, verdict", [("xid79", "failed"), ("remap", "degraded"), ("x8", "degraded")])
def test_snapshot_and_command_agree(tmp_path, case, verdict):
    (tmp_path / "nvidia-smi").write_text(health_fixture.smi_script(case))
    (tmp_path / "dmesg").write_text(health_fixture.dmesg_script() if case == "xid79" else "#!/bin/sh\n")
    for tool in ("nvidia-smi", "dmesg"):
        (tmp_path / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    snapshot = subprocess.run(["sh", "-c", SNAPSHOT], capture_output=True, text=True, env=env, timeout=120).stdout
    command = subprocess.run(["sh", "-c", probe.COMMAND], capture_output=True, text=True, env=env, timeout=60).stdout
    from_snapshot = host_health(HostSnapshot().process(snapshot.splitlines()))
    from_command = host_health(probe.parse(command.splitlines()))
    assert from_snapshot.verdict == verdict and one_line(from_snapshot) == one_line(from_command)
    assert HostSnapshot().process(snapshot.splitlines())["gpu"]["gpus"][0]["smi"]["uuid"] == \
        from_snapshot.gpus[0].uuid  # the gpu part still reads its fields from the shared call
