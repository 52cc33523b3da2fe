"""What the host's configured repositories offer for the driver stage, read only when it has work.

Not part of the snapshot: a converged host never reads it. The driver stage's `packages`
operation reads it right after `apt-get update` (the repository is in place by then) and chooses
from it (gpuhost/driver/offer.py). The command always exits 0; what apt or dnf does not know is
simply absent.

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
from gpuhost.driver.offer import parse_dnf_list, parse_dpkg_list, parse_madison

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
