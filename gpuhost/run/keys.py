"""Trusting a repository's signing key: only the key whose fingerprint is pinned, in its own keyring.

One shell script for every repository gpuhost adds (driver, Docker, NVIDIA container toolkit):
the key file is imported into a throwaway keyring and only the pinned key is exported from it,
so a file that carries other keys (added on the way, or a vendor's bundle) never makes apt or
dnf trust them; a file without the pinned key fails the host with one line naming what it had.
"""

from __future__ import annotations

import posixpath
import shlex


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
        f"echo \"gpuhost: key from {key_url} has fingerprint ${{had:-none}}, expected {fingerprint}: "
        "refusing to trust it (check the fingerprint its publisher gives)\" >&2; exit 1; fi; "
        f"mkdir -p {q(posixpath.dirname(keyring))}; "
        f"install -m 644 \"$t/keyring\" {q(keyring)}.tmp; "
        f"mv -f {q(keyring)}.tmp {q(keyring)}"
    )
