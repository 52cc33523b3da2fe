"""Per-host settings from pyinfra host data, checked before any host is touched.

Inventory data (host, group_data, --data) sets the policy per host. Every key is optional; a
wrong value is reported as one line naming the host, the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuhost.containers.settings import ContainerSettings, container_settings
from gpuhost.driver.settings import DriverSettings, ExistingDriverSettings, driver_settings_from, text_value as _text
from gpuhost.errors import GpuhostError, UsageError
from gpuhost.plan.gpus import Gpu, identify
from gpuhost.plan.resolver import Policy

CHOICES = {
    "no_gpu": ("skip", "fail"),
    "reboot": ("auto", "never"),
    "verify": ("auto", "always", "never"),
}
DEFAULTS = {"no_gpu": "skip", "reboot": "never", "verify": "auto"}


@dataclass(frozen=True)
class HostSettings:
    policy: Policy
    target_gpus: tuple[Gpu, ...]  # declared GPUs: plan for these even when none is attached
    no_gpu: str  # skip | fail: what a host without an NVIDIA GPU gets
    reboot: str  # auto | never
    driver: DriverSettings = field(default_factory=lambda: DriverSettings())  # the driver stage's keys
    container: ContainerSettings = field(default_factory=lambda: ContainerSettings())  # Docker, toolkit, pull
    verify: str = "auto"  # auto | always | never: when gpu_host.py runs the torch check
    existing_driver: ExistingDriverSettings = ExistingDriverSettings()  # runfile_driver


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
                        container_settings(data), data.get("verify") or DEFAULTS["verify"],
                        ExistingDriverSettings.from_host_data(data))


def check_hosts(hosts) -> list[str]:
    """One line per problem across (name, data) pairs; empty when all are fine."""
    problems = []
    for name, data in hosts:
        try:
            settings_from(data)
        except GpuhostError as exc:
            problems.append(f"host {name}: {exc}")
    return problems
