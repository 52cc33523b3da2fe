"""Rolling driver upgrades, the pure core: batches, per-host decisions, the threshold, the record.

`gpuhost upgrade` (gpuhost/commands/upgrade.py) does the I/O; everything it decides is here, as
functions of plain data (host names, HostSnapshot facts, plan dicts, pyinfra's output text, the
JSON state record), so each rule is unit-tested without a host.

- Batches: the first `canary` hosts still to do, then batches of `--batch N` hosts or `P%` of the
  rollout's hosts (rounded up, at least one), in inventory order.
- Per host, before: unreachable or no plan -> failed; the plan keeps the driver -> current (not
  deployed); no NVIDIA GPU and none declared -> no-gpu; GPU processes or GPU containers -> busy
  (skipped unless drained or forced); otherwise the batch's deploy runs on it.
- Per host, after: pyinfra's "[host] Error" -> failed with the failing operation and its message;
  then a fresh snapshot must show the plan's driver packages held, and, where a GPU is attached
  and the host was to reboot, the planned driver loaded. Any "[host] Success" -> upgraded, only
  "No changes" -> current.
- Threshold: a failed canary host stops the rollout, as does a canary that proved nothing (all
  skipped); after any other batch, more than `--max-failed` failures in this invocation stop it.
  A batch always finishes: pyinfra runs its hosts in parallel.
- Resume: the record keeps each host's last result; the next invocation skips upgraded, current
  and no-gpu hosts, retries failed and skipped ones, and plans its batches from what is left (no
  second canary once one passed).
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gpuhost.errors import UsageError

RECORD_KIND = "gpuhost-upgrade"
RECORD_VERSION = 1
DONE = ("upgraded", "current", "no-gpu")  # nothing left to do on these hosts
RESULTS = ("pending", *DONE, "skipped-busy", "failed")
PROVES_CANARY = ("upgraded", "current")
BUSY_MARK = "GPU processes are running"  # the driver stage's own refusal (gpuhost.driver.safety)


# --- Options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSize:
    """--batch: a host count, or a percentage of the rollout's hosts."""

    count: int | None = None
    percent: int | None = None

    def hosts(self, total: int) -> int:
        if self.percent is not None:
            return max(1, math.ceil(total * self.percent / 100))
        return self.count or 1

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


def parse_batch(text: str) -> BatchSize:
    """'3' -> 3 hosts per batch; '25%' -> a quarter of the hosts (rounded up)."""
    value = str(text).strip()
    percent = value.endswith("%")
    number = value[:-1].strip() if percent else value
    if not number.isdigit():
        raise UsageError(f"--batch {text!r} is not a host count or a percentage: use e.g. --batch 2 or --batch 25%")
    n = int(number)
    if percent:
        if not 1 <= n <= 100:
            raise UsageError(f"--batch {text} is out of range: use a percentage from 1% to 100%")
        return BatchSize(percent=n)
    if n < 1:
        raise UsageError(f"--batch {text} would upgrade no host per batch: use 1 or more (or a percentage)")
    return BatchSize(count=n)


def check_options(canary: int, batch: str, max_failed: int, drain_command: str | None,
                  drain_timeout: int) -> BatchSize:
    """Every flag checked before any host is touched; one UsageError line naming the fix."""
    if canary < 0:
        raise UsageError(f"--canary {canary} is negative: use 0 (no canary) or a host count")
    size = parse_batch(batch)
    if max_failed < 0:
        raise UsageError(f"--max-failed {max_failed} is negative: use 0 (stop at the first failure) or more")
    if drain_timeout < 0:
        raise UsageError(f"--drain-timeout {drain_timeout} is negative: use seconds, 0 to check once")
    if drain_command is not None:
        if not drain_command.strip():
            raise UsageError("--drain-command is empty: give a command such as "
                             "'scontrol update nodename={host} state=drain reason=driver'")
        if "{host}" not in drain_command:
            raise UsageError("--drain-command has no {host}: write where the host name goes, e.g. "
                             "'kubectl drain {host} --ignore-daemonsets'")
    return size


# A host name, an IPv4 or IPv6 address, or a Slurm node name: nothing a shell reads specially, no
# leading '-' (an option).
PLAIN_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", re.ASCII)


def host_command(template: str, host: str) -> str:
    """A --drain-command/--undrain-command for one host: {host} replaced by the host name, which must
    be a plain host name or IP address: quoting cannot protect it inside the template's own quotes
    ("nodename={host}") or on a remote shell (ssh ctl scontrol ...). Any other name gives a command
    that fails, saying why, so that host is not drained or upgraded."""
    if not PLAIN_HOST.fullmatch(host) or len(host) > 253:
        return (f"echo {shlex.quote(f'gpuhost: host name {host!r} is not a plain host name or IP address: ')}"
                "'it is not put into a drain command; drain it by hand or rename it in the inventory' >&2; exit 2")
    return template.replace("{host}", host)


# --- Batches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    number: int  # 0 for the canary, then 1, 2, ...
    hosts: tuple[str, ...]

    @property
    def canary(self) -> bool:
        return self.number == 0

    @property
    def label(self) -> str:
        return "canary" if self.canary else f"batch {self.number}"


def plan_batches(todo: list[str], total: int, canary: int, size: BatchSize) -> list[Batch]:
    """The canary (the first `canary` hosts of `todo`), then batches sized from the `total` hosts."""
    batches = []
    if canary > 0 and todo:
        batches.append(Batch(0, tuple(todo[:canary])))
        todo = todo[canary:]
    step = size.hosts(total)
    for number, start in enumerate(range(0, len(todo), step), start=1):
        batches.append(Batch(number, tuple(todo[start:start + step])))
    return batches


# --- One host, before the deploy ----------------------------------------------------------------


@dataclass
class Precheck:
    action: str  # apply | current | no-gpu | busy | failed
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    driver_before: str | None = None
    target: str | None = None  # "R580 open"


def gpu_work(facts: dict[str, Any]) -> list[str]:
    """What runs on the GPUs: processes (nvidia-smi) and containers given GPUs."""
    work = [f"{p.get('process_name') or '?'} (pid {p.get('pid')})" for p in facts["gpu"].get("processes") or []]
    work += [f"container {c.get('name') or c.get('id')}" for c in facts["container"].get("gpu_containers") or []]
    return work


def precheck(facts: dict[str, Any] | None, error: str | None, plan: dict[str, Any] | None,
             force: bool) -> Precheck:
    """What to do with one host, from its snapshot and plan (`inspect.assess`'s `plan`)."""
    if facts is None:
        return Precheck("failed", f"unreachable: {error or 'no reading'}")
    driver = facts["gpu"].get("driver") or {}
    before = driver.get("version")
    if plan is None or plan["status"] == "failed":
        return Precheck("failed", f"no plan: {(plan or {}).get('reason') or 'unknown'}", driver_before=before)
    if plan["status"] == "skipped":
        return Precheck("no-gpu", plan.get("reason"), driver_before=before)
    wanted = plan["plan"]["driver"]
    target = f"R{wanted['branch']} {wanted['kernel_module']}"
    if wanted["action"] == "keep":
        notes = ["driver/library mismatch: reboot required"] if driver.get("mismatch") else []
        return Precheck("current", None, notes, before, target)
    work = gpu_work(facts)
    if work and not force:
        return Precheck("busy", f"GPU work running: {', '.join(work[:5])}", driver_before=before, target=target)
    notes = [f"forced despite GPU work: {', '.join(work[:5])}"] if work else []
    return Precheck("apply", None, notes, before, target)


# --- One host, after the deploy -----------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
HOST_LINE = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<text>.*?)\s*$")
STATUS = re.compile(r"^(?P<status>Success|No changes|Error|Skipped)\b")
OPERATION = re.compile(r"^--> Starting (?:nested )?operation: (?P<name>.*?)\s*$")
RUN_STARTS = "--> Beginning operation run"


@dataclass
class HostRun:
    """One host in pyinfra's output: its status lines and, when one failed, why."""

    statuses: Counter = field(default_factory=Counter)
    error: str | None = None
    said: list[str] = field(default_factory=list)  # its other lines, in order


def parse_deploy_output(output: str) -> dict[str, HostRun]:
    """Per host from pyinfra's CLI output: "[h] Success/No changes/Error/Skipped" lines, and
    for the first failing operation its name and what the host printed under it (a line from
    gpuhost's own stop says `gpuhost: ...`: that one is the reason)."""
    runs: dict[str, HostRun] = {}
    operation = None
    pending: dict[str, list[str]] = {}
    for raw in ANSI.sub("", output).splitlines():
        op = OPERATION.match(raw.strip())
        if op:
            operation, pending = op["name"], {}
            continue
        match = HOST_LINE.match(raw)
        if not match:
            continue
        host, text = match["host"], match["text"]
        run = runs.setdefault(host, HostRun())
        status = STATUS.match(text)
        if not status:
            run.said.append(text)
            pending.setdefault(host, []).append(text)
            continue
        run.statuses[status["status"]] += 1
        if status["status"] == "Error" and run.error is None:
            lines = pending.get(host, [])
            ours = [line for line in lines if line.startswith("gpuhost:")]
            message = "; ".join(ours or lines[-3:]) or text
            run.error = f"{operation}: {message}" if operation else message
        pending.pop(host, None)
    return runs


def deploy_failure(run: HostRun | None, returncode: int, output: str) -> str | None:
    """Why the deploy failed on this host, or None when it ran through."""
    if run is not None and run.statuses["Error"]:
        return run.error or "an operation failed"
    if run is not None and (sum(run.statuses.values()) or any(line.startswith("Ready:") for line in run.said)):
        return None  # its operations ran, or it had none (a converged host's are all "Skipped")
    if returncode == 0:
        return None
    said = [line for line in (run.said if run else []) if line != "Connected" and not line.startswith("Ready:")]
    if said:
        return f"pyinfra did not run on it: {said[-1]}"
    tail = [line.strip() for line in ANSI.sub("", output).splitlines() if line.strip()]
    return f"pyinfra exited {returncode} before running on it" + (f": {tail[-1]}" if tail else "")


def is_busy_refusal(reason: str | None) -> bool:
    """The driver stage refused the host itself: GPU work started after the precheck."""
    return bool(reason) and BUSY_MARK in reason


def version_branch(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


@dataclass
class Verdict:
    ok: bool
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    driver_after: str | None = None
    reboot_required: bool = False


def verify_host(facts: dict[str, Any] | None, error: str | None, target_branch: str, target_flavour: str,
                expected_held: list[str] | None, reboot: str) -> Verdict:
    """The host as read again after its deploy: is the planned driver in place (or pending a reboot)?

    expected_held: the driver packages the stage installs and holds (None: not checkable here,
    e.g. dnf, whose holds are versionlock entries). reboot: the host's policy (auto | never).
    """
    if facts is None:
        return Verdict(False, f"unreachable after the deploy: {error or 'no reading'}")
    gpu, host = facts["gpu"], facts["host"]
    driver = gpu.get("driver") or {}
    verdict = Verdict(True, driver_after=driver.get("version"),
                      reboot_required=bool((host.get("reboot") or {}).get("required")))
    if (host.get("package_lock") or {}).get("dpkg_interrupted"):
        return Verdict(False, "dpkg was left interrupted: run 'dpkg --configure -a' on the host",
                       driver_after=verdict.driver_after)
    if expected_held is not None:
        held = set(host.get("held_packages") or [])
        missing = [p for p in expected_held if p not in held]
        if missing:
            return Verdict(False, f"driver packages not installed and held after the deploy: {', '.join(missing)}",
                           driver_after=verdict.driver_after)
    attached = bool(gpu.get("gpus"))
    loaded = bool(driver.get("loaded"))
    in_place = (loaded and version_branch(driver.get("version")) == target_branch
                and (driver.get("flavour") in (None, target_flavour)) and not driver.get("mismatch"))
    if not attached:
        verdict.notes.append("packages installed and held; no GPU attached to load them")
    elif in_place:
        verdict.notes.append(f"driver {driver.get('version')} loaded")
    elif reboot == "auto":
        now = f"{driver.get('version')} {driver.get('flavour') or ''}".strip() if loaded else "no module"
        return Verdict(False, f"after the deploy and reboot the loaded driver is {now}, not R{target_branch} "
                              f"{target_flavour}", driver_after=verdict.driver_after)
    else:
        verdict.reboot_required = True
        verdict.notes.append("new driver installed; reboot to load it (reboot: never)")
    if verdict.reboot_required and not any("reboot" in n for n in verdict.notes):
        verdict.notes.append("reboot pending")
    return verdict


# --- The record (the state file's content) ------------------------------------------------------


def new_record(inventory: str, now: str) -> dict[str, Any]:
    return {"kind": RECORD_KIND, "version": RECORD_VERSION, "inventory": inventory, "created": now,
            "updated": now, "status": "new", "stop_reason": None, "canary_passed": False,
            "runs": [], "hosts": {}}


def empty_host() -> dict[str, Any]:
    return {"result": "pending", "reason": None, "notes": [], "batch": None, "run": None, "attempts": 0,
            "driver_before": None, "target": None, "driver_after": None, "reboot_required": False,
            "updated": None, "log": None}


def check_record(record: Any, inventory: str, path: str) -> dict[str, Any]:
    """A loaded state record, or UsageError saying why it cannot be resumed."""
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND or not isinstance(record.get("hosts"), dict):
        raise UsageError(f"state file {path} is not a gpuhost upgrade record: choose another --state file")
    if record.get("version") != RECORD_VERSION:
        raise UsageError(f"state file {path} has record version {record.get('version')!r}, this gpuhost reads "
                         f"{RECORD_VERSION}: use --restart or another --state file")
    if record.get("inventory") != inventory:
        raise UsageError(f"state file {path} records a rollout of {record.get('inventory')}, not {inventory}: "
                         f"choose another --state file, or --restart to start over")
    for name, entry in record["hosts"].items():
        if not isinstance(entry, dict) or entry.get("result") not in RESULTS:
            raise UsageError(f"state file {path}: host {name} has no valid result: use --restart")
    return record


def open_run(record: dict[str, Any], hosts: list[str], options: dict[str, Any], now: str) -> int:
    """Start an invocation over `hosts` (inventory order); returns its run number."""
    for name in hosts:
        record["hosts"].setdefault(name, empty_host())
    number = len(record["runs"]) + 1
    record["runs"].append({"run": number, "started": now, "finished": None, "hosts": list(hosts),
                           "options": options, "batches": [], "status": "running"})
    record.update(status="running", stop_reason=None, updated=now)
    return number


def todo(record: dict[str, Any], hosts: list[str]) -> list[str]:
    """Hosts of this invocation with work left, in order (failed and skipped ones are retried)."""
    return [name for name in hosts if record["hosts"][name]["result"] not in DONE]


def record_result(record: dict[str, Any], name: str, batch: Batch, run: int, now: str, *, result: str,
                  reason: str | None = None, notes: list[str] | None = None, driver_before: str | None = None,
                  target: str | None = None, driver_after: str | None = None, reboot_required: bool = False,
                  log: str | None = None, attempted: bool = False) -> None:
    if result not in RESULTS:
        raise ValueError(result)
    entry = record["hosts"][name]
    entry.update(result=result, reason=reason, notes=list(notes or []), batch=batch.label, run=run,
                 driver_before=driver_before, target=target, driver_after=driver_after,
                 reboot_required=reboot_required, updated=now, log=log)
    entry["attempts"] = entry.get("attempts", 0) + (1 if attempted else 0)
    record["updated"] = now


def stop_reason(record: dict[str, Any], batch: Batch, run: int, max_failed: int) -> str | None:
    """Whether the rollout stops after this batch (and marks a passed canary)."""
    results = {name: record["hosts"][name]["result"] for name in batch.hosts}
    failed = sorted(name for name, result in results.items() if result == "failed")
    if batch.canary:
        if failed:
            return f"canary {', '.join(failed)} failed: fix it and run again"
        if not any(result in PROVES_CANARY for result in results.values()):
            return ("no canary host was upgraded or found current (all skipped): drain or force them, "
                    "choose others with --limit, or use --canary 0")
        record["canary_passed"] = True
        return None
    run_failed = sum(1 for entry in record["hosts"].values() if entry["run"] == run and entry["result"] == "failed")
    if run_failed > max_failed:
        return f"{run_failed} failed host(s), more than --max-failed {max_failed}"
    return None


def close_run(record: dict[str, Any], hosts: list[str], run: int, stopped: str | None, now: str,
              interrupted: bool = False) -> str:
    """The invocation's status: complete | incomplete | stopped | interrupted."""
    if interrupted:
        status = "interrupted"
    elif stopped:
        status = "stopped"
    elif all(record["hosts"][name]["result"] in DONE for name in hosts):
        status = "complete"
    else:
        status = "incomplete"  # every batch ran; some hosts failed (within the threshold) or were skipped
    record["runs"][run - 1].update(finished=now, status=status)
    record.update(status=status, stop_reason=stopped, updated=now)
    return status


def counts(record: dict[str, Any], hosts: list[str]) -> Counter:
    return Counter(record["hosts"][name]["result"] for name in hosts)


# --- The summary table --------------------------------------------------------------------------


def render_summary(record: dict[str, Any], hosts: list[str], state_path: str | None = None) -> str:
    """One row per host of this invocation, the totals, and what to do next."""
    columns = ["HOST", "RUN", "BATCH", "RESULT", "DRIVER", "NOTES"]
    rows = []
    for name in hosts:
        entry = record["hosts"][name]
        before, after = entry.get("driver_before"), entry.get("driver_after")
        driver = before or "-"
        if entry.get("target") and entry["result"] == "upgraded":  # the loaded driver, or the planned one
            driver = f"{before or '-'} -> {after if after and after != before else entry['target']}"
        elif entry.get("target") and entry["result"] == "current":
            driver = before or entry["target"]
        notes = "; ".join(filter(None, [entry.get("reason"), *(entry.get("notes") or [])]))
        rows.append([name, entry.get("run") or "-", entry.get("batch") or "-", entry["result"], driver, notes or "-"])
    widths = [max(len(str(r[i])) for r in [columns] + rows) for i in range(len(columns) - 1)]
    lines = ["  ".join([*(str(v).ljust(w) for v, w in zip(row[:-1], widths)), str(row[-1])]).rstrip()
             for row in [columns] + rows]
    tally = counts(record, hosts)
    lines.append("")
    lines.append(", ".join(f"{tally[r]} {r}" for r in RESULTS if tally[r]) or "no hosts")
    lines.append(next_step(record, tally, state_path))
    return "\n".join(lines)


def next_step(record: dict[str, Any], tally: Counter, state_path: str | None) -> str:
    status = record.get("status")
    where = f" (state: {state_path})" if state_path else ""
    if status == "complete":
        return f"rollout complete{where}"
    if status == "stopped":
        return f"rollout stopped: {record.get('stop_reason')}. Run the same command again to resume{where}"
    if status == "interrupted":
        return f"rollout interrupted. Run the same command again to resume{where}"
    parts = []
    if tally["failed"]:
        parts.append(f"{tally['failed']} failed: fix them")
    if tally["skipped-busy"]:
        parts.append(f"{tally['skipped-busy']} skipped with GPU work: wait, use --drain-command, or --force")
    return f"rollout incomplete: {'; '.join(parts) or 'hosts left'}; run the same command again to retry{where}"
