"""Docker's daemon.json with the NVIDIA runtime merged in, keeping everything the user had. Pure.

Why merge here instead of `nvidia-ctk runtime configure --runtime=docker`: the vendor tool
keeps top-level keys, but with `--cdi.enabled` it is reported to replace the whole `features`
object (users lose e.g. `features.containerd-snapshotter`), and NVIDIA's ansible role
overwrites daemon.json wholesale. Merging the JSON ourselves lets us prove, with property
tests, that every key and value the user had survives, and lets the operation compare old and
new content to restart Docker only when something really changed.

Rules:
- every user key and value stays, nested ones too;
- `runtimes.nvidia` is added only when missing (a user's own nvidia entry is kept as it is);
- `default-runtime: nvidia` only when asked (`default_runtime=True`); that is the one user
  value we may replace, because the user asked for it in host data;
- `features` is deep-merged: our entries are added only where the user has none;
- `lists` (e.g. the mirror's `registry-mirrors`, `insecure-registries`) are merged item by item:
  ours are appended where missing, the user's entries and their order stay;
- `options` (host data `docker_daemon_options`) are extra top-level settings the user wants,
  applied last; they are the user's own words, so they win.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from gpuhost.errors import GpuhostError

NVIDIA_RUNTIME = {"path": "nvidia-container-runtime", "args": []}
BUILTIN_RUNTIMES = {"runc", "io.containerd.runc.v2", "crun"}


def merged(current: dict[str, Any] | None, *, default_runtime: bool = False,
           features: dict[str, Any] | None = None,
           options: dict[str, Any] | None = None,
           lists: dict[str, list[str]] | None = None,
           runtime_path: str = NVIDIA_RUNTIME["path"]) -> dict[str, Any]:
    """The daemon.json that `current` should become; `current` itself is never modified.

        >>> merged({"log-driver": "json-file"})
        {'log-driver': 'json-file', 'runtimes': {'nvidia': {'path': 'nvidia-container-runtime', 'args': []}}}
    """
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise GpuhostError(f"daemon.json holds {type(current).__name__}, not a JSON object: fix "
                           "the file by hand (gpuhost never overwrites it)")
    result = copy.deepcopy(current)
    runtimes = result.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise GpuhostError(f"daemon.json 'runtimes' is {runtimes!r}, not an object: fix the file")
    runtimes.setdefault("nvidia", {"path": runtime_path, "args": []})
    if features:
        have = result.setdefault("features", {})
        if not isinstance(have, dict):
            raise GpuhostError(f"daemon.json 'features' is {have!r}, not an object: fix the file")
        for key, value in features.items():
            have.setdefault(key, value)
    for key, items in (lists or {}).items():
        have = result.setdefault(key, [])
        if not isinstance(have, list):
            raise GpuhostError(f"daemon.json {key!r} is {have!r}, not a list: fix the file")
        have += [item for item in items if item not in have]
    if default_runtime:
        result["default-runtime"] = "nvidia"
    for key, value in (options or {}).items():
        result[key] = _deep_update(result.get(key), value)
    validate(result)
    return result


def _deep_update(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        out = copy.deepcopy(old)
        for key, value in new.items():
            out[key] = _deep_update(out.get(key), value)
        return out
    return copy.deepcopy(new)


def validate(content: Any) -> None:
    """Raise GpuhostError (one line) when content cannot be a daemon.json Docker accepts.

    Checks the shape of the parts this toolkit touches and that it is JSON; Docker's own
    `dockerd --validate` (Docker >= 23) checks the rest on the host before any restart.
    """
    if not isinstance(content, dict):
        raise GpuhostError("daemon.json must be a JSON object")
    runtimes = content.get("runtimes", {})
    if not isinstance(runtimes, dict):
        raise GpuhostError("daemon.json 'runtimes' must be an object")
    for name, runtime in runtimes.items():
        if not isinstance(runtime, dict) or not isinstance(runtime.get("path"), str) \
                or not runtime["path"]:
            raise GpuhostError(f"daemon.json runtime {name!r} needs a 'path' string")
        if not isinstance(runtime.get("args", []), list):
            raise GpuhostError(f"daemon.json runtime {name!r}: 'args' must be a list")
    default = content.get("default-runtime")
    if default is not None and default not in runtimes and default not in BUILTIN_RUNTIMES:
        raise GpuhostError(f"daemon.json default-runtime {default!r} is not among its runtimes")
    features = content.get("features", {})
    if not isinstance(features, dict) or not all(isinstance(v, bool) for v in features.values()):
        raise GpuhostError("daemon.json 'features' must map names to true/false")
    try:
        json.dumps(content, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GpuhostError(f"daemon.json content is not plain JSON: {exc}") from None


def render(content: dict[str, Any]) -> str:
    """The file's text: stable, two-space indented, newline-terminated."""
    return json.dumps(content, indent=2, allow_nan=False) + "\n"


def parse(text: str | None) -> dict[str, Any] | None:
    """The file's text -> object; None for a missing or empty file; GpuhostError when broken."""
    if text is None or not text.strip():
        return None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GpuhostError(f"daemon.json is not valid JSON ({exc}): fix it by hand; gpuhost never "
                           "overwrites a file it cannot read") from None
    if not isinstance(content, dict):
        raise GpuhostError("daemon.json is not a JSON object: fix it by hand")
    return content
