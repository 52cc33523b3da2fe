"""What the host's configured repositories really offer, and the packages chosen from it. Pure.

The data files predict package names and versions; the repository decides. Once the driver's
repository is in place (and `apt-get update` has run), `facts.driver_offer.DriverOffer` reads
`apt-cache madison` / `apt-cache pkgnames` (apt) or `dnf list --showduplicates` (dnf) and the
installed kernel images (`dpkg -l 'linux-image-*'`); `choose()` picks from that:

- the driver version: the newest point release of the planned branch the repository offers,
  installed at that exact version and held (it may be newer than the data's first_version);
- the pinning package: NVIDIA's per-version pin (`nvidia-driver-pinning-<version>`, as
  NVIDIA/gpu-driver-container ubuntu26.04/install.sh pin_driver_version() installs it) when the
  repository has one, else the branch pin;
- Ubuntu's kernel modules as ubuntu-drivers-common decides them
  (canonical/ubuntu-drivers-common UbuntuDrivers/detect.py get_linux_modules_metapackage and
  kerneldetection.py, at d3d7856): the flavour comes from the installed linux-image-<flavour>
  metapackage of the kernel (HWE `generic-hwe-22.04`, `aws`, `azure-fde`, `nvidia-64k`, ...,
  `virtual` read as `generic`), the ABI-specific `linux-modules-nvidia-<b>-<abi>-<flavour>` must
  exist too, else the DKMS package `nvidia-dkms-<b>` is the fallback;
- fabric manager, NSCQ and IMEX at exactly the driver's version; nvlsm and infiniband-diags
  (versioned on their own) on NVLink5 hosts.

When what the plan needs is not offered, `choose()` returns one line naming what the repository
does offer and the setting that would work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# linux-image-6.8.0-40-generic / linux-image-unsigned-6.8.0-40-generic: an ABI image (kerneldetection.py's pattern)
ABI_IMAGE = re.compile(r"^linux-image-(?:unsigned-)?(\d+\.\d+\.\d+-\d+)-(.+)$")
# A kernel metapackage's version starts with its kernel's ABI: 6.8.0.40.40~22.04.3, 6.8.0-40.40~22.04.3,
# 4.15.0.1019.19 (Ubuntu's linux-meta packages are versioned after the ABI they depend on).
META_VERSION = re.compile(r"^(\d+\.\d+\.\d+)[.-](\d+)\.")
DRIVER_VERSION = re.compile(r"^(?:\d+:)?(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Offer:
    """One reading of the repositories: versions offered per package (madison / dnf order, newest
    first), package names known under the queried prefixes, the running kernel and the installed
    kernel images."""

    versions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    kernel: str = ""
    images: tuple[tuple[str, str], ...] = ()  # installed linux-image-* (name, version)

    def offered(self, name: str) -> bool:
        return bool(self.versions.get(name)) or name in self.names


@dataclass(frozen=True)
class Chosen:
    """What to install, each at an exact version: the pin first (alone), then the driver."""

    pin: tuple[str, str] | None  # (name, version)
    driver: tuple[tuple[str, str | None], ...]  # (name, version or None: apt resolves it from the driver's)
    version: str  # the driver's upstream version, e.g. 610.57.04
    extras: tuple[tuple[str, str | None], ...] = ()  # fabric manager, NSCQ, IMEX (exact), nvlsm (any)
    builds_modules: bool = False  # DKMS chosen (Ubuntu fallback)
    notes: tuple[str, ...] = ()
    headers: str | None = None  # the running kernel's headers, installed (not held) for a DKMS fallback

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in ((self.pin,) if self.pin else ()) + self.driver + self.extras)


class NotOffered(Exception):
    """What the plan needs is not in the repository: str() is the one line to stop the host with."""


def upstream(version: str) -> str:
    """'610.57.04' from '610.57.04-1ubuntu1', '1:580.95.05-1', '580.95.05-1.el9'."""
    match = DRIVER_VERSION.match(version)
    return match.group(1) if match else version


def kernel_metapackage(kernel: str, images) -> tuple[str | None, str | None]:
    """(flavour, ABI image suffix) of the running kernel as ubuntu-drivers-common reads them: the
    installed linux-image-<flavour> metapackage that tracks the kernel's ABI ('generic-hwe-22.04',
    'aws', 'nvidia-64k'; 'virtual' is read as 'generic'), and the ABI image's suffix
    ('6.8.0-40-generic'). (None, ...) when no installed metapackage tracks this kernel."""
    abi = re.match(r"^(\d+\.\d+\.\d+-\d+)-(.+)$", kernel or "")
    if not abi:
        return None, None
    running_abi, running_flavour = abi.groups()
    abi_images = {ABI_IMAGE.match(n).group(2): n for n, _ in images
                  if ABI_IMAGE.match(n) and ABI_IMAGE.match(n).group(1) == running_abi}
    suffix = kernel if running_flavour in abi_images else None
    metas = []
    for name, version in images:
        flavour = name.removeprefix("linux-image-")
        match = META_VERSION.match(version)
        if ABI_IMAGE.match(name) or not match or f"{match.group(1)}-{match.group(2)}" != running_abi:
            continue
        if flavour in ("extra-virtual",) or flavour.startswith("extra-"):
            continue
        metas.append(flavour)
        if suffix is None:  # an FDE or signed variant of the same ABI: 6.8.0-1021-azure-fde
            suffix = next((f"{running_abi}-{f}" for f in abi_images if flavour.startswith(f)), None)
    if not metas:
        return None, suffix
    # The metapackage of the running flavour (generic-hwe-22.04 for -generic), the longest name first
    # (azure-fde over azure when the image is the FDE one), as detect.py picks among reverse dependencies.
    image_flavour = (suffix or kernel)[len(running_abi) + 1:]
    ranked = sorted(metas, key=lambda f: (not f.startswith(image_flavour.replace("virtual", "generic")),
                                          f.startswith("virtual"), -len(f), f))
    chosen = ranked[0]
    return ("generic" if chosen == "virtual" else chosen), suffix


def ubuntu_modules(prefix: str, dkms: str, offer: Offer) -> tuple[str, bool, str]:
    """(package, is_dkms, why) for Ubuntu's kernel modules of one driver package family
    (prefix 'linux-modules-nvidia-580-server-open-', dkms 'nvidia-dkms-580-server-open')."""
    flavour, suffix = kernel_metapackage(offer.kernel, offer.images)
    if flavour and suffix:
        meta, abi = prefix + flavour, prefix + suffix
        if offer.offered(meta) and offer.offered(abi):
            return meta, False, f"prebuilt modules {meta} (kernel {offer.kernel}, linux-image-{flavour})"
        why = f"no {meta if not offer.offered(meta) else abi} in the repositories"
    else:
        why = f"no installed linux-image metapackage tracks the running kernel {offer.kernel}"
    return dkms, True, f"{why}: DKMS ({dkms})"


def choose(source, offer: Offer, expected: str | None = None, extras: tuple[str, ...] = (),
           exact_extras: tuple[str, ...] = ()) -> Chosen:
    """The packages to install from what `offer` holds, for `source` (gpuhost.driver.sources.DriverSource).
    `expected`: the version the data names for the branch (reported when the repository has a newer one);
    `exact_extras`: packages installed at the driver's exact version (fabric manager, NSCQ, IMEX);
    `extras`: packages of their own version (nvlsm, infiniband-diags). Raises NotOffered."""
    branch, driver = source.branch, source.driver_package
    where = source.repository.url if source.repository else f"the {source.name} archive"
    offered = offer.versions.get(driver, ())
    on_branch = [v for v in offered if upstream(v).startswith(branch + ".")]
    if not on_branch:
        branches = sorted({upstream(v).split(".")[0] for v in offered}, key=int, reverse=True)
        listed = ", ".join(offered[:6]) + (" ..." if len(offered) > 6 else "")
        fix = (f"set driver_branch: \"{branches[0]}\"" if branches else
               "check driver_repository and the host's apt sources")
        raise NotOffered(f"{where} offers {driver} {listed or 'in no version'}, not R{branch}: {fix}")
    version = on_branch[0]
    notes = []
    pin = None
    if source.pin_package:
        per_version = f"nvidia-driver-pinning-{upstream(version)}"
        for name in (per_version, source.pin_package):
            if offer.offered(name):
                pin = (name, (offer.versions.get(name) or (None,))[0])
                break
        else:  # the exact version, held, keeps the branch as well: said, not refused
            notes.append(f"no {source.pin_package} in {where}: {driver} is held at {version} instead")
    packages: list[tuple[str, str | None]] = [(p, version if p == driver else None)
                                              for p in source.packages if p != source.pin_package]
    builds_modules, headers = source.builds_modules, None
    if source.modules:
        prefix, dkms = source.modules
        module, is_dkms, why = ubuntu_modules(prefix, dkms, offer)
        if is_dkms and not offer.offered(dkms):
            raise NotOffered(f"{where} offers neither prebuilt modules for kernel {offer.kernel} nor {dkms} "
                             f"({why.split(':')[0]}): boot a kernel of a supported flavour, or set driver_source: cuda")
        packages.append((module, None))
        builds_modules = is_dkms
        notes.append(why)
        headers = f"linux-headers-{offer.kernel}" if is_dkms and offer.kernel else None
    chosen_extras: list[tuple[str, str | None]] = []
    for name in exact_extras:
        matching = [v for v in offer.versions.get(name, ()) if upstream(v) == upstream(version)]
        if not matching:
            have = ", ".join(offer.versions.get(name, ())[:4]) or "no version"
            raise NotOffered(f"{where} offers {name} {have}, not {upstream(version)} (the driver's version): "
                             f"set driver_branch to a branch whose fabric packages are published")
        chosen_extras.append((name, matching[0]))
    for name in extras:
        if not offer.offered(name):
            raise NotOffered(f"the host's repositories offer no {name} (NVLink5 hosts need it, as NVIDIA's "
                             f"driver container installs it): add the repository that has it, or "
                             f"set driver_source: cuda")
        chosen_extras.append((name, None))
    if expected and upstream(version) != expected:
        notes.append(f"R{branch}: {upstream(version)} is the newest the repository offers (the data names {expected})")
    return Chosen(pin, tuple(packages), upstream(version), tuple(chosen_extras), builds_modules, tuple(notes),
                  headers)
