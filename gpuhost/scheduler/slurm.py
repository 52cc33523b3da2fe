"""Slurm, the pure core: what `scontrol` said about a node, and what gpuhost does next.

gpuhost talks to Slurm with Slurm's own client on each host (`scontrol`), as root over the SSH
connection pyinfra already has: no Slurm on the admin's machine, no REST daemon. The node's Slurm
name is the host's short hostname (`hostname -s`), the name slurmd itself registers under unless
started with -N. Every command here is text with each value shell-quoted; the I/O is in
gpuhost/commands/upgrade_slurm.py.

Whose drain is it? Slurm keeps one reason per node. gpuhost's reasons start with REASON_PREFIX
("gpuhost upgrade: ...", "gpuhost upgrade failed: ...", "gpuhost health: ..."); any other reason
is someone else's (an operator, a health checker), and gpuhost never resumes such a node nor
rewrites its reason.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

REASON_PREFIX = "gpuhost"
UPGRADE = "gpuhost upgrade"
UPGRADE_FAILED = "gpuhost upgrade failed"
HEALTH = "gpuhost health"
REASON_LIMIT = 200  # characters; Slurm keeps more, `sinfo -R` shows less
BUSY_STATES = ("ALLOCATED", "MIXED", "COMPLETING")
HEADER = re.compile(r"^gpuhost-slurm node=(?P<node>\S*) rc=(?P<rc>\d+)(?P<update> update)?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


# --- What scontrol says ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmNode:
    """One node as `scontrol -o show node NAME` prints it (Slurm 22.05 and later)."""

    name: str
    state: str  # the base state: IDLE, ALLOCATED, MIXED, DOWN, UNKNOWN, FUTURE, ...
    flags: tuple[str, ...] = ()  # DRAIN, COMPLETING, NOT_RESPONDING, MAINTENANCE, REBOOT_REQUESTED, ...
    reason: str | None = None  # without Slurm's " [user@time]" suffix
    reason_by: str | None = None  # "root@2026-12-06T11:32:01"

    @property
    def drain(self) -> bool:
        return "DRAIN" in self.flags

    @property
    def down(self) -> bool:
        return self.state == "DOWN"

    @property
    def busy(self) -> bool:
        """Jobs still on it (running or completing)."""
        return self.state in BUSY_STATES or "COMPLETING" in self.flags

    @property
    def out_of_service(self) -> bool:
        """No new job lands here: drained or draining, or down."""
        return self.drain or self.down

    @property
    def ours(self) -> bool:
        return bool(self.reason) and self.reason.startswith(REASON_PREFIX)

    def drained_by(self, prefix: str) -> bool:
        """Drained (or draining) by gpuhost with a reason starting with this prefix."""
        return self.drain and bool(self.reason) and self.reason.startswith(prefix)

    @property
    def shown(self) -> str:
        """As sinfo's long state shows it: drained, draining, idle, allocated, down, ..."""
        if self.drain:
            word = "draining" if self.busy else "drained"
        else:
            word = self.state.lower()
        return word + ("*" if "NOT_RESPONDING" in self.flags else "")

    def describe(self) -> str:
        return self.shown + (f" ({self.reason})" if self.reason else "")


def parse_show_node(text: str) -> SlurmNode:
    """`scontrol -o show node NAME` (one line) -> SlurmNode. Reason comes last and may hold spaces."""
    line = " ".join(text.split())
    name = re.search(r"(?:^| )NodeName=(\S+)", line)
    state = re.search(r" State=(\S+)", line)
    if not name or not state:
        raise ValueError(f"not scontrol's node line: {line[:120]!r}")
    base, *flags = state[1].split("+")
    reason = reason_by = None
    match = re.search(r" Reason=(.*?)(?: \[(?P<by>[^\[\]]*@[^\[\]]*)\])?$", line)
    if match:
        reason, reason_by = match[1].strip() or None, match["by"]
    return SlurmNode(name[1], base.rstrip("*"), tuple(flags), reason, reason_by)


@dataclass(frozen=True)
class SlurmReading:
    """One host's answer: its node, or the problem (one line, with the fix)."""

    node: SlurmNode | None
    problem: str | None = None
    name: str | None = None  # the node name the host used (hostname -s)


def parse_reading(lines: list[str]) -> SlurmReading:
    """The output of read_command()/update_command() run on a host."""
    header = HEADER.match(lines[0].strip()) if lines else None
    if header is None:
        return SlurmReading(None, "no answer from gpuhost's Slurm check (is /bin/sh there?)")
    name, rc, said = header["node"], int(header["rc"]), [line.strip() for line in lines[1:] if line.strip()]
    last = said[-1] if said else ""
    if rc == 127:
        return SlurmReading(None, "scontrol not found on the host: install Slurm's client (Debian: slurm-client) "
                                  "or leave out --scheduler slurm", name)
    if rc != 0:
        what = "scontrol update" if header["update"] else "scontrol show node"
        if re.search(r"Unable to contact slurm controller|Socket timed out|Connection refused", last, re.I):
            return SlurmReading(None, f"the Slurm controller does not answer ({what}: {last}): start slurmctld or "
                                      f"fix SlurmctldHost in slurm.conf", name)
        if re.search(r"not found|Invalid node name", last, re.I):
            return SlurmReading(None, f"Slurm has no node {name} ({what}: {last}): the host's short hostname must "
                                      f"be its NodeName in slurm.conf", name)
        return SlurmReading(None, f"{what} {name} failed ({rc}): {last or 'no output'}", name)
    try:
        return SlurmReading(parse_show_node(" ".join(said)), None, name)
    except ValueError as exc:
        return SlurmReading(None, f"scontrol show node {name}: {exc}", name)


# --- Commands (text for the host's shell; every value quoted) -------------------------------------

READ = ('node=$(hostname -s); '
        'if ! command -v scontrol >/dev/null 2>&1; then echo "gpuhost-slurm node=$node rc=127"; exit 0; fi; ')
SHOW = 'out=$(scontrol -o show node "$node" 2>&1); rc=$?; echo "gpuhost-slurm node=$node rc=$rc"; printf "%s\\n" "$out"'


def clean_reason(text: str) -> str:
    """A reason Slurm can keep: one line, no control characters, at most REASON_LIMIT characters."""
    text = " ".join(CONTROL.sub(" ", text).split())
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT - 3] + "..."


def read_command() -> str:
    return READ + SHOW


def update_command(action: str, reason: str | None = None) -> str:
    """scontrol update on the host's own node, then its state (read back in the same command).

    action: "drain" (reason required; also rewrites the reason of a drained node) or "resume"."""
    if action == "drain":
        if not reason:
            raise ValueError("a drain needs a reason")
        args = f"State=DRAIN Reason={shlex.quote(clean_reason(reason))}"
    elif action == "resume":
        args = "State=RESUME"
    else:
        raise ValueError(action)
    update = (f'upd=$(scontrol update NodeName="$node" {args} 2>&1); urc=$?; '
              'if [ $urc -ne 0 ]; then echo "gpuhost-slurm node=$node rc=$urc update"; printf "%s\\n" "$upd"; exit 0; fi; ')
    return READ + update + SHOW


class ReadCommand:
    """For inspect.gather(fact_for=...): reads a node, changes nothing."""

    __name__ = "Slurm"

    @staticmethod
    def default():
        return SlurmReading(None, "no answer from the host")

    def command(self) -> str:
        return read_command()

    def process(self, lines: list[str]) -> SlurmReading:
        return parse_reading(lines)


class UpdateCommand(ReadCommand):
    """For inspect.gather(fact_for=...): drains or resumes the node, then reads it."""

    def command(self, action: str, reason: str | None = None) -> str:  # type: ignore[override]
        return update_command(action, reason)


# --- Decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What gpuhost does with a node next, and the note for the table."""

    name: str  # drain | continue | leave | wait | ready | lost | resume | mark-failed | keep | nothing
    note: str | None = None
    reason: str | None = None  # for drain / mark-failed: the Slurm reason to set


def upgrade_reason(target: str | None) -> str:
    return clean_reason(f"{UPGRADE}: driver {target or 'planned'}")


def next_action(node: SlurmNode, stage: str, *, target: str | None = None, passed: bool | None = None,
                cause: str | None = None) -> Action:
    """The rollout's next step for one node, from its Slurm state and the rollout's stage.

    stage "before": the host is about to be changed. Ours from an earlier run (interrupted, timed
      out or failed) -> continue; drained or down by someone else -> leave it so (changed, never
      resumed); otherwise -> drain with a reason naming gpuhost and the target driver.
    stage "draining": waiting for its jobs. No jobs left (or down) -> ready; jobs -> wait; our
      drain gone (someone resumed it) -> lost.
    stage "after": the host's result is known (passed: True for upgraded/current/no GPU, verified;
      False for failed; None for not done yet, e.g. jobs still running at --drain-timeout).
      Ours and passed -> resume; ours and failed -> mark-failed (the cause becomes the reason); ours
      and not done -> keep (drained for the next run); someone else's -> leave.
    """
    if stage == "before":
        if node.drained_by(UPGRADE):
            return Action("continue", f"drained by an earlier gpuhost run ({node.reason})")
        if node.out_of_service:
            kind = "drained" if node.drain else "down"
            return Action("leave", f"{kind} before the rollout by someone else"
                                   f"{f' ({node.reason})' if node.reason else ''}: left {kind}")
        return Action("drain", reason=upgrade_reason(target))
    if stage == "draining":
        if not node.out_of_service:
            return Action("lost", f"resumed in Slurm by someone else during the drain ({node.shown})")
        return Action("wait" if node.busy and not node.down else "ready")
    if stage == "after":
        if not node.drained_by(UPGRADE):
            if node.drain or node.down:
                return Action("leave", f"left {node.shown} in Slurm ({node.reason or 'no reason'})")
            return Action("nothing")
        if passed:
            return Action("resume", "resumed in Slurm")
        if passed is None:
            return Action("keep", f"left {node.shown} in Slurm for the next run")
        text = clean_reason(f"{UPGRADE_FAILED}: {cause or 'unknown cause'}")
        return Action("mark-failed", "left drained in Slurm with the cause as its reason", text)
    raise ValueError(stage)


def health_action(node: SlurmNode, status: str, cause: str | None) -> Action:
    """Health in the scheduler: a failed host's node is drained with the cause; a node drained by
    gpuhost FOR HEALTH is resumed once the host is healthy (ok or degraded) again. Drains by anyone
    else (an operator, a rollout) are left as they are."""
    if status == "failed":
        reason = clean_reason(f"{HEALTH}: {cause or 'failed'}")
        if node.drained_by(HEALTH):
            return Action("nothing" if node.reason == reason else "drain", "drained for health", reason)
        if node.drain or node.down:
            return Action("leave", f"already {node.shown} ({node.reason or 'no reason'}): left so")
        return Action("drain", "drained for health", reason)
    if node.drained_by(HEALTH):
        return Action("resume", "healthy again: resumed")
    return Action("nothing")
