"""What the host snapshot already proves done, so a converged host costs one command.

Each stage asks its `*_pending(ctx)` before queuing operations. An empty list means the
snapshot (facts.managed.ManagedState and friends, read once before any change) shows the
stage's end state: nothing is queued, no fact is read. Otherwise the stage queues its
operations as usual; they read live facts and decide for themselves. The checks share the
operations' own decision functions and are conservative: what they cannot prove is pending.
"""

from __future__ import annotations

import hashlib


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def file_current(managed: dict, path: str, text: str) -> bool:
    """The file at `path` holds exactly `text`."""
    return managed["files"].get(path) == sha1(text)


def installed(managed: dict, package: str, version: str | None = None) -> bool:
    versions = managed["packages"].get(package) or []
    return bool(versions) and (version is None or version in versions)


def unit_ok(managed: dict, unit: str, running: bool = False) -> bool:
    """The systemd unit is enabled (and active, when it must run)."""
    state = managed["units"].get(unit) or {}
    return state.get("enabled") == "enabled" and (not running or state.get("active") == "active")
