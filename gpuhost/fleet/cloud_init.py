"""cloud-init user-data that turns a fresh VM into a gpuhost host on its first boot.

Pure: settings in, `#cloud-config` text out. The user-data writes four files and runs one:

- /etc/gpuhost/host-data.yaml    the host data (the inventory keys: torch, target_gpus, ...)
- /etc/gpuhost/inventory.py      pyinfra inventory: `@local` with that data (checked again there)
- /etc/gpuhost/requirements.txt  pip options and the pinned package spec
- /etc/gpuhost/first-boot.env    settings for the script
- /usr/local/sbin/gpuhost-first-boot   run by `runcmd`: venv, pip install, the deploy, the marker

The package is pinned: either `gpuhost==X.Y.Z` from an index you name (the `gpuhost` on PyPI is
an unrelated project, so a bare PyPI install is refused), or a wheel URL pinned by its sha256
(pip checks a `#sha256=` URL fragment before installing). The deploy's own reboot cannot work
here (pyinfra would have to wait for the host it runs on), so `reboot: auto` is refused; the
marker's `reboot_required` says when a reboot is due.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gpuhost import __version__, yamlfile
from gpuhost.errors import GpuhostError, UsageError
from gpuhost.plan.gpus import identify
from gpuhost.compose.settings import host_problems

DATA_DIR = Path(__file__).with_name("data")
FIRST_BOOT_SCRIPT = DATA_DIR / "cloud-init-first-boot.sh"
INVENTORY_TEMPLATE = DATA_DIR / "cloud-init-inventory.py"

ETC = "/etc/gpuhost"
SCRIPT_PATH = "/usr/local/sbin/gpuhost-first-boot"
VENV = "/opt/gpuhost/venv"
LOG_PATH = "/var/log/gpuhost-cloud-init.log"
MARKER_PATH = "/var/lib/gpuhost/cloud-init.done"
DEFAULT_PACKAGE = f"gpuhost=={__version__}"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CloudInitSettings:
    """What `gpuhost cloud-init render` takes; validated() checks every field."""

    host_data: dict = field(default_factory=dict)
    package: str = DEFAULT_PACKAGE  # gpuhost==X.Y.Z, or a wheel URL (then package_sha256)
    package_sha256: str | None = None
    index_url: str | None = None  # pip --index-url
    find_links: tuple[str, ...] = ()  # pip --find-links (a wheelhouse URL), repeatable
    no_index: bool = False  # pip --no-index: only find_links (and the wheel URL)
    data_source: str = "host data"  # how errors name the data: "--data hosts.yaml"

    def validated(self) -> CloudInitSettings:
        _check_host_data(self.host_data, self.data_source)
        for url in self.find_links:
            _check_url(url, "--find-links", schemes=("http", "https", "file"))
        if self.index_url is not None:
            _check_url(self.index_url, "--index-url", schemes=("http", "https"))
        if self.no_index and not self.find_links:
            raise UsageError("--no-index needs --find-links URL: a wheelhouse with gpuhost's dependencies")
        if self.no_index and self.index_url:
            raise UsageError("--no-index and --index-url contradict each other: keep one")
        if is_url(self.package):
            _check_wheel_url(self.package, self.package_sha256)
        else:
            _check_requirement(self.package, self.package_sha256, self.index_url, self.find_links)
        return self


def is_url(package: str) -> bool:
    return "://" in package


def load_host_data(text: str, source: str) -> dict:
    """Host data from YAML text (a --data file): a mapping of inventory keys."""
    try:
        data = yamlfile.load(text)
    except yamlfile.YAMLError as exc:
        raise UsageError(f"{source} {yamlfile.error_line(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{source} must be a mapping of host data keys (torch: '2.9', target_gpus: [H100], ...)")
    if isinstance(data.get("hosts"), list):
        raise UsageError(f"{source} is an inventory (it has hosts:): --data takes one host's keys, "
                         "e.g. torch: '2.9' and target_gpus: [H100]")
    return data


def with_target_gpus(data: dict, target_gpus: list[str]) -> dict:
    """--target-gpus (repeatable, or comma-separated) replaces target_gpus from --data."""
    names = [name.strip() for value in target_gpus for name in value.split(",") if name.strip()]
    for name in names:
        try:
            identify(name)
        except GpuhostError as exc:
            raise UsageError(f"--target-gpus: {exc}") from None
    return {**data, "target_gpus": names} if names else dict(data)


def render(settings: CloudInitSettings) -> str:
    """The #cloud-config user-data for these settings (validated first)."""
    settings.validated()
    files = [
        _file(f"{ETC}/host-data.yaml", _yaml_text(settings.host_data), "0600"),
        _file(f"{ETC}/inventory.py", INVENTORY_TEMPLATE.read_text(), "0644"),
        _file(f"{ETC}/requirements.txt", pip_requirements(settings), "0600"),  # --index-url may hold a token
        _file(f"{ETC}/first-boot.env", _env_text(settings), "0644"),
        _file(SCRIPT_PATH, FIRST_BOOT_SCRIPT.read_text(), "0755"),
    ]
    config = {"write_files": files, "runcmd": [[SCRIPT_PATH]]}
    header = (
        "#cloud-config\n"
        f"# gpuhost {__version__}: on first boot, install {_describe(settings)}\n"
        f"# in {VENV} and run deploys/gpu_host.py against this host (@local).\n"
        f"# Log: {LOG_PATH}; result (JSON): {MARKER_PATH}\n"
    )
    return header + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=100)


def pip_requirements(settings: CloudInitSettings) -> str:
    """A pip requirements file: options first, then the one pinned requirement."""
    lines = ["# written by gpuhost cloud-init render"]
    if settings.no_index:
        lines.append("--no-index")
    if settings.index_url:
        lines.append(f"--index-url {settings.index_url}")
    lines += [f"--find-links {url}" for url in settings.find_links]
    # pip ignores plain-http indexes unless told to trust them; the user named these URLs. Only
    # the gpuhost wheel is hash-pinned: serve dependencies over https, or from a network you trust.
    plain_http = [urlsplit(u).netloc for u in (settings.index_url, *settings.find_links) if u and u.startswith("http://")]
    lines += [f"--trusted-host {netloc}" for netloc in dict.fromkeys(plain_http)]
    if is_url(settings.package):
        lines.append(f"gpuhost @ {settings.package}#sha256={settings.package_sha256.lower()}")
    else:
        lines.append(settings.package)
    return "\n".join(lines) + "\n"


def _describe(settings: CloudInitSettings) -> str:
    if is_url(settings.package):
        return f"the gpuhost wheel {settings.package} (sha256 {settings.package_sha256.lower()[:12]}...)"
    return settings.package


def _env_text(settings: CloudInitSettings) -> str:
    timeout = settings.host_data.get("apt_lock_timeout", 300)
    return ("# written by gpuhost cloud-init render; read by gpuhost-first-boot\n"
            f"APT_LOCK_TIMEOUT={shlex.quote(str(timeout))}\n"
            "DEPLOY=gpu_host\n")


def _file(path: str, content: str, permissions: str) -> dict:
    return {"path": path, "owner": "root:root", "permissions": permissions, "content": content}


def _yaml_text(data: dict) -> str:
    return "# gpuhost host data (keys as in an inventory); written by gpuhost cloud-init render\n" + (
        yaml.safe_dump(data, sort_keys=True) if data else "{}\n")


def _check_host_data(data: dict, source: str) -> None:
    if not isinstance(data, dict):
        raise UsageError(f"{source} must be a mapping of host data keys")
    problems = [p.message for p in host_problems(data, local=False)]  # files and variables: the VM's
    if problems:
        raise UsageError("\n".join(f"{source}: {p}" for p in problems))
    if data.get("reboot") == "auto":
        raise UsageError(f"{source}: reboot: auto cannot work on first boot (pyinfra runs on the host it would "
                         "reboot): use reboot: never; the marker's reboot_required says when to reboot")
    if data.get("registry_password_env") is not None:
        raise UsageError(f"{source}: registry_password_env {data['registry_password_env']} cannot be read at first "
                         "boot (cloud-init runs the deploy without your environment): use registry_password_file, "
                         "a file on the VM (mode 0600) that your image or user-data puts there")
    for key in ("ssh_hostname", "ssh_user", "ssh_port", "ssh_key"):
        if key in data:
            raise UsageError(f"{source}: {key} does not apply: the deploy runs on the host itself (@local); remove it")


def _check_url(url: str, flag: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not (parts.netloc or parts.scheme == "file") or any(c.isspace() for c in url):
        raise UsageError(f"{flag} {url!r} is not a URL: use {' or '.join(s + '://...' for s in schemes)}")


def _check_wheel_url(url: str, sha256: str | None) -> None:
    _check_url(url, "--package", schemes=("http", "https", "file"))
    parts = urlsplit(url)
    if parts.fragment or parts.query:
        raise UsageError(f"--package {url!r}: give the wheel URL without '?' or '#', and its hash with --package-sha256")
    if not parts.path.endswith(".whl"):
        raise UsageError(f"--package {url!r} is not a wheel: point it at gpuhost-X.Y.Z-py3-none-any.whl "
                         "(build one with `pip wheel --no-deps . -w dist`)")
    if sha256 is None:
        raise UsageError(f"--package {url} needs --package-sha256 HEX, the wheel's sha256 (`sha256sum FILE`), "
                         "so the host installs exactly that file")
    if not _SHA256.fullmatch(sha256.lower()):
        raise UsageError(f"--package-sha256 {sha256!r} is not a sha256: use the 64 hex digits `sha256sum FILE` prints")


def _check_requirement(spec: str, sha256: str | None, index_url: str | None, find_links: tuple[str, ...]) -> None:
    if sha256 is not None:
        raise UsageError("--package-sha256 pins a wheel URL: use --package URL --package-sha256 HEX "
                         f"(with {spec!r}, pin the version with == instead)")
    try:
        req = Requirement(spec)
    except InvalidRequirement:
        raise UsageError(f"--package {spec!r} is neither gpuhost==X.Y.Z nor a wheel URL") from None
    if canonicalize_name(req.name) != "gpuhost" or req.url or req.marker:
        raise UsageError(f"--package {spec!r}: use gpuhost==X.Y.Z or a wheel URL (with --package-sha256)")
    pins = list(req.specifier)
    if len(pins) != 1 or pins[0].operator not in ("==", "===") or "*" in pins[0].version:
        raise UsageError(f"--package {spec!r} is not pinned: use gpuhost=={__version__} (one exact version)")
    if not index_url and not find_links:
        raise UsageError(f"--package {spec} needs --index-url or --find-links naming where this gpuhost is published "
                         "(the gpuhost on PyPI is an unrelated project), or use --package URL --package-sha256 HEX")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the files' content) as literal blocks, so the user-data stays readable."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
