"""The registry's own record of what it served: its access log, read back. Pure.

distribution writes one line per request in Apache's combined format (gorilla/handlers'
CombinedLoggingHandler, on unless log.accesslog.disabled), e.g.
  172.18.0.4 - - [01/Dec/2026:11:40:07 +0000] "GET /v2/pytorch/pytorch/blobs/sha256:9f.. HTTP/1.1" 200 1500210 "" "docker/20.10.24 ..."
so the client's address, the blob and the bytes sent are all in it: enough to show that the mirror
(not the upstream) served each host's layers. A miss is the proxy's TTL scheduler entry for what it
stored (registry/proxy/proxyblobstore.go: storeLocal, then scheduler.AddBlob).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

LINE = re.compile(r'(?P<client>[0-9a-fA-F.:]+) \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                  r"(?P<status>\d{3}) (?P<bytes>\d+|-)")
STORED = re.compile(r'msg="Adding new scheduler entry for (?P<repo>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})')
BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class BlobFetch:
    client: str
    method: str
    repository: str
    digest: str
    status: int
    bytes: int


def blob_fetches(lines) -> list[BlobFetch]:
    """Every blob request in a registry's log lines (other lines are skipped)."""
    fetches = []
    for line in lines:
        found = LINE.search(line)
        if not found:
            continue
        blob = BLOB.match(found["path"].split("?", 1)[0])
        if blob:
            fetches.append(BlobFetch(found["client"], found["method"], blob["repo"], blob["digest"],
                                     int(found["status"]), 0 if found["bytes"] == "-" else int(found["bytes"])))
    return fetches


def served_per_client(fetches: list[BlobFetch]) -> dict[str, dict]:
    """client address -> {"blobs": distinct blobs sent whole (GET 200), "bytes": bytes sent}."""
    blobs: dict[str, set] = defaultdict(set)
    sent: dict[str, int] = defaultdict(int)
    for fetch in fetches:
        if fetch.method == "GET" and fetch.status == 200:
            blobs[fetch.client].add(fetch.digest)
            sent[fetch.client] += fetch.bytes
    return {client: {"blobs": len(digests), "bytes": sent[client]} for client, digests in blobs.items()}


def stored_from_upstream(lines) -> set[str]:
    """Digests the proxy fetched from its upstream and stored: its TTL scheduler logs an entry for
    each ("Adding new scheduler entry for <repo>@<digest> with ttl=..."), i.e. one per cache miss."""
    return {found["digest"] for line in lines if (found := STORED.search(line))}


def hit_rate(fetches: list[BlobFetch], stored: set[str]) -> dict:
    """Blob requests served whole, how many were misses (first served while fetched), and the rate."""
    served = [f for f in fetches if f.method == "GET" and f.status == 200]
    misses = len({f.digest for f in served} & stored)
    return {"requests": len(served), "misses": misses,
            "hit_rate": round((len(served) - misses) / len(served), 3) if served else None}
