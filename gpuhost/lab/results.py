"""Reading pyinfra's CLI output: which operations changed which host.

pyinfra prints one status line per operation and host: "[h1] Success" when the operation
executed commands (changed the host), "[h1] No changes" when it had nothing to do, then
"Error"/"Skipped". An idempotent deploy's second run has no "Success" line at all.
"""

from __future__ import annotations

import re
from collections import Counter

from gpuhost.fleet.rollout import ANSI, parse_deploy_output


def host_statuses(output: str) -> dict[str, Counter]:
    """{host: Counter({"Success": n, "No changes": m, ...})} from pyinfra's output (hosts with any)."""
    return {name: run.statuses for name, run in parse_deploy_output(output).items() if run.statuses}


def changed(output: str, host: str | None = None) -> int:
    """How many operations changed a host (or all hosts)."""
    statuses = host_statuses(output)
    hosts = [host] if host else list(statuses)
    return sum(statuses.get(name, Counter())["Success"] for name in hosts)


def summary_rows(output: str) -> dict[str, dict[str, str]]:
    """The fleet table gpu_host.py prints at the end (gpuhost.run.summary): {host: {COLUMN: value}}."""
    lines = ANSI.sub("", output).splitlines()
    for index, line in enumerate(lines):
        if line.startswith("HOST ") and " CHANGES " in line and " RESULT " in line:
            starts = [m.start() for m in re.finditer(r"\S+", line)]
            names = line.split()
            rows = {}
            for row in lines[index + 1:]:
                if not row.strip():
                    break
                cells = [row[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
                rows[cells[0]] = dict(zip(names, cells))
            return rows
    return {}
