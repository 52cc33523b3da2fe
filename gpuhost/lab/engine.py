"""A Docker engine for the lab: use one that answers, else install and start one.

CI and fresh dev machines have no engine and no systemd, so on a root Debian/Ubuntu
machine the lab installs Debian's docker.io and starts `dockerd` in the background with
its own data root, socket and pidfile under the lab state directory (see
shared/reference/test-lab.md). The engine keeps running after the lab closes so the
next run starts in seconds; `python -m gpuhost.lab stop-engine` stops it, `./dev clean` removes it
and reverts what it changed (gpuhost/lab/clean.py). It listens on its own socket, not
/var/run/docker.sock, so a plain `docker ps` does not see it:
DOCKER_HOST=unix:///var/lib/gpuhost-lab/engine/docker.sock docker ps.
Every later docker call goes through DOCKER_HOST, which ensure_engine() sets.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from gpuhost.errors import GpuhostError
from gpuhost.lab.changes import record_before_engine, record_packages
from gpuhost.lab.state import RECIPE, locked, progress, state_dir, step

SYSTEM_SOCKET = "/var/run/docker.sock"
APT_GET_WAIT = RECIPE / "apt-get-wait"  # apt-get that waits for the apt/dpkg locks, bounded


class LabUnavailable(GpuhostError):
    """No Docker engine can be had here (not root, nothing running)."""


def engine_dir() -> Path:
    return state_dir() / "engine"


def lab_socket() -> str:
    return f"unix://{engine_dir() / 'docker.sock'}"


def docker(*args: str, check: bool = True, input: str | bytes | None = None,
           timeout: float | None = None, text: bool = True) -> subprocess.CompletedProcess:
    """Run the docker CLI against the lab's engine; output captured."""
    # stdin only without input: gevent's patched subprocess (pyinfra's API tests patch it in
    # the same pytest process) refuses both, even stdin=None.
    feed = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(["docker", *args], capture_output=True, text=text, timeout=timeout,
                          **feed)
    if check and proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise GpuhostError(f"docker {' '.join(args[:3])} failed: {err.strip()[-500:]}")
    return proc


def answers(docker_host: str) -> bool:
    """True when an engine answers at docker_host (unix:// or tcp://)."""
    if shutil.which("docker") is None:
        return False
    if docker_host.startswith("unix://") and not Path(docker_host[7:]).exists():
        return False
    env = {**os.environ, "DOCKER_HOST": docker_host}
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              env=env, capture_output=True, text=True, timeout=15,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def ensure_engine() -> str:
    """Return a DOCKER_HOST that answers, starting the lab's own engine if needed.

    Order: $DOCKER_HOST, the system socket, the lab's socket, then (root only)
    install docker.io if absent and start dockerd.
    """
    candidates = [os.environ.get("DOCKER_HOST"), f"unix://{SYSTEM_SOCKET}", lab_socket()]
    for candidate in candidates:
        if candidate and answers(candidate):
            os.environ["DOCKER_HOST"] = candidate
            return candidate
    if os.geteuid() != 0:
        raise LabUnavailable(
            "no Docker engine answers (DOCKER_HOST, /var/run/docker.sock) and starting one "
            "needs root: run as root, or start Docker and set DOCKER_HOST")
    with locked("engine"):
        if answers(lab_socket()):  # another lab started it while we waited
            os.environ["DOCKER_HOST"] = lab_socket()
            return lab_socket()
        if install_docker() and _system_engine_after_install():
            os.environ["DOCKER_HOST"] = f"unix://{SYSTEM_SOCKET}"
            return os.environ["DOCKER_HOST"]
        start_dockerd()
    os.environ["DOCKER_HOST"] = lab_socket()
    return lab_socket()


def _system_engine_after_install(timeout: float = 20) -> bool:
    """Under systemd the package starts its own dockerd: use it rather than start a second."""
    if not Path("/run/systemd/system").is_dir():
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(f"unix://{SYSTEM_SOCKET}"):
            return True
        time.sleep(1)
    return False


def install_docker() -> bool:
    """apt-get install docker.io when dockerd is missing (Debian/Ubuntu, root).

    True when it installed something.
    """
    if shutil.which("dockerd") and shutil.which("docker"):
        return False
    if not shutil.which("apt-get"):
        raise LabUnavailable("no Docker engine and no apt-get to install one: install Docker first")
    packages = ["docker.io", "iptables", "ca-certificates"]
    timeout = os.environ.get("GPUHOST_APT_LOCK_TIMEOUT", "300")
    with step(f"installing Debian's {' '.join(packages)} (apt; a few minutes, once)"):
        for args in (["update"], ["install", "-y", "--no-install-recommends", *packages]):
            # stderr (waiting for the apt lock, progress every 20 s) goes straight to the user
            proc = subprocess.run([str(APT_GET_WAIT), timeout, *args], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise LabUnavailable(f"apt-get {' '.join(args)} failed: {proc.stdout.strip()[-300:]}")
    record_packages(packages)
    return True


def start_dockerd(timeout: float = 60) -> None:
    """Start dockerd in its own session (Ctrl-C on the lab must not reach it)."""
    root = engine_dir()
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    if len(str(sock)) > 100:
        raise LabUnavailable(f"lab state path too long for a socket ({sock}): set GPUHOST_LAB_DIR shorter")
    proc = None
    if _pidfile_pid() is None:  # else a dockerd of ours is still starting: wait for it
        (root / "docker.pid").unlink(missing_ok=True)
        record_before_engine()  # dockerd adds docker0, iptables chains, ip_forward: ./dev clean reverts them
        progress(f"starting dockerd (data root {root / 'data'}, socket {sock})")
        with open(root / "dockerd.log", "ab") as log:
            proc = subprocess.Popen(
                ["dockerd", "--data-root", str(root / "data"), "-H", f"unix://{sock}",
                 "--pidfile", str(root / "docker.pid")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if answers(f"unix://{sock}"):
            progress(f"dockerd answers (after {time.monotonic() - started:.1f}s)")
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = (root / "dockerd.log").read_text(errors="replace").splitlines()[-5:]
    raise LabUnavailable(f"dockerd did not come up (see {root / 'dockerd.log'}): {' | '.join(tail)}")


def _pidfile_pid() -> int | None:
    """PID of the lab's dockerd if its pidfile names a live process."""
    try:
        pid = int((engine_dir() / "docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _running(pid) else None


def stop_engine(timeout: float = 30) -> bool:
    """Stop the dockerd this lab started (never a system one). True if one was stopped."""
    pid = _pidfile_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.3)
    return False


def _running(pid: int) -> bool:
    """Alive and not a zombie (an init that does not reap would leave one behind)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
