"""Readings for `gpuhost mirror status`, one command per host.

`MirrorState` (a mirror host), per upstream: its unit's state, the cache's size on disk, the
registry's own counters (expvar `registry.proxy` on its debug server: blob and manifest requests,
hits, misses, bytes pulled from the upstream), whether the upstream answers, and the blob lines
of its access log in the journal. `MirrorClient` (a GPU host): the address it reaches the mirror
from (the one the mirror's log shows), the images it has with their registry digests, and the
images gpuhost pulled there. Both always exit 0; an absent reading is an empty section.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase

from facts.sections import Sections, int_or_none

UPSTREAM_SCRIPT = r"""
echo "@@upstream $name"
echo "active $(systemctl is-active "gpuhost-mirror@$name" 2>/dev/null)"
echo "size $(du -sb "$storage" 2>/dev/null | cut -f1)"
[ -z "$url" ] || echo "reach $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/v2/" 2>/dev/null)"
echo "@@log $name"
journalctl -u "gpuhost-mirror@$name" --no-pager -o cat 2>/dev/null \
  | grep -E '"(GET|HEAD) /v2/.+/blobs/sha256:|msg="Adding new scheduler entry' | tail -n 20000
"""


class MirrorState(FactBase):
    """A mirror host's caches, counters, upstream reachability and access log, per upstream."""

    def command(self, upstreams: list[dict]) -> str:
        parts = []
        for upstream in upstreams:
            assign = " ".join(f"{key}={shlex.quote(str(upstream[key] or ''))}" for key in ("name", "storage", "url"))
            parts.append(f"(\n{assign}\n{UPSTREAM_SCRIPT.strip()}\n)")
        return "\n".join(parts) + "\ntrue"

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_mirror_sections(Sections(output))


def process_mirror_sections(sections: Sections) -> dict[str, Any]:
    """{upstream name: {active, cache_bytes, reach_status, log}}."""
    result = {}
    for section in sections.every("upstream"):
        values = dict(line.split(" ", 1) if " " in line else (line, "") for line in section.lines if line.strip())
        name = section.header
        log = next((s for s in sections.every("log") if s.header == name), None)
        result[name] = {"active": values.get("active", "").strip() == "active",
                        "cache_bytes": int_or_none(values.get("size", "").strip()),
                        "reach_status": int_or_none(values.get("reach", "").strip()),
                        "log": [line for line in (log.lines if log else []) if line.strip()]}
    return result


CLIENT_SCRIPT = r"""
echo '@@address'
ip=$(getent ahostsv4 "$mirror" 2>/dev/null | awk 'NR == 1 { print $1 }')
[ -n "$ip" ] && ip -o route get "$ip" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p'
echo '@@images'
docker images --digests --format '{{.Repository}}:{{.Tag}} {{.Digest}}' 2>/dev/null
echo '@@pulled'
head -c 65536 /var/lib/gpuhost/pulled.json 2>/dev/null; echo
true
"""


class MirrorClient(FactBase):
    """A GPU host's address towards its mirror, its images and their registry digests, gpuhost's pulls."""

    def command(self, mirror: str) -> str:
        return f"mirror={shlex.quote(mirror)}\n{CLIENT_SCRIPT.strip()}"

    @staticmethod
    def default() -> dict[str, Any]:
        return process_client_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_client_sections(Sections(output))


def process_client_sections(sections: Sections) -> dict[str, Any]:
    rows = [line.split() for line in sections.lines("images")]
    images = sorted({row[0] for row in rows})
    digests = {row[0]: row[1] for row in rows if len(row) > 1 and row[1].startswith("sha256:")}
    try:
        pulled = json.loads(sections.text("pulled") or "[]")
    except json.JSONDecodeError:
        pulled = []
    address = sections.lines("address")
    return {"address": address[0].strip() if address else None, "images": images, "image_digests": digests,
            "pulled": pulled if isinstance(pulled, list) else []}
