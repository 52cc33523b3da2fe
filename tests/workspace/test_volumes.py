"""A workspace volume cannot be turned into a path outside its owner's reach: the deploy's check and
the unit's check before each start, run by the real shell on a real directory tree (root runs the tests)."""

from __future__ import annotations

import os
import subprocess

import pytest

from gpuhost.run.grammar import systemd_command
from gpuhost.errors import UsageError
from gpuhost.workspace import decide, operations
from gpuhost.workspace.settings import WorkspaceSettings

ALICE = 1001


def tree(tmp_path):
    """tmp/srv (root's, 755) / alice (alice's) / exp2 (alice's): alice made exp2 inside her volume."""
    srv = tmp_path / "srv"
    (srv / "alice" / "exp2").mkdir(parents=True)
    os.chmod(srv, 0o755)
    for path in (srv / "alice", srv / "alice" / "exp2"):
        os.chown(path, ALICE, ALICE)
    return srv


def owned_directory(path) -> subprocess.CompletedProcess:
    command = next(operations.owned_directory._inner(path=str(path), uid=ALICE, gid=ALICE, user="alice"))
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_an_existing_nested_volume_is_refused_when_its_parent_is_the_tenants(tmp_path):
    srv = tree(tmp_path)
    done = owned_directory(srv / "alice" / "exp2")
    assert done.returncode == 1 and f"lies in {srv / 'alice'}, which is a link, not root's" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_the_unit_rechecks_each_volume_before_every_start(tmp_path):
    srv = tree(tmp_path)
    data = {"workspace_users": {"alice": {"uid": ALICE, "gid": ALICE}}, "workspace_volume_root": str(srv),
            "workspaces": [{"user": "alice", "ssh": False,
                            "volumes": [f"{srv}/alice/exp2:/exp2"]}]}
    ws = WorkspaceSettings.from_host_data(data).workspaces[0]
    args = decide.volume_check_args(ws)
    assert "ExecStartPre=" + systemd_command(args) + "\n" in decide.unit_text(ws, ["--rm", "img"], "spec")

    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 1 and f"{srv}/alice/exp2 lies in {srv / 'alice'}, a link, not root's" in done.stderr
    (srv / "alice" / "exp2").rmdir()  # alice swaps it for a link to / and makes her container exit
    (srv / "alice" / "exp2").symlink_to("/")
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 1 and "exp2 is a symbolic link: not starting the workspace" in done.stderr


@pytest.mark.parametrize("volumes, root", [
    (["/etc/systemd/system/docker.service.d:/workspace"], None),  # alice would own docker's drop-ins
    (["/srv/workspaces:/workspace"], None),                        # the root itself: every tenant's parent
    (["/srv/workspacesX/alice:/workspace"], None),
    (["/srv/workspaces/alice:/w", "/root:/r:ro"], None),
    ([], "/data/ws"),                                              # the default volume is /srv/workspaces/<id>
])
def test_volumes_lie_below_the_volume_root(volumes, root):
    data = {"workspace_users": {"alice": {"uid": ALICE, "gid": ALICE}},
            "workspaces": [{"user": "alice", "ssh": False, "volumes": volumes}],
            **({"workspace_volume_root": root} if root else {})}
    with pytest.raises(UsageError, match=r"^workspaces\[0\]: volume \S+ is not below workspace_volume_root"):
        WorkspaceSettings.from_host_data(data)


def test_the_volume_root_is_a_plain_directory_and_takes_its_own_volumes():
    data = {"workspace_users": {"alice": {"uid": ALICE, "gid": ALICE}}, "workspace_volume_root": "/data/ws/",
            "workspaces": [{"user": "alice", "ssh": False, "volumes": ["/data/ws/alice:/workspace"]}]}
    assert WorkspaceSettings.from_host_data(data).workspace_volume_root == "/data/ws"
    for bad in ("/", "data/ws", "/data/ws\n"):
        with pytest.raises(UsageError, match="^workspace_volume_root: "):
            WorkspaceSettings.from_host_data({**data, "workspace_volume_root": bad})


@pytest.mark.parametrize("key, value", [("memory", "0"), ("memory", "0g"), ("shm", "0.0m")])
def test_a_zero_limit_is_refused(key, value):
    """docker run --memory 0 means unlimited: one tenant could take the host's memory."""
    data = {"workspace_users": {"alice": {"uid": ALICE, "gid": ALICE}},
            "workspaces": [{"user": "alice", "ssh": False, key: value}]}
    with pytest.raises(UsageError, match=rf"^workspaces\[0\]\.{key}: .* is no limit at all"):
        WorkspaceSettings.from_host_data(data)
    assert getattr(WorkspaceSettings.from_host_data({**data, "workspaces": [{**data["workspaces"][0], key: "1g"}]})
                   .workspaces[0], key) == "1g"
