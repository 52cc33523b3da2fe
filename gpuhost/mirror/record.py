"""The registry's own record of what it served: its access log, read back. Pure.

distribution writes one line per request in Apache's combined format (gorilla/handlers'
CombinedLoggingHandler, on unless log.accesslog.disabled), e.g.
  172.18.0.4 - - [01/Dec/2026:11:40:07 +0000] "GET /v2/pytorch/pytorch/blobs/sha256:9f.. HTTP/1.1" 200 1500210 "" "docker/20.10.24 ..."
so the client's address, the blob and the bytes sent are all in it: enough to show that the mirror
(not the upstream) served each host's layers, and that the upstream sent each blob once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

LINE = re.compile(r'(?P<client>[0-9a-fA-F.:]+) \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                  r"(?P<status>\d{3}) (?P<bytes>\d+|-)")
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
