"""From what a host is (its facts) and what it should be (its settings) to its plan. Pure.

Shared by the deploy, `gpuhost inspect` and the fleet commands, so that all of them decide the
same way: a host with no NVIDIA GPU is skipped (or failed, as its settings say), a host whose
GPUs the matrix cannot serve is failed with the resolver's reason, any other gets a plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gpuhost.compose.settings import HostSettings
from gpuhost.driver.sources import served_branches
from gpuhost.errors import GpuhostError
from gpuhost.mirror.config import through_mirror
from gpuhost.plan.gpus import Gpu, identify_detected, identify_pci
from gpuhost.plan.resolver import Plan, resolve

NO_GPU = "no NVIDIA GPU found on the PCI bus and no target_gpus declared"


@dataclass
class HostPlan:
    status: str  # planned | skipped | failed
    reason: str | None
    gpus: list[Gpu]
    plan: Plan | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "gpus": [g.to_dict() for g in self.gpus],
            "plan": self.plan.to_dict() if self.plan else None,
            "warnings": list(self.warnings),
        }


def detected_gpus(gpu_state: dict) -> list[Gpu]:
    """The GPUs the facts saw: by PCI ID and pci.ids name, else by nvidia-smi's name."""
    gpus = []
    for seen in gpu_state.get("gpus", []):
        query = seen.get("model") or seen.get("pci_id") or "unknown"
        if seen.get("pci_id"):
            gpu = identify_pci(seen["pci_id"].split(":")[1], seen.get("pci_name"), query=query)
        else:
            gpu = identify_detected(seen.get("model") or "")
        gpus.append(gpu)
    return gpus


def _os_name(host_state: dict | None) -> str | None:
    os_info = (host_state or {}).get("os") or {}
    if os_info.get("id") and os_info.get("version_id"):
        return f"{os_info['id']}-{os_info['version_id']}"
    return None


def plan_host(gpu_state: dict, host_state: dict | None, settings: HostSettings, today=None) -> HostPlan:
    """Decide what this host gets. Never raises for a host's own condition: it is in the status."""
    warnings = list(gpu_state.get("warnings", []))
    try:
        gpus = list(settings.target_gpus) or detected_gpus(gpu_state)
    except GpuhostError as exc:
        return HostPlan("failed", str(exc), [], warnings=warnings)
    if not gpus:
        status = "skipped" if settings.no_gpu == "skip" else "failed"
        return HostPlan(status, NO_GPU, [], warnings=warnings)
    driver = gpu_state.get("driver") or {}
    try:
        plan = resolve(gpus, current_driver=driver.get("version"), policy=settings.policy,
                       current_kernel_module=driver.get("flavour"), os=_os_name(host_state), today=today,
                       served_branches=served_branches(host_state or {}, getattr(getattr(settings, "driver", None), "source", None)),
                       arch=(host_state or {}).get("arch"))
    except GpuhostError as exc:
        return HostPlan("failed", str(exc), gpus, warnings=warnings)
    mirrored = through_mirror(plan.image.tag, settings.mirror)  # the image's registry, cached by the mirror
    if mirrored:
        plan.image = replace(plan.image, tag=mirrored, origin=plan.image.tag)
    return HostPlan("planned", None, gpus, plan, warnings + plan.warnings)
