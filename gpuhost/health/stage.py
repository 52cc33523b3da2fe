"""The health stage: put the on-host health command and its rules on the host.

/usr/local/sbin/gpuhost-health (gpuhost/health/probe.py, stdlib Python 3) and
/usr/local/lib/gpuhost/health-rules.json (data/health.yaml as JSON), so a scheduler's health
check (Slurm's HealthCheckProgram) runs the same judge as gpuhost. Compared with the snapshot
first: a converged host queues nothing.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.operations import files

from gpuhost.health import probe
from gpuhost.health.verdict import host_health, one_line, rules_json
from gpuhost.run.converged import file_current

COMMAND_PATH = "/usr/local/sbin/gpuhost-health"
RULES_PATH = probe.RULES_PATH
COMMAND_SOURCE = Path(probe.__file__)


def health_pending(ctx) -> list[str]:
    """What the snapshot does not show in place ([]: nothing to do)."""
    pending = []
    if not file_current(ctx.managed, COMMAND_PATH, COMMAND_SOURCE.read_text()):
        pending.append("health command")
    if not file_current(ctx.managed, RULES_PATH, rules_json()):
        pending.append("health rules")
    return pending


def health_stage(ctx) -> list:
    """Install what is missing; log the host's health as the snapshot read it. Returns the operations."""
    health = host_health(ctx.health)
    if health.read:
        (logger.info if health.verdict == "ok" else logger.warning)(f"[{host.name}] GPU health: {one_line(health)}")
    pending = health_pending(ctx)
    ops = []
    if "health command" in pending:
        ops.append(files.put(name="gpuhost-health (on-host health command)", src=str(COMMAND_SOURCE),
                             dest=COMMAND_PATH, mode="755"))
    if "health rules" in pending:
        ops.append(files.put(name="gpuhost-health rules", src=StringIO(rules_json()), dest=RULES_PATH, mode="644",
                             create_remote_dir=True))
    return ops
