"""The workspace's pure decisions: GPUs to UUIDs, the container's arguments, the unit, convergence.

GPU facts are the real ones of tests/facts/gpu.GpuState (nvidia-smi output captured on the lent
H100/H200 machines and public samples; each file names its source).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuhost.errors import UsageError
from gpuhost.workspace import decide
from gpuhost.workspace.settings import WorkspaceSettings
from gpuhost.workspace.stage import wanted_state

FACTS = Path(__file__).resolve().parents[1] / "facts" / "gpu.GpuState"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm0bE2CgKm4gRFMM0yV7Ew6bZ5pP7fDq3Y1bC1o3yNd alice@laptop"
USERS = {"alice": {"uid": 1001, "gid": 1001, "ssh_keys": [KEY]}, "bob": {"uid": 1002, "gid": 1002, "ssh_keys": [KEY]}}
BASE = "registry:5000/pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime"


def gpu_state(name: str) -> dict:
    return json.loads((FACTS / f"{name}.json").read_text())["fact"]


def settings(*workspaces) -> WorkspaceSettings:
    return WorkspaceSettings.from_host_data({"workspace_users": USERS, "workspaces": list(workspaces)})


def test_index_and_uuid_resolve_to_the_hosts_uuids():
    h200 = gpu_state("h200_driver580")
    uuid = "GPU-66250972-2e48-0d20-8bfa-9a230db3eef4"
    ws = settings({"user": "alice", "gpus": [0]}).workspaces[0]
    assert decide.resolve_gpus(ws, h200) == (uuid,)
    ws = settings({"user": "alice", "gpus": [uuid]}).workspaces[0]
    assert decide.resolve_gpus(ws, h200) == (uuid,)
    four = gpu_state("public_mig_mode_4gpu")  # nvidia-smi gave no index column: its order
    ws = settings({"user": "alice", "gpus": [3]}).workspaces[0]
    assert decide.resolve_gpus(ws, four) == ("GPU-1a4dff29-ab6d-9f64-f125-8b7cebdaac4a",)


def test_index_out_of_range_and_unknown_uuid_are_refused_in_one_line():
    h200 = gpu_state("h200_driver580")
    ws = settings({"user": "alice", "gpus": [1]}).workspaces[0]
    with pytest.raises(UsageError, match=r"^workspace 'alice': GPU index 1 is out of range: this host has 1 GPU\(s\) \(0-0\)$"):
        decide.resolve_gpus(ws, h200)
    ws = settings({"user": "alice", "gpus": ["GPU-00000000-0000-0000-0000-000000000000"]}).workspaces[0]
    with pytest.raises(UsageError, match="is not on this host"):
        decide.resolve_gpus(ws, h200)
    with pytest.raises(UsageError, match="no GPU that nvidia-smi reports"):
        decide.resolve_gpus(settings({"user": "alice", "gpus": [0]}).workspaces[0], gpu_state("debian12_vm_no_gpu"))


def test_an_index_and_a_uuid_naming_one_gpu_clash_once_resolved():
    uuid = "GPU-66250972-2e48-0d20-8bfa-9a230db3eef4"
    both = settings({"user": "alice", "gpus": [0]}, {"user": "bob", "gpus": [uuid], "ssh_port": 2223, "jupyter_port": 8889})
    with pytest.raises(UsageError, match=f"workspaces 'alice' and 'bob' both claim GPU {uuid} exclusively"):
        decide.resolve_all(both, gpu_state("h200_driver580"))


def run_args(**workspace) -> list[str]:
    s = settings({"user": "alice", **workspace})
    ws = s.workspaces[0]
    return decide.docker_run_args(ws, s.workspace_users["alice"], decide.resolve_gpus(ws, gpu_state("h100_gpu_process")),
                                  "gpuhost-workspace:abc")


def pairs(args: list[str]) -> list[tuple[str, str]]:
    return list(zip(args, args[1:]))


def test_container_is_least_privilege_with_only_its_gpus_and_limits():
    args = run_args(gpus=[0], cpus=8, memory="64g", pids=2048, shm="16g")
    uuid = "GPU-ec344130-752c-d74c-0ae6-abd4bb148ff9"
    for pair in [("--user", "1001:1001"), ("--security-opt", "no-new-privileges"), ("--cap-drop", "ALL"),
                 ("--gpus", f"device={uuid}"), ("-e", f"NVIDIA_VISIBLE_DEVICES={uuid}"), ("--cpus", "8"),
                 ("--memory", "64g"), ("--pids-limit", "2048"), ("--shm-size", "16g"),
                 ("-p", "127.0.0.1:8888:8888"), ("-p", "2222:2222"),
                 ("-v", "/srv/workspaces/alice:/workspace:rw"),
                 ("-e", "JUPYTER_TOKEN_FILE=/etc/gpuhost/jupyter_token")]:
        assert pair in pairs(args), pair
    assert "--privileged" not in args and "--cap-add" not in args
    assert not any(a.startswith("JUPYTER_TOKEN=") for a in args)


def test_no_gpus_means_none_visible_and_tls_opens_jupyter_to_the_network():
    args = run_args(jupyter_tls_cert="/etc/ssl/ws.pem", jupyter_tls_key="/etc/ssl/ws.key")
    assert "--gpus" not in args and ("-e", "NVIDIA_VISIBLE_DEVICES=void") in pairs(args)
    assert ("-p", "8888:8888") in pairs(args)
    assert ("-v", "/etc/ssl/ws.key:/etc/gpuhost/tls/key.pem:ro") in pairs(args)


def test_unit_quotes_what_systemd_would_split():
    assert decide.systemd_quote('"device=GPU-a,GPU-b"') == '"\\"device=GPU-a,GPU-b\\""'
    assert decide.systemd_quote("python /opt/gpuhost-workspace/health.py") == '"python /opt/gpuhost-workspace/health.py"'
    assert decide.systemd_quote("100%") == "100%%"
    ws = settings({"user": "alice"}).workspaces[0]
    text = decide.unit_text(ws, ["--rm", "--name", "x"], "spec1")
    assert "Restart=on-failure" in text and "WantedBy=multi-user.target" in text
    assert "ExecStart=/usr/bin/docker run --rm --label gpuhost.workspace.spec=spec1 --name x" in text


def test_sshd_is_key_only_and_the_user_has_no_password():
    s = settings({"user": "alice"})
    files = decide.config_files(s.workspaces[0], s.workspace_users["alice"])
    config = files["sshd_config"].splitlines()
    for line in ("PasswordAuthentication no", "PermitRootLogin no", "KbdInteractiveAuthentication no",
                 "AuthenticationMethods publickey", "AllowUsers alice", "Port 2222"):
        assert line in config
    assert files["authorized_keys"] == KEY + "\n"
    assert files["passwd"].splitlines()[1] == "alice:x:1001:1001:alice:/workspace:/bin/bash"


def test_layer_tag_follows_its_recipe():
    s = settings({"user": "alice"}, {"user": "bob", "apt_packages": ["git"], "ssh_port": 2223, "jupyter_port": 8889})
    alice, bob = (decide.workspace_image(ws, s, BASE) for ws in s.workspaces)
    assert alice[0].startswith("gpuhost-workspace:") and alice[0] != bob[0]
    assert alice[1].startswith("# gpuhost workspace layer") and f"FROM {BASE}" in alice[1]
    assert "jupyterlab==4.6.6" in alice[1] and "openssh-server" in alice[1]
    assert bob[1].startswith(alice[1].rstrip("\n"))  # the shared step first: Docker's cache keeps it
    own = settings({"user": "alice", "image": "me/ws:1"})
    assert decide.workspace_image(own.workspaces[0], own, BASE) == ("me/ws:1", None)


def converged_facts(wanted: dict) -> tuple[dict, dict]:
    """The workspace and container facts of a host where `wanted` is in place."""
    ws = wanted["ws"]
    sha1 = lambda text: __import__("hashlib").sha1(text.encode()).hexdigest()  # noqa: E731
    files = {f"{decide.config_dir(ws)}/{n}": sha1(t) for n, t in wanted["files"].items()}
    files |= {f"{decide.BIN}/{n}": sha1(t) for n, t in wanted["scripts"].items()}
    files[decide.unit_path(ws)] = sha1(wanted["unit"])
    facts = {"files": files, "tokens": {ws.id: {"mode": "600", "uid": wanted["uid"], "gid": wanted["gid"], "size": 48}},
             "records": {}, "units": {decide.unit_name(ws): {"enabled": "enabled", "active": "active"}},
             "containers": {decide.container_name(ws): {"state": "running", "spec": wanted["spec"]}},
             "layers": {wanted["image"]: "sha256:base"}}
    return facts, {"image_digests": {BASE: "sha256:base"}, "images": [BASE, wanted["image"]]}


def test_pending_is_empty_when_everything_is_in_place_and_names_what_differs():
    s = settings({"user": "alice", "gpus": [0]})
    wanted = wanted_state(s.workspaces[0], s, ("GPU-x",), BASE)
    facts, containers = converged_facts(wanted)
    assert decide.pending(wanted, facts, containers) == []
    assert decide.pending(wanted, facts, {**containers, "image_digests": {BASE: "sha256:newer"}}) == ["layer"]
    facts["containers"][decide.container_name(s.workspaces[0])]["spec"] = "older"
    assert decide.pending(wanted, facts, containers) == ["container"]
    facts["tokens"] = {}
    assert "token" in decide.pending(wanted, facts, containers)
    empty = {"files": {}, "tokens": {}, "records": {}, "units": {}, "containers": {}, "layers": {}}
    assert decide.pending(wanted, empty, {}) == ["passwd", "group", "sshd_config", "authorized_keys", "workspace.json",
                                                "entrypoint.sh", "health.py", "unit", "token", "layer", "running"]


def test_connect_says_how_to_reach_it():
    rec = json.loads(decide.record(settings({"user": "alice"}).workspaces[0], settings({"user": "alice"}).workspace_users["alice"],
                                   (), "gpuhost-workspace:abc"))
    ways = decide.connect(rec, "gpu-01.example")
    assert ways["ssh"] == "ssh -p 2222 alice@gpu-01.example"
    assert ways["tunnel"] == "ssh -N -p 2222 -L 8888:127.0.0.1:8888 alice@gpu-01.example"
    assert ways["url"].startswith("http://127.0.0.1:8888/lab")


def test_each_workspace_has_its_own_network_and_default_limits():
    args = run_args()
    assert ("--network", "gpuhost-ws-alice") in pairs(args)
    assert ("--memory", "16g") in pairs(args) and ("--memory-swap", "16g") in pairs(args)
    assert ("--cpu-quota", "800000") in pairs(args) and ("--cpu-period", "100000") in pairs(args)
    assert "--cpus" not in args, "a default Docker would refuse on a host with fewer CPUs"
    assert ("--pids-limit", "4096") in pairs(args)
    s = settings({"user": "alice"})
    unit = decide.unit_text(s.workspaces[0], args, "spec")
    assert ("ExecStartPre=-/usr/bin/docker network create --driver bridge -o "
            "com.docker.network.bridge.enable_icc=false --label gpuhost.workspace=alice gpuhost-ws-alice") in unit
    assert unit.index("network create") < unit.index("ExecStart=")
    bob = settings({"user": "bob", "cpus": 2.5, "memory": "4g"}).workspaces[0]
    other = decide.docker_run_args(bob, s.workspace_users["alice"], (), "img")
    assert ("--network", "gpuhost-ws-bob") in pairs(other) and ("--cpus", "2.5") in pairs(other)
    assert ("--memory", "4g") in pairs(other) and "--cpu-quota" not in other


def test_a_control_character_never_reaches_the_unit():
    ws = settings({"user": "alice"}).workspaces[0]
    with pytest.raises(ValueError, match="control character"):
        decide.unit_text(ws, ["--rm", "img\nExecStartPre=/bin/id"], "spec")
