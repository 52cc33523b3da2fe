"""Reading pyinfra's CLI output: which operations changed which host.

pyinfra prints one status line per operation and host: "[h1] Success" when the operation
executed commands (changed the host), "[h1] No changes" when it had nothing to do, then
"Error"/"Skipped". An idempotent deploy's second run has no "Success" line at all.
"""

from __future__ import annotations

import re
from collections import Counter

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STATUS = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<status>Success|No changes|Error|Skipped)\b")


def host_statuses(output: str) -> dict[str, Counter]:
    """{host: Counter({"Success": n, "No changes": m, ...})} from pyinfra's output."""
    result: dict[str, Counter] = {}
    for line in ANSI.sub("", output).splitlines():
        match = STATUS.match(line)
        if match:
            result.setdefault(match["host"], Counter())[match["status"]] += 1
    return result


def changed(output: str, host: str | None = None) -> int:
    """How many operations changed a host (or all hosts)."""
    statuses = host_statuses(output)
    hosts = [host] if host else list(statuses)
    return sum(statuses.get(name, Counter())["Success"] for name in hosts)


def summary(output: str) -> str:
    """One line per host: 'h1: 3 changed, 5 unchanged, 0 errors'."""
    return "\n".join(
        f"{name}: {c['Success']} changed, {c['No changes']} unchanged, {c['Error']} errors"
        for name, c in sorted(host_statuses(output).items()))


def summary_rows(output: str) -> dict[str, dict[str, str]]:
    """The fleet table gpu_host.py prints at the end (gpuhost.run_summary): {host: {COLUMN: value}}."""
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
