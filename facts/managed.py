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
      "apt_sources": [{"file": "/etc/apt/sources.list.d/docker.list", "uri": "https://...",
                       "suites": ["bookworm"], "signed_by": "/etc/apt/keyrings/docker.asc" | None,
                       "insecure": ["trusted=yes", ...]}],   # options that skip the signature check
      "keyring_fingerprints": {"/etc/apt/keyrings/docker.asc": ["9DC8...CD88"], ...} | None,
    }

`apt_sources` is every deb entry of the host's apt sources (one-line `.list` and deb822
`.sources`), whoever wrote them, so a stage sees a source for its repository that another tool
(NVIDIA's cuda-keyring, Docker's install docs) already added. `keyring_fingerprints` gives the
primary-key fingerprints of every keyring those sources name and of the keyrings gpuhost writes
or adopts (KEYRING_PATHS), so a keyring is trusted only when it holds exactly the pinned key,
whoever wrote it (None: no gpg on the host, nothing can be proven).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from pyinfra.api import FactBase

from facts.sections import Sections

# A one-line apt entry: deb [options] uri suite [components...]
ONE_LINE = re.compile(r"^deb\s+(?:\[(?P<options>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)")
# Globs of the files gpuhost writes or compares (sha1 each).
FILES = ("/var/lib/gpuhost/*.json /etc/modprobe.d/*.conf /etc/apt/sources.list.d/* "
         "/etc/yum.repos.d/*.repo "
         # monitoring: gpuhost's textfiles, units, node_exporter's drop-in, dcgm counters, collector
         "/var/lib/prometheus/node-exporter/gpuhost_*.prom /etc/systemd/system/gpuhost-* "
         "/etc/systemd/system/prometheus-node-exporter.service.d/*.conf /etc/gpuhost/*/* /usr/local/lib/gpuhost/*")
KEYRINGS = "/etc/apt/keyrings/* /usr/share/keyrings/* /etc/pki/rpm-gpg/*"
# Package names gpuhost installs or checks (driver, headers, DKMS, Debian's firmware, Docker, toolkit, exporters).
PACKAGE_FAMILIES = ("nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree"
                    "|prometheus")
# Units: the driver's, Docker, the exporters, the registry mirror's (the package's own, and one
# instance per config file, gpuhost/mirror).
UNITS = ("docker nvidia-persistenced nvidia-fabricmanager "
         "prometheus-node-exporter gpuhost-dcgm-exporter gpuhost-gpu-metrics.timer docker-registry "
         "$(ls /etc/gpuhost/mirror 2>/dev/null | sed -n 's/^\\(.*\\)\\.yml$/gpuhost-mirror@\\1/p')")
APT_SOURCES = "/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources"
# Keyrings whose fingerprints are read even when no source names them yet: gpuhost's own, and the
# vendors' documented paths that gpuhost writes or adopts (gpuhost/containers/data/container_repos.yaml,
# gpuhost/driver/data/driver_sources.yaml; NVIDIA's cuda-keyring package; Docker's install docs).
KEYRING_PATHS = ("/usr/share/keyrings/gpuhost-* /usr/share/keyrings/cuda-archive-keyring.gpg "
                 "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg /etc/apt/keyrings/docker.* "
                 "/etc/pki/rpm-gpg/RPM-GPG-KEY-gpuhost-*")

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
echo '@@htpasswd'
for f in /etc/gpuhost/mirror/*.htpasswd; do [ -f "$f" ] && sed "s|^|$f	|" "$f"; done 2>/dev/null
echo '@@apt_sources'
for f in __APT_SOURCES__; do
  [ -f "$f" ] && grep -v '^[[:space:]]*#' "$f" 2>/dev/null | sed "s|^|$f	|"; echo "$f	"
done
if command -v gpg >/dev/null 2>&1; then
  echo '@@keyring_fingerprints'
  # One line per keyring: its path, then the fingerprint of each primary key it holds.
  for k in $( { sed -n 's/.*signed-by=\([^] ]*\).*/\1/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list
                sed -n 's/^Signed-By:[[:space:]]*\(\/[^[:space:]]*\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources
                ls -1d __KEYRING_PATHS__; } 2>/dev/null | sort -u); do
    [ -f "$k" ] || continue
    g=$(mktemp -d)
    printf '%s' "$k"; gpg --homedir "$g" --batch --show-keys --with-colons "$k" 2>/dev/null | awk -F: '$1 == "pub" { p = 1; next } p && $1 == "fpr" { printf " %s", $10; p = 0 }'; echo
    rm -rf "$g"
  done
fi
true
"""
COMMAND = (SCRIPT.strip().replace("__FILES__", FILES).replace("__KEYRINGS__", KEYRINGS)
           .replace("__FAMILIES__", PACKAGE_FAMILIES).replace("__UNITS__", UNITS)
           .replace("__APT_SOURCES__", APT_SOURCES).replace("__KEYRING_PATHS__", KEYRING_PATHS))


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
        "apt_sources": apt_source_entries(sections.lines("apt_sources")),
        # the mirror's bcrypt lines (random salts): kept while the password still verifies
        **({"htpasswd": _file_lines(sections.lines("htpasswd"))} if sections.first("htpasswd") is not None else {}),
        "keyring_fingerprints": {words[0]: words[1:] for words in map(str.split, sections.lines("keyring_fingerprints"))
                                 if words} if sections.first("keyring_fingerprints") is not None else None,
    }


def _file_lines(lines: list[str]) -> dict[str, str]:
    """'FILE<TAB>line' lines -> {file: its text}."""
    texts: dict[str, str] = {}
    for line in lines:
        path, sep, text = line.partition("\t")
        if sep:
            texts[path] = texts.get(path, "") + text + "\n"
    return texts


def apt_source_entries(lines: list[str]) -> list[dict]:
    """The `deb` entries of 'FILE<TAB>line' lines: one-line `.list` entries and deb822 `.sources`
    stanzas (blank-line separated), each as {file, uri, suites, signed_by}; deb-src is skipped."""
    entries, stanza, stanza_file = [], {}, None

    def close():
        if stanza and "deb" in stanza.get("types", "").split():
            for uri in stanza.get("uris", "").split():
                entries.append({"file": stanza_file, "uri": uri, "suites": stanza.get("suites", "").split(),
                                "signed_by": stanza.get("signed-by", "").strip() or None,
                                "insecure": insecure_options(stanza)})
        stanza.clear()

    for line in lines:
        path, _, text = line.partition("\t")
        if path != stanza_file or not text.strip():
            close()
            stanza_file = path
        if not text.strip():
            continue
        if path.endswith(".sources"):
            key, sep, value = text.partition(":")
            if sep and not text[:1].isspace():
                stanza[key.strip().lower()] = value.strip()
            continue
        match = ONE_LINE.match(text.strip())
        if match:
            options = dict(o.split("=", 1) for o in (match["options"] or "").split() if "=" in o)
            entries.append({"file": path, "uri": match["uri"], "suites": [match["suite"]],
                            "signed_by": options.get("signed-by"), "insecure": insecure_options(options)})
    close()
    return entries


# Options with which apt skips or weakens the signature check of a source (sources.list(5)).
INSECURE_OPTIONS = ("trusted", "allow-insecure", "allow-weak", "allow-downgrade-to-insecure")


# apt's own false values (apt-pkg/contrib/strutl.cc, StringToBool; any case); apt reads every other
# value of these options as true or a number, so anything else counts as insecure.
APT_FALSE = ("no", "false", "without", "off", "disable", "0")


def insecure_options(options: dict) -> list[str]:
    """`option=value` of each option that weakens the entry's signature check (case as apt reads it:
    `trusted=yes` one-line, `Trusted: on` deb822): any value but one of apt's false ones."""
    lowered = {key.lower(): value.strip() for key, value in options.items()}
    return [f"{key}={lowered[key]}" for key in INSECURE_OPTIONS
            if key in lowered and lowered[key].lower() not in APT_FALSE]


def _json(text: str | None, kind: type):
    """The parsed file when it is JSON of the expected kind, else None (absent or damaged)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, kind) else None


class KeyringFingerprints(FactBase):
    """Primary-key fingerprints in one keyring file ([] when it is absent or holds no key).

    Operations read it before trusting a keyring that is already there, whoever wrote it.
    """

    default = list

    def command(self, path: str) -> str:
        q = shlex.quote(path)
        return (f"g=$(mktemp -d); [ -f {q} ] && gpg --homedir \"$g\" --batch --show-keys --with-colons {q} 2>/dev/null "
                "| awk -F: '$1 == \"pub\" { p = 1; next } p && $1 == \"fpr\" { print $10; p = 0 }'; rm -rf \"$g\"; true")

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]
