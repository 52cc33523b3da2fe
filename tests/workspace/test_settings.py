"""Workspace host data: bad data is refused in one line naming the key and the fix, before any host."""

from __future__ import annotations

import pytest

from gpuhost.errors import UsageError
from gpuhost.compose.settings import check_hosts
from gpuhost.workspace.settings import WorkspaceSettings

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm0bE2CgKm4gRFMM0yV7Ew6bZ5pP7fDq3Y1bC1o3yNd alice@laptop"
USERS = {"alice": {"uid": 1001, "gid": 1001, "ssh_keys": [KEY]}, "bob": {"uid": 1002, "gid": 1002, "ssh_keys": [KEY]}}


def settings(*workspaces, **extra) -> WorkspaceSettings:
    return WorkspaceSettings.from_host_data({"workspace_users": USERS, "workspaces": list(workspaces), **extra})


def refused(*workspaces, **extra) -> str:
    with pytest.raises(UsageError) as caught:
        settings(*workspaces, **extra)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults():
    ws = settings({"user": "alice"}).workspaces[0]
    assert (ws.id, ws.jupyter, ws.ssh, ws.jupyter_port, ws.ssh_port, ws.exclusive) == ("alice", True, True, 8888, 2222, True)
    assert ws.mounts == (("/srv/workspaces/alice", "/workspace", "rw"),)
    assert (ws.shm, ws.pids, ws.state) == ("8g", 4096, "running")


def test_no_workspaces_is_fine():
    assert WorkspaceSettings.from_host_data({}).workspaces == ()


def test_unknown_user():
    message = refused({"user": "carol"})
    assert message.startswith("workspaces[0]: unknown user 'carol'") and "workspace_users" in message


def test_gpu_claimed_twice_exclusively():
    message = refused({"user": "alice", "gpus": [0, 1]}, {"user": "bob", "gpus": [1], "ssh_port": 2223,
                                                           "jupyter_port": 8889})
    assert message.startswith("workspaces[1]: GPU 1 is claimed by workspaces 'alice' and 'bob'")


def test_shared_gpu_when_neither_is_exclusive():
    both = settings({"user": "alice", "gpus": [0], "exclusive": False},
                    {"user": "bob", "gpus": [0], "exclusive": False, "ssh_port": 2223, "jupyter_port": 8889})
    assert [ws.gpus for ws in both.workspaces] == [(0,), (0,)]


def test_port_clash():
    message = refused({"user": "alice"}, {"user": "bob", "jupyter_port": 8889})
    assert message == ("workspaces[1]: port clash: ssh_port 2222 is already ssh_port of workspace 'alice': "
                       "give each workspace its own ports")
    assert "port clash" in refused({"user": "alice", "jupyter_port": 2222, "ssh_port": 2222})


def test_gpu_index_beyond_target_gpus():
    message = refused({"user": "alice", "gpus": [2]}, target_gpus=["H100", "H100"])
    assert message == "workspaces[0].gpus: GPU index 2 is out of range: target_gpus declares 2 GPU(s) (0-1)"


@pytest.mark.parametrize(("workspace", "expected"), [
    ({"user": "alice", "gpu": [0]}, "workspaces[0].gpu: unknown key"),
    ({"user": "alice", "gpus": ["H100"]}, "'H100' is not a GPU"),
    ({"user": "alice", "gpus": [-1]}, "-1 is not a GPU"),
    ({"user": "alice", "memory": "lots"}, "workspaces[0].memory: 'lots' is not a size"),
    ({"user": "alice", "volumes": ["data:/workspace"]}, "workspaces[0].volumes: 'data:/workspace': use HOST_DIR"),
    ({"user": "alice", "jupyter": False, "ssh": False}, "neither jupyter nor ssh"),
    ({"user": "alice", "jupyter_tls_cert": "/etc/ssl/ws.pem"}, "jupyter_tls_cert and jupyter_tls_key go together"),
    ({"user": "alice", "ssh_port": 22}, "workspaces[0].ssh_port: Input should be greater than or equal to 1024"),
    ({"user": "alice", "state": "paused"}, "workspaces[0].state: Input should be 'running', 'stopped' or 'absent'"),
    ({"gpus": [0]}, "workspaces[0].user: missing"),
])
def test_bad_values(workspace, expected):
    assert expected in refused(workspace)


def test_user_without_keys_cannot_have_ssh():
    with pytest.raises(UsageError, match=r"ssh is on but user 'alice' has no ssh_keys"):
        WorkspaceSettings.from_host_data({"workspace_users": {"alice": {"uid": 1001, "gid": 1001}},
                                          "workspaces": [{"user": "alice"}]})


def test_root_uid_and_bad_keys_are_refused():
    with pytest.raises(UsageError, match=r"workspace_users.alice.uid: Input should be greater than or equal to 1"):
        WorkspaceSettings.from_host_data({"workspace_users": {"alice": {"uid": 0, "gid": 1001}}})
    with pytest.raises(UsageError, match=r"is not an OpenSSH public key line"):
        WorkspaceSettings.from_host_data({"workspace_users": {"alice": {"uid": 1, "gid": 1, "ssh_keys": ["hunter2"]}}})


def test_check_hosts_names_the_host():
    problems = check_hosts([("gpu-01", {"workspace_users": USERS, "workspaces": [{"user": "carol"}]}),
                            ("gpu-02", {"workspace_users": USERS, "workspaces": [{"user": "alice"}]})])
    assert len(problems) == 1 and problems[0].startswith("host gpu-01: workspaces[0]: unknown user 'carol'")
