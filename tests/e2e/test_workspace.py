"""e2e: a JupyterLab + SSH workspace on a real lab host (Debian 12, systemd, its own dockerd), over real SSH.

Real: pyinfra's CLI, Debian's docker.io on the host, `docker build` of the thin layer on the host
(openssh-server from Debian's mirror, JupyterLab 4.6 from PyPI: both reachable from inside lab hosts,
checked 2026-12-01), JupyterLab's own token check, OpenSSH's sshd refusing a password, systemd
restarting the unit, `gpuhost upgrade` refusing the host and draining it.
The plan's image is the lab's CPU build of torch (gpuhost/lab/torch_image.py) pushed under the
plan's tag. Stand-ins, labelled TEST FIXTURE: nvidia-smi reporting two H100s (so the GPU facts
have indices and UUIDs to resolve), the nvidia-container-runtime-hook (no-op) that makes Docker
accept `--gpus device=UUID` and put NVIDIA_VISIBLE_DEVICES in the container's environment (what
the real hook reads), and the driver repository for the upgrade (tests/e2e/driver_fixture.py).
One lab host and one layer build for the whole module.
"""

from __future__ import annotations

import ast
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import docker
from gpuhost.lab.fixture_repos import NVIDIA_CONTAINER_RUNTIME, NVIDIA_CONTAINER_RUNTIME_HOOK
from gpuhost.lab.results import host_statuses
from gpuhost.lab.torch_image import ensure_torch_image
from gpuhost.plan.gpus import identify
from gpuhost.plan.resolver import Policy, resolve
from tests.e2e.driver_fixture import build_repository, fake_smi, repository_data

pytestmark = pytest.mark.e2e
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
STAGES = ("deploys/container_runtime.py", "deploys/prepull.py", "deploys/workspace.py")
UNIT = "gpuhost-workspace-alice"
UUIDS = ("GPU-fixture-0", "GPU-fixture-1")
UID = 1234
# TEST FIXTURE (gpuhost e2e, tests/e2e/test_workspace.py): stands in for nvidia-smi; two H100 on 535,
# no compute process; rows in the format of tests/fixtures/device-h100/raw/nvidia-smi-query-gpu.csv.
NVIDIA_SMI = fake_smi("535.104.05", compute_process=False, gpus=2)  # TEST FIXTURE: two H100s


def _tag() -> str:
    return resolve([identify("H100")] * 2, current_driver=None, policy=Policy(registry="registry:5000")).image.tag


@pytest.fixture(scope="module")
def client_key(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("alice") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def lab(engine, client_key, tmp_path_factory):
    root = tmp_path_factory.mktemp("ws-driver-repo")
    driver = {k: v for k, v in repository_data(build_repository(root), url="http://apt:8080/").items()
              if k != "target_gpus"}
    data = {**driver, "registry": "registry:5000", "toolkit_source": "keep",
            "workspace_users": {"alice": {"uid": UID, "gid": UID, "ssh_keys": [client_key[1]]},
                                "bob": {"uid": UID + 1, "gid": UID + 1, "ssh_keys": [client_key[1]]}},
            "workspaces": [{"user": "alice", "gpus": [1], "cpus": 1.5, "memory": "1g", "pids": 512, "shm": "256m",
                            "health_interval_s": 5},
                           # another tenant, with gpuhost's default limits (issue 24)
                           {"user": "bob", "jupyter_port": 8889, "ssh_port": 2223, "health_interval_s": 5}]}
    with Lab([HostSpec("ws", data, docker_tmpfs=True)]) as running:
        host = running.host("ws")
        host.exec("mkdir -p /etc/docker && echo '{\"insecure-registries\": [\"registry:5000\"]}' > /etc/docker/daemon.json",
                  check=True)
        for name, script in {"nvidia-container-runtime": NVIDIA_CONTAINER_RUNTIME,
                             "nvidia-container-runtime-hook": NVIDIA_CONTAINER_RUNTIME_HOOK,
                             "nvidia-smi": NVIDIA_SMI}.items():
            host.exec(f"cat > /usr/bin/{name} && chmod 755 /usr/bin/{name}", input=script, check=True)
        host.exec("mkdir -p /root/.ssh && cat > /root/alice_key && chmod 600 /root/alice_key",
                  input=client_key[0].read_text(), check=True)
        running.serve_directory(root / "repo", name="apt")
        registry = running.registry()
        local = f"{registry.local_address}/{_tag().split('/', 1)[1]}"
        docker("tag", ensure_torch_image(), local)
        docker("push", local, timeout=900)
        docker("image", "rm", local)
        yield running


@pytest.fixture(scope="module")
def first_run(lab):
    started = time.monotonic()
    run = lab.pyinfra(*STAGES, "-y", "--limit", "ws")
    assert run.returncode == 0, run.stdout[-6000:]
    wait_healthy(lab.host("ws"))
    print(f"first run and healthy in {time.monotonic() - started:.0f}s")
    return run


def wait_healthy(host, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = host.ssh(f"docker inspect -f '{{{{.State.Health.Status}}}}' {UNIT}").stdout.strip()
        if state == "healthy":
            return
        time.sleep(2)
    logs = host.ssh(f"journalctl -u {UNIT} --no-pager | tail -30").stdout
    pytest.fail(f"workspace not healthy after {timeout}s (last: {state}): {logs}")


def inspect(host) -> dict:
    return json.loads(host.ssh(f"docker inspect {UNIT}").stdout)[0]


def started_at(host) -> str | None:
    """When the workspace's container started; None between two containers (systemd restarting it)."""
    found = json.loads(host.ssh(f"docker inspect {UNIT}").stdout or "[]")
    return found[0]["State"]["StartedAt"] if found else None


def as_alice(host, command: str, *options: str) -> subprocess.CompletedProcess:
    """SSH into the workspace from the lab host itself, as its user, with the client key."""
    opts = " ".join(("-o StrictHostKeyChecking=no", "-o UserKnownHostsFile=/dev/null", "-o BatchMode=yes",
                     "-o ConnectTimeout=10", *options))
    return host.ssh(f"ssh {opts} -p 2222 alice@127.0.0.1 {command}")


def test_least_privilege_only_its_gpu_and_the_limits(lab, first_run):
    host = lab.host("ws")
    config = inspect(host)
    hc = config["HostConfig"]
    assert config["Config"]["User"] == f"{UID}:{UID}"
    assert hc["SecurityOpt"] == ["no-new-privileges"] and hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert hc["Privileged"] is False
    assert (hc["NanoCpus"], hc["Memory"], hc["PidsLimit"], hc["ShmSize"]) == (1_500_000_000, 2**30, 512, 256 * 2**20)
    # Only GPU 1, resolved to its UUID; NVIDIA_VISIBLE_DEVICES (what the nvidia hook reads) names it alone.
    assert [r["DeviceIDs"] for r in hc["DeviceRequests"]] == [[UUIDS[1]]]
    assert "NVIDIA_VISIBLE_DEVICES=GPU-fixture-1" in config["Config"]["Env"]
    assert hc["PortBindings"]["8888/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8888"}]
    # Inside: the user's uid, NoNewPrivs, no capability; no token in any environment or command line.
    status = host.ssh(f"docker exec {UNIT} cat /proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[0] == str(UID) and fields["NoNewPrivs"].strip() == "1"
    assert fields["CapEff"].strip() == "0000000000000000"
    token = host.ssh("cat /var/lib/gpuhost/workspaces/alice/jupyter_token").stdout
    assert len(token) == 48 and "\n" not in token
    assert host.ssh("stat -c '%a %u' /var/lib/gpuhost/workspaces/alice/jupyter_token").stdout.split() == ["600", str(UID)]
    seen = host.ssh(f"docker exec {UNIT} sh -c 'cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null'").stdout
    assert seen and token not in seen
    assert token not in first_run.stdout
    assert token not in host.ssh(f"journalctl -u {UNIT} --no-pager").stdout
    # The fact that drives upgrades sees it as a GPU container.
    containers = json.loads(host.ssh(f"docker inspect -f '{{{{json .HostConfig.DeviceRequests}}}}' {UNIT}").stdout)
    assert containers[0]["Capabilities"] == [["gpu"]]


def test_a_tenant_reaches_no_other_workspace_and_default_limits_hold(lab, first_run):
    """From inside alice's workspace, bob's Jupyter and sshd are unreachable (each workspace on its
    own bridge network); bob, who set no limits, has gpuhost's defaults in the kernel (issue 24)."""
    host, bob = lab.host("ws"), "gpuhost-workspace-bob"
    address = host.ssh(f"docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' "
                       f"{bob}").stdout.strip()
    assert address, "bob's workspace runs"
    deadline, answer = time.monotonic() + 120, ""
    while time.monotonic() < deadline and answer != "200":  # bob's services are up: the host reaches them
        answer = host.ssh(f"curl -s -o /dev/null -m 2 -w '%{{http_code}}' http://{address}:8888/api").stdout
        time.sleep(1)
    assert answer == "200" and host.ssh(f"timeout 3 bash -c '</dev/tcp/{address}/2222'").returncode == 0
    probe = ("import socket\n"
             "for port in (8888, 2222):\n"
             "    s = socket.socket(); s.settimeout(3)\n"
             f"    print(port, s.connect_ex(('{address}', port)) == 0)\n")
    seen = host.ssh(f"docker exec {UNIT} python3 -c {shlex.quote(probe)}")
    assert seen.stdout.split() == ["8888", "False", "2222", "False"], seen.stdout + seen.stderr
    networks = {name: json.loads(host.ssh(f"docker inspect -f '{{{{json .NetworkSettings.Networks}}}}' {name}").stdout)
                for name in (UNIT, bob)}
    assert list(networks[UNIT]) == ["gpuhost-ws-alice"] and list(networks[bob]) == ["gpuhost-ws-bob"]
    options = json.loads(host.ssh("docker network inspect -f '{{json .Options}}' gpuhost-ws-bob").stdout)
    assert options["com.docker.network.bridge.enable_icc"] == "false"

    hc = json.loads(host.ssh(f"docker inspect -f '{{{{json .HostConfig}}}}' {bob}").stdout)
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuQuota"], hc["CpuPeriod"], hc["PidsLimit"]) == \
        (16 * 2**30, 16 * 2**30, 800_000, 100_000, 4096)
    limit = host.ssh(f"docker exec {bob} sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                     "cat /sys/fs/cgroup/memory/memory.limit_in_bytes'").stdout.strip()
    assert limit == str(16 * 2**30), "the kernel holds the workspace to the default"


def test_jupyter_needs_the_token(lab, first_run):
    host = lab.host("ws")
    token = host.ssh("cat /var/lib/gpuhost/workspaces/alice/jupyter_token").stdout

    def status(path: str, header: str = "") -> str:
        return host.ssh(f"curl -s -o /dev/null -w '%{{http_code}}' {header} http://127.0.0.1:8888{path}").stdout

    # /api itself is unauthenticated in jupyter_server (version only: base/handlers.py APIVersionHandler);
    # the API behind it is not.
    assert status("/api") == "200"
    assert status("/api/status") == "403"
    assert status("/api/contents") == "403"
    assert status("/api/status", "-H 'Authorization: token wrong'") == "403"
    assert status("/api/status", f"-H 'Authorization: token {token}'") == "200"
    # Not on any other address of the host.
    ip = host.ssh("hostname -I").stdout.split()[0]
    assert host.ssh(f"curl -s -m 5 -o /dev/null http://{ip}:8888/api").returncode != 0


def test_ssh_takes_the_key_and_refuses_passwords(lab, first_run):
    host = lab.host("ws")
    ok = as_alice(host, "id -u", "-i /root/alice_key")
    assert ok.returncode == 0 and ok.stdout.strip() == str(UID), ok.stderr
    refused = as_alice(host, "true", "-o PubkeyAuthentication=no", "-o PreferredAuthentications=password,keyboard-interactive")
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr, refused.stderr
    root = host.ssh("ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "
                    "-i /root/alice_key -p 2222 root@127.0.0.1 true")
    assert root.returncode == 255 and "Permission denied" in root.stderr


def test_second_run_changes_nothing(lab, first_run):
    again = lab.pyinfra(*STAGES, "-y", "--limit", "ws")
    assert again.returncode == 0, again.stdout[-4000:]
    statuses = host_statuses(again.stdout).get("ws", {})
    assert statuses.get("Success", 0) == 0 and statuses.get("Error", 0) == 0, again.stdout[-4000:]
    assert "[ws] workspace alice: in place" in again.stdout


def _host_key(host) -> str:
    return host.ssh("ssh-keygen -lf /var/lib/gpuhost/workspaces/alice/ssh-host-keys/ssh_host_ed25519_key.pub").stdout


def test_data_survives_a_restart_and_an_image_update(lab, first_run, tmp_path):
    host = lab.host("ws")
    assert as_alice(host, "'echo kept > /workspace/notes.txt'", "-i /root/alice_key").returncode == 0
    key = _host_key(host)
    started = inspect(host)["State"]["StartedAt"]
    assert host.ssh(f"systemctl restart {UNIT}").returncode == 0
    wait_healthy(host)
    assert inspect(host)["State"]["StartedAt"] != started
    assert as_alice(host, "cat /workspace/notes.txt", "-i /root/alice_key").stdout.strip() == "kept"
    # Image update: one more package in the layer gives a new image; the unit moves to it.
    image = inspect(host)["Config"]["Image"]
    updated = _inventory_with(lab, tmp_path, apt_packages=["less"])
    run = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), str(updated), *STAGES, "-y", "--limit", "ws"],
                         capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    wait_healthy(host)
    assert inspect(host)["Config"]["Image"] != image
    assert as_alice(host, "'command -v less && cat /workspace/notes.txt'", "-i /root/alice_key").stdout.split() == \
        ["/usr/bin/less", "kept"]
    assert _host_key(host) == key
    assert host.ssh("stat -c %u /srv/workspaces/alice/notes.txt").stdout.strip() == str(UID)


def _inventory_with(lab, tmp_path: Path, **workspace) -> Path:
    """The lab inventory with the workspace's keys changed (as an admin edits the host data)."""
    text = lab.inventory_path.read_text()
    head, _, body = text.partition("lab_hosts = ")
    hosts = ast.literal_eval(body)
    for _, data in hosts:
        data["workspaces"] = [{**ws, **workspace} for ws in data["workspaces"]]
    path = tmp_path / "inventory.py"
    path.write_text(f"{head}lab_hosts = {hosts!r}\n")
    return path


def test_unhealthy_workspace_is_restarted(lab, first_run):
    host = lab.host("ws")
    started = inspect(host)["State"]["StartedAt"]
    # sshd dies inside (as a lost GPU would fail the torch.cuda probe): the check fails 3 times in a
    # row, stops the container, and systemd starts a fresh one.
    assert host.ssh(f"docker exec {UNIT} sh -c 'kill $(cat /tmp/gpuhost-sshd.pid)'").returncode == 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and started_at(host) in (started, None):
        time.sleep(2)
    assert started_at(host) not in (started, None), host.ssh(f"journalctl -u {UNIT} --no-pager | tail").stdout
    log = host.ssh(f"journalctl -u {UNIT} --no-pager").stdout
    assert "the health check failed: stopping for a fresh start" in log
    assert "Main process exited, code=exited, status=75" in log, log[-2000:]
    wait_healthy(host)
    assert as_alice(host, "true", "-i /root/alice_key").returncode == 0


def test_gpuhost_workspaces_lists_it_and_shows_the_token_only_when_asked(lab, first_run):
    host = lab.host("ws")
    token = host.ssh("cat /var/lib/gpuhost/workspaces/alice/jupyter_token").stdout
    listed = subprocess.run([GPUHOST, "workspaces", str(lab.inventory_path)], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr
    assert token not in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if line.startswith("ws "))
    assert row.split()[:4] == ["ws", "alice", "alice", UUIDS[1]] and "active" in row, listed.stdout
    assert "ssh -N -p 2222 -L 8888:127.0.0.1:8888 alice@127.0.0.1" in listed.stdout
    shown = subprocess.run([GPUHOST, "workspaces", str(lab.inventory_path), "--show-token", "--json"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    entry = json.loads(shown.stdout)["workspaces"][0]
    assert entry["token"] == token and entry["gpus"] == [UUIDS[1]]


def test_driver_upgrade_refuses_while_the_workspace_runs_unless_drained(lab, first_run, tmp_path):
    host = lab.host("ws")

    def upgrade(*args: str) -> dict:
        proc = subprocess.run([GPUHOST, "upgrade", str(lab.inventory_path), "--state", str(tmp_path / "state.json"),
                               "--canary", "1", "--deploy", "deploys/driver.py", "--json", *args],
                              capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert proc.stdout.lstrip().startswith("{"), proc.stdout + proc.stderr
        return json.loads(proc.stdout)["hosts"]["ws"]

    refused = upgrade()
    assert refused["result"] == "skipped-busy", refused
    assert f"container {UNIT}" in refused["reason"], refused
    assert host.ssh("dpkg-query -W nvidia-open").returncode != 0, "a refused host is not touched"
    assert host.ssh(f"systemctl is-active {UNIT}").stdout.strip() == "active"

    # The driver stage itself (pyinfra deploys/driver.py, no rollout) refuses too.
    direct = lab.pyinfra("deploys/driver.py", "-y", "--limit", "ws")
    assert direct.returncode != 0
    assert f"GPU processes are running (container {UNIT})" in direct.stdout, direct.stdout[-3000:]

    # Drained (the workspace stopped by the drain command), the host is no longer refused for GPU work.
    # It then stops at the driver stage's next check: the lab has no kernel headers for DKMS, and the
    # stand-in nvidia-smi reports GPUs, so a module could not be built for them.
    drain = f"ssh -F {host.ssh_config} {{host}} systemctl stop {UNIT}"
    drained = upgrade("--drain-command", drain, "--drain-timeout", "60")
    assert drained["result"] != "skipped-busy", drained
    assert "GPU work" not in (drained.get("reason") or "") and "GPU processes" not in (drained.get("reason") or "")
    assert host.ssh(f"systemctl is-active {UNIT}").stdout.strip() == "inactive"
    assert host.ssh("test -d /srv/workspaces/alice").returncode == 0  # stopping keeps the volume


def test_removing_the_workspace_keeps_its_volume(lab, first_run, tmp_path):
    host = lab.host("ws")
    removed = _inventory_with(lab, tmp_path, state="absent")
    run = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), str(removed), *STAGES, "-y", "--limit", "ws"],
                         capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert host.ssh(f"test -e /etc/systemd/system/{UNIT}.service").returncode != 0
    assert host.ssh(f"docker inspect {UNIT}").returncode != 0
    assert host.ssh("test -e /var/lib/gpuhost/workspaces/alice").returncode != 0  # token and host keys gone
    assert host.ssh("cat /srv/workspaces/alice/notes.txt").stdout.strip() == "kept"  # the user's data stays
