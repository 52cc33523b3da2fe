"""`gpuhost health-sync`: a failed GPU takes its node out of Slurm; healthy again, gpuhost puts it back.

    gpuhost health-sync INVENTORY --scheduler slurm [--limit HOST ...] [--json]

Per host, in parallel: the snapshot (one command; its health part is judged by gpuhost/health, the
same judge as the on-host gpuhost-health), then its Slurm node (`scontrol` on the host). The rules
are gpuhost/scheduler/slurm.py's `health_action`: a failed host's node is drained with the cause as
its reason ("gpuhost health: GPU 0 (...): ..."); a node gpuhost drained FOR HEALTH is resumed once
the host is ok or degraded again; a node drained or down for any other reason (an operator, a
rollout) is left as it is. Run it from cron, after a deploy, or by hand; Slurm's own
HealthCheckProgram can do the same on each node (docs/slurm.md).

Exit status: 0 every host read and none failed; 1 a host failed its health check or was not read;
2 bad input (unknown scheduler, a host Slurm does not know, a controller that does not answer),
before any node is changed.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from gpuhost.commands.upgrade_slurm import preflight, slurm_read, slurm_update
from gpuhost.errors import UsageError
from gpuhost.scheduler.slurm import health_action


def health_sync_command(
    inventory: str = typer.Argument(..., help="Inventory: a .py or .yaml file, or a host list (a,b)."),
    scheduler: str = typer.Option(..., "--scheduler", metavar="NAME", help="The scheduler to tell: slurm."),
    limit: Optional[list[str]] = typer.Option(None, "--limit", metavar="HOST", help="Only this host; repeat for more."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of the table."),
) -> None:
    """Drain the Slurm node of each host whose GPU health failed; resume those gpuhost drained once healthy."""
    if scheduler != "slurm":
        raise UsageError(f"--scheduler {scheduler!r} is unknown: use slurm")
    from gpuhost.commands.inspect import gather, inventory_entry
    from gpuhost.health.verdict import host_health

    source = inventory_entry(inventory)
    readings = gather(source, list(limit or []))
    names = [r.name for r in readings if r.facts is not None]
    preflight(source, names, {"hosts": {}})
    nodes = slurm_read(source, names)
    rows, updates = {}, {}
    for reading in readings:
        row = rows[reading.name] = {"host": reading.name, "health": None, "cause": None, "slurm": None,
                                    "action": "none", "note": None}
        if reading.facts is None:
            row.update(health="unread", note=f"unreachable: {reading.error}")
            continue
        health = host_health(reading.facts)
        row.update(health=health.verdict, cause=health.cause or None)
        node = nodes[reading.name].node
        if node is None:
            row["note"] = f"Slurm: {nodes[reading.name].problem}"
            continue
        row["slurm"] = node.describe()
        action = health_action(node, health.verdict, health.cause)
        row.update(action=action.name, note=action.note)
        if action.name in ("drain", "resume"):
            updates[reading.name] = (action.name, action.reason)
    for name, answer in slurm_update(source, updates).items():
        row = rows[name]
        if answer.node is None:
            row.update(action=f"{row['action']} failed", note=f"Slurm: {answer.problem}")
        else:
            row["slurm"] = answer.node.describe()
    if as_json:
        typer.echo(json.dumps({"hosts": list(rows.values())}, indent=2))
    else:
        typer.echo(render(list(rows.values())))
    bad = [row for row in rows.values() if row["health"] in ("failed", "unread") or "failed" in row["action"]]
    raise typer.Exit(1 if bad else 0)


def render(rows: list[dict]) -> str:
    columns = ["HOST", "HEALTH", "ACTION", "SLURM", "NOTES"]
    table = [[r["host"], r["health"], r["action"], r["slurm"] or "-",
              "; ".join(filter(None, [r["cause"], r["note"]])) or "-"] for r in rows]
    widths = [max(len(str(row[i])) for row in [columns] + table) for i in range(len(columns) - 1)]
    return "\n".join("  ".join([*(str(v).ljust(w) for v, w in zip(row[:-1], widths)), str(row[-1])]).rstrip()
                     for row in [columns] + table)


def register(app: typer.Typer) -> None:
    app.command("health-sync")(health_sync_command)
