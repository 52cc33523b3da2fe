"""Trusting a repository's signing key: only the key whose fingerprint is pinned, in its own keyring.

One shell script for every repository gpuhost adds (driver, Docker, NVIDIA container toolkit):
the key file is imported into a throwaway keyring and only the pinned key is exported from it,
so a file that carries other keys (added on the way, or a vendor's bundle) never makes apt or
dnf trust them; a file without the pinned key fails the host with one line naming what it had.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

BACKUP_DIR = "/var/lib/gpuhost/backup"


def pinned_key_script(key_url: str, fingerprint: str, keyring: str, allow_http: bool = False) -> str:
    """Download `key_url`, keep only the key `fingerprint`, write it to `keyring` (or fail, writing nothing).

    Vendors' keys come over https only (curl's --proto also bars redirects to anything else).
    allow_http is for a key URL the user configured (a mirror inside a closed network: http:// or
    file:/): the pinned fingerprint alone guarantees the key. A keyring under /etc/pki/ (dnf)
    is written ASCII-armoured, as rpm --import wants it; elsewhere binary, as apt's Signed-By.
    """
    q = shlex.quote
    gpg = 'gpg --homedir "$t" --batch --quiet'
    protocols = "=https,http,file" if allow_http else "=https"
    armor = " --armor" if keyring.startswith("/etc/pki/") else ""
    return (
        "set -e; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; "
        f"curl -fsSL --retry 3 --proto '{protocols}' -o \"$t/key\" {q(key_url)}; "
        f"{gpg} --import \"$t/key\" >/dev/null 2>&1 || true; "
        f"{gpg} --export{armor} {q(fingerprint)} > \"$t/keyring\" 2>/dev/null || true; "
        "got=$(gpg --show-keys --with-colons \"$t/keyring\" 2>/dev/null | awk -F: '$1 == \"fpr\" { print $10; exit }'); "
        f"if [ \"$got\" != {q(fingerprint)} ]; then "
        f"had=$({gpg} --with-colons --list-keys 2>/dev/null | awk -F: '$1 == \"pub\" {{ p = 1; next }} "
        "p && $1 == \"fpr\" { printf \"%s%s\", s, $10; s = \" \"; p = 0 }'); "
        f"echo \"gpuhost: key from \"{q(key_url)}\" has fingerprint ${{had:-none}}, expected \"{q(fingerprint)}\": "
        "refusing to trust it (check the fingerprint its publisher gives)\" >&2; exit 1; fi; "
        f"mkdir -p {q(posixpath.dirname(keyring))}; "
        # a keyring already there held another key (it was checked): kept aside, never lost
        f"if [ -e {q(keyring)} ]; then mkdir -p {BACKUP_DIR}; "
        f"cp -p {q(keyring)} {BACKUP_DIR}/{q(posixpath.basename(keyring))}.$(date -u +%Y%m%dT%H%M%SZ); fi; "
        f"install -m 644 \"$t/keyring\" {q(keyring)}.tmp; "
        f"mv -f {q(keyring)}.tmp {q(keyring)}"
    )


def keyring_trusted(managed: dict, keyring: str, fingerprint: str) -> bool:
    """The keyring holds exactly the pinned key, as the snapshot read it (whoever wrote the file). Pure."""
    found = (managed.get("keyring_fingerprints") or {}).get(keyring)
    return found == [fingerprint.replace(" ", "").upper()]


@dataclass(frozen=True)
class SourceChoice:
    """How gpuhost uses a repository that may already have a source on the host.

    adopt: a source another tool wrote (NVIDIA's cuda-keyring, Docker's install docs) for the
    same URI whose keyring holds exactly the pinned key: gpuhost writes no source of its own.
    set_aside: others' source files for the URI that would conflict with gpuhost's
    ("Conflicting values set for option Signed-By"): moved to BACKUP_DIR. blocker: a file that
    also holds other entries, which gpuhost does not edit. line: the one line saying which."""

    adopt: str | None = None  # the adopted source file
    keyring: str | None = None  # the keyring apt uses for the repository
    set_aside: tuple[str, ...] = ()
    line: str | None = None
    blocker: str | None = None


def _same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def choose_source(managed: dict, uri: str, fingerprint: str, own_file: str, own_keyring: str) -> SourceChoice:
    """Adopt another tool's source for `uri` when its keyring holds exactly the pinned key, else
    replace it with gpuhost's own (set aside). Pure: reads the snapshot's apt sources and keyrings."""
    entries = managed.get("apt_sources") or []
    # Entries without Signed-By do not conflict (apt takes the one that is set) and are left alone.
    # An entry that tells apt to skip or weaken the signature check (trusted=yes, allow-insecure,
    # allow-weak) is never adopted, whatever its keyring: it is set aside too.
    theirs = [e for e in entries if _same_uri(e["uri"], uri) and e["file"] != own_file
              and (e["signed_by"] or e.get("insecure"))]
    if not theirs:
        return SourceChoice(keyring=own_keyring)
    files = sorted({e["file"] for e in theirs})
    mixed = [f for f in files if any(e["file"] == f and not _same_uri(e["uri"], uri) for e in entries)]
    weak = {e["file"]: e["insecure"] for e in theirs if e.get("insecure")}
    weak_line = "".join(f"; setting aside {f}: {' '.join(o)} would make apt skip or weaken its signature check"
                        for f, o in sorted(weak.items()))
    trusted = [e for e in theirs if e["signed_by"] and e["file"] not in weak
               and keyring_trusted(managed, e["signed_by"], fingerprint)]
    if trusted:
        adopted = trusted[0]
        others = [f for f in files if f != adopted["file"]]
        own = [own_file] if any(e["file"] == own_file for e in entries) else []
        return SourceChoice(
            adopt=adopted["file"], keyring=adopted["signed_by"], set_aside=tuple(own + others),
            line=(f"adopting {adopted['file']} for {uri}: its keyring {adopted['signed_by']} holds exactly the "
                  f"pinned key {fingerprint}, so gpuhost writes no second source{weak_line}"),
            blocker=_mixed_blocker([f for f in mixed if f != adopted["file"]], uri))
    why = "; ".join(f"{e['file']}: {' '.join(e['insecure'])} skips or weakens apt's signature check"
                    if e.get("insecure") else
                    f"{e['file']}: Signed-By {e['signed_by']} does not hold exactly the pinned key" for e in theirs)
    return SourceChoice(
        keyring=own_keyring, set_aside=tuple(files),
        line=(f"replacing the existing source for {uri} ({why}) with gpuhost's {own_file}, keyring checked "
              f"against {fingerprint}; the old file is kept in {BACKUP_DIR}"),
        blocker=_mixed_blocker(mixed, uri))


def _mixed_blocker(blocking: list[str], uri: str) -> str | None:
    """Shared files (other entries too) that name `uri` with another key: gpuhost does not edit them."""
    if not blocking:
        return None
    return (f"{', '.join(blocking)} also holds other entries and names {uri} with another key: remove that "
            f"line by hand (gpuhost does not edit shared source files), then re-run")


def set_aside_script(paths) -> str:
    """Move others' conflicting source files into BACKUP_DIR (kept, never deleted)."""
    q = shlex.quote
    moves = "; ".join(f"mv -f {q(p)} {BACKUP_DIR}/{q(posixpath.basename(p))}.$(date -u +%Y%m%dT%H%M%SZ)"
                      for p in paths)
    return f"mkdir -p {BACKUP_DIR}; {moves}"
