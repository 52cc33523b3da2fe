"""`gpuhost monitoring targets|rules|dashboard`: what an existing Prometheus (and Grafana) needs
to watch a fleet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gpuhost.errors import UsageError

DASHBOARD = Path(__file__).resolve().parent.parent / "monitoring" / "data" / "grafana-dashboard.json"

monitoring_app = typer.Typer(help="Prometheus targets and alerting rules for a fleet, the Grafana dashboard.",
                             no_args_is_help=True)


@monitoring_app.command("targets")
def targets_command(
    inventory: str = typer.Argument(..., help="Inventory: a .py or .yaml file, or a host list (a,b)."),
    limit: Optional[list[str]] = typer.Option(None, "--limit", help="Only this host; repeat for more."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write the file here (atomically) instead of stdout."),
) -> None:
    """Prometheus file_sd JSON: every host with `monitoring: true` and its exporters, groups as labels."""
    from gpuhost.commands.inspect import checked_hosts
    from gpuhost.monitoring.targets import file_sd

    _, _, _, hosts = checked_hosts(inventory, list(limit or []))
    entries = file_sd([(h.name, h.data.dict(), [g for g in h.groups]) for h in hosts])
    if not entries:
        raise UsageError(f"no host in {inventory} has monitoring: true: set it in the inventory (all: or a group)")
    _emit(json.dumps(entries, indent=2) + "\n", output)


@monitoring_app.command("rules")
def rules_command(
    for_duration: Optional[str] = typer.Option(None, "--for", help="One `for:` for every rule (e.g. 10s in a lab)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the file here instead of stdout."),
) -> None:
    """Prometheus alerting rules: Xid errors, row remapping, exporters down, the check failing or
    stale, driver/library mismatch, GPUs missing."""
    from gpuhost.monitoring.rules import rules_text

    _emit(rules_text(for_duration), output)


@monitoring_app.command("dashboard")
def dashboard_command(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the file here instead of stdout."),
) -> None:
    """The Grafana dashboard for gpuhost's metrics and DCGM's (import it in Grafana)."""
    _emit(DASHBOARD.read_text(), output)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: no directory {output.parent}: create it first")
    temp = output.with_name(f".{output.name}.tmp")
    temp.write_text(text)
    temp.replace(output)  # Prometheus re-reads file_sd files on change: never half a file


def register(app: typer.Typer) -> None:
    app.add_typer(monitoring_app, name="monitoring")
