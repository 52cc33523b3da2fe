"""What the host's configured repositories offer for the driver stage, read only when it has work.

Not part of the snapshot: a converged host never reads it. The driver stage's `packages`
operation reads it right after `apt-get update` (the repository is in place by then) and chooses
from it (gpuhost/driver/offer.py; the output parsers are here). The command always exits 0; what
apt or dnf does not know is simply absent.

Shape::

    {"versions": {"nvidia-open": ["610.57.04-1ubuntu1", ...]},    # apt-cache madison / dnf list
     "names": ["linux-modules-nvidia-580-server-open-aws", ...],   # apt-cache pkgnames <prefix>
     "kernel": "6.8.0-40-generic",
     "images": [["linux-image-generic-hwe-22.04", "6.8.0-40.40~22.04.3"], ...]}  # dpkg -l
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase

from facts.sections import Sections

SCRIPT = r"""
echo '@@gpuhost offer 1'
echo "@@kernel $(uname -r)"
if command -v apt-cache >/dev/null 2>&1; then
  echo '@@madison'; [ -n "$NAMES" ] && apt-cache madison $NAMES 2>/dev/null
  echo '@@names'; for p in $PREFIXES; do apt-cache pkgnames "$p" 2>/dev/null; done
  echo '@@images'; COLUMNS=250 dpkg -l 'linux-image-*' 2>/dev/null | grep '^[a-z][a-z] '
elif command -v dnf >/dev/null 2>&1; then
  echo '@@dnf'; [ -n "$NAMES" ] && timeout 120 dnf -q list --showduplicates $NAMES 2>/dev/null
fi
true
"""


class DriverOffer(FactBase):
    """Versions the repositories offer for the named packages, names under prefixes, kernel images."""

    def command(self, names=(), prefixes=()) -> str:
        return (f"NAMES={shlex.quote(' '.join(names))}; PREFIXES={shlex.quote(' '.join(prefixes))}\n"
                + SCRIPT.strip())

    @staticmethod
    def default() -> dict[str, Any]:
        return process_offer_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_offer_sections(Sections(output))


def process_offer_sections(sections: Sections) -> dict[str, Any]:
    versions = parse_madison(sections.lines("madison")) or parse_dnf_list(sections.lines("dnf"))
    return {"versions": {k: list(v) for k, v in versions.items()},
            "names": sorted({line.strip() for line in sections.lines("names") if line.strip()}),
            "kernel": sections.header("kernel") or "",
            "images": [list(i) for i in parse_dpkg_list(sections.lines("images"))]}


def parse_madison(lines: list[str]) -> dict[str, tuple[str, ...]]:
    """`apt-cache madison` lines ('nvidia-open | 610.57.04-1ubuntu1 | https://... Packages') -> versions
    per package, in apt's order (newest first), each once (a version offered by two indexes)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 3 or not parts[0] or not parts[1] or "Sources" in parts[2]:
            continue
        versions = found.setdefault(parts[0], [])
        if parts[1] not in versions:
            versions.append(parts[1])
    return {name: tuple(v) for name, v in found.items()}


def parse_dnf_list(lines: list[str]) -> dict[str, tuple[str, ...]]:
    """`dnf list --showduplicates` lines ('nvidia-fabricmanager.x86_64  580.95.05-1  cuda-rhel9-x86_64')
    -> versions per package (epoch dropped), newest first (dnf prints oldest first)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or "." not in parts[0] or not parts[1][:1].isdigit():
            continue
        name = parts[0].rsplit(".", 1)[0]
        version = parts[1].split(":")[-1]
        versions = found.setdefault(name, [])
        if version not in versions:
            versions.append(version)
    return {name: tuple(reversed(v)) for name, v in found.items()}


def parse_dpkg_list(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """Installed packages from `dpkg -l` lines ('ii  linux-image-aws  4.15.0.1019.19  amd64  ...')."""
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and len(parts[0]) == 2 and parts[0][1] == "i" and parts[0][0] in "ih":
            found.append((parts[1].split(":")[0], parts[2]))
    return tuple(found)
