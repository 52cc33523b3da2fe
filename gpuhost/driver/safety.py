"""Whether the driver stage may change this host, decided before anything is touched. Pure.

`decide()` reads the host's facts, settings and plan and returns blockers (the stage stops
the host with them, one line each, naming the fix) and notes (reported, nothing stops).
"""

from __future__ import annotations

import re
from collections import Counter
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
    keep: bool = False  # leave the installed driver as it is (policy), changing nothing

    @property
    def ok(self) -> bool:
        return not self.blockers


def gpu_attached(gpu_state: dict) -> bool:
    return bool(gpu_state.get("gpus"))


def decide(settings, gpu_state: dict, host_state: dict, plan, source: DriverSource | None,
           gpu_containers=(), headers_unavailable: str | None = None) -> Decision:
    """Blockers and notes for one planned host. `plan` is a resolver Plan; `gpu_containers` the running
    containers given GPUs (facts.container: workspaces among them), GPU work like processes;
    `headers_unavailable` the running kernel's headers package when it is neither installed nor
    offered by the repositories (the stage asks them only when DKMS builds the module)."""
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
        if headers_unavailable:
            message = (f"no kernel headers for the running kernel {host_state.get('kernel')} "
                       f"({headers_unavailable} is not installed and the repositories offer none): DKMS "
                       f"cannot build the driver for it")
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
        found = lock.get("holders") or []
        # one process holding several locks (dpkg: lock-frontend and lock) is named once
        holders = ", ".join(dict.fromkeys(f"{h.get('command') or '?'} (pid {h.get('pid') or '?'})" for h in found))
        package_tool = any((h.get("command") or "").startswith(PACKAGE_TOOLS) for h in found)
        running = "dpkg is busy: " if lock.get("dpkg_running") and package_tool else ""
        notes.append(f"{running}the apt/dpkg lock is held by {holders or 'another process'}: waiting up to "
                     f"{settings.driver.lock_timeout}s for it")
    return decision


# Processes that hold the apt/dpkg locks to change packages (unattended-upgrades' name is cut to 15
# characters by the kernel); another process holding a lock file is "another process", not dpkg at work.
PACKAGE_TOOLS = ("dpkg", "apt", "unattended-upgr", "aptitude", "packagekitd", "synaptic")


# Driver packages whose version is the driver's own (535.261.03-1, 580.95.05-1): the driver stack.
# Toolkit (1.17.8-1), CUDA libraries (12.4.x) and Debian's helper packages (20220217+3) do not match.
DRIVER_VERSION_RE = re.compile(r"^(?:\d+:)?(\d{3})\.\d+")
DRIVER_PACKAGE_RE = re.compile(r"^(nvidia|libnvidia|cuda-drivers|xserver-xorg-video-nvidia|firmware-nvidia|"
                               r"linux-modules-nvidia|libegl-nvidia|libglx-nvidia|libgl1-nvidia|libcuda|libxnvctrl)")
PINNING_RE = re.compile(r"^nvidia-driver-pinning-(\d+)$")


@dataclass(frozen=True)
class InstalledDriver:
    """A driver on the host that the plan did not put there: a runfile install, or packages of
    another branch (a user's held pinning package, Debian's own nvidia-driver)."""

    kind: str  # runfile | packages
    branches: tuple[str, ...]
    version: str | None = None
    packages: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    uninstaller: str | None = None

    def describe(self) -> str:
        if self.kind == "runfile":
            return f"runfile driver {self.version or '(version unknown)'} ({self.uninstaller})"
        shown = ", ".join(self.packages[:4]) + (f" and {len(self.packages) - 4} more" if len(self.packages) > 4 else "")
        held = f", held: {', '.join(self.held)}" if self.held else ""
        return f"R{'/R'.join(self.branches)} packages {self.version or ''} ({shown}{held})".replace("  ", " ")

    def label(self) -> str:
        """Short form for the fleet table."""
        if self.kind == "runfile":
            return f"{self.version or '?'} runfile"
        return f"R{'/R'.join(self.branches)} pkgs" + (" held" if self.held else "")


def package_branch(name: str, version: str) -> str | None:
    """The driver branch a package belongs to ('535'), or None for packages that are no driver's."""
    pinning = PINNING_RE.match(name)
    if pinning:
        return pinning.group(1)
    match = DRIVER_VERSION_RE.match(version)
    return match.group(1) if match and DRIVER_PACKAGE_RE.match(name) else None


def other_driver(managed: dict, host_state: dict, gpu_state: dict, branch: str | None) -> InstalledDriver | None:
    """What driver is installed that is not of `branch` (the plan's): a runfile driver first. Pure."""
    runfile = (host_state or {}).get("runfile_driver")
    if runfile:
        version = runfile.get("version") or (gpu_state.get("driver") or {}).get("version")
        return InstalledDriver("runfile", (version.split(".")[0],) if version else (), version,
                               uninstaller=runfile.get("uninstaller"))
    found = {}
    for name, versions in (managed.get("packages") or {}).items():
        for version in versions:
            other = package_branch(name, version)
            if other and other != branch:
                found[name] = (other, version)
    if not found:
        return None
    held = set((host_state or {}).get("held_packages") or [])
    branches = tuple(sorted({b for b, _ in found.values()}))
    # the driver's version: the one most of its packages have (Debian's helpers lag behind)
    versions = Counter(v for name, (_, v) in found.items() if not PINNING_RE.match(name)).most_common(1)
    return InstalledDriver("packages", branches, versions[0][0] if versions else None,
                           tuple(sorted(found)), tuple(sorted(p for p in found if p in held)))


def existing_driver_decision(existing: InstalledDriver | None, settings, wanted: str) -> Decision:
    """Refuse, replace or move the driver already there, saying which in one line. Pure.

    A runfile driver is never mixed with packages: refused with nvidia-uninstall as the fix,
    unless host data says runfile_driver: replace. Packages of another branch (or another
    source's stack) are moved to the plan's driver when allow_driver_change is true (the
    default), named with their holds; otherwise kept: the stage changes nothing and says how
    to plan for them."""
    decision = Decision()
    if existing is None:
        return decision
    if existing.kind == "runfile":
        if settings.driver.runfile_driver == "replace":
            decision.notes.append(f"replacing the {existing.describe()} with {wanted} (runfile_driver: replace): "
                                  f"{existing.uninstaller} --silent first")
        else:
            decision.blockers.append(
                f"a driver installed with NVIDIA's runfile is present: {existing.describe()}; gpuhost does not "
                f"install packages over it: run '{existing.uninstaller or 'nvidia-uninstall'}' on the host and "
                f"re-run, or set host data runfile_driver: replace")
    elif settings.policy.allow_driver_change:
        decision.notes.append(f"moving from the installed {existing.describe()} to {wanted}: unhold and purge them, "
                              f"then install and hold the new packages")
    else:
        decision.keep = True
        decision.notes.append(
            f"keeping the installed {existing.describe()} (allow_driver_change: false), not {wanted}: set "
            f"driver_branch: \"{existing.branches[0]}\" to plan for it, or allow_driver_change: true to move")
    return decision
