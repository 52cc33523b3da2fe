"""The driver stage: bring the host's NVIDIA driver to what its plan says, or stop it with the reason.

Reads like a runbook: choose the source, check the safety gates, then repository, kernel
headers (DKMS only), packages with their holds, nouveau blacklist + initramfs, persistence
daemon, fabric manager (NVSwitch hosts), and the reboot the policy allows.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.operations import server

from gpuhost.driver_safety import decide, gpu_attached
from gpuhost.driver_sources import select_source
from gpuhost.errors import GpuhostError
from gpuhost.operations import driver
from gpuhost.stages.stop import stop_host


def driver_stage(ctx) -> None:
    """Add the driver stage's operations for the current host (planned hosts only)."""
    if ctx.host_plan.status != "planned":
        return
    plan = ctx.host_plan.plan
    wanted = plan.driver
    if wanted.action == "keep":
        logger.info(f"[{host.name}] driver {wanted.current} kept ({wanted.kernel_module} modules)")
        if (ctx.gpu_state.get("driver") or {}).get("mismatch"):
            logger.warning(f"[{host.name}] driver/library mismatch: reboot required")
        return

    settings = ctx.settings.driver
    try:
        source = select_source(ctx.host_state, wanted.branch, wanted.kernel_module, settings.source,
                               settings.repository, settings.repository_key, settings.repository_fingerprint)
    except GpuhostError as exc:
        stop_host(str(exc))
        return
    decision = decide(ctx.settings, ctx.gpu_state, ctx.host_state, plan, source)
    for note in decision.notes:
        logger.warning(f"[{host.name}] {note}")
    if decision.blockers:
        stop_host("; ".join(decision.blockers))
        return

    lock_timeout = settings.lock_timeout
    driver.repository(name=f"Driver repository ({source.name})", source=source)
    headers = ctx.host_state.get("kernel_headers") or {}
    if source.builds_modules and source.package_manager == "apt" and headers.get("candidate") \
            and not headers.get("installed"):
        driver.headers(name="Kernel headers and DKMS", package=headers["package"], lock_timeout=lock_timeout)
    installed = driver.packages(
        name=f"Driver packages R{source.branch} {source.flavour} (installed and held)",
        source=source, held=list(ctx.host_state.get("held_packages") or []), lock_timeout=lock_timeout)
    driver.nouveau_blacklist(name="Blacklist nouveau (initramfs rebuilt when changed)",
                             package_manager=source.package_manager)
    running = gpu_attached(ctx.gpu_state) and bool((ctx.gpu_state.get("driver") or {}).get("loaded"))
    if source.persistenced:
        driver.persistenced(name="Persistence daemon enabled", service=source.persistenced, running=running)
    if ctx.gpu_state.get("needs_fabric_manager"):
        if source.fabric_manager and source.package_manager == "apt":
            driver.fabric_manager(name="Fabric manager of the driver's version", source=source,
                                  lock_timeout=lock_timeout)
        else:
            logger.warning(f"[{host.name}] NVSwitch present but driver source {source.name} has no fabric manager "
                           f"package: install it by hand")

    if ctx.settings.reboot == "auto" and gpu_attached(ctx.gpu_state):
        server.reboot(name="Reboot to load the new driver", _if=installed.did_change)
        server.shell(name="The new driver module is loaded",
                     commands=["grep -q 'Kernel Module' /proc/driver/nvidia/version || "
                               "{ echo 'gpuhost: after the reboot no nvidia kernel module is loaded' >&2; exit 1; }"],
                     _if=installed.did_change)
    else:
        server.shell(name="Reboot required (reboot: never)",
                     commands=["touch /var/run/reboot-required; "
                               "echo 'gpuhost: reboot required to load the new driver (reboot policy: never)'"],
                     _if=installed.did_change)
