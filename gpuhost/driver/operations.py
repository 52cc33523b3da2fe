"""pyinfra operations that install and pin the NVIDIA driver from a `DriverSource`.

Each operation reads the facts it needs, yields only what is missing and calls `host.noop()`
otherwise, so a converged host gets zero commands. Every apt-get call waits a bounded time
for the apt/dpkg lock (`-o DPkg::Lock::Timeout=N`) and then fails with one clear line.
"""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File, Sha1File
from pyinfra.facts.rpm import RpmPackages
from pyinfra.operations import systemd

from facts.managed import KeyringFingerprints
from gpuhost.driver.sources import DriverSource, Repository
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
             remove: tuple[str, ...] = ()):
    """
    Install the driver packages of the source's branch and flavour, and hold them.

    + source: the host's `DriverSource`
    + held: packages currently held (HostState's held_packages)
    + lock_timeout: seconds to wait for the apt/dpkg lock before failing
    + remove: packages of another driver stack to purge first (named by the stage beforehand)

    Packages of another branch or flavour of the same source are removed in the same run; our
    own holds are moved, not broken: unhold, remove/install, hold. `apt-get update` runs only
    when something will be installed. The CUDA repository's branch pinning package is installed
    in its own step before the driver, as NVIDIA's installation guide says: otherwise apt
    resolves the driver before the pin exists and the newest branch can win.

    **Example:**

    .. code:: python

        driver.packages(name="NVIDIA driver packages", source=src, held=["nvidia-open"])
    """
    commands = package_commands(source, _installed(source.package_manager), held, lock_timeout, remove)
    if not commands:
        host.noop(f"driver module stream {source.module_stream} installed and locked" if source.package_manager == "dnf"
                  else f"driver packages installed and held: {', '.join(source.packages)}")
    yield from commands


def package_commands(source: DriverSource, installed: dict, held, lock_timeout: int = 300,
                     remove: tuple[str, ...] = ()) -> list[str]:
    """What `packages` runs, from the installed packages and holds ([] when converged). Pure.

    `remove`: another driver stack's packages to purge in the same run (gpuhost.driver.safety)."""
    held = set(held)
    if source.package_manager == "dnf":
        return _dnf_packages(source, installed, held)
    missing = [p for p in source.packages if p not in installed]
    replaced = sorted(set(source.replaced(installed)) | {p for p in remove if p in installed})
    if not missing and not replaced:
        unheld = [p for p in source.packages if p not in held]
        return [f"apt-mark hold {' '.join(unheld)}"] if unheld else []
    moving = [p for p in (*replaced, *source.packages) if p in held]
    commands = [f"apt-mark unhold {' '.join(moving)}"] if moving else []
    if replaced:
        commands.append(apt_get(f"purge {' '.join(replaced)}", lock_timeout))
    commands.append(apt_get("update", lock_timeout))
    options = "" if source.install_recommends else "--no-install-recommends "
    pin = source.pin_package
    if pin and (pin in missing or pin in replaced):
        commands.append(apt_get(f"install {options}{pin}", lock_timeout))
    driver = [p for p in source.packages if p != pin]
    return commands + [apt_get(f"install {options}{' '.join(driver)}", lock_timeout),
                       f"apt-mark hold {' '.join(source.packages)}"]


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
def fabric_manager(source: DriverSource, lock_timeout: int = 300):
    """
    Install and enable NVIDIA Fabric Manager (and NSCQ) of exactly the installed driver's version.

    + source: the host's `DriverSource` (its driver package carries the driver's version; the
      fabric manager package names depend on the branch and the distribution)
    + lock_timeout: seconds to wait for the apt/dpkg lock

    **Example:**

    .. code:: python

        driver.fabric_manager(name="Fabric manager", source=src)
    """
    installed = _installed("apt")
    commands = fabric_manager_commands(source, installed, lock_timeout)
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
    whose version ('580-5') is not a driver version."""
    return next((_upstream(v) for v in installed.get(source.driver_package, [])
                 if _upstream(v).startswith(source.branch + ".")), None)


def fabric_manager_commands(source: DriverSource, installed: dict, lock_timeout: int = 300) -> list[str]:
    """What `fabric_manager` runs ([] when it matches the installed driver, or nothing to match). Pure."""
    upstream = driver_upstream_version(source, installed)
    if not source.fabric_manager or upstream is None:
        return []
    if all(any(_upstream(v) == upstream for v in installed.get(p, [])) for p in source.fabric_manager):
        return []
    names = " ".join(source.fabric_manager)
    return [f"apt-mark unhold {names} >/dev/null 2>&1 || true",
            apt_get("install --allow-downgrades " + " ".join(f"{p}={upstream}-*" for p in source.fabric_manager),
                    lock_timeout),
            f"apt-mark hold {names}",
            "systemctl enable nvidia-fabricmanager"]
