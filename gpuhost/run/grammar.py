"""Strict grammars for host-data strings that reach a unit file, a config file or a shell, and the
quoting of a systemd command-line word. Pure.

Each check returns the value or raises ValueError with the fix (pydantic names the key). Every
pattern is matched whole (`fullmatch`): a `$` would let a trailing newline through, and a newline
in a unit file is a new directive run as root.

The image reference grammar is Docker's (distribution/reference, regexp.go and reference.go:
github.com/distribution/reference, read 2026-12-06): `[domain[:port]/]path[:tag][@digest]`, path
components lower case, a tag at most 128 characters, a domain a host name, `localhost` or a
bracketed IPv6 address, the whole name at most 255 characters.
"""

from __future__ import annotations

import ipaddress
import re

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_PORT = r"[0-9]{1,5}"
DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::{_PORT})?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(rf"(?P<name>(?:(?P<domain>{DOMAIN})/)?{_NAME_PATH})(?::{_TAG})?(?:@{_DIGEST})?",
                             re.ASCII)
REGISTRY = re.compile(rf"{DOMAIN}(?:/{_NAME_PATH})?", re.ASCII)
HOST_NAME = re.compile(_DOMAIN_NAME, re.ASCII)
# A path as gpuhost writes it into units, configs and shell commands: absolute, no `..`, and only
# the characters such paths are made of (no space, quote, `$`, `:`, `%` or control character).
ABSOLUTE_PATH = re.compile(r"/(?:[A-Za-z0-9._+@,=-]+/?)*", re.ASCII)
HTTP_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/+@,=%-]*)?", re.ASCII)
DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?", re.ASCII)


def control_characters(value: str) -> bool:
    """True when `value` holds a control character (newline, tab, escape, DEL, C1)."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)


def printable(value: str) -> str:
    """One word of printable ASCII (a user name such as $oauthtoken, a URL): no space, no control
    or non-ASCII character."""
    if not re.fullmatch(r"[!-~]+", value):
        raise ValueError(f"{value!r} holds a space, a control or a non-ASCII character: use printable ASCII only")
    return value


def _port_ok(domain: str | None) -> bool:
    if not domain or domain.endswith("]") or ":" not in domain:
        return True
    return 1 <= int(domain.rsplit(":", 1)[1]) <= 65535


def image_reference(value: str) -> str:
    """A Docker image reference such as nvcr.io/nvidia/pytorch:25.01-py3 or localhost:5000/a/b@sha256:..."""
    found = IMAGE_REFERENCE.fullmatch(value)
    if not found or len(found.group("name")) > 255 or not _port_ok(found.group("domain")):
        raise ValueError(f"{value!r} is not a Docker image reference: use [registry[:port]/]name[:tag][@sha256:...], "
                         "e.g. nvcr.io/nvidia/pytorch:25.01-py3 (lower-case name)")
    return value


def registry(value: str) -> str:
    """A registry host[:port], optionally with a path prefix: nvcr.io, mirror-01:5001, [fd00::1]:5000."""
    domain = value.split("/", 1)[0]
    if not REGISTRY.fullmatch(value) or not _port_ok(domain):
        raise ValueError(f"{value!r} is not a registry: use host[:port] (e.g. nvcr.io or mirror-01:5001), no scheme")
    return value


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address, as written (no brackets, no port, no scope id: Python's ipaddress
    takes any characters after `%`, newlines included)."""
    if "%" in value:
        raise ValueError(f"{value!r} is not an IP address gpuhost takes: an IPv6 scope id (%...) is not supported; "
                         "use a global or unique-local address such as fd00::1, or 0.0.0.0 / ::")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address: use one such as 127.0.0.1, 10.0.0.7 or ::1 "
                         "(no port, no host name)") from None


def host_or_ip(value: str) -> str:
    """A host name or an IP address (no port, no scheme)."""
    try:
        return ip_address(value)
    except ValueError:
        if HOST_NAME.fullmatch(value) and len(value) <= 253:
            return value
    raise ValueError(f"{value!r} is not a host name or IP address: use e.g. gpu-01.lab or 10.0.0.7")


def absolute_path(value: str) -> str:
    """An absolute path of letters, digits and ._+@,=- components, without `..`."""
    if not ABSOLUTE_PATH.fullmatch(value) or "/../" in f"{value}/" or len(value) > 4096:
        raise ValueError(f"{value!r} is not a plain absolute path: use /dir/file with letters, digits and ._+@,=- "
                         "(no space, quote, $, :, .. or control character)")
    return value


def http_url(value: str) -> str:
    """An http(s):// URL without spaces, quotes, `$` or control characters (a package index)."""
    if not HTTP_URL.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain http(s) URL: use e.g. https://pypi.lab.example/simple "
                         "(no space, quote, $ or control character)")
    return value


def debian_package(value: str) -> str:
    """A Debian package name, optionally =version (Debian Policy 5.6.1 and 5.6.12)."""
    if not DEBIAN_PACKAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Debian package name: use e.g. htop or libgl1=1.7.0-1")
    return value


def systemd_quote(arg: str) -> str:
    """One ExecStart word as systemd reads it (systemd.service(5), "Command lines"); a control
    character (a newline would start a new directive) is refused, never escaped."""
    if control_characters(arg):
        raise ValueError(f"{arg!r} holds a control character: it cannot be a systemd command-line word")
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_command(args: list[str]) -> str:
    """A whole ExecStart= command line, each word quoted for systemd."""
    return " ".join(systemd_quote(a) for a in args)
