"""The driver stage: bring the host's NVIDIA driver to what its plan says, or stop it with the reason.

Reads like a runbook: choose the source, check the safety gates, then repository, kernel
headers (DKMS only), packages with their holds, nouveau blacklist + initramfs, persistence
daemon, fabric manager (NVSwitch hosts), and the reboot the policy allows.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.operations import server

from facts.driver_offer import DriverOffer
from gpuhost.run.converged import file_current, unit_ok
from gpuhost.run.keys import choose_source, keyring_trusted
from gpuhost.driver.safety import SECURE_BOOT_OPTIONS, decide, existing_driver_decision, gpu_attached, other_driver
from gpuhost.driver.sources import select_source
from gpuhost.errors import GpuhostError
from gpuhost.driver import operations as driver
from gpuhost.monitoring.stage import exporters_started, exporters_stopped
from gpuhost.run.stop import stop_host
from gpuhost.run.summary import record_driver_in_place


def driver_stage(ctx) -> list:
    """Add the driver stage's operations for the current host (planned hosts only); returns them."""
    if ctx.host_plan.status != "planned":
        return []
    plan = ctx.host_plan.plan
    wanted = plan.driver
    if wanted.action == "keep":
        logger.info(f"[{host.name}] driver {wanted.current} kept ({wanted.kernel_module} modules)")
        if (ctx.gpu_state.get("driver") or {}).get("mismatch"):
            logger.warning(f"[{host.name}] driver/library mismatch: reboot required")
        return []

    settings = ctx.settings.driver
    try:
        source = select_source(ctx.host_state, wanted.branch, wanted.kernel_module, settings.source,
                               settings.repository, settings.repository_key, settings.repository_fingerprint,
                               nvswitch=bool(ctx.gpu_state.get("needs_fabric_manager")))
    except GpuhostError as exc:
        stop_host(str(exc))
        return []
    if not driver_pending(ctx, source):
        logger.info(f"[{host.name}] driver R{source.branch} {source.flavour} from {source.name}: in place")
        record_driver_in_place(host.name, f"R{source.branch} {source.flavour}")
        if gpu_attached(ctx.gpu_state) and not (ctx.gpu_state.get("driver") or {}).get("loaded"):
            missing = _missing_headers(ctx, source)
            logger.warning(f"[{host.name}] the driver is installed but not loaded: "
                           + (f"DKMS needs {missing} to build it for this kernel: install it, then reboot"
                              if missing else "reboot the host"))
        return []
    existing = other_driver(ctx.managed, ctx.host_state, ctx.gpu_state, source.branch)
    headers = _missing_headers(ctx, source)
    headers_offered = bool(headers) and _offered(headers)
    decision = decide(ctx.settings, ctx.gpu_state, ctx.host_state, plan, source,
                      ctx.container_state.get("gpu_containers") or (),
                      headers_unavailable=headers if headers and not headers_offered else None)
    found = existing_driver_decision(existing, ctx.settings, f"R{source.branch} {source.flavour} from {source.name}")
    decision.blockers += found.blockers
    decision.notes += found.notes
    choice = _repository_choice(ctx, source)
    if choice and choice.line:
        decision.notes.append(choice.line)
    if choice and choice.blocker:
        decision.blockers.append(choice.blocker)
    for note in decision.notes:
        logger.warning(f"[{host.name}] {note}")
    if decision.blockers:
        stop_host("; ".join(decision.blockers))
        return []
    if found.keep:
        return []

    lock_timeout = settings.lock_timeout
    paused = exporters_stopped(ctx)  # GPU exporters hold GPU handles: stopped around the change
    bounds = ctx.settings.bounds
    install = bounds.install_timeout + lock_timeout  # the long steps: apt waits for the lock, then installs
    ops = [driver.repository(name=f"Driver repository ({source.name})", source=source,
                             adopt=choice.adopt if choice else None, set_aside=choice.set_aside if choice else ())]
    if existing and existing.kind == "runfile":
        ops.append(driver.runfile_uninstall(name=f"Remove the runfile driver {existing.version or ''}".strip(),
                                            uninstaller=existing.uninstaller, _timeout=install))
    if headers_offered and source.package_manager == "apt":
        ops.append(driver.headers(name="Kernel headers and DKMS", package=headers, lock_timeout=lock_timeout,
                                  _timeout=install))
    nvswitch, nvlink5, imex = fabric_needs(ctx, source)
    if nvswitch and not source.nvlink5 and any(g.compute_capability.startswith("10.") for g in ctx.host_plan.gpus):
        logger.warning(f"[{host.name}] NVLink5 host: driver source {source.name} has no nvlsm/infiniband-diags "
                       f"(NVIDIA's subnet manager): set driver_source: cuda to install them")
    packages = driver.packages(
        name=f"Driver packages R{source.branch} {source.flavour} (installed and held)",
        source=source, held=list(ctx.host_state.get("held_packages") or []), lock_timeout=lock_timeout,
        remove=existing.packages if existing else (), expected=_data_version(source.branch),
        exact_extras=(*(source.fabric_manager if nvswitch else ()), *(source.imex if imex else ())),
        extras=source.nvlink5 if nvlink5 else (), unsigned_refused=_unsigned_refused(ctx, source), _timeout=install)
    ops += [packages, driver.nouveau_blacklist(name="Blacklist nouveau (initramfs rebuilt when changed)",
                                               package_manager=source.package_manager)]
    if source.persistenced:
        ops.append(driver.persistenced(name="Persistence daemon enabled", service=source.persistenced,
                                       running=_persistenced_runs(ctx)))
    if nvswitch:
        if source.fabric_manager:
            ops.append(driver.fabric_manager(name="Fabric manager of the driver's version" + (
                " (and nvlsm" + (", IMEX)" if imex else ")") if nvlink5 else ""), source=source,
                lock_timeout=lock_timeout, nvlink5=nvlink5, imex=imex, _timeout=install))
        else:
            logger.warning(f"[{host.name}] NVSwitch present but driver source {source.name} has no fabric manager "
                           f"package: install it by hand")

    if ctx.settings.reboot == "auto" and gpu_attached(ctx.gpu_state):
        server.reboot(name="Reboot to load the new driver", reboot_timeout=bounds.reboot_timeout,
                      _timeout=bounds.reboot_timeout + 60, _if=packages.did_change)
        server.shell(name="The new driver module is loaded",
                     commands=["grep -q 'Kernel Module' /proc/driver/nvidia/version || "
                               "{ echo 'gpuhost: after the reboot no nvidia kernel module is loaded' >&2; exit 1; }"],
                     _if=packages.did_change)
    else:
        server.shell(name="Reboot required (reboot: never)",
                     commands=["touch /var/run/reboot-required; "
                               "echo 'gpuhost: reboot required to load the new driver (reboot policy: never)'"],
                     _if=packages.did_change)
    exporters_started(paused)
    return ops


def _repository_choice(ctx, source):
    """Adopt or replace a source another tool wrote for the driver's repository (pinned keys only)."""
    repo = source.repository
    if repo is None or not repo.fingerprint or source.package_manager != "apt":
        return None
    return choose_source(ctx.managed, repo.url, repo.fingerprint, repo.sources_file, repo.keyring)


def driver_pending(ctx, source) -> list[str]:
    """What the snapshot does not show in place yet ([]: the stage has nothing to do)."""
    managed, pending = ctx.managed, []
    repo = source.repository
    choice = _repository_choice(ctx, source)
    if choice and choice.set_aside:
        pending += [f"set aside {path}" for path in choice.set_aside]
    if repo is not None and not (choice and choice.adopt):
        if repo.fingerprint and not keyring_trusted(managed, repo.keyring, repo.fingerprint):
            pending.append(f"keyring {repo.keyring}")
        if not file_current(managed, repo.sources_file, driver.repository_text(source)):
            pending.append(repo.sources_file)
    existing = other_driver(managed, ctx.host_state, ctx.gpu_state, source.branch)
    if existing:
        pending.append(existing.describe())
    if driver.package_commands(source, managed["packages"], ctx.host_state.get("held_packages") or []):
        pending.append("driver packages and holds")
    if not file_current(managed, driver.NOUVEAU_BLACKLIST_PATH, driver.NOUVEAU_BLACKLIST):
        pending.append("nouveau blacklist")
    if source.persistenced and not unit_ok(managed, source.persistenced, _persistenced_runs(ctx)):
        pending.append(source.persistenced)
    nvswitch, nvlink5, imex = fabric_needs(ctx, source)
    if nvswitch and driver.fabric_manager_commands(source, managed["packages"], nvlink5=nvlink5, imex=imex):
        pending.append("fabric manager")
    return pending


def fabric_needs(ctx, source) -> tuple[bool, bool, bool]:
    """(NVSwitch: fabric manager, NVLink5: nvlsm and infiniband-diags, NVL72: IMEX) for this host.

    NVLink5 is the NVSwitch fabric of Blackwell data-center GPUs (compute capability 10.x: HGX
    B200/B300, GB200/GB300); NVL72 racks are its Grace (aarch64) systems. NVIDIA's driver
    container installs nvlsm/infiniband-diags and IMEX with the driver (driver_sources.yaml
    gdc-nvlink5); here they go only where that hardware is."""
    nvswitch = bool(ctx.gpu_state.get("needs_fabric_manager"))
    gpus = ctx.host_plan.gpus if ctx.host_plan else []
    nvlink5 = nvswitch and any(g.compute_capability.startswith("10.") for g in gpus) and bool(source.nvlink5)
    imex = nvlink5 and ctx.host_state.get("arch") == "aarch64" and bool(source.imex)
    return nvswitch, nvlink5, imex


def _unsigned_refused(ctx, source) -> str | None:
    """The Secure Boot line when DKMS modules (Ubuntu's fallback) could not be loaded on this host."""
    secure_boot = (ctx.host_state.get("secure_boot") or {}).get("state")
    if source.modules and secure_boot == "enabled" and not ctx.settings.driver.secure_boot_mok:
        return SECURE_BOOT_OPTIONS.format(source=source.name)
    return None


def _data_version(branch: str) -> str | None:
    """The branch's version the matrix names (its first release): the repository may offer newer ones."""
    from gpuhost.plan.matrix import load_matrix  # noqa: PLC0415 (the matrix file is read only when installing)

    known = load_matrix().branch(int(branch))
    return str(known.first_version) if known and known.first_version else None


def _missing_headers(ctx, source) -> str | None:
    """The running kernel's headers package when DKMS builds the module and they are not installed."""
    headers = ctx.host_state.get("kernel_headers") or {}
    if source.builds_modules and headers.get("package") and not (headers.get("installed")
                                                                  or headers.get("package_installed")):
        return headers["package"]
    return None


def _offered(package: str) -> bool:
    """Whether the host's repositories offer `package`. Not in the snapshot: asked only here, when
    the stage has work and DKMS needs the headers (one more command; apt-cache costs a converged
    host more than the rest of its snapshot's host part)."""
    return any(host.get_fact(DriverOffer, names=[package], prefixes=[])["versions"].values())


def _persistenced_runs(ctx) -> bool:
    """Start the persistence daemon now only when a GPU and its loaded driver are present."""
    return gpu_attached(ctx.gpu_state) and bool((ctx.gpu_state.get("driver") or {}).get("loaded"))
