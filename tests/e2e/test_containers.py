"""e2e: the container stages on real lab hosts (Debian 12, and Debian 13 for the main scenario;
systemd, sshd) over real SSH.

Real: Debian's docker.io installed by the deploy through apt, the host's own dockerd and its
systemd unit, the lab registry (Debian's docker-registry), pyinfra's CLI over paramiko, the
check script in a real container. Stand-ins, labelled as test fixtures because NVIDIA's
packages cannot be fetched here: the TEST FIXTURE nvidia-container-runtime (execs runc) and
nvidia-container-runtime-hook (a no-op prestart hook, so `--gpus all` is accepted) of
gpuhost/lab/fixture_repos.py, copied in (the toolkit's own e2e installs them as packages). Every check of gpuhost's own behaviour is on the real host state.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter

import pytest

from gpuhost.plan.gpus import identify
from gpuhost.lab import HostSpec, Lab
from facts import container, snapshot
from gpuhost.lab.engine import docker
from gpuhost.lab.fixture_repos import NVIDIA_CONTAINER_RUNTIME, NVIDIA_CONTAINER_RUNTIME_HOOK
from gpuhost.lab.results import host_statuses
from gpuhost.lab.torch_image import ensure_torch_image
from gpuhost.plan.resolver import Policy, resolve

pytestmark = pytest.mark.e2e
RUNTIME_STAND_INS = {"nvidia-container-runtime": NVIDIA_CONTAINER_RUNTIME,
                     "nvidia-container-runtime-hook": NVIDIA_CONTAINER_RUNTIME_HOOK}
STAGES = ("deploys/container_runtime.py", "deploys/prepull.py")
COMMON = {"target_gpus": ["H100"], "registry": "registry:5000", "toolkit_source": "keep"}
USER_DAEMON_JSON = {
    "insecure-registries": ["registry:5000"],
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "features": {"buildkit": True},
    "runtimes": {"fixture-runc": {"path": "/usr/bin/runc"}},
}


def _tag() -> str:
    return resolve([identify("H100")], current_driver=None,
                   policy=Policy(registry="registry:5000")).image.tag


@pytest.fixture(scope="module")
def lab(engine):
    hosts = [HostSpec("ctr", dict(COMMON)), HostSpec("ctr13", dict(COMMON), distro="debian13"),
             HostSpec("broken", {**COMMON, "docker_daemon_options": {"no-such-option": True}})]
    with Lab(hosts) as running:
        for host in running.hosts:
            host.exec("mkdir -p /etc/docker", check=True)
            host.exec("cat > /etc/docker/daemon.json", input=json.dumps(USER_DAEMON_JSON, indent=4),
                      check=True)
            for name, script in RUNTIME_STAND_INS.items():
                host.exec(f"cat > /usr/bin/{name} && chmod 755 /usr/bin/{name}", input=script, check=True)
        registry = running.registry()
        local = f"{registry.local_address}/{_tag().split('/', 1)[1]}"
        docker("tag", ensure_torch_image(), local)
        docker("push", local, timeout=900)
        docker("image", "rm", local)  # the tag only; the layers stay in the torch image
        yield running


def _daemon_json(host) -> dict:
    proc = host.ssh("cat /etc/docker/daemon.json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["ctr", "ctr13"], ids=["debian12", "debian13"])
def test_docker_installed_runtime_merged_image_pulled_then_nothing_changes(lab, name):
    ctr = lab.host(name)
    first = lab.pyinfra(*STAGES, "-y", "--limit", name)
    assert first.returncode == 0, first.stdout[-4000:]

    # Docker from Debian's docker.io, running under systemd.
    assert ctr.ssh("dpkg-query -W -f='${Status}' docker.io").stdout == "install ok installed"
    assert ctr.ssh("systemctl is-active docker").stdout.strip() == "active"

    # Every user key kept, the nvidia runtime added, the old file backed up.
    content = _daemon_json(ctr)
    for key, value in USER_DAEMON_JSON.items():
        if key != "runtimes":
            assert content[key] == value, key
    assert content["runtimes"]["fixture-runc"] == USER_DAEMON_JSON["runtimes"]["fixture-runc"]
    assert content["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    backups = ctr.ssh("ls /etc/docker/ | grep -c 'daemon.json.gpuhost-backup-'").stdout.strip()
    assert backups == "1"
    backup = json.loads(ctr.ssh("cat /etc/docker/daemon.json.gpuhost-backup-*").stdout)
    assert backup == USER_DAEMON_JSON

    # The host's real dockerd read the file: it lists the runtime.
    runtimes = json.loads(ctr.ssh("docker info --format '{{json .Runtimes}}'").stdout)
    assert {"nvidia", "fixture-runc"} <= set(runtimes)

    # The plan's image came from the lab registry, with its digest, and is recorded.
    tag = _tag()
    digests = ctr.ssh(f"docker image inspect -f '{{{{json .RepoDigests}}}}' {tag}")
    assert digests.returncode == 0, digests.stderr
    assert json.loads(digests.stdout)[0].startswith("registry:5000/pytorch/pytorch@sha256:")
    assert json.loads(ctr.ssh("cat /var/lib/gpuhost/pulled.json").stdout) == [tag]
    started = ctr.ssh("systemctl show -p ActiveEnterTimestamp docker").stdout

    # Second run: nothing changes, nothing is pulled, Docker is not restarted; the host ran one
    # command, the snapshot.
    ctr.log_commands()
    before = ctr.commands_started()
    second = lab.pyinfra(*STAGES, "-y", "--limit", name)
    assert second.returncode == 0, second.stdout[-4000:]
    assert ctr.commands_started() - before == 1, second.stdout[-4000:]
    statuses = host_statuses(second.stdout).get(name, Counter())
    assert statuses["Success"] == 0 and statuses["Error"] == 0, second.stdout[-4000:]
    assert "Pulling" not in second.stdout
    assert ctr.ssh("systemctl show -p ActiveEnterTimestamp docker").stdout == started
    assert ctr.ssh("ls /etc/docker/ | grep -c 'daemon.json.gpuhost-backup-'").stdout.strip() == "1"


def _daemon(host) -> dict:
    """The container fact's reading of the daemon, as the snapshot takes it (over SSH, as root)."""
    proc = host.ssh(container.COMMAND)
    assert proc.returncode == 0, proc.stderr
    return container.ContainerState().process(proc.stdout.splitlines())["docker"]


def _kept_pids(host) -> list[str]:
    """The daemons whose /info answer is kept: docker-info.<boot>.<pid>.<start ticks>."""
    names = host.ssh("ls /run/gpuhost 2>/dev/null | grep '^docker-info\\.'").stdout.split()
    return [name.split(".")[2] for name in names]


def _restart_docker(host, after: int = 0) -> None:
    """Restart Docker `after` seconds from now, past systemd's start limit (this test restarts it
    more often than docker.service's StartLimitBurst allows in a minute), and check it is up."""
    proc = host.ssh(f"sleep {after}; systemctl reset-failed docker; systemctl restart docker && systemctl is-active docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docker_info_is_kept_for_the_running_daemon_until_its_config_changes(lab):
    """dockerd runs `runc --version` for every /info; the snapshot keeps the root daemon's answer
    in /run/gpuhost while daemon.json last changed before the daemon wrote its pid file. Shown by
    editing the kept answer: the snapshot reports the edit while it is used, and the daemon's own
    answer once another file is mounted over it, the file changes (even with its old mtime put
    back, or the pid file touched after: a reload may have read it), when it is a link, or once
    the daemon restarts."""
    ctr = lab.host("ctr")
    ctr.ssh("cp /etc/docker/daemon.json /root/older.json; rm -rf /run/gpuhost")
    _restart_docker(ctr, after=3)  # started after daemon.json's (and older.json's) last change
    real = _daemon(ctr)["daemon_version"]
    assert real and "nvidia" in _daemon(ctr)["runtimes"]
    pid = ctr.ssh("cat /var/run/docker.pid").stdout.strip()
    assert _kept_pids(ctr) == [pid]
    assert ctr.ssh("stat -c '%a %U' /run/gpuhost /run/gpuhost/docker-info.*").stdout.split() == \
        ["700", "root", "600", "root"]

    # The kept answer is what the snapshot reads while the daemon and its file stay the same.
    ctr.ssh(f"sed -i 's/\"ServerVersion\":\"{real}\"/\"ServerVersion\":\"{real}-kept\"/' /run/gpuhost/docker-info.*")
    assert _daemon(ctr)["daemon_version"] == f"{real}-kept"

    # Another file mounted over daemon.json while the daemon runs, older than it: the kept answer
    # names another file, so dockerd is asked, and nothing is kept for this daemon any more, even
    # once the mount is gone.
    assert ctr.ssh("mount --bind /root/older.json /etc/docker/daemon.json").returncode == 0
    try:
        assert _daemon(ctr)["daemon_version"] == real
    finally:
        ctr.ssh("umount /etc/docker/daemon.json")
    assert ctr.ssh("cat /run/gpuhost/docker-info.*").stdout == "changed\n"
    assert _daemon(ctr)["daemon_version"] == real
    ctr.ssh("rm -rf /run/gpuhost")
    assert _daemon(ctr)["daemon_version"] == real  # kept again: the daemon and its file are as at its start
    ctr.ssh(f"sed -i 's/\"ServerVersion\":\"{real}\"/\"ServerVersion\":\"{real}-kept\"/' /run/gpuhost/docker-info.*")
    assert _daemon(ctr)["daemon_version"] == f"{real}-kept"

    # daemon.json changed after the daemon started, its old mtime put back, then the pid file
    # touched (more than 10 s after the start, when the daemon wrote it): the daemon may have
    # reloaded the file, so it is asked, and nothing is kept for it.
    ctr.ssh("touch -r /etc/docker/daemon.json /tmp/mtime; chmod 644 /etc/docker/daemon.json; "
            "touch -m -r /tmp/mtime /etc/docker/daemon.json; sleep 11; touch /var/run/docker.pid")
    assert _daemon(ctr)["daemon_version"] == real
    assert _kept_pids(ctr) == [pid]
    assert ctr.ssh("grep -c kept /run/gpuhost/docker-info.*").stdout.strip() == "1"  # left as it was, unused

    # A new daemon, restarted after the change: asked, its answer kept under its own pid, the old
    # one removed.
    _restart_docker(ctr, after=3)
    assert _daemon(ctr)["daemon_version"] == real
    pid = ctr.ssh("cat /var/run/docker.pid").stdout.strip()
    assert _kept_pids(ctr) == [pid]
    assert ctr.ssh("grep -c kept /run/gpuhost/docker-info.*").stdout.strip() == "0"

    # daemon.json as a link (which can be pointed at an older file): asked every time.
    ctr.ssh("mv /etc/docker/daemon.json /etc/docker/daemon.json.real && ln -s daemon.json.real /etc/docker/daemon.json")
    _restart_docker(ctr, after=1)
    ctr.ssh("rm -rf /run/gpuhost")
    try:
        assert _daemon(ctr)["daemon_version"] == real
        assert _kept_pids(ctr) == []
    finally:
        ctr.ssh("rm /etc/docker/daemon.json && mv /etc/docker/daemon.json.real /etc/docker/daemon.json")
        _restart_docker(ctr, after=1)


def test_a_users_process_named_dockerd_names_no_socket_and_no_file(lab):
    """Any user can start a process called dockerd with `-H` and `--config-file` flags: the snapshot
    asks only root's daemon's socket, and reads that user's own daemon.json, never the file its
    flags name (here /etc/shadow), so nothing of it reaches the reading."""
    ctr = lab.host("ctr")
    real = _daemon(ctr)["daemon_version"]
    ctr.ssh("mkdir -p /tmp/fake && cp /usr/bin/perl /tmp/fake/dockerd && chmod 755 /tmp/fake /tmp/fake/dockerd")
    assert ctr.ssh("su nobody -s /bin/sh -c '/tmp/fake/dockerd -e \"sleep 60\" -- -H unix:///tmp/fake/evil.sock "
                   "--config-file=/etc/shadow >/dev/null 2>&1 &'").returncode == 0
    try:
        proc = ctr.ssh(container.COMMAND)
        assert "uid=65534" in proc.stdout  # the fake daemon was seen, as another user's
        assert "@@docker_client_host" not in proc.stdout and "@@daemon_json /etc/shadow" not in proc.stdout
        assert not any(line.startswith("root:") for line in proc.stdout.splitlines())
        assert container.ContainerState().process(proc.stdout.splitlines())["docker"]["daemon_version"] == real
    finally:
        ctr.ssh("pkill -f /tmp/fake/dockerd; rm -rf /tmp/fake")


def _held(host) -> list[str]:
    """The packages the snapshot's dpkg reading says are held, over SSH as root."""
    proc = host.ssh(snapshot.COMMAND)
    assert proc.returncode == 0, proc.stderr
    return snapshot.HostSnapshot().process(proc.stdout.splitlines())["host"]["held_packages"]


def test_dpkg_answer_is_kept_until_dpkgs_database_changes(lab):
    """The snapshot keeps its dpkg reading in /run/gpuhost under the status file's identity. Shown
    by a hold written into the kept answer only: the snapshot reports it while the database stays
    as it was, and dpkg's own answer while dpkg's journal holds an entry, and once apt-mark writes
    a hold (a new status file: not kept while under a second old, then kept anew)."""
    ctr = lab.host("ctr13")
    ctr.ssh("apt-mark unhold sed; rm -f /run/gpuhost/dpkg.*; sleep 2")
    real = _held(ctr)
    assert "sed" not in real and "kept-only" not in real
    assert ctr.ssh("stat -c '%a %U' /run/gpuhost /run/gpuhost/dpkg.*").stdout.split() == ["700", "root", "600", "root"]
    edit = r"sed -i 's/^@@holds$/@@holds\nkept-only/' /run/gpuhost/dpkg.*"
    ctr.ssh(edit)
    assert "kept-only" in _held(ctr) and "kept-only" not in real

    # A dpkg-query that fails (a shim on PATH) is never kept: the next reading is dpkg's own.
    ctr.ssh("rm -f /run/gpuhost/dpkg.*; mkdir -p /tmp/failing && printf '#!/bin/sh\\nexit 2\\n' > /tmp/failing/dpkg-query "
            "&& chmod 755 /tmp/failing/dpkg-query")
    failed = ctr.ssh(f"PATH=/tmp/failing:$PATH sh -c {shlex.quote(snapshot.COMMAND)}")
    assert "@@holds\n@@headers_apt" in failed.stdout  # read as no holds at all...
    assert ctr.ssh("ls /run/gpuhost/dpkg.* 2>/dev/null | wc -l").stdout.strip() == "0"  # ...and not kept
    assert _held(ctr) == real
    ctr.ssh(edit)

    # dpkg's journal has an entry not yet in the status file: dpkg-query is asked.
    ctr.ssh("touch /var/lib/dpkg/updates/0000")
    try:
        assert _held(ctr) == real
    finally:
        ctr.ssh("rm -f /var/lib/dpkg/updates/0000")
    assert "kept-only" in _held(ctr)

    # apt-mark writes a new status file: asked at once, and kept anew once it is over a second old.
    try:
        assert ctr.ssh("apt-mark hold sed").returncode == 0
        held = _held(ctr)
        assert "sed" in held and "kept-only" not in held
        assert ctr.ssh("grep -c kept-only /run/gpuhost/dpkg.*").stdout.strip() == "1"  # left as it was, unused
        ctr.ssh("sleep 2")
        assert _held(ctr) == held
        assert ctr.ssh("grep -c kept-only /run/gpuhost/dpkg.*").stdout.strip() == "0"  # the new answer kept
        ctr.ssh(edit)
        assert "kept-only" in _held(ctr)
    finally:
        ctr.ssh("apt-mark unhold sed")
    assert _held(ctr) == real


def test_broken_daemon_json_change_is_rolled_back_and_docker_keeps_running(lab):
    broken = lab.host("broken")
    run = lab.pyinfra("deploys/container_runtime.py", "-y", "--limit", "broken")
    assert run.returncode != 0, "a daemon.json Docker refuses must fail the host"
    assert "gpuhost: Docker did not start with the new /etc/docker/daemon.json" in run.stdout \
        or "dockerd --validate refused" in run.stdout, run.stdout[-4000:]
    assert "no-such-option" in run.stdout, run.stdout[-4000:]
    assert _daemon_json(broken) == USER_DAEMON_JSON, "the user's file must be restored"
    assert broken.ssh("systemctl is-active docker").stdout.strip() == "active"
    assert broken.ssh("docker info --format '{{.ServerVersion}}'").returncode == 0


def test_check_runs_in_a_real_container_and_reports_no_gpu_visible(lab):
    ctr = lab.host("ctr")
    if ctr.ssh(f"docker image inspect {_tag()}").returncode != 0:
        pytest.skip("needs the image pulled by the first test")
    run = lab.pyinfra("deploys/verify.py", "-y", "--limit", "ctr")
    assert run.returncode != 0, "a host where no GPU is visible must fail verification"
    saved = ctr.ssh("cat /var/lib/gpuhost/verify.json")
    assert saved.returncode == 0, run.stdout[-4000:]
    verdict = json.loads(saved.stdout)
    assert verdict["ok"] is False
    assert verdict["cause"] == "no_gpu_visible", verdict
    assert verdict["check"]["torch"].startswith("2.13.0"), verdict["check"]
    assert "no_gpu_visible" in run.stdout
