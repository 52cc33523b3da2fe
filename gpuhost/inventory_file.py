"""Hosts from a plain YAML file, so users list servers without writing Python."""

from __future__ import annotations

from pathlib import Path

import yaml

from gpuhost.errors import UsageError
from gpuhost.hostdata import check_hosts


def load_hosts(path: Path) -> list[tuple[str, dict]]:
    """(name, data) pairs for a pyinfra inventory; every problem reported at once, one per line."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read inventory {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"inventory {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(content, dict) or not isinstance(content.get("hosts"), list):
        raise UsageError(f"inventory {path} needs a 'hosts:' list (see inventories/lab.yaml)")
    defaults = content.get("all") or {}
    if not isinstance(defaults, dict):
        raise UsageError(f"inventory {path}: 'all:' must be a mapping of settings")
    hosts, problems, seen = [], [], set()
    for i, entry in enumerate(content["hosts"]):
        if not isinstance(entry, dict) or not entry.get("name"):
            problems.append(f"inventory {path}: hosts[{i}] needs a name")
            continue
        name = str(entry["name"])
        if name in seen:
            problems.append(f"inventory {path}: host {name} is listed twice")
        seen.add(name)
        hosts.append((name, {**defaults, **{k: v for k, v in entry.items() if k != "name"}}))
    problems += check_hosts(hosts)
    if problems:
        raise UsageError("\n".join(problems))
    return hosts
