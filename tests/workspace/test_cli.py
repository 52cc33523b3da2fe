"""Bad workspace data through the real CLIs: one line, exit status 2, no host contacted or changed.

`gpuhost workspaces` checks every host's data before connecting (the inventory's host is
unreachable, so a connection would show as an error row instead); pyinfra's own CLI running
deploys/gpu_host.py on @local stops in the settings check, before the snapshot is read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm0bE2CgKm4gRFMM0yV7Ew6bZ5pP7fDq3Y1bC1o3yNd alice@laptop"
USERS = {"alice": {"uid": 1001, "gid": 1001, "ssh_keys": [KEY]}, "bob": {"uid": 1002, "gid": 1002, "ssh_keys": [KEY]}}
BOB = {"user": "bob", "ssh_port": 2223, "jupyter_port": 8889}


def inventory(tmp_path: Path, workspaces: list, host: str = "gpu-01", **extra) -> Path:
    data = {"ssh_hostname": "127.0.0.1", "ssh_port": 1, "workspace_users": USERS, "workspaces": workspaces, **extra}
    path = tmp_path / "inventory.py"
    path.write_text(f"hosts = [({host!r}, {data!r})]\n")
    return path


@pytest.mark.parametrize("workspaces, extra, message", [
    ([{"user": "carol"}], {}, "workspaces[0]: unknown user 'carol'"),
    ([{"user": "alice", "gpus": [4]}], {"target_gpus": ["H100"] * 4}, "workspaces[0].gpus: GPU index 4 is out of range"),
    ([{"user": "alice", "gpus": [0, 1]}, {**BOB, "gpus": [1]}], {}, "GPU 1 is claimed by workspaces 'alice' and 'bob'"),
    ([{"user": "alice"}, {**BOB, "ssh_port": 2222}], {}, "port clash: ssh_port 2222"),
])
def test_gpuhost_workspaces_refuses_bad_data_in_one_line(tmp_path, workspaces, extra, message):
    result = subprocess.run([str(BIN / "gpuhost"), "workspaces", str(inventory(tmp_path, workspaces, **extra))],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gpuhost: error: bad inventory data (no host was contacted): host gpu-01: ") and message in lines[0]


def test_pyinfra_deploy_stops_before_reading_or_changing_the_host(tmp_path):
    if shutil.which("sudo") is None and not Path("/").stat().st_uid == 0:
        pytest.skip("pyinfra @local needs a local shell")
    path = inventory(tmp_path, [{"user": "carol"}], host="@local")
    path.write_text(path.read_text().replace("'ssh_hostname': '127.0.0.1', 'ssh_port': 1, ", ""))
    result = subprocess.run([str(BIN / "pyinfra"), str(path), "deploys/gpu_host.py", "-y"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "bad inventory data: host @local: workspaces[0]: unknown user 'carol'" in output, output[-2000:]
    assert "Starting operation" not in output and "HostSnapshot" not in output
