"""The engine of `gpuhost upgrade` (gpuhost/commands/upgrade.py has the command and its rules):
reading hosts, running a batch's deploy, the state record, and the Rollout that the Slurm rollout
(upgrade_slurm.py) extends."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import gpuhost
from gpuhost.fleet import rollout, upgrade_record
from gpuhost.errors import GpuhostError, UsageError

REPO_ROOT = Path(gpuhost.__file__).resolve().parents[1]
DEFAULT_DEPLOY = REPO_ROOT / "deploys" / "driver.py"
CONFIG = REPO_ROOT / "config.py"  # pyinfra config: gpuhost.run.faults for every host
DRAIN_POLL_SECONDS = 5


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def say(message: str) -> None:
    """Progress, on stderr (stdout holds the summary or the JSON record)."""
    print(f"gpuhost upgrade: {message}", file=sys.stderr, flush=True)


# --- Before anything is touched ------------------------------------------------------------------


def inventory_key(inventory: str) -> str:
    path = Path(inventory)
    return str(path.resolve()) if path.exists() else inventory


def inventory_hosts(inventory: str, limit: list[str]) -> list[str]:
    """Host names in inventory order (limited), with their data checked; nothing is contacted."""
    from gevent import monkey

    monkey.patch_all()  # before pyinfra's API, as inspect.gather does
    from pyinfra.api.exceptions import NoGroupError

    from gpuhost.commands.inspect import checked_hosts

    _, _, built, hosts = checked_hosts(inventory, limit)
    for host in hosts:
        try:
            built.get_group(host.name)
        except NoGroupError:
            continue
        raise UsageError(f"host {host.name} has the name of an inventory group, so pyinfra's --limit would "
                         f"select the whole group: rename the host or the group")
    return [host.name for host in hosts]


def resolve_deploy(deploy: Optional[str]) -> Path:
    if deploy is None:
        return DEFAULT_DEPLOY
    path = Path(deploy)
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # `--deploy deploys/gpu_host.py` from any directory
    if not path.is_file() or path.suffix != ".py":
        raise UsageError(f"--deploy {deploy}: not a deploy file (.py): use e.g. deploys/driver.py or "
                         f"deploys/gpu_host.py")
    return path.resolve()


def default_state_path(inventory: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "gpuhost"
    key = inventory_key(inventory)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(key).stem if Path(key).exists() else key)[:40] or "inventory"
    return base / f"upgrade-{stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.json"


def load_record(path: Path, inventory: str, restart: bool) -> dict[str, Any]:
    key = inventory_key(inventory)
    loaded = upgrade_record.load(path, key, restart) if path.exists() else None
    return loaded or rollout.new_record(key, now())


def save_record(path: Path, record: dict[str, Any]) -> None:
    """Atomically: a crash never leaves half a record."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"--state {path}: cannot write the record ({exc.strerror}): choose a --state file "
                         f"in a directory you can write") from None


@contextmanager
def locked(path: Path):
    import fcntl

    try:
        lock = open(path.with_name(path.name + ".lock"), "w")
    except OSError as exc:
        raise UsageError(f"--state {path}: cannot write beside it ({exc.strerror}): choose a --state file in a "
                         f"directory you can write") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another gpuhost upgrade is using {path}: wait for it, or choose another "
                             f"--state file") from None
        yield
    finally:
        lock.close()


# --- Talking to hosts ---------------------------------------------------------------------------


def read_hosts(inventory: str, names: list[str]) -> dict[str, Any]:
    """{name: HostReading with plan} for these hosts: one command each, in parallel."""
    from gpuhost.commands.inspect import assess, gather

    return {reading.name: assess(reading) for reading in gather(inventory, list(names))}


def expected_held(reading, target_branch: str, target_flavour: str) -> list[str] | None:
    """The packages the driver stage installs and holds on this host (None: not checkable)."""
    from gpuhost.driver.sources import select_source
    from gpuhost.compose.settings import settings_from

    if reading.facts is None:
        return None
    host_state = reading.facts["host"]
    if host_state.get("package_manager") not in ("apt", "apt-get"):
        return None  # dnf holds are versionlock entries, not package names
    settings = settings_from(reading.data).driver
    try:
        source = select_source(host_state, target_branch, target_flavour, settings.source, settings.repository,
                               settings.repository_key, settings.repository_fingerprint)
    except GpuhostError:
        return None
    return list(source.packages)


def run_local(command: str, timeout: float | None) -> tuple[int, str]:
    """A drain/undrain command on this machine: (exit status, its last output line)."""
    try:
        proc = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return proc.returncode, (lines[-1].strip() if lines else "")


def pyinfra_bin() -> str:
    """The pyinfra next to this interpreter (the venv's), else the one on PATH."""
    import shutil

    beside = Path(sys.executable).with_name("pyinfra")
    return str(beside) if beside.exists() else (shutil.which("pyinfra") or "pyinfra")


def run_deploy(inventory: str, deploy: Path, hosts: list[str], data: dict[str, str],
               log: Path) -> tuple[int, str]:
    """pyinfra's CLI on these hosts only; its output goes to the log and comes back."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [pyinfra_bin(), inventory, str(deploy), "-y"]
    if CONFIG.is_file():  # bounds, keepalives and causes (gpuhost.run.faults) from any directory
        cmd += ["--config", str(CONFIG)]
    for name in hosts:
        cmd += ["--limit", name]
    for key, value in data.items():
        cmd += ["--data", f"{key}={value}"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env)
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n[exit {proc.returncode}]\n")
    return proc.returncode, proc.stdout


# --- One batch ----------------------------------------------------------------------------------


class Rollout:
    """One invocation: its options, the record, and the batches it runs."""

    def __init__(self, inventory: str, hosts: list[str], record: dict[str, Any], state_path: Path, *,
                 deploy: Path, force: bool, reboot: Optional[str], drain: Optional[str],
                 undrain: Optional[str], drain_timeout: int, max_failed: int):
        self.inventory, self.hosts, self.record, self.state_path = inventory, hosts, record, state_path
        self.deploy, self.force, self.reboot = deploy, force, reboot
        self.drain, self.undrain, self.drain_timeout, self.max_failed = drain, undrain, drain_timeout, max_failed
        self.logs = state_path.with_name(state_path.name + ".logs")
        self.run = 0

    def result(self, name: str, batch: rollout.Batch, **kw) -> None:
        rollout.record_result(self.record, name, batch, self.run, now(), **kw)
        entry = self.record["hosts"][name]
        detail = "; ".join(filter(None, [entry["reason"], *entry["notes"]]))
        say(f"  {name}: {entry['result']}" + (f" ({detail})" if detail else ""))

    def batch(self, batch: rollout.Batch) -> None:
        say(f"{batch.label}: {', '.join(batch.hosts)}")
        readings = read_hosts(self.inventory, list(batch.hosts))
        checks = {name: rollout.precheck(readings[name].facts, readings[name].error, readings[name].plan,
                                         self.force) for name in batch.hosts}
        for name, check in checks.items():
            if check.action in ("current", "no-gpu", "failed"):
                self.result(name, batch, result=check.action, reason=check.reason, notes=check.notes,
                            driver_before=check.driver_before, target=check.target)
        change = [name for name in batch.hosts if checks[name].action in ("apply", "busy")]
        drained: list[str] = []
        if change and self.draining:
            drained = self.drain_hosts(batch, change, checks)
        for name in change:
            if checks[name].action == "busy":
                fix = (f"still running {self.drain_timeout}s after the drain" if name in drained
                       else "drain it first (--drain-command) or --force")
                self.result(name, batch, result="skipped-busy", reason=f"{checks[name].reason}: {fix}",
                            driver_before=checks[name].driver_before, target=checks[name].target)
        apply = [name for name in change if checks[name].action == "apply"]
        if apply:
            self.apply(batch, apply, checks)
        self.release_hosts(batch, drained)
        self.record["runs"][self.run - 1]["batches"].append({"label": batch.label, "hosts": list(batch.hosts)})
        save_record(self.state_path, self.record)

    @property
    def draining(self) -> bool:
        """Whether hosts are drained before they change (SlurmRollout: always)."""
        return bool(self.drain)

    def release_hosts(self, batch, drained: list[str]) -> None:
        """After the batch: the undrain command for each drained host that passed."""
        for name in drained:
            entry = self.record["hosts"][name]
            if entry["result"] not in ("upgraded", "current"):
                entry["notes"].append("left drained")
            elif self.undrain:
                rc, last = run_local(rollout.host_command(self.undrain, name), timeout=600)
                if rc != 0:
                    entry["notes"].append(f"undrain command failed ({rc}): {last}")

    def drain_hosts(self, batch, names, checks) -> list[str]:
        """Run the drain command for each host, then wait for their GPU work to end."""
        deadline = time.monotonic() + self.drain_timeout
        drained = []
        for name in names:
            rc, last = run_local(rollout.host_command(self.drain, name), timeout=max(30, deadline - time.monotonic()))
            if rc != 0:
                checks[name].action = "failed"
                self.result(name, batch, result="failed", reason=f"drain command failed ({rc}): {last}",
                            driver_before=checks[name].driver_before, target=checks[name].target)
            else:
                drained.append(name)
        waiting = list(drained)
        while waiting:
            fresh = read_hosts(self.inventory, waiting)
            for name in list(waiting):
                check = rollout.precheck(fresh[name].facts, fresh[name].error, fresh[name].plan, self.force)
                check.driver_before = checks[name].driver_before  # as found, before the drain
                if check.action != "busy":
                    waiting.remove(name)
                    checks[name] = check
                    if check.action in ("current", "no-gpu", "failed"):
                        self.result(name, batch, result=check.action, reason=check.reason, notes=check.notes,
                                    driver_before=check.driver_before, target=check.target)
                else:
                    checks[name] = check
            if waiting and time.monotonic() >= deadline:
                break
            if waiting:
                say(f"  waiting for GPU work to end on {', '.join(waiting)}")
                time.sleep(min(DRAIN_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return drained

    def apply(self, batch, names, checks) -> None:
        data = {}
        if self.force:
            data["force"] = "true"
        if self.reboot:
            data["reboot"] = self.reboot
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"run{self.run}-{batch.label.replace(' ', '')}.log"
        say(f"  deploying {self.deploy.name} on {', '.join(names)} (log: {log})")
        rc, output = run_deploy(self.inventory, self.deploy, names, data, log)
        runs = rollout.parse_deploy_output(output)
        failures = {name: rollout.deploy_failure(runs.get(name), rc, output) for name in names}
        ran = [name for name in names if failures[name] is None]
        after = read_hosts(self.inventory, ran) if ran else {}
        for name in names:
            check = checks[name]
            common = {"driver_before": check.driver_before, "target": check.target, "log": str(log),
                      "attempted": True}
            failure = failures[name]
            if failure is not None:
                busy = rollout.is_busy_refusal(failure)
                self.result(name, batch, result="skipped-busy" if busy else "failed", reason=failure,
                            notes=check.notes, **common)
                continue
            branch, flavour = check.target.split()
            branch = branch.lstrip("R")
            reading = after[name]
            policy = self.reboot or self.host_reboot_policy(reading)
            verdict = rollout.verify_host(reading.facts, reading.error, branch, flavour,
                                          expected_held(reading, branch, flavour), policy)
            if not verdict.ok:
                self.result(name, batch, result="failed", reason=f"verification: {verdict.reason}",
                            notes=check.notes, driver_after=verdict.driver_after, **common)
                continue
            changed = runs.get(name) is not None and runs[name].statuses["Success"] > 0
            self.result(name, batch, result="upgraded" if changed else "current", notes=check.notes + verdict.notes,
                        driver_after=verdict.driver_after, reboot_required=verdict.reboot_required, **common)

    @staticmethod
    def host_reboot_policy(reading) -> str:
        from gpuhost.compose.settings import settings_from

        return settings_from(reading.data).reboot


# --- The command --------------------------------------------------------------------------------
