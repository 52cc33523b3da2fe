"""`gpuhost upgrade --scheduler slurm`: the rollout with Slurm taking part (the I/O).

Per batch, for every host the batch will change: read its node with `scontrol` on the host, drain
it with a reason naming gpuhost and the target driver (unless someone else drained it, or an
earlier gpuhost run did), wait (up to --drain-timeout) until Slurm reports it drained (no job left,
none started: a drained node takes no new job; running jobs are never killed), then read the host
again (GPU work outside Slurm still stops it) and deploy. After the batch, each host's node is
resumed only if gpuhost drained it and its check passed; a failed host's node stays drained with
the cause as its reason; a node someone else drained stays as it is, and the table says so.
Interrupted, timed out or failed, a node keeps gpuhost's reason, so the next run finishes it.

The decisions are gpuhost/scheduler/slurm.py's (pure, unit-tested); this module runs the commands
over pyinfra's SSH connections (inspect.gather, one command per host per step).
"""

from __future__ import annotations

import time
from typing import Any

from gpuhost.commands.upgrade_run import Rollout, read_hosts, say
from gpuhost.errors import UsageError
from gpuhost.fleet import rollout
from gpuhost.scheduler.slurm import ReadCommand, SlurmReading, UpdateCommand, next_action

SCHEDULERS = ("slurm",)
POLL_SECONDS = 2
PROBLEM_KINDS = ("controller does not answer", "Slurm has no node", "scontrol not found")  # scontrol answers from slurmctld's memory: cheap to ask


def check_scheduler(scheduler: str, drain_command: str | None, undrain_command: str | None) -> None:
    if scheduler not in SCHEDULERS:
        raise UsageError(f"--scheduler {scheduler!r} is unknown: use slurm, or --drain-command/--undrain-command "
                         f"for another scheduler")
    if drain_command is not None or undrain_command is not None:
        raise UsageError(f"--scheduler {scheduler} drains and resumes hosts itself: leave out --drain-command "
                         f"and --undrain-command")


def slurm_read(inventory: str, names: list[str]) -> dict[str, SlurmReading]:
    """Each host's node, read with scontrol on the host (in parallel)."""
    from gpuhost.commands.inspect import gather

    if not names:
        return {}
    readings = gather(inventory, list(names), fact_for=lambda host: (ReadCommand, None))
    return {r.name: r.facts if r.facts is not None else SlurmReading(None, f"unreachable: {r.error}")
            for r in readings}


def slurm_update(inventory: str, actions: dict[str, tuple[str, str | None]]) -> dict[str, SlurmReading]:
    """{host: (drain|resume, reason)}: scontrol update on each host, then its node as it is now."""
    from gpuhost.commands.inspect import gather

    if not actions:
        return {}

    def fact_for(host):
        action, reason = actions[host.name]
        return UpdateCommand, {"action": action, "reason": reason}

    readings = gather(inventory, list(actions), fact_for=fact_for)
    return {r.name: r.facts if r.facts is not None else SlurmReading(None, f"unreachable: {r.error}")
            for r in readings}


def preflight(inventory: str, hosts: list[str], record: dict[str, Any]) -> None:
    """Before any host is changed: every host left to do is a node Slurm knows, and the controller
    answers. One line (UsageError) otherwise. Unreachable hosts are the rollout's to report."""
    left = [name for name in hosts if (record["hosts"].get(name) or {}).get("result") not in rollout.DONE]
    readings = slurm_read(inventory, left)
    problems = [(name, readings[name].problem) for name in left
                if readings[name].problem and not readings[name].problem.startswith("unreachable")]
    if not problems:
        return
    # A silent controller first: it explains every other answer. Then the first problem, with its hosts.
    kinds = [kind_of(problem) for _, problem in problems]
    first = "controller does not answer" if "controller does not answer" in kinds else kinds[0]
    group = [(name, problem) for (name, problem), kind in zip(problems, kinds) if kind == first]
    names = [name for name, _ in group]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise UsageError(f"--scheduler slurm: host {shown}: {group[0][1]} (no host was changed)")


def kind_of(problem: str) -> str:
    """Problems of one kind are one line, whichever node they name."""
    return next((phrase for phrase in PROBLEM_KINDS if phrase in problem), problem)


class SlurmRollout(Rollout):
    """The rollout of upgrade.py with Slurm's drain, wait and resume around each host."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes: dict[str, list[str]] = {}  # Slurm notes kept until the host's result is recorded

    @property
    def draining(self) -> bool:
        return True

    def drain_hosts(self, batch, names, checks) -> list[str]:
        """Drain (or adopt) each node, wait until Slurm says no job is left, read the hosts again.
        Returns the hosts that were held out of service for the change."""
        nodes = slurm_read(self.inventory, names)
        drain: dict[str, tuple[str, str | None]] = {}
        held: list[str] = []
        for name in names:
            reading = nodes[name]
            if reading.node is None:
                self.stop_host(batch, name, checks, "failed", f"Slurm: {reading.problem}")
                continue
            action = next_action(reading.node, "before", target=checks[name].target)
            say(f"  {name}: Slurm node {reading.node.name} is {reading.node.describe()}")
            if action.name == "drain":
                drain[name] = ("drain", action.reason)
            else:
                self.notes.setdefault(name, []).append(action.note)
            held.append(name)
        for name, reading in slurm_update(self.inventory, drain).items():
            if reading.node is None or not reading.node.drain:
                held.remove(name)
                self.stop_host(batch, name, checks, "failed",
                               f"Slurm drain failed: {reading.problem or reading.node.describe()}")
            else:
                say(f"  {name}: drained in Slurm: {reading.node.describe()}")
        ready = self.wait_drained(batch, held, checks)
        if ready and not self.force:  # GPU work that Slurm does not know of still stops a host
            fresh = read_hosts(self.inventory, ready)
            for name in ready:
                check = rollout.precheck(fresh[name].facts, fresh[name].error, fresh[name].plan, self.force)
                check.driver_before = checks[name].driver_before
                checks[name] = check
                if check.action in ("current", "no-gpu", "failed"):
                    self.result(name, batch, result=check.action, reason=check.reason, notes=check.notes,
                                driver_before=check.driver_before, target=check.target)
        return held

    def wait_drained(self, batch, names, checks) -> list[str]:
        """Poll the nodes until Slurm reports each drained (jobs ended) or --drain-timeout passes."""
        deadline = time.monotonic() + self.drain_timeout
        waiting, ready = list(names), []
        while waiting:
            nodes = slurm_read(self.inventory, waiting)
            for name in list(waiting):
                reading = nodes[name]
                if reading.node is None:
                    waiting.remove(name)
                    self.stop_host(batch, name, checks, "failed", f"Slurm: {reading.problem}")
                    continue
                action = next_action(reading.node, "draining")
                if action.name == "ready" or (action.name == "wait" and self.force):  # --force: not waiting
                    waiting.remove(name)
                    ready.append(name)
                    say(f"  {name}: Slurm node {reading.node.name} is {reading.node.shown}")
                elif action.name == "lost":
                    waiting.remove(name)
                    self.stop_host(batch, name, checks, "skipped-busy", action.note)
            if not waiting:
                break
            if time.monotonic() >= deadline:
                for name in waiting:
                    self.stop_host(batch, name, checks, "skipped-busy",
                                   f"Slurm jobs still running {self.drain_timeout}s after the drain: left draining; "
                                   f"run again to continue")
                break
            say(f"  waiting for Slurm jobs to end on {', '.join(waiting)}")
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return ready

    def release_hosts(self, batch, drained: list[str]) -> None:
        """Resume the nodes gpuhost drained whose host passed; mark the failed ones with the cause."""
        nodes = slurm_read(self.inventory, list(batch.hosts))
        updates: dict[str, tuple[str, str | None]] = {}
        for name in batch.hosts:
            entry, reading = self.record["hosts"][name], nodes[name]
            entry["notes"] += self.notes.pop(name, [])
            if reading.node is None:
                entry["notes"].append(f"Slurm: {reading.problem}")
                continue
            passed = True if entry["result"] in rollout.DONE else None if entry["result"] == "skipped-busy" else False
            action = next_action(reading.node, "after", passed=passed, cause=entry["reason"])
            if action.name in ("resume", "mark-failed"):
                updates[name] = ("resume" if action.name == "resume" else "drain", action.reason)
            elif action.name == "keep":
                entry["notes"].append(action.note)
            elif action.name == "leave" and not any(note.startswith(("drained before", "down before"))
                                                    for note in entry["notes"]):
                entry["notes"].append(action.note)
        for name, reading in slurm_update(self.inventory, updates).items():
            entry = self.record["hosts"][name]
            if reading.node is None:
                entry["notes"].append(f"Slurm {updates[name][0]} failed: {reading.problem}")
                continue
            action = "resumed" if updates[name][0] == "resume" else "left drained"
            entry["notes"].append(f"{action} in Slurm ({reading.node.describe()})")
            say(f"  {name}: {action} in Slurm: {reading.node.describe()}")

    def stop_host(self, batch, name: str, checks, result: str, reason: str) -> None:
        checks[name].action = "stopped"
        self.result(name, batch, result=result, reason=reason, driver_before=checks[name].driver_before,
                    target=checks[name].target)
