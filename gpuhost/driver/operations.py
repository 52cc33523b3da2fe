"""pyinfra operations that install and pin the NVIDIA driver from a `DriverSource`.

Each operation reads the facts it needs, yields only what is missing and calls `host.noop()`
otherwise, so a converged host gets zero commands. Every apt-get call waits a bounded time
for the apt/dpkg lock (`-o DPkg::Lock::Timeout=N`) and then fails with one clear line.
"""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File, Sha1File
from pyinfra.facts.rpm import RpmPackages
from pyinfra.operations import systemd

from facts.driver_offer import DriverOffer
from facts.managed import KeyringFingerprints
from gpuhost.driver.offer import Chosen, NotOffered, Offer, choose
from gpuhost.driver.sources import DriverSource, Repository
from gpuhost.run.stop import stop_command
from gpuhost.run.keys import pinned_key_script, set_aside_script

NOUVEAU_BLACKLIST_PATH = "/etc/modprobe.d/blacklist-nouveau.conf"
NOUVEAU_BLACKLIST = "# written by gpuhost: the NVIDIA driver needs nouveau unloaded\nblacklist nouveau\noptions nouveau modeset=0\n"
INITRAMFS = {
    "apt": "update-initramfs -u -k all",
    "dnf": "dracut -f --regenerate-all",
}


def apt_get(args: str, lock_timeout: int) -> str:
    """apt-get that waits up to lock_timeout s for the apt and dpkg locks, then fails saying so in one line.

    `DPkg::Lock::Timeout` covers dpkg's lock only: apt-get update fails at once while another
    update holds /var/lib/apt/lists/lock (apt-daily), so a lock error is retried until the time is up."""
    return (
        f"end=$(( $(date +%s) + {lock_timeout} )); "
        "while :; do left=$(( end - $(date +%s) )); [ $left -gt 0 ] || left=0; "
        f"out=$(DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=$left {args} 2>&1); rc=$?; "
        "if [ $rc -ne 0 ] && printf '%s' \"$out\" | grep -q 'Could not get lock' && [ $(date +%s) -lt $end ]; "
        "then sleep 2; continue; fi; break; done; "
        "printf '%s\\n' \"$out\"; "
        "if [ $rc -ne 0 ] && printf '%s' \"$out\" | grep -q 'Could not get lock'; then "
        f"echo 'gpuhost: the apt/dpkg lock was still held after {lock_timeout}s "
        "(see the holder above): re-run when it is free, or raise apt_lock_timeout' >&2; fi; exit $rc"
    )


def _installed(manager: str) -> dict:
    return dict(host.get_fact(DebPackages if manager == "apt" else RpmPackages) or {})


def _sources_text(repo: Repository) -> str:
    """A deb822 .sources file that trusts only the given keyring for this repository."""
    lines = [
        "# written by gpuhost (driver stage)",
        "Types: deb",
        f"URIs: {repo.url}",
        f"Suites: {' '.join(repo.suites)}",
    ]
    if repo.components:
        lines.append(f"Components: {' '.join(repo.components)}")
    lines.append(f"Signed-By: {repo.keyring}")
    return "\n".join(lines) + "\n"


def repository_text(source: DriverSource) -> str:
    """The .sources (apt) or .repo (dnf) file of the source's repository."""
    return (_sources_text if source.package_manager == "apt" else _yum_repo_text)(source.repository)


def _yum_repo_text(repo: Repository) -> str:
    return (f"# written by gpuhost (driver stage)\n[gpuhost-nvidia-cuda]\nname=NVIDIA CUDA\nbaseurl={repo.url}\n"
            f"enabled=1\ngpgcheck=1\nrepo_gpgcheck=0\ngpgkey=file://{repo.keyring}\n")


@operation()
def repository(source: DriverSource, adopt: str | None = None, set_aside: tuple[str, ...] = ()):
    """
    Add the driver's package repository, trusting only its pinned key.

    + source: the host's `DriverSource` (gpuhost.driver.sources.select_source)
    + adopt: a source file another tool wrote for this repository whose keyring holds exactly the
      pinned key (gpuhost.run.keys.choose_source): used as is, no second source is written
    + set_aside: others' conflicting source files, moved to /var/lib/gpuhost/backup once the key is checked

    The key is fetched, checked against the pinned fingerprint and written as its own keyring
    (its name carries the key id, so a rotated pin installs a new keyring); the repository is a
    deb822 `.sources` file with `Signed-By` (a `.repo` file with `gpgkey` on dnf). Nothing is
    downloaded when both are in place; `apt-get update` is left to `packages`.

    **Example:**

    .. code:: python

        driver.repository(name="NVIDIA driver repository", source=select_source(...))
    """
    repo = source.repository
    if repo is None:
        host.noop(f"driver source {source.name}: the distribution's own repositories")
        return
    changed = bool(set_aside)
    if adopt:
        if set_aside:
            yield set_aside_script(set_aside)
        else:
            host.noop(f"repository {repo.url}: {adopt} adopted")
        return
    # A keyring already at the path is trusted only when it holds exactly the pinned key. The key
    # is decided first: a refused key leaves the host's sources as they were (nothing set aside yet).
    if repo.fingerprint and host.get_fact(KeyringFingerprints, path=repo.keyring) != [repo.fingerprint]:
        changed = True
        # The distribution's and NVIDIA's own key URLs are https; any other was configured by the user.
        yield StringCommand(pinned_key_script(repo.key_url, repo.fingerprint, repo.keyring,
                                              allow_http=not repo.key_url.startswith("https://")))
        if source.package_manager == "dnf":
            yield f"rpm --import {shlex.quote(repo.keyring)}"
    if set_aside:
        yield set_aside_script(set_aside)
    text = repository_text(source)
    if host.get_fact(Sha1File, path=repo.sources_file) != hashlib.sha1(text.encode()).hexdigest():
        changed = True
        yield FileUploadCommand(StringIO(text), repo.sources_file)
    if not changed:
        host.noop(f"repository {repo.url} is configured")


@operation()
def packages(source: DriverSource, held: list[str] | tuple[str, ...] = (), lock_timeout: int = 300,
             remove: tuple[str, ...] = (), expected: str | None = None, exact_extras: tuple[str, ...] = (),
             extras: tuple[str, ...] = (), unsigned_refused: str | None = None):
    """
    Install the driver packages the repository really offers for the plan's branch, and hold them.

    + source: the host's `DriverSource`
    + held: packages currently held (HostState's held_packages)
    + lock_timeout: seconds to wait for the apt/dpkg lock before failing
    + remove: packages of another driver stack to purge first (named by the stage beforehand)
    + expected: the branch's version the data names (a newer point release offered is taken, and said)
    + exact_extras: packages that must be offered at the driver's exact version (fabric manager,
      NSCQ, IMEX: installed by `fabric_manager`), checked before anything is installed
    + extras: packages that must be offered at all (nvlsm, infiniband-diags on NVLink5 hosts)
    + unsigned_refused: the Secure Boot line to stop with when the only modules offered are DKMS
      (unsigned) ones (None: they may be built)

    apt: after `apt-get update` (the repository is in place by then) the repository's offer is
    read (facts.driver_offer.DriverOffer) and the versions chosen from it (gpuhost.driver.offer):
    the newest point release of the branch, at that exact version; NVIDIA's per-version pinning
    package when offered, else the branch's, installed alone first as NVIDIA's installation guide
    says; Ubuntu's modules of the kernel's linux-image metapackage flavour, or DKMS. When what the
    plan needs is not offered, the host stops with one line naming what is there: nothing is
    removed or installed. Packages of another branch or flavour are removed only then; our own
    holds are moved, not broken: unhold, remove/install, hold.

    **Example:**

    .. code:: python

        driver.packages(name="NVIDIA driver packages", source=src, held=["nvidia-open"])
    """
    installed = _installed(source.package_manager)
    commands = package_commands(source, installed, held, lock_timeout, remove)
    if not commands:
        host.noop(f"driver module stream {source.module_stream} installed and locked" if source.package_manager == "dnf"
                  else f"driver packages installed and held: {', '.join(present_packages(source, installed))}")
        return
    if source.package_manager == "dnf":
        if exact_extras or extras:  # the same gate as apt: what the fabric needs is offered, else nothing changes
            reading = host.get_fact(DriverOffer, names=["nvidia-driver", *exact_extras, *extras], prefixes=[])
            refused = dnf_fabric_refusal(source, {k: tuple(v) for k, v in reading["versions"].items()},
                                         exact_extras, extras)
            if refused:
                yield stop_command(refused)
                return
        yield from commands
        return
    yield from commands
    if "update 2>&1" not in commands[-1]:
        return  # only holds to add
    names, prefixes = offer_query(source, exact_extras, extras)
    reading = host.get_fact(DriverOffer, names=names, prefixes=prefixes)
    offer = Offer({k: tuple(v) for k, v in reading["versions"].items()}, frozenset(reading["names"]),
                  reading["kernel"], tuple(tuple(i) for i in reading["images"]))
    try:
        chosen = choose(source, offer, expected, extras, exact_extras)
    except NotOffered as exc:
        yield stop_command(str(exc))
        return
    if chosen.builds_modules and not source.builds_modules and unsigned_refused:
        yield stop_command(f"{'; '.join(chosen.notes)}; {unsigned_refused}")
        return
    for note in chosen.notes:
        logger.warning(f"[{host.name}] {note}")
    yield from install_commands(source, chosen, installed, held, lock_timeout, remove)


def dnf_fabric_refusal(source: DriverSource, versions: dict, exact_extras=(), extras=()) -> str | None:
    """dnf: the module stream installs the newest nvidia-driver of the branch; the fabric packages must be
    offered at exactly that version (`dnf list --showduplicates`), or the host stops before the stream
    is installed. Pure."""
    on_branch = [v for v in versions.get("nvidia-driver", ()) if _upstream(v).startswith(source.branch + ".")]
    where = source.repository.url if source.repository else "the host's repositories"
    if not on_branch:
        return f"{where} offers no nvidia-driver of R{source.branch}: set driver_branch to a branch it has"
    driver = _upstream(on_branch[0])
    for name in exact_extras:
        if not any(_upstream(v) == driver for v in versions.get(name, ())):
            have = ", ".join(versions.get(name, ())[:4]) or "no version"
            return f"{where} offers {name} {have}, not {driver} (the driver's version): set driver_branch to a branch whose fabric packages are published"
    for name in extras:
        if not versions.get(name):
            return f"the host's repositories offer no {name} (NVLink5 hosts need it): add the repository that has it"
    return None


def offer_query(source: DriverSource, exact_extras=(), extras=()) -> tuple[list[str], list[str]]:
    """(names for `apt-cache madison`, prefixes for `apt-cache pkgnames`) that `choose` needs."""
    names = [source.driver_package, *exact_extras, *extras]
    prefixes = []
    if source.pin_package:
        names.append(source.pin_package)
        prefixes.append(source.pin_package)
    if source.modules:
        prefixes.append(source.modules[0])
        names.append(source.modules[1])
    return names, prefixes


def present_packages(source: DriverSource, installed: dict) -> list[str]:
    """The installed packages that fulfil the source's set: its packages, a per-version pin for the
    branch's pin, Ubuntu's modules package of any kernel flavour (or DKMS). [] if one is missing."""
    present = []
    on_branch = any(_upstream(v).startswith(source.branch + ".") for v in installed.get(source.driver_package, []))
    for name in source.packages:
        if name in installed:
            present.append(name)
        elif name == source.pin_package:
            pin = next((p for p in sorted(installed) if p.startswith(f"nvidia-driver-pinning-{source.branch}.")), None)
            if pin:
                present.append(pin)
            elif not on_branch:  # a repository without the pin: the driver held on its branch is enough
                return []
        else:
            return []
    if source.modules:
        prefix, dkms = source.modules
        module = next((p for p in sorted(installed) if p == dkms or (p.startswith(prefix)
                                                                    and not p[len(prefix):][:1].isdigit())), None)
        if module is None:
            return []
        present.append(module)
    return present


def package_commands(source: DriverSource, installed: dict, held, lock_timeout: int = 300,
                     remove: tuple[str, ...] = ()) -> list[str]:
    """What `packages` runs before it reads the repository ([] when converged; only holds when just
    those are missing; else `apt-get update`, after which `install_commands` decides). Pure.

    `remove`: another driver stack's packages to purge in the same run (gpuhost.driver.safety)."""
    held = set(held)
    if source.package_manager == "dnf":
        return _dnf_packages(source, installed, held)
    present = present_packages(source, installed)
    replaced = set(source.replaced(installed, keep=present)) | {p for p in remove if p in installed}
    if present and not replaced:
        unheld = [p for p in present if p not in held]
        return [f"apt-mark hold {' '.join(unheld)}"] if unheld else []
    return [apt_get("update", lock_timeout)]


def install_commands(source: DriverSource, chosen: Chosen, installed: dict, held, lock_timeout: int = 300,
                     remove: tuple[str, ...] = ()) -> list[str]:
    """The install from what the repository offers (`chosen`), each package at its exact version. Pure."""
    held = set(held)
    names = [n for n, _ in ((chosen.pin,) if chosen.pin else ()) + chosen.driver]
    replaced = sorted(set(source.replaced(installed, keep=names)) | {p for p in remove if p in installed})
    moving = [p for p in (*replaced, *names) if p in held]
    commands = [f"apt-mark unhold {' '.join(moving)}"] if moving else []
    if replaced:
        commands.append(apt_get(f"purge {' '.join(replaced)}", lock_timeout))
    options = "" if source.install_recommends else "--no-install-recommends "
    if chosen.pin and chosen.pin[0] not in installed:
        commands.append(apt_get(f"install {options}{_spec(*chosen.pin)}", lock_timeout))
    # our own pin only where the repository has no pinning package for the branch; gone everywhere else
    commands.append(f"printf %s {shlex.quote(own_pin_text(chosen.version))} > {OWN_PIN_PATH}"
                    if source.pin_package and not chosen.pin else f"rm -f {OWN_PIN_PATH}")
    headers = [chosen.headers] if chosen.headers and chosen.headers not in installed else []
    commands += [apt_get(f"install {options}{' '.join([*headers, *(_spec(n, v) for n, v in chosen.driver)])}",
                         lock_timeout),
                 f"apt-mark hold {' '.join(names)}"]
    return commands


OWN_PIN_PATH = "/etc/apt/preferences.d/gpuhost-nvidia-driver-pin"


def own_pin_text(version: str) -> str:
    """What NVIDIA's per-version pinning package does (constrain the driver-versioned packages to one
    release, NVIDIA/gpu-driver-container ubuntu26.04/install.sh), for a repository that has none:
    without it, the driver's dependencies (nvidia-persistenced, ...) would resolve to a newer branch.
    The names are globs: apt ignores a version pin for `Package: *` (seen with apt 2.6.1)."""
    return ("# written by gpuhost: the repository has no pinning package for this driver release\n"
            f"Package: *nvidia* cuda-drivers*\nPin: version {version}-*\nPin-Priority: 1000\n")


def _spec(name: str, version: str | None) -> str:
    return f"{name}={version}" if version else name


def _dnf_packages(source: DriverSource, installed: dict, held: set) -> list[str]:
    """dnf: module stream for branch+flavour, versionlock for the hold."""
    stream = source.module_stream
    on_branch = any(v.split(":")[-1].startswith(source.branch + ".") for v in installed.get("nvidia-driver", []))
    if on_branch and source.flavour_package in installed:
        if any(h.startswith("nvidia-driver-") for h in held):
            return []
        return ["dnf -y versionlock add 'nvidia-*' 'cuda-drivers*'"]
    return ((["dnf -y versionlock delete 'nvidia-*' 'cuda-drivers*' || true"] if held else [])
            + ["dnf -y module reset nvidia-driver", f"dnf -y module install {shlex.quote(stream)}",
               "dnf -y versionlock add 'nvidia-*' 'cuda-drivers*'"])


@operation()
def runfile_uninstall(uninstaller: str = "/usr/bin/nvidia-uninstall"):
    """
    Remove a driver installed with NVIDIA's .run installer, with its own uninstaller.

    + uninstaller: HostState's runfile_driver.uninstaller

    Only on request (host data runfile_driver: replace): packages are never mixed with a
    runfile driver. `--silent` answers the uninstaller's questions with their defaults.

    **Example:**

    .. code:: python

        driver.runfile_uninstall(name="Remove the runfile driver", uninstaller="/usr/bin/nvidia-uninstall")
    """
    if not host.get_fact(File, path=uninstaller):
        host.noop(f"{uninstaller} is gone: no runfile driver to remove")
        return
    yield f"{shlex.quote(uninstaller)} --silent"


@operation()
def headers(package: str, lock_timeout: int = 300):
    """
    Install the kernel headers DKMS needs to build the driver for the running kernel.

    + package: e.g. linux-headers-6.8.0-85-generic (HostState kernel_headers.package)
    + lock_timeout: seconds to wait for the apt/dpkg lock

    **Example:**

    .. code:: python

        driver.headers(name="Kernel headers", package="linux-headers-6.8.0-85-generic")
    """
    installed = _installed("apt")
    wanted = [p for p in (package, "dkms") if p not in installed]
    if not wanted:
        host.noop(f"{package} and dkms are installed")
        return
    yield apt_get("update", lock_timeout)
    yield apt_get(f"install {' '.join(wanted)}", lock_timeout)


@operation()
def nouveau_blacklist(package_manager: str = "apt"):
    """
    Blacklist nouveau and rebuild the initramfs, the latter only when the blacklist changed.

    + package_manager: apt (update-initramfs) or dnf (dracut)

    **Example:**

    .. code:: python

        driver.nouveau_blacklist(name="Blacklist nouveau")
    """
    if host.get_fact(Sha1File, path=NOUVEAU_BLACKLIST_PATH) == hashlib.sha1(NOUVEAU_BLACKLIST.encode()).hexdigest():
        host.noop("nouveau is blacklisted")
        return
    yield FileUploadCommand(StringIO(NOUVEAU_BLACKLIST), NOUVEAU_BLACKLIST_PATH)
    tool = INITRAMFS[package_manager]
    yield (f"if command -v {tool.split()[0]} >/dev/null 2>&1; then {tool}; "
           f"else echo 'gpuhost: {tool.split()[0]} not found: no initramfs to rebuild'; fi")


@operation()
def persistenced(service: str = "nvidia-persistenced", running: bool = False):
    """
    Enable the persistence daemon (and start it when a GPU and its driver are present).

    + service: the systemd unit
    + running: start it now (False on image builds and before the reboot that loads the driver)

    **Example:**

    .. code:: python

        driver.persistenced(name="Persistence daemon", running=True)
    """
    yield from systemd.service._inner(service=service, enabled=True, running=running or None)


@operation()
def fabric_manager(source: DriverSource, lock_timeout: int = 300, nvlink5: bool = False, imex: bool = False):
    """
    Install, hold and enable NVIDIA Fabric Manager (and NSCQ) of exactly the installed driver's
    version; on NVLink5 hosts also NVIDIA's subnet manager (nvlsm, infiniband-diags), and IMEX at
    the driver's version on NVL72 (Grace) hosts, as NVIDIA's driver container installs them.

    + source: the host's `DriverSource` (its driver package carries the driver's version; the
      fabric manager package names depend on the branch and the distribution)
    + lock_timeout: seconds to wait for the apt/dpkg lock
    + nvlink5: the host's NVSwitches are NVLink5 (Blackwell data-center GPUs)
    + imex: an NVL72 host (Grace CPUs with NVLink5 GPUs)

    apt: `pkg=<version>-*` and `apt-mark hold`; dnf: `pkg-<version>` and `dnf versionlock add`.

    **Example:**

    .. code:: python

        driver.fabric_manager(name="Fabric manager", source=src)
    """
    installed = _installed(source.package_manager)
    commands = fabric_manager_commands(source, installed, lock_timeout, nvlink5, imex)
    if not commands:
        have = [f"{p} {installed[p][0]}" for p in source.fabric_manager if installed.get(p)]
        host.noop(f"{', '.join(have)} installed" if have
                  else "no fabric manager package or no installed driver version to match")
    yield from commands


def _upstream(version: str) -> str:
    """'580.95.05' from a Debian version ('580.95.05-1', '580.95.05-0ubuntu0.24.04.2', '1:580.95.05-1')."""
    return version.split(":")[-1].split("-")[0]


def driver_upstream_version(source: DriverSource, installed: dict) -> str | None:
    """The installed driver's version, from the driver package: never from the pinning package,
    whose version ('580-5') is not a driver version. dnf: the nvidia-driver package of the stream."""
    package = "nvidia-driver" if source.package_manager == "dnf" else source.driver_package
    return next((_upstream(v) for v in installed.get(package, [])
                 if _upstream(v).startswith(source.branch + ".")), None)


def fabric_manager_commands(source: DriverSource, installed: dict, lock_timeout: int = 300,
                            nvlink5: bool = False, imex: bool = False) -> list[str]:
    """What `fabric_manager` runs ([] when it matches the installed driver, or nothing to match). Pure."""
    upstream = driver_upstream_version(source, installed)
    exact = [*source.fabric_manager, *(source.imex if imex else ())]
    own = [p for p in (source.nvlink5 if nvlink5 else ()) if p not in installed]
    if not exact or upstream is None:
        return []
    if all(any(_upstream(v) == upstream for v in installed.get(p, [])) for p in exact) and not own:
        return []
    names = " ".join(exact)
    if source.package_manager == "dnf":
        return [f"dnf -y versionlock delete {names} >/dev/null 2>&1 || true",
                "dnf -y install " + " ".join([f"{p}-{upstream}" for p in exact] + own),
                f"dnf -y versionlock add {names}",
                "systemctl enable nvidia-fabricmanager"]
    return [f"apt-mark unhold {names} >/dev/null 2>&1 || true",
            apt_get("install --allow-downgrades " + " ".join([f"{p}={upstream}-*" for p in exact] + own),
                    lock_timeout),
            f"apt-mark hold {names}",
            "systemctl enable nvidia-fabricmanager"]
