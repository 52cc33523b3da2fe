"""A host is stopped with its reason printed as is, also when the reason holds shell characters."""

import subprocess

import pytest

from gpuhost.run.stop import stop_command


@pytest.mark.parametrize("reason", [
    "no NVIDIA GPU found on the PCI bus and no target_gpus declared",
    "rootless Docker found: disable the user's docker.service, then rerun",  # an apostrophe
    'driver "580" $(touch /tmp/gpuhost-pwned) `id` ; exit 0',
])
def test_stop_command_prints_reason_and_fails(reason, tmp_path):
    r = subprocess.run(["sh", "-c", stop_command(reason)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == f"gpuhost: {reason}\n" and r.stdout == ""
