"""`gpuhost inspect`: see a fleet as it is, and what gpuhost would do to each host.

    gpuhost inspect inventories/lab.py [--limit gpu-01] [--json]

Connects with pyinfra's API, reads each host with ONE command (`facts.snapshot.HostSnapshot`:
GPUs, driver, host, Docker), then asks the resolver for the host's plan. Reading never changes
a host. An unreachable host is a row with its error; a bad inventory is one line, before any
host is contacted. Each host costs at most its bounds (gpuhost.run.bounds: connect_timeout, then
command_timeout for the snapshot; keepalives end a frozen one sooner). Exit status: 0 when every
host was read, 1 when any was not, 2 for bad input, 130 after Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from gpuhost.errors import GpuhostError, UsageError

COMMANDS_PER_HOST = 1
YAML_INVENTORY_ENTRY = Path(__file__).resolve().parents[2] / "inventories" / "lab.py"  # reads GPUHOST_INVENTORY  # HostSnapshot: the three fact scripts in one shell command


@dataclass
class HostReading:
    """One host: its facts (None when unreachable), its plan, or why there is none."""

    name: str
    data: dict[str, Any]
    facts: dict[str, Any] | None = None
    error: str | None = None
    plan: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)


# --- Reading the fleet (I/O) -------------------------------------------------------------------


def inventory_entry(inventory: str) -> str:
    """What pyinfra loads for `inventory`. A YAML file goes through inventories/lab.py
    (GPUHOST_INVENTORY), exactly as `pyinfra inventories/lab.py` reads it, group_data included,
    so what inspect and upgrade read is what the deploy reads."""
    path = Path(inventory)
    if path.suffix not in (".yaml", ".yml"):
        return inventory
    if not path.is_file():
        raise UsageError(f"inventory {inventory} not found: give an inventory file or a host list (a,b)")
    if not YAML_INVENTORY_ENTRY.is_file():  # an installed package without the repository's inventories/
        return inventory
    os.environ["GPUHOST_INVENTORY"] = str(path.resolve())
    return str(YAML_INVENTORY_ENTRY)


def load_inventory(inventory: str, limit: list[str]):
    """A pyinfra Inventory from a .py/.yaml file, a host list or a connector (@local)."""
    from pyinfra.api import Inventory
    from pyinfra_cli.inventory import make_inventory_from_files

    path = Path(inventory_entry(inventory))
    try:
        if path.suffix in (".yaml", ".yml"):
            from gpuhost.fleet.inventory_file import load_hosts

            built = Inventory(([(name, data) for name, data in load_hosts(path)], {}))
        elif path.exists():
            built = make_inventory_from_files(str(path))
        elif path.suffix == ".py" or "/" in inventory:
            raise UsageError(f"inventory {inventory} not found: give an inventory file, a host list "
                             "(a,b) or a connector (@local)")
        else:
            built = make_inventory_from_files(inventory)  # "a,b" or "@local": no name lookups
    except GpuhostError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # the inventory file's own error (syntax, InventoryError, ...)
        message = "\n".join(" ".join(line.split()) for line in str(exc).splitlines()) or type(exc).__name__
        raise UsageError(f"inventory {inventory}: {message}") from None
    names = [host.name for host in built]
    if not names:
        raise UsageError(f"inventory {inventory} lists no hosts")
    unknown = [name for name in limit if name not in names]
    if unknown:
        raise UsageError(f"--limit {', '.join(unknown)}: not in inventory {inventory} "
                         f"(hosts: {', '.join(names)})")
    return built


def checked_hosts(inventory: str, limit: list[str]):
    """(state, config, inventory, hosts): the inventory loaded as pyinfra's CLI loads it (state and
    config in context while its file runs), the hosts (limited) with their data checked."""
    from pyinfra.api import Config, State
    from pyinfra.context import ctx_config, ctx_state

    from gpuhost.run.settings import check_hosts, problems_text

    state, config = State(), Config()
    state.cwd = str(Path.cwd())
    with ctx_state.use(state), ctx_config.use(config):
        built = load_inventory(inventory, limit)
    hosts = [host for host in built if not limit or host.name in limit]
    problems = check_hosts((host.name, host.data.dict()) for host in hosts)
    if problems:
        raise UsageError(problems_text("bad inventory data (no host was contacted)", problems))
    return state, config, built, hosts


def gather(inventory: str, limit: list[str], fact_for=None, extra=None) -> list[HostReading]:
    """Connect to every host (in parallel) and read its snapshot: one command per host.

    fact_for(host) -> (fact class, kwargs) reads another fact instead (`gpuhost mirror status`);
    a host it gives (None, None) is not contacted. `extra`: a fact class read as well (a second
    command), its reading in facts["extra"] (`gpuhost workspaces --show-token`)."""
    from gevent import monkey

    # Per-host errors are reported in the table; pyinfra's own log lines would only repeat them.
    logging.getLogger("pyinfra").addHandler(logging.NullHandler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkey.patch_all()
    import gevent
    from pyinfra.api.exceptions import ConnectError, PyinfraError
    from pyinfra.context import ctx_host, ctx_state

    from facts.snapshot import HostSnapshot
    from gpuhost.run import faults

    state, config, built, hosts = checked_hosts(inventory, limit)
    state.init(built, config)
    faults.install(state)  # connect bounds, keepalives, causes in words; Ctrl-C exits 130

    def read(host) -> HostReading:
        """Connect, then the fact in one bounded command: a frozen host costs its bound."""
        reading = HostReading(host.name, host.data.dict(), groups=list(host.groups))
        fact, kwargs = fact_for(host) if fact_for else (HostSnapshot, None)
        if fact is None:
            return reading
        with ctx_state.use(state), ctx_host.use(host):
            try:
                host.connect(show_errors=False, raise_exceptions=True)
            except (ConnectError, PyinfraError, OSError) as exc:
                cause = faults.causes.get(host.name, "").removeprefix("unreachable: ")  # the row says unreachable
                reading.error = cause or " ".join(str(exc).split()) or type(exc).__name__
                return reading
            try:
                state.activate_host(host)
                bounds = faults.bounds_of(host)
                reading.facts, reading.error = faults.read_fact(host, bounds, fact, kwargs)
                if extra is not None and reading.facts is not None:
                    reading.facts["extra"], reading.error = faults.read_fact(host, bounds, extra)
            finally:
                faults.close(host)
        return reading

    jobs = [gevent.spawn(read, host) for host in hosts]
    gevent.joinall(jobs)
    return [job.get() for job in jobs]


# --- Deciding and describing (pure) -------------------------------------------------------------


def assess(reading: HostReading, today=None) -> HostReading:
    """Add the resolver's plan and the one-row summary to a reading."""
    from gpuhost.plan.host_plan import plan_host
    from gpuhost.run.settings import settings_from

    if reading.facts is None:
        reading.summary = {"host": reading.name, "status": "unreachable", "error": reading.error}
        return reading
    gpu, host, container = (reading.facts[k] for k in ("gpu", "host", "container"))
    settings = settings_from(reading.data)
    host_plan = plan_host(gpu, host, settings, today=today)
    reading.plan = host_plan.to_dict()
    reading.summary = summarize(reading.name, reading.facts, reading.plan, settings.mirror)
    return reading


def summarize(name: str, facts: dict[str, Any], plan: dict[str, Any], mirror=None) -> dict[str, Any]:
    """The fleet-table row of one host, as data (mirror: its MirrorSettings, to name the image's source)."""
    from gpuhost.mirror.config import image_source

    gpu, host, container = facts["gpu"], facts["host"], facts["container"]
    driver = gpu["driver"]
    docker = container["docker"]
    os_info = host["os"]
    tag = ((plan.get("plan") or {}).get("image") or {}).get("tag")
    images = container["images"]
    return {
        "host": name,
        "status": plan["status"],
        "os": " ".join(filter(None, [os_info.get("id"), os_info.get("version_id")])) or None,
        "gpus": gpu_groups(gpu["gpus"]),
        "nvswitches": len(gpu["nvswitches"]),
        "driver": driver["version"],
        "flavour": driver["flavour"],
        "toolkit": container["toolkit"]["version"],
        "docker": docker["daemon_version"] or docker["client_version"],
        "nvidia_runtime": container["nvidia_runtime"],
        "image": tag,
        "image_present": None if tag is None else tag in images,  # exactly what `docker run` would use
        "image_source": None if tag is None else image_source(tag, images, container["image_digests"], mirror,
                                                              ((plan.get("plan") or {}).get("image") or {}).get("origin")),
        "health": health_summary(facts),
        "flags": flags(facts),
        "warnings": gpu["warnings"] + host["warnings"] + container["warnings"]
        + [w for w in plan.get("warnings", []) if w not in gpu["warnings"]],
        "plan": plan_line(plan),
    }


def health_summary(facts: dict[str, Any]) -> dict[str, Any]:
    """The host's GPU health verdict (gpuhost.health: what gpuhost-health on the host says)."""
    from gpuhost.health.verdict import host_health

    health = host_health(facts).to_dict()
    health["gpus"] = [{k: g[k] for k in ("gpu", "uuid", "verdict", "cause", "fix")} for g in health["gpus"]]
    health["stragglers"] = []
    del health["host_findings"]
    return health


def mark_stragglers(readings: list[HostReading]) -> None:
    """Add the fleet's stragglers (gpuhost.health.straggler) to each host's health summary."""
    from gpuhost.health.straggler import describe, figures_of, stragglers

    figures = [f for r in readings if r.facts for f in figures_of(r.name, (r.facts.get("managed") or {}).get("verify"))]
    by_host = {r.name: r for r in readings}
    for slow in stragglers(figures):
        by_host[slow["host"]].summary["health"]["stragglers"].append(describe(slow))


def gpu_groups(gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{'model': 'NVIDIA H100 80GB HBM3', 'count': 8, 'compute_capability': '9.0'}, ...]"""
    counts = Counter((g["model"], g["compute_capability"]) for g in gpus)
    return [{"model": m, "count": n, "compute_capability": cc} for (m, cc), n in counts.items()]


def flags(facts: dict[str, Any]) -> list[str]:
    """Short names of the conditions that block or endanger a change."""
    gpu, host, container = facts["gpu"], facts["host"], facts["container"]
    checks = [
        ("driver-mismatch", gpu["driver"]["mismatch"]),
        ("secure-boot", host["secure_boot"]["state"] == "enabled"),
        ("nouveau", gpu["nouveau"]["loaded"]),
        ("reboot-pending", host["reboot"]["required"]),
        ("apt-locked", host["package_lock"]["held"]),
        ("dpkg-interrupted", host["package_lock"]["dpkg_interrupted"]),
        ("gpu-processes", bool(gpu["processes"]) or bool(container["gpu_containers"])),
        ("fabric-manager", gpu["needs_fabric_manager"] and gpu["fabric_manager"]["state"] != "active"),
        ("held-driver", bool(host["held_nvidia_packages"])),
    ]
    return [name for name, on in checks if on]


def plan_line(plan: dict[str, Any]) -> str:
    if plan["status"] != "planned":
        return f"{plan['status']}: {plan['reason']}"
    driver, image = plan["plan"]["driver"], plan["plan"]["image"]
    current = f" (now {driver['current']})" if driver.get("current") else ""
    return (f"driver {driver['action']} R{driver['branch']} {driver['kernel_module']}{current}, "
            f"image {image['tag']}")


def render_table(readings: list[HostReading]) -> str:
    columns = ["HOST", "OS", "GPUS", "DRIVER", "TOOLKIT", "DOCKER", "IMAGE", "HEALTH", "WARNINGS"]
    rows = []
    for reading in readings:
        s = reading.summary
        if s["status"] == "unreachable":
            rows.append([s["host"], "?", "unreachable", "", "", "", "", "", s["error"]])
            continue
        gpus = ", ".join(f"{g['model']} x{g['count']} (cc {g['compute_capability'] or '?'})"
                         for g in s["gpus"]) or "no NVIDIA GPU"
        if s["nvswitches"]:
            gpus += f" + {s['nvswitches']} NVSwitch"
        driver = f"{s['driver']} {s['flavour'] or ''}".strip() if s["driver"] else "none"
        docker = "absent" if not s["docker"] else s["docker"] + (" +nvidia" if s["nvidia_runtime"] else "")
        image = "-" if s["image_present"] is None else ("present" if s["image_present"] else "missing")
        rows.append([s["host"], s["os"] or "?", gpus, driver, s["toolkit"] or "-", docker, image,
                     health_cell(s["health"]), warnings_cell(s["flags"], s["warnings"])])
    widths = [max(len(str(r[i])) for r in [columns] + rows) for i in range(len(columns))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [columns] + rows]
    lines.append("")
    for reading in readings:
        s = reading.summary
        if s["status"] == "unreachable":
            continue
        lines.append(f"{s['host']}: {s['plan']}")
        if s["image_source"]:
            lines.append(f"  image from {s['image_source']}")
        health = s["health"]
        lines += [f"  ! health: {g['gpu']} {g['verdict']}: {g['cause']}; fix: {g['fix']}"
                  for g in health["gpus"] if g["verdict"] != "ok"]
        if health["verdict"] != "ok" and all(g["verdict"] == "ok" for g in health["gpus"]):
            lines.append(f"  ! health: {health['verdict']}: {health['cause']}; fix: {health['fix']}")
        lines += [f"  ! health: {text}" for text in health["stragglers"]]
        lines += [f"  ! {w}" for w in s["warnings"]]
    return "\n".join(lines)


def health_cell(health: dict[str, Any]) -> str:
    """The HEALTH column: the verdict, how many GPUs it concerns, stragglers."""
    if not health["read"]:
        return "-"
    sick = [g for g in health["gpus"] if g["verdict"] != "ok"]
    cell = health["verdict"] + (f" ({len(sick)}/{len(health['gpus'])} GPU)" if sick else "")
    return cell + (",straggler" if health["stragglers"] else "")


def warnings_cell(flags: list[str], warnings: list[str]) -> str:
    """The WARNINGS column agrees with the `!` lines below the table: its flags, and how many lines."""
    below = [f"{len(warnings)} below"] if warnings else []
    return ",".join(flags + below) or "-"


def to_document(readings: list[HostReading]) -> dict[str, Any]:
    return {
        "commands_per_host": COMMANDS_PER_HOST,
        "hosts": [
            {"host": r.name, "reachable": r.facts is not None, "error": r.error,
             "summary": r.summary, "plan": r.plan, "facts": r.facts}
            for r in readings
        ],
    }


# --- The command -------------------------------------------------------------------------------


def inspect_command(
    inventory: str = typer.Argument(..., help="Inventory: a .py or .yaml file, a host list (a,b) or @local."),
    limit: Optional[list[str]] = typer.Option(None, "--limit", metavar="HOST", help="Only this host; repeat for more."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show each host's GPUs, driver, Docker, toolkit and GPU health, with gpuhost's plan for it."""
    readings = [assess(r) for r in gather(inventory, list(limit or []))]
    mark_stragglers(readings)
    if as_json:
        typer.echo(json.dumps(to_document(readings), indent=2, default=str))
    else:
        typer.echo(render_table(readings))
    unread = [r.name for r in readings if r.facts is None]
    if unread:  # exit 1: some host was not read (each one's cause is in its row)
        typer.echo(f"gpuhost: {len(unread)} of {len(readings)} host(s) not read: {', '.join(unread)}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
