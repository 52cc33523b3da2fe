"""Per-host settings from pyinfra host data, checked before any host is touched.

Inventory data (host, group_data, --data) sets the policy per host. Every key is optional; a
wrong value is reported as one line naming the host, the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuhost.container_settings import ContainerSettings, container_settings
from gpuhost.errors import GpuhostError, UsageError
from gpuhost.gpus import Gpu, identify
from gpuhost.resolver import Policy

CHOICES = {
    "no_gpu": ("skip", "fail"),
    "reboot": ("auto", "never"),
    "verify": ("auto", "always", "never"),
}
DEFAULTS = {"no_gpu": "skip", "reboot": "never", "verify": "auto"}


@dataclass(frozen=True)
class DriverSettings:
    """Host data keys of the driver stage (all optional)."""

    force: bool = False  # upgrade/reboot even with GPU processes running
    source: str | None = None  # driver_source: ubuntu | cuda | debian | cuda-rhel
    repository: str | None = None  # driver_repository: mirror URL
    repository_key: str | None = None  # driver_repository_key: key URL of a re-signed mirror
    repository_fingerprint: str | None = None  # driver_repository_fingerprint: its pinned fingerprint
    lock_timeout: int = 300  # apt_lock_timeout: seconds to wait for the apt/dpkg lock
    secure_boot_mok: bool = False  # a MOK that signs DKMS modules is enrolled


def driver_settings_from(data) -> DriverSettings:
    """The driver stage's keys; raises UsageError naming the key and the fix."""
    from gpuhost.driver_sources import SOURCE_NAMES  # noqa: PLC0415 (keeps hostdata light)

    for key in ("force", "secure_boot_mok"):
        if not isinstance(data.get(key, False), bool):
            raise UsageError(f"{key} is {data.get(key)!r}: use true or false")
    source = _text(data, "driver_source")
    if source is not None and source not in SOURCE_NAMES:
        raise UsageError(f"driver_source is {source!r}: use one of {', '.join(SOURCE_NAMES)}")
    for key in ("driver_repository", "driver_repository_key"):
        value = _text(data, key)
        if value is not None and not value.startswith(("https://", "http://", "file:/")):
            raise UsageError(f"{key} is {value!r}: use an http(s):// or file:/ URL")
    fingerprint = _text(data, "driver_repository_fingerprint")
    if fingerprint is not None and not (len(fingerprint.replace(" ", "")) == 40
                                        and all(c in "0123456789abcdefABCDEF" for c in fingerprint.replace(" ", ""))):
        raise UsageError(f"driver_repository_fingerprint is {fingerprint!r}: use the key's 40-hex-digit fingerprint")
    timeout = data.get("apt_lock_timeout", 300)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 3600:
        raise UsageError(f"apt_lock_timeout is {timeout!r}: use whole seconds from 0 to 3600")
    return DriverSettings(data.get("force", False), source, _text(data, "driver_repository"), _text(data, "driver_repository_key"),
                          fingerprint, timeout, data.get("secure_boot_mok", False))


@dataclass(frozen=True)
class HostSettings:
    policy: Policy
    target_gpus: tuple[Gpu, ...]  # declared GPUs: plan for these even when none is attached
    no_gpu: str  # skip | fail: what a host without an NVIDIA GPU gets
    reboot: str  # auto | never
    driver: DriverSettings = field(default_factory=lambda: DriverSettings())  # the driver stage's keys
    container: ContainerSettings = field(default_factory=lambda: ContainerSettings())  # Docker, toolkit, pull
    verify: str = "auto"  # auto | always | never: when gpu_host.py runs the torch check


def _text(data, key):
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{key} must be a string, got {value!r}")
    return str(value)


def settings_from(data) -> HostSettings:
    """Read one host's settings; raises UsageError naming the key."""
    for key, allowed in CHOICES.items():
        value = data.get(key)
        if value is not None and value not in allowed:
            raise UsageError(f"{key} is {value!r}: use one of {', '.join(allowed)}")
    allow = data.get("allow_driver_change", True)
    if not isinstance(allow, bool):
        raise UsageError(f"allow_driver_change is {allow!r}: use true or false")
    targets = data.get("target_gpus") or ()
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, (list, tuple)):
        raise UsageError(f"target_gpus is {targets!r}: use a list such as ['H100', 'H100']")
    try:
        gpus = tuple(identify(str(t)) for t in targets)
    except GpuhostError as exc:
        raise UsageError(f"target_gpus: {exc}") from None
    policy = Policy(
        torch=_text(data, "torch"),
        allow_driver_change=allow,
        driver_branch=_text(data, "driver_branch") or "lts",
        image_flavour=_text(data, "image_flavour") or "runtime",
        registry=_text(data, "registry"),
    ).validated()
    return HostSettings(policy, gpus, data.get("no_gpu") or DEFAULTS["no_gpu"],
                        data.get("reboot") or DEFAULTS["reboot"], driver_settings_from(data),
                        container_settings(data), data.get("verify") or DEFAULTS["verify"])


def check_hosts(hosts) -> list[str]:
    """One line per problem across (name, data) pairs; empty when all are fine."""
    problems = []
    for name, data in hosts:
        try:
            settings_from(data)
        except GpuhostError as exc:
            problems.append(f"host {name}: {exc}")
    return problems
