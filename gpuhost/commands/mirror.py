"""`gpuhost mirror status`: what each registry mirror holds and served, from its own record.

    gpuhost mirror status inventories/lab.py [--limit HOST ...] [--json]

One command per host: each mirror (the hosts of group `mirror_group`) reports per upstream its
unit, cache size, hit rate (the registry's own counters), whether the upstream answers, and its
access log; each GPU host that uses a mirror (`mirror_host`) reports the address the mirror sees
it from and its images. The table then shows, per GPU host, how many blobs the mirror's log says
it served that host, and where the host's images came from (Docker's registry digests).
Exit status: 0, or 1 when a mirror's process is down or an upstream does not answer.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from gpuhost.commands.inspect import HostReading, gather
from gpuhost.mirror import config as mc
from gpuhost.mirror.record import blob_fetches, hit_rate, served_per_client, stored_from_upstream
from gpuhost.mirror.settings import MirrorSettings

REACHABLE = (200, 401)  # a registry's /v2/ answers 200, or 401 with its auth challenge


def _fact_for(host):
    from facts.mirror import MirrorClient, MirrorState

    settings = MirrorSettings.from_host_data(host.data.dict())
    if settings.mirror_group in host.groups:
        return MirrorState, {"upstreams": [
            {"name": u.name, "storage": mc.storage_path(settings, u), "url": u.remote_url}
            for u in settings.mirror_upstreams]}
    if settings.mirror_host:
        return MirrorClient, {"mirror": settings.mirror_host}
    return None, None


def status_report(readings: list[HostReading]) -> dict[str, Any]:
    """The mirrors' and their clients' state as one document. Pure."""
    mirrors, clients = [], []
    for reading in readings:
        settings = MirrorSettings.from_host_data(reading.data)
        if settings.mirror_group in reading.groups:
            mirrors.append(_mirror_entry(reading, settings))
        elif settings.mirror_host:
            clients.append((reading, settings))
    served: dict[str, dict] = {}
    for mirror in mirrors:
        for client, numbers in mirror.pop("_served").items():
            total = served.setdefault(client, {"blobs": 0, "bytes": 0})
            total["blobs"] += numbers["blobs"]
            total["bytes"] += numbers["bytes"]
    return {"mirrors": mirrors, "clients": [_client_entry(r, s, served) for r, s in clients]}


def _mirror_entry(reading: HostReading, settings: MirrorSettings) -> dict[str, Any]:
    entry: dict[str, Any] = {"host": reading.name, "error": reading.error, "upstreams": [], "_served": {}}
    facts = reading.facts or {}
    fetches = []
    for upstream in settings.mirror_upstreams:
        seen = facts.get(upstream.name) or {}
        log = blob_fetches(seen.get("log") or [])
        rate = hit_rate(log, stored_from_upstream(seen.get("log") or []))
        fetches += log
        entry["upstreams"].append({
            "registry": upstream.registry, "remote": upstream.remote_url,
            "endpoint": f"{reading.name}:{upstream.listen_port}", "active": bool(seen.get("active")),
            "cache_bytes": seen.get("cache_bytes"),
            # a seeded (air-gapped) registry has no upstream to reach: None
            "reachable": None if upstream.seeded else seen.get("reach_status") in REACHABLE,
            "reach_status": seen.get("reach_status"),
            "blob_requests": rate["requests"], "blob_misses": rate["misses"], "hit_rate": rate["hit_rate"],
            "bytes_served": sum(f.bytes for f in log if f.method == "GET" and f.status == 200),
        })
    entry["_served"] = served_per_client(fetches)
    return entry


def _client_entry(reading: HostReading, settings: MirrorSettings, served: dict) -> dict[str, Any]:
    facts = reading.facts or {}
    address = facts.get("address")
    numbers = served.get(address or "", {"blobs": 0, "bytes": 0})
    sources = {tag: mc.image_source(tag, facts.get("images", []), facts.get("image_digests", {}), settings)
               for tag in facts.get("pulled", [])}
    return {"host": reading.name, "error": reading.error, "mirror": settings.mirror_host, "address": address,
            "blobs_served": numbers["blobs"], "bytes_served": numbers["bytes"],
            "images": sources, "image_source": "; ".join(s for s in sources.values() if s) or None}


def render(report: dict[str, Any]) -> str:
    lines = []
    for mirror in report["mirrors"]:
        if mirror["error"]:
            lines.append(f"{mirror['host']}: unreachable: {mirror['error']}")
            continue
        lines.append(f"mirror {mirror['host']}")
        for u in mirror["upstreams"]:
            rate = ("-" if u["hit_rate"] is None else
                    f"{u['hit_rate']:.0%} ({u['blob_requests'] - u['blob_misses']}/{u['blob_requests']})")
            size = "-" if u["cache_bytes"] is None else f"{u['cache_bytes'] / 1e6:.1f} MB"
            lines.append(f"  {u['registry']:<16} {u['endpoint']:<22} {'up' if u['active'] else 'DOWN':<5} "
                         f"cache {size:<10} hit rate {rate:<14} "
                         + ("seeded, no upstream" if u["reachable"] is None else
                            f"upstream {'reachable' if u['reachable'] else 'UNREACHABLE'} ({u['reach_status']})"))
    for client in report["clients"]:
        if client["error"]:
            lines.append(f"{client['host']}: unreachable: {client['error']}")
            continue
        lines.append(f"{client['host']} (as {client['address'] or '?'}): {client['blobs_served']} blobs, "
                     f"{client['bytes_served'] / 1e6:.1f} MB served by mirror {client['mirror']}; "
                     f"image from {client['image_source'] or '-'}")
    return "\n".join(lines)


def healthy(report: dict[str, Any]) -> bool:
    return all(not m["error"] and all(u["active"] and u["reachable"] is not False for u in m["upstreams"])
               for m in report["mirrors"])


def status_command(
    inventory: str = typer.Argument(..., help="Inventory: a .py or .yaml file, or a host list."),
    limit: Optional[list[str]] = typer.Option(None, "--limit", help="Only this host; repeat for more."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Each mirror's caches (size, hit rate, upstreams reachable) and what it served each GPU host."""
    report = status_report(gather(inventory, list(limit or []), fact_for=_fact_for))
    typer.echo(json.dumps(report, indent=2) if as_json else render(report))
    raise typer.Exit(0 if healthy(report) else 1)


def register(app: typer.Typer) -> None:
    mirror = typer.Typer(help="Registry mirrors (pull-through caches).", no_args_is_help=True)
    mirror.command("status")(status_command)
    app.add_typer(mirror, name="mirror")
