"""The Lab: N test hosts, their inventory and services, torn down whatever happens.

    with Lab([HostSpec("h1"), HostSpec("h2", data={"target_gpus": ["H100"]})]) as lab:
        lab.pyinfra("deploys/gpu_host.py", "-y")
        lab.hosts[0].exec("cat /var/lib/gpuhost/report.json")

Everything a lab creates carries the label gpuhost.lab=<lab id> and the owner's pid, so
teardown (on exit, exceptions, Ctrl-C, SIGTERM, SIGHUP, interpreter exit) finds it, and
cleanup() removes what an earlier run left behind when its owner is gone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from gpuhost.errors import UsageError
from gpuhost.lab.changes import record_sysctl
from gpuhost.lab.engine import docker, ensure_engine
from gpuhost.lab.hosts import HostSpec, LabHost, start_host, wait_ready
from gpuhost.lab.image import ensure_host_image, ensure_registry_image, ensure_variant_image
from gpuhost.lab.inventory import write_inventory
from gpuhost.lab.keys import ensure_key
from gpuhost.lab.services import Service, serve_directory, start_registry
from gpuhost.lab.state import LABEL, REPO_ROOT, progress, state_dir

PID_LABEL = f"{LABEL}.pid"
CLOSING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Lab:
    """A context manager that starts the lab's hosts and always removes them."""

    def __init__(self, hosts: Sequence[HostSpec | str] = ("h1",)) -> None:
        specs = [HostSpec(h) if isinstance(h, str) else h for h in hosts]
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise UsageError(f"lab host names must be unique, got {names}")
        self.specs = specs
        self.id = uuid.uuid4().hex[:8]
        self.prefix = f"gpuhost-lab-{self.id}"
        self.network = self.prefix
        self.labels = {LABEL: self.id, PID_LABEL: str(os.getpid())}
        self.hosts: list[LabHost] = []
        self.services: dict[str, Service] = {}
        self.run_dir: Path | None = None
        self.inventory_path: Path | None = None
        self._open = False
        self._old_handlers: dict[int, object] = {}

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self._open = True
        atexit.register(self.close)
        self._install_signal_handlers()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        ensure_engine()
        cleanup()
        _room_for_hosts(len(self.specs))
        images = {key: ensure_variant_image(*key) for key in sorted({(s.distro, s.packages) for s in self.specs})}
        key_path, public_key = ensure_key()
        self.run_dir = state_dir() / "runs" / self.id
        self.run_dir.mkdir(parents=True)
        (self.run_dir / "pid").write_text(f"{os.getpid()}\n")
        docker("network", "create", *self._label_args(), self.network)
        started = time.monotonic()
        progress(f"lab {self.id}: starting {len(self.specs)} host(s) (systemd + sshd; a few seconds each)")
        for spec in self.specs:
            self.hosts.append(start_host(spec, image=images[(spec.distro, spec.packages)], network=self.network,
                                         prefix=self.prefix, labels=self.labels,
                                         public_key=public_key, key_path=key_path))
        for host in self.hosts:
            wait_ready(host)
        progress(f"lab {self.id}: {len(self.hosts)} host(s) ready in "
                 f"{time.monotonic() - started:.1f}s: "
                 + ", ".join(f"{h.name}=127.0.0.1:{h.port}" for h in self.hosts))
        self.inventory_path = write_inventory(self.run_dir / "inventory.py", self.hosts, self.id)
        self._write_ssh_config()

    def close(self) -> None:
        """Remove every container and the network of this lab; safe to call twice."""
        if not self._open:
            return
        self._open = False
        masked = {}
        if _main_thread():  # a second Ctrl-C or SIGTERM must not abort the teardown
            masked = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *CLOSING_SIGNALS)}
        try:
            # Twice: a `docker run` cut short by Ctrl-C may still be creating its container.
            remove_labelled(f"{LABEL}={self.id}")
            remove_labelled(f"{LABEL}={self.id}")
            if self.run_dir:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        finally:
            for signum, handler in masked.items():
                signal.signal(signum, handler)
            self._restore_signal_handlers()
            atexit.unregister(self.close)

    # -- using the lab ---------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"no lab host named {name!r}")

    def pyinfra(self, *args: str, cwd: Path | str = REPO_ROOT, echo: bool = False,
                timeout: float = 1800) -> subprocess.CompletedProcess:
        """Run pyinfra's real CLI on the lab inventory: `pyinfra <inventory> *args`.

        pyinfra logs to stderr: the result's stdout holds stdout and stderr interleaved, in
        order. echo=True also streams it live (the demo).
        """
        cmd = [pyinfra_bin(), str(self.inventory_path), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if echo:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            lines = []
            try:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    lines.append(line)
                proc.wait(timeout=timeout)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")
        return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)

    def registry(self) -> Service:
        """Start (once) a real registry reachable from the hosts as registry:5000."""
        if "registry" not in self.services:
            self.services["registry"] = start_registry(ensure_registry_image(), **self._common())
        return self.services["registry"]

    def serve_directory(self, path: Path | str, name: str = "apt") -> Service:
        """Serve a directory over HTTP to the hosts as http://<name>:8080/."""
        if name not in self.services:
            self.services[name] = serve_directory(Path(path), ensure_host_image(), name=name,
                                                  **self._common())
        return self.services[name]

    # -- internals -------------------------------------------------------------------

    def _common(self) -> dict:
        return {"network": self.network, "prefix": self.prefix, "labels": self.labels}

    def _label_args(self) -> list[str]:
        return [arg for key, value in self.labels.items() for arg in ("--label", f"{key}={value}")]

    def _write_ssh_config(self) -> None:
        """An ssh_config for humans (ssh -F <run dir>/ssh_config h1) and for testinfra."""
        path = self.run_dir / "ssh_config"
        blocks = [f"Host {h.name}\n  HostName 127.0.0.1\n  Port {h.port}\n  User root\n"
                  f"  IdentityFile {h.key_path}\n  IdentitiesOnly yes\n"
                  f"  UserKnownHostsFile {self.run_dir / 'known_hosts'}\n"
                  "  StrictHostKeyChecking no\n" for h in self.hosts]
        path.write_text("\n".join(blocks))
        for host in self.hosts:
            host.ssh_config = path

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGHUP raise KeyboardInterrupt, so the same teardown path runs as for Ctrl-C."""
        if not _main_thread():
            return
        for signum in CLOSING_SIGNALS:
            self._old_handlers[signum] = signal.signal(signum, _interrupt)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


def _room_for_hosts(count: int) -> None:
    """Raise the kernel's inotify-instance limit when many hosts start: every host's systemd,
    journald, dbus and dockerd take some (all as root), and the default of 128 stopped the
    22nd host of a 30-host lab (its systemd exited). Root only; otherwise left as it is. The
    original value is recorded first: `./dev clean` puts it back."""
    wanted = 128 + 16 * count
    try:
        current = INOTIFY_INSTANCES.read_text().strip()
        if int(current) < wanted:
            record_sysctl("fs.inotify.max_user_instances", current)
            INOTIFY_INSTANCES.write_text(f"{wanted}\n")
            progress(f"raised fs.inotify.max_user_instances to {wanted} for {count} hosts")
    except (OSError, ValueError):
        pass


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def pyinfra_bin() -> str:
    """The pyinfra next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("pyinfra")
    return str(beside) if beside.exists() else (shutil.which("pyinfra") or "pyinfra")


def remove_labelled(label_filter: str) -> list[str]:
    """docker rm -f every container and network matching a label filter."""
    containers = docker("ps", "-aq", "--filter", f"label={label_filter}", check=False).stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    networks = docker("network", "ls", "-q", "--filter", f"label={label_filter}",
                      check=False).stdout.split()
    if networks:
        docker("network", "rm", *networks, check=False)
    return containers + networks


def cleanup(everything: bool = False) -> list[str]:
    """Remove what earlier labs left behind: those whose owning process is gone.

    everything=True removes every lab container and network, including live labs'.
    """
    removed: list[str] = []
    fmt = '{{.ID}} {{.Label "' + LABEL + '"}} {{.Label "' + PID_LABEL + '"}}'
    rows = docker("ps", "-a", "--filter", f"label={LABEL}", "--format", fmt, check=False).stdout
    rows += docker("network", "ls", "--filter", f"label={LABEL}", "--format", fmt,
                   check=False).stdout
    stale_ids = set()
    for row in rows.splitlines():
        _, lab_id, pid = (row.split() + ["", "", ""])[:3]
        if lab_id and (everything or not _alive(pid)):
            stale_ids.add(lab_id)
    for lab_id in sorted(stale_ids):
        removed += remove_labelled(f"{LABEL}={lab_id}")
    for pid_file in (state_dir() / "runs").glob("*/pid"):  # inventories of killed runs
        if everything or not _alive(pid_file.read_text().strip()):
            shutil.rmtree(pid_file.parent, ignore_errors=True)
    if removed:
        progress(f"removed {len(removed)} container(s)/network(s) left by earlier lab runs")
    return removed


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True  # not ours to judge: another user's process, or no pid label
    return True
