"""Test hosts: Debian 12 (or 13) systemd containers that behave like servers reachable over SSH.

Each host publishes sshd on a 127.0.0.1 port the engine picks (no port races), joins the
lab's network under its own name, and carries the lab's labels so cleanup finds it.
The run flags are the ones verified in shared/reference/test-lab.md (--privileged fails
on these machines).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from gpuhost.errors import GpuhostError, UsageError
from gpuhost.lab.engine import docker
from gpuhost.lab.image import DEFAULT_DISTRO, DISTROS

SYSTEMD_HOST_FLAGS = [
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]
DOCKER_TMPFS = ("--tmpfs", "/var/lib/docker:rw,exec,dev,suid,size=8g")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class HostSpec:
    """A host to start: its inventory name, its pyinfra host data (e.g. target_gpus), its
    distribution (debian12: bookworm, debian13: trixie) and the inventory groups it is in besides
    the lab's own (e.g. ("mirrors",)) and Debian packages its image adds (e.g. ("slurmd",))."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    distro: str = DEFAULT_DISTRO
    # Docker's data on a tmpfs: the host's own dockerd then uses overlay2 (on the lab's overlay root
    # it falls back to vfs, which copies a whole image for every container: minutes for a torch image).
    docker_tmpfs: bool = False
    groups: tuple[str, ...] = ()
    # Debian packages added to the host image (a cached variant image, see image.ensure_variant_image).
    packages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise UsageError(f"lab host name {self.name!r} is invalid: use lowercase letters, "
                             "digits and '-', starting with a letter")
        if self.distro not in DISTROS:
            raise UsageError(f"lab host {self.name}: distro {self.distro!r} is unknown: use one of "
                             f"{', '.join(DISTROS)}")


@dataclass
class LabHost:
    """A running test host. exec() goes through docker; ssh() through real SSH."""

    spec: HostSpec
    container: str
    port: int
    ip: str
    key_path: Path
    ssh_config: Path | None = None  # the lab's ssh_config, once written

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def data(self) -> dict[str, Any]:
        return self.spec.data

    def exec(self, command: str, check: bool = False, input: str | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a shell command as root inside the host (no SSH; for setup and checks)."""
        args = ["exec", *(["-i"] if input is not None else []), self.container,
                "/bin/sh", "-c", command]
        return docker(*args, check=check, input=input, timeout=timeout)

    def log_commands(self) -> None:
        """Have sshd log every command it starts (LogLevel DEBUG1), for commands_started()."""
        self.exec("echo 'LogLevel DEBUG1' > /etc/ssh/sshd_config.d/zz-count.conf && systemctl reload ssh", check=True)

    def commands_started(self) -> int:
        """The commands sshd started since log_commands(): its "Starting session: command" lines
        (sshd's own, or sshd-session's since OpenSSH 9.8, e.g. Debian 13)."""
        found = self.exec("journalctl --sync 2>/dev/null; journalctl -t sshd -t sshd-session --no-pager -o cat"
                          " | grep -c 'Starting session: command'")
        return int(found.stdout.strip() or 0)

    def ssh(self, command: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a command as root over SSH (paramiko, the lab key), as pyinfra does."""
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect("127.0.0.1", port=self.port, username="root",
                           key_filename=str(self.key_path), look_for_keys=False,
                           allow_agent=False, timeout=15)
            _, stdout, stderr = client.exec_command(command, timeout=timeout)
            out, err = stdout.read().decode(), stderr.read().decode()
            status = stdout.channel.recv_exit_status()
        finally:
            client.close()
        proc = subprocess.CompletedProcess(["ssh", self.name, command], status, out, err)
        if check:
            proc.check_returncode()
        return proc

    @property
    def testinfra_url(self) -> str:
        """A pytest-testinfra host spec: testinfra.get_host(lab_host.testinfra_url)."""
        if self.ssh_config:
            return f"paramiko://{self.name}?ssh_config={self.ssh_config}"
        return f"paramiko://root@127.0.0.1:{self.port}?ssh_identity_file={self.key_path}"

    def testinfra(self):
        """A testinfra Host connected over SSH (paramiko)."""
        import testinfra

        return testinfra.get_host(self.testinfra_url)


def start_host(spec: HostSpec, *, image: str, network: str, prefix: str,
               labels: dict[str, str], public_key: str, key_path: Path) -> LabHost:
    """docker run one systemd host and authorise the lab key for root."""
    container = f"{prefix}-{spec.name}"
    label_args = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    docker("run", "-d", "--name", container, "--hostname", spec.name,
           "--network", network, "--network-alias", spec.name, *label_args,
           *SYSTEMD_HOST_FLAGS, *(DOCKER_TMPFS if spec.docker_tmpfs else ()), "-p", "127.0.0.1::22", image)
    docker("exec", "-i", container, "/bin/sh", "-c",
           "umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys",
           input=public_key + "\n")
    port = int(docker("port", container, "22/tcp").stdout.split(":")[-1].split()[0])
    ip = docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                container).stdout.strip()
    return LabHost(spec=spec, container=container, port=port, ip=ip, key_path=key_path)


def wait_ready(host: LabHost, timeout: float = 90) -> None:
    """Wait until systemd has booted (running or degraded) and sshd sends its banner."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        state = host.exec("systemctl is-system-running 2>/dev/null || true").stdout.strip()
        if state in ("running", "degraded") and _ssh_banner(host.port):
            return
        time.sleep(0.3)
    logs = docker("logs", "--tail", "20", host.container, check=False)
    raise GpuhostError(f"lab host {host.name} not ready after {timeout:.0f}s "
                       f"(systemd: {state}); logs: {(logs.stdout + logs.stderr)[-400:]}")


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            return conn.recv(16).startswith(b"SSH-")
    except OSError:
        return False
