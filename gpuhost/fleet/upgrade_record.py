"""The shape of `gpuhost upgrade`'s state file, checked before a rollout resumes from it.

The record is gpuhost's own JSON (gpuhost/fleet/rollout.py writes it), but the file is the user's:
it may be a directory, another program's JSON, cut short, or edited by hand. Anything that is not a
record this gpuhost can resume is refused in one line naming the file, the first wrong field and the
fix, before any host is contacted. Fields a later gpuhost adds are let through (extra="allow").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from gpuhost.errors import UsageError
from gpuhost.fleet import rollout


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class HostEntry(_Strict):
    result: Literal[rollout.RESULTS]  # type: ignore[valid-type]
    reason: Optional[str] = None
    notes: list[str] = []
    batch: Optional[str] = None
    run: Optional[int] = None
    attempts: int = 0
    driver_before: Optional[str] = None
    target: Optional[str] = None
    driver_after: Optional[str] = None
    reboot_required: bool = False
    updated: Optional[str] = None
    log: Optional[str] = None


class Run(_Strict):
    run: int
    started: str
    finished: Optional[str] = None
    hosts: list[str]
    options: dict[str, Any]
    batches: list[dict[str, Any]]
    status: str


class UpgradeRecord(_Strict):
    kind: Literal["gpuhost-upgrade"]
    version: int
    inventory: str
    created: str
    updated: str
    status: str
    stop_reason: Optional[str] = None
    canary_passed: bool
    runs: list[Run]
    hosts: dict[str, HostEntry]


def load(path: Path, inventory: str, restart: bool = False) -> dict[str, Any] | None:
    """The record in `path` for this inventory, or UsageError in one line (nothing is contacted yet).
    With `restart`, None (start a new record), unless the file is someone else's JSON: never overwritten."""
    where = f"state file {path}"
    other = "choose another --state file (gpuhost never overwrites a file that is not its record)"
    restart_fix = "--restart to start over (the old record is replaced), or choose another --state file"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{where} is not text, so not a gpuhost upgrade record: {other}") from None
    except ValueError as exc:
        if restart:
            return None
        raise UsageError(f"{where} is not JSON ({exc}): it is not a gpuhost upgrade record, or was cut short: "
                         f"{restart_fix}") from None
    except OSError as exc:
        raise UsageError(f"{where} cannot be read ({exc.strerror}): fix its permissions, or choose another "
                         f"--state file") from None
    if not isinstance(data, dict) or data.get("kind") != rollout.RECORD_KIND:
        raise UsageError(f"{where} is not a gpuhost upgrade record (no \"kind\": \"{rollout.RECORD_KIND}\"): "
                         f"{other}")
    if restart:
        return None
    if data.get("version") != rollout.RECORD_VERSION:
        raise UsageError(f"{where} has record version {data.get('version')!r}, this gpuhost reads "
                         f"{rollout.RECORD_VERSION}: {restart_fix}")
    try:
        UpgradeRecord.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        field = ".".join(str(part) for part in first["loc"])
        value = "missing" if first["type"] == "missing" else f"{first['input']!r}: {first['msg'].lower()}"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UsageError(f"{where} is damaged: {field} is {value}{more}: {restart_fix}") from None
    return rollout.check_record(data, inventory, str(path))


def state_path_problem(path: Path) -> str | None:
    """Why `--state PATH` cannot hold the record (checked before any host is contacted); None when it can."""
    if path.is_dir():
        return f"--state {path} is a directory: give a file in it, e.g. --state {path / 'upgrade.json'}"
    return None
