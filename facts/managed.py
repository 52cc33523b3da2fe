"""What gpuhost manages on a host, read in one command, so a converged host costs one round trip.

The stages compare these readings with what they want (`gpuhost/run/converged.py`); only when
something differs do they queue operations, which then read their own facts as usual. The
command always exits 0; a missing file, tool or unit is simply absent from its reading.

Shape of the fact (all keys always present)::

    {
      "files": {"/var/lib/gpuhost/report.json": "<sha1>", ...},   # gpuhost's files, apt/yum
                                                                # sources, modprobe.d
      "keyrings": ["/etc/apt/keyrings/docker.gpg", ...],        # keyring files present
      "packages": {"nvidia-open": ["580.95.05-1"], ...},        # installed, the families gpuhost
                                                                # manages (PACKAGE_FAMILIES)
      "units": {"docker": {"enabled": "enabled", "active": "active"}, ...},
      "verify": {...} | None,                                   # /var/lib/gpuhost/verify.json
      "pulled": ["registry:5000/pytorch/pytorch:..."] | None,   # /var/lib/gpuhost/pulled.json
      "warnings": ["..."],                                      # a damaged file of gpuhost's
    }
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

from facts.sections import Sections

# Globs of the files gpuhost writes or compares (sha1 each).
FILES = ("/var/lib/gpuhost/*.json /etc/modprobe.d/*.conf /etc/apt/sources.list.d/* "
         "/etc/yum.repos.d/*.repo "
         # monitoring: gpuhost's textfiles, units, node_exporter's drop-in, dcgm counters, collector
         "/var/lib/prometheus/node-exporter/gpuhost_*.prom /etc/systemd/system/gpuhost-* "
         "/etc/systemd/system/prometheus-node-exporter.service.d/*.conf /etc/gpuhost/*/* /usr/local/lib/gpuhost/*")
KEYRINGS = "/etc/apt/keyrings/* /usr/share/keyrings/* /etc/pki/rpm-gpg/*"
# Package names gpuhost installs or checks (driver, headers, DKMS, Docker, toolkit, exporters).
PACKAGE_FAMILIES = "nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|prometheus"
# Units: the driver's, Docker, the exporters, the registry mirror's (the package's own, and one
# instance per config file, gpuhost/mirror).
UNITS = ("docker nvidia-persistenced nvidia-fabricmanager "
         "prometheus-node-exporter gpuhost-dcgm-exporter gpuhost-gpu-metrics.timer docker-registry "
         "$(ls /etc/gpuhost/mirror 2>/dev/null | sed -n 's/^\\(.*\\)\\.yml$/gpuhost-mirror@\\1/p')")

SCRIPT = r"""
echo '@@gpuhost managed 1'
echo '@@files'
sha1sum __FILES__ 2>/dev/null
echo '@@keyrings'
ls -1d __KEYRINGS__ 2>/dev/null
echo '@@packages'
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null | awk '$1 ~ /^.i/ && $2 ~ /__FAMILIES__/ { print $2, $3 }'
elif command -v rpm >/dev/null 2>&1; then
  rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n' 2>/dev/null | grep -E '__FAMILIES__'
fi
echo '@@units'
if [ -d /run/systemd/system ]; then
  # One systemctl for all units, printed as "unit enabled-state active-state" lines.
  systemctl show -p Id -p UnitFileState -p ActiveState __UNITS__ 2>/dev/null | awk -F= '
    $1 == "Id" { id = $2; sub(/\.service$/, "", id) } $1 == "UnitFileState" { st = $2 } $1 == "ActiveState" { ac = $2 }
    /^$/ { if (id != "") print id, st, ac; id = st = ac = "" } END { if (id != "") print id, st, ac }'
fi
echo '@@verify'
head -c 262144 /var/lib/gpuhost/verify.json 2>/dev/null; echo
echo '@@pulled'
head -c 65536 /var/lib/gpuhost/pulled.json 2>/dev/null; echo
true
"""
COMMAND = (SCRIPT.strip().replace("__FILES__", FILES).replace("__KEYRINGS__", KEYRINGS)
           .replace("__FAMILIES__", PACKAGE_FAMILIES).replace("__UNITS__", UNITS))


class ManagedState(FactBase):
    """Hashes of gpuhost's files, keyrings, managed packages, unit states, the last verdict."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_managed_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_managed_sections(Sections(output))


def process_managed_sections(sections: Sections) -> dict[str, Any]:
    files = {}
    for line in sections.lines("files"):
        digest, _, path = line.strip().partition("  ")
        if path:
            files[path] = digest
    packages: dict[str, list[str]] = {}
    for line in sections.lines("packages"):
        name, _, version = line.strip().partition(" ")
        if name and version:
            packages.setdefault(name, []).append(version)
    units = {}
    for line in sections.lines("units"):
        words = line.split()
        if words:
            units[words[0]] = {"enabled": words[1] if len(words) > 2 else None,
                               "active": words[-1] if len(words) > 1 else None}
    warnings = []
    parsed = {}
    for name, kind in (("verify", dict), ("pulled", list)):
        text = sections.text(name)
        parsed[name] = _json(text, kind)
        if text and parsed[name] is None:
            warnings.append(f"/var/lib/gpuhost/{name}.json is damaged: gpuhost will write it again")
    return {
        "files": files,
        "keyrings": sorted(line.strip() for line in sections.lines("keyrings")),
        "packages": packages,
        "units": units,
        **parsed,
        "warnings": warnings,
    }


def _json(text: str | None, kind: type):
    """The parsed file when it is JSON of the expected kind, else None (absent or damaged)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, kind) else None
