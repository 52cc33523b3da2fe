"""`gpuhost workspaces`: who has which workspace on which host, its GPUs, its state, how to connect.

    gpuhost workspaces inventories/lab.yaml [--limit gpu-01] [--show-token] [--json]

One command per host (the snapshot, `facts.workspace`); `--show-token` reads the Jupyter token
files with a second one and prints them, which nothing else in gpuhost does.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from pyinfra.api import FactBase

from gpuhost.commands.inspect import HostReading, gather
from gpuhost.workspace.decide import ROOT, connect


class WorkspaceTokens(FactBase):
    """{workspace id: its Jupyter token}. Read only for --show-token."""

    def command(self) -> str:
        return f"for f in {ROOT}/*/jupyter_token; do [ -s \"$f\" ] && echo \"$f $(cat \"$f\")\"; done; true"

    def process(self, output: list[str]) -> dict[str, str]:
        tokens = {}
        for line in output:
            path, _, token = line.strip().partition(" ")
            if token:
                tokens[path.rsplit("/", 2)[-2]] = token
        return tokens


def workspaces_of(reading: HostReading, show_token: bool) -> list[dict[str, Any]]:
    """One entry per workspace gpuhost recorded on the host (pure)."""
    if reading.facts is None:
        return []
    facts = reading.facts["workspace"]
    address = reading.data.get("ssh_hostname") or reading.name
    out = []
    for ws_id, rec in sorted(facts["records"].items()):
        unit = facts["units"].get(f"gpuhost-workspace-{ws_id}") or {}
        box = facts["containers"].get(f"gpuhost-workspace-{ws_id}") or {}
        state = unit.get("active") or "unknown"
        if box.get("health"):
            state += f" ({box['health']})"
        entry = {"host": reading.name, "workspace": ws_id, "user": rec.get("user"), "gpus": rec.get("gpus") or [],
                 "state": state, "enabled": unit.get("enabled"), "connect": connect(rec, address),
                 "volumes": rec.get("volumes") or []}
        if show_token and rec.get("jupyter"):
            entry["token"] = (reading.facts.get("extra") or {}).get(ws_id)
        out.append(entry)
    return out


def render(readings: list[HostReading], entries: list[dict[str, Any]]) -> str:
    columns = ["HOST", "WORKSPACE", "USER", "GPUS", "STATE"]
    rows = [[e["host"], e["workspace"], e["user"], ",".join(e["gpus"]) or "none", e["state"]] for e in entries]
    rows += [[r.name, "?", "", "", f"unreachable: {r.error}"] for r in readings if r.facts is None]
    if not rows:
        return "no workspaces"
    widths = [max(len(str(row[i])) for row in [columns] + rows) for i in range(len(columns))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [columns] + rows]
    for e in entries:
        lines.append("")
        lines.append(f"{e['workspace']} on {e['host']} ({e['user']}):")
        lines += [f"  {how:<7} {text}" for how, text in e["connect"].items()]
        if "token" in e:
            lines.append(f"  token   {e['token'] or '(none yet)'}")
    return "\n".join(lines)


def workspaces_command(
    inventory: str = typer.Argument(..., help="Inventory: a .py or .yaml file, a host list (a,b) or @local."),
    limit: Optional[list[str]] = typer.Option(None, "--limit", help="Only this host; repeat for more."),
    show_token: bool = typer.Option(False, "--show-token", help="Also print each workspace's Jupyter token."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the workspaces on each host: user, GPUs, state, and how to connect."""
    readings = gather(inventory, list(limit or []), extra=WorkspaceTokens if show_token else None)
    entries = [e for r in readings for e in workspaces_of(r, show_token)]
    if as_json:
        typer.echo(json.dumps({"workspaces": entries,
                               "unreachable": {r.name: r.error for r in readings if r.facts is None}}, indent=2))
    else:
        typer.echo(render(readings, entries))
    raise typer.Exit(1 if any(r.facts is None for r in readings) else 0)


def register(app: typer.Typer) -> None:
    app.command("workspaces")(workspaces_command)


