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

import base64
import hashlib
import json
import re
import shlex
from typing import Any

from pyinfra.api import FactBase

from facts.readings import PACKAGE_FAMILIES, Part, command  # noqa: F401 (the packages it reads)
from facts.sections import Sections, part_sections

# A one-line apt entry: deb [options] uri suite [components...]
ONE_LINE = re.compile(r"^deb\s+(?:\[(?P<options>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)")
# Globs of the files gpuhost writes or compares (sha1 each).
FILES = ("/var/lib/gpuhost/*.json /etc/modprobe.d/*.conf /etc/apt/sources.list.d/* "
         "/etc/yum.repos.d/*.repo "
         # monitoring: gpuhost's textfiles, units, node_exporter's drop-in, dcgm counters, collector
         "/var/lib/prometheus/node-exporter/gpuhost_*.prom /etc/systemd/system/gpuhost-* "
         "/etc/systemd/system/prometheus-node-exporter.service.d/*.conf /etc/gpuhost/*/* /usr/local/lib/gpuhost/* "
         "/usr/local/sbin/gpuhost-*")
KEYRINGS = "/etc/apt/keyrings/* /usr/share/keyrings/* /etc/pki/rpm-gpg/*"
APT_SOURCES = "/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources"
# Keyrings whose fingerprints are read even when no source names them yet: gpuhost's own, and the
# vendors' documented paths that gpuhost writes or adopts (gpuhost/containers/data/container_repos.yaml,
# gpuhost/driver/data/driver_sources.yaml; NVIDIA's cuda-keyring package; Docker's install docs).
KEYRING_PATHS = ("/usr/share/keyrings/gpuhost-* /usr/share/keyrings/cuda-archive-keyring.gpg "
                 "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg /etc/apt/keyrings/docker.* "
                 "/etc/pki/rpm-gpg/RPM-GPG-KEY-gpuhost-*")

# POSIX sh, after the shared dpkg and units readings (facts/readings.py). Keyrings are sent as
# they are (base64) and their fingerprints computed here (primary_fingerprints): no gpg process
# and temp dir per keyring on the host.
SCRIPT = r"""
echo '@@gpuhost managed 1'
echo '@@files'
sha1sum __FILES__ 2>/dev/null
echo '@@keyrings'
for f in __KEYRINGS__; do [ -e "$f" ] && echo "$f"; done
echo '@@verify'
[ -f /var/lib/gpuhost/verify.json ] && head -c 262144 /var/lib/gpuhost/verify.json; echo
echo '@@pulled'
[ -f /var/lib/gpuhost/pulled.json ] && head -c 65536 /var/lib/gpuhost/pulled.json; echo
echo '@@htpasswd'
for f in /etc/gpuhost/mirror/*.htpasswd; do [ -f "$f" ] && sed "s|^|$f	|" "$f"; done 2>/dev/null
echo '@@apt_sources'
sf=; for f in __APT_SOURCES__; do [ -f "$f" ] && sf="$sf $f"; done
src=; [ -n "$sf" ] && src=$(awk 'FNR == 1 && NR > 1 { print p "\t" } { p = FILENAME } !/^[[:space:]]*#/ { print FILENAME "\t" $0 } END { if (NR) print p "\t" }' $sf 2>/dev/null)
[ -n "$src" ] && printf '%s\n' "$src"
# The keyrings the sources name (signed-by=, Signed-By:), and gpuhost's and the vendors' paths.
kr=' '
while IFS= read -r l; do
  t=${l#*	}; x=
  case "$t" in
    *signed-by=*) x=${t#*signed-by=}; x=${x%%[] ]*};;
    Signed-By:*) x=${t#Signed-By:}; x=${x#"${x%%[! 	]*}"}; x=${x%"${x##*[! 	]}"}; case "$x" in /*[[:space:]]*|[!/]*) x=;; esac;;
  esac
  [ -n "$x" ] && case "$kr" in *" $x "*) ;; *) kr="$kr$x ";; esac
done <<SOURCES
$src
SOURCES
for x in __KEYRING_PATHS__; do case "$kr" in *" $x "*) ;; *) kr="$kr$x ";; esac; done
echo '@@keyring_files'
for x in $kr; do [ -f "$x" ] && { echo "@@keyring $x"; base64 "$x" 2>/dev/null; }; done
"""
PART = Part("managed", ("dpkg", "units"), SCRIPT.replace("__FILES__", FILES).replace("__KEYRINGS__", KEYRINGS)
            .replace("__APT_SOURCES__", APT_SOURCES).replace("__KEYRING_PATHS__", KEYRING_PATHS))
COMMAND = command(PART)


class ManagedState(FactBase):
    """Hashes of gpuhost's files, keyrings, managed packages, unit states, the last verdict."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_managed_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_managed_sections(part_sections(output, "managed"))


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
        "keyring_fingerprints": _keyring_fingerprints(sections),
    }


def _keyring_fingerprints(sections: Sections) -> dict[str, list[str]] | None:
    """{keyring: primary fingerprints} from the keyrings' bytes (or, in output of the script before
    issue 29, from gpg's answers); None when nothing was read."""
    if sections.first("keyring_files") is not None:
        return {s.header: primary_fingerprints(_base64("".join(s.lines))) for s in sections.every("keyring")}
    if sections.first("keyring_fingerprints") is not None:
        return {words[0]: words[1:] for words in map(str.split, sections.lines("keyring_fingerprints")) if words}
    return None


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        return b""


ARMOR_BLOCK = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S)


def primary_fingerprints(data: bytes) -> list[str]:
    """The fingerprints of the primary keys in an OpenPGP keyring (binary or ASCII-armored), as
    `gpg --show-keys` gives them: v4 SHA-1 (RFC 4880 12.2), v5/v6 SHA-256 (RFC 9580 5.5.4). []
    when the data is not a well-formed keyring, so it is never trusted; a v3 key gives "V3"."""
    if data[:1] and not data[0] & 0x80:
        data = b"".join(map(_dearmor, ARMOR_BLOCK.findall(data.decode("ascii", "replace"))))
    prints, pos = [], 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x80:
            return []
        if header & 0x40:  # new format: tag in 6 bits, then a 1, 2 or 5 octet length
            tag, first = header & 0x3F, data[pos + 1] if pos + 1 < len(data) else 0
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length, pos = ((first - 192) << 8) + (data[pos + 2] if pos + 2 < len(data) else 0) + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2:pos + 6], "big"), pos + 6
            else:
                return []  # partial body lengths: never a key packet
        else:  # old format: tag in 4 bits, length type in 2
            tag, size = (header >> 2) & 0x0F, (1, 2, 4, 0)[header & 3]
            length = int.from_bytes(data[pos + 1:pos + 1 + size], "big") if size else len(data) - pos - 1
            pos += 1 + size
        body = data[pos:pos + length]
        if len(body) != length:
            return []
        pos += length
        if tag == 6 and body:  # a public key packet (subkeys are tag 14)
            prints.append(_fingerprint(body))
    return prints


def _fingerprint(body: bytes) -> str:
    version = body[0]
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    if version in (5, 6):
        return hashlib.sha256(bytes([0x95 + version]) + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    return f"V{version}"


def _dearmor(block: str) -> bytes:
    """The base64 body of one armor block: header lines and the CRC-24 line left out."""
    lines = block.splitlines()
    while lines and ":" in lines[0]:
        lines.pop(0)
    return _base64("".join(line for line in lines if line.strip() and not line.startswith("=")))


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
