"""Whether the driver stage may change this host, decided before anything is touched. Pure.

`decide()` reads the host's facts, settings and plan and returns blockers (the stage stops
the host with them, one line each, naming the fix) and notes (reported, nothing stops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuhost.driver.sources import DriverSource

SECURE_BOOT_OPTIONS = (
    "Secure Boot is enabled and driver source {source!r} builds unsigned kernel modules (DKMS), which the "
    "kernel would refuse to load. Options: (1) on Ubuntu use driver_source: ubuntu (Canonical-signed "
    "precompiled modules); (2) enrol a Machine Owner Key (mokutil --import <DKMS key>, confirm at the next "
    "boot) and set host data secure_boot_mok: true; (3) disable Secure Boot in the firmware"
)


@dataclass
class Decision:
    blockers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.blockers


def gpu_attached(gpu_state: dict) -> bool:
    return bool(gpu_state.get("gpus"))


def decide(settings, gpu_state: dict, host_state: dict, plan, source: DriverSource | None,
           gpu_containers=()) -> Decision:
    """Blockers and notes for one planned host. `plan` is a resolver Plan; `gpu_containers` the running
    containers given GPUs (facts.container: workspaces among them), GPU work like processes."""
    decision = Decision()
    blockers, notes = decision.blockers, decision.notes
    driver = gpu_state.get("driver") or {}
    action = plan.driver.action
    changes_driver = action in ("install", "upgrade")
    processes = gpu_state.get("processes") or []
    lock = host_state.get("package_lock") or {}

    if host_state.get("package_manager") not in ("apt-get", "apt", "dnf"):
        blockers.append(f"package manager {host_state.get('package_manager')!r} is not supported by the driver "
                        f"stage: use Ubuntu 22.04/24.04, Debian 12 or RHEL/Rocky 8/9")
    if lock.get("dpkg_interrupted"):  # gpuhost.run.dpkg repairs it before this stage runs
        notes.append("dpkg was interrupted: dpkg --configure -a runs first")
    work = ([f"{p.get('process_name')} (pid {p.get('pid')})" for p in processes]
            + [f"container {c.get('name') or c.get('id')}" for c in gpu_containers])[:5]
    if work and (changes_driver or settings.reboot == "auto") and not settings.driver.force:
        listed = ", ".join(work)
        blockers.append(f"GPU processes are running ({listed}): refusing to {action} the driver or reboot; "
                        f"stop them, or set host data force: true to go ahead anyway")
    if source is not None and source.builds_modules and changes_driver:
        secure_boot = (host_state.get("secure_boot") or {}).get("state")
        if secure_boot == "enabled" and not settings.driver.secure_boot_mok:
            blockers.append(SECURE_BOOT_OPTIONS.format(source=source.name))
        headers = host_state.get("kernel_headers") or {}
        if not headers.get("installable"):
            message = (f"no kernel headers for the running kernel {host_state.get('kernel')} "
                       f"({headers.get('package') or 'linux-headers'} has no candidate): DKMS cannot build the "
                       f"driver for it")
            if gpu_attached(gpu_state):
                blockers.append(message + "; install that kernel's headers or boot a kernel that has them")
            else:  # image build on a CPU machine: modules are built for the installed kernels
                notes.append(message + " (no GPU attached: preparing an image, not loading the driver)")
    if driver.get("mismatch"):
        notes.append(f"driver/library mismatch: kernel module {driver.get('kernel_module_version')}, NVML "
                     f"library {driver.get('library_version')}: reboot required")
    if (host_state.get("reboot") or {}).get("required"):
        notes.append("reboot required (the host reports a pending reboot)")
    if lock.get("held"):
        holders = ", ".join(f"{h.get('command')} (pid {h.get('pid')})" for h in lock.get("holders") or [])
        running = "dpkg is busy: " if lock.get("dpkg_running") else ""
        notes.append(f"{running}the apt/dpkg lock is held by {holders or 'another process'}: waiting up to "
                     f"{settings.driver.lock_timeout}s for it")
    return decision
