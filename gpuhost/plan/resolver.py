"""The resolver: GPUs + current driver + policy in, a plan with its reasons out. Pure: no I/O.

The choices, in order:
1. kernel module: open when every GPU can use it (Turing and newer), proprietary otherwise; a host
   whose GPUs share no flavour cannot be served by one driver;
2. torch release: the requested minor (default the newest in the matrix with a build for every
   GPU), newest patch;
3. image: the newest CUDA variant of that release whose arch list covers every GPU and whose
   driver minimum the planned driver meets; where pytorch/pytorch publishes no image for the
   host's CPU architecture (arm64: Grace hosts), the newest NGC PyTorch release instead;
4. driver: keep the current one when it drives every GPU and gives an image at least as new as
   the policy's branch would; else install or move to the policy's branch (newest LTS by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from packaging.version import Version

from gpuhost.errors import Unresolvable, UsageError
from gpuhost.plan.gpus import Gpu
from gpuhost.plan.matrix import PLATFORMS, Branch, DriverVersion, ImageFamily, Matrix, Variant, load_matrix

BRANCH_POLICIES = ("lts", "production")
IMAGE_FLAVOURS = ("runtime", "devel")
IMAGE_SOURCES = ("auto", "pytorch", "ngc")  # auto: pytorch/pytorch where it has the host's platform, else NGC
EOL_WARNING_DAYS = 180
_DRIVER_RE = re.compile(r"^\d{3}\.\d{1,3}(\.\d{1,3})?$")
TORCH_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?(/[a-z0-9._-]+)*$")


def branch_fix(value: str) -> str | None:
    """None for lts, production or a three-digit branch; else what to write instead."""
    if value in BRANCH_POLICIES or re.fullmatch(r"\d{3}", value):
        return None
    if m := re.fullmatch(r"(?i)r?(\d{3})(\.\d+)*", value.strip()):
        return f'a branch is its first number: "{m.group(1)}"'
    if value.strip().lower() in BRANCH_POLICIES:
        return f"write it in lower case: {value.strip().lower()}"
    return 'use lts, production or a branch number such as "580"'


@dataclass(frozen=True)
class Policy:
    """What the user allows. Every field has the default a new user should get."""

    torch: str | None = None  # "2.9" or "2.9.1"; None: the newest release in the matrix
    allow_driver_change: bool = True
    driver_branch: str = "lts"  # "lts", "production" or a branch number such as "580"
    image_flavour: str = "runtime"  # "runtime" or "devel"
    registry: str | None = None  # mirror prefix, e.g. "registry.lab:5000"
    image_source: str = "auto"  # "auto", "pytorch" (pytorch/pytorch) or "ngc" (nvcr.io/nvidia/pytorch)

    def validated(self) -> Policy:
        if self.torch is not None and not TORCH_RE.match(self.torch):
            raise UsageError(f"malformed torch version '{self.torch}': use X.Y or X.Y.Z, e.g. 2.9 or 2.9.1")
        if branch_fix(self.driver_branch):
            raise UsageError(f"unknown driver branch policy '{self.driver_branch}': {branch_fix(self.driver_branch)}")
        if self.image_flavour not in IMAGE_FLAVOURS:
            raise UsageError(f"unknown image flavour '{self.image_flavour}': use runtime or devel")
        if self.image_source not in IMAGE_SOURCES:
            raise UsageError(f"unknown image source '{self.image_source}': use auto, pytorch or ngc")
        if self.registry is not None and not REGISTRY_RE.match(self.registry):
            raise UsageError(f"malformed registry prefix '{self.registry}': use host[:port][/path], "
                             f"e.g. registry.example.com:5000/mirror")
        if self.registry is not None and registry_port_fix(self.registry):
            raise UsageError(f"registry prefix '{self.registry}': {registry_port_fix(self.registry)}")
        return self


def registry_port_fix(registry: str) -> str | None:
    """A registry prefix's port (host:PORT/path) must be a TCP port; the fix when it is not."""
    port = registry.split("/", 1)[0].rpartition(":")[2] if ":" in registry.split("/", 1)[0] else None
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {port} is out of range: use a TCP port from 1 to 65535, e.g. registry.example.com:5000"
    return None


@dataclass(frozen=True)
class DriverPlan:
    action: str  # keep | install | upgrade
    branch: str
    min_version: str
    kernel_module: str
    current: str | None


@dataclass(frozen=True)
class ImagePlan:
    torch: str
    cuda: str
    cudnn: str | None  # None for NGC images (NVIDIA's cuDNN build, not in the matrix)
    flavour: str
    tag: str
    driver_min: str
    origin: str | None = None  # the upstream reference when `tag` was rewritten to go through a mirror
    platform: str = "linux/amd64"  # the OCI platform of the host's CPU, which the image has a manifest for


@dataclass
class Plan:
    gpus: list[Gpu]
    driver: DriverPlan
    image: ImagePlan
    os: str | None = None
    arch: str = "x86_64"  # the host's CPU architecture (uname -m)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "gpus": [g.to_dict() for g in self.gpus],
            "os": self.os,
            "arch": self.arch,
            "driver": {"action": self.driver.action, "branch": self.driver.branch,
                       "min_version": self.driver.min_version, "kernel_module": self.driver.kernel_module,
                       "current": self.driver.current},
            "image": {"torch": self.image.torch, "cuda": self.image.cuda, "cudnn": self.image.cudnn,
                      "flavour": self.image.flavour, "tag": self.image.tag, "driver_min": self.image.driver_min,
                      "platform": self.image.platform,
                      **({"origin": self.image.origin} if self.image.origin else {})},
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }


def parse_driver_version(text: str) -> DriverVersion:
    if not _DRIVER_RE.match(text.strip()):
        raise UsageError(f"malformed driver version '{text}': use the form nvidia-smi prints, e.g. 580.95.05")
    return DriverVersion(text.strip())


def _describe(gpus: list[Gpu]) -> str:
    seen: dict[str, None] = {}
    for g in gpus:  # a GPU named by its compute capability carries it in its name already
        seen.setdefault(g.name if g.compute_capability in g.name else f"{g.name} (cc {g.compute_capability})")
    return ", ".join(seen)


def _kernel_module(gpus: list[Gpu], reasons: list[str]) -> tuple[str, set[str]]:
    allowed = set.intersection(*(set(g.kernel_modules) for g in gpus))
    if not allowed:
        only_open = sorted({g.name for g in gpus if set(g.kernel_modules) == {"open"}})
        only_prop = sorted({g.name for g in gpus if set(g.kernel_modules) == {"proprietary"}})
        raise Unresolvable(f"no driver flavour drives both {', '.join(only_prop)} (proprietary modules only) and "
                           f"{', '.join(only_open)} (open modules only): put these GPUs in separate hosts")
    if "open" in allowed:
        reasons.append("kernel module: open, since every GPU is Turing or newer (NVIDIA's default since R560)")
        return "open", allowed
    old = sorted({g.architecture for g in gpus if "open" not in g.kernel_modules})
    reasons.append(f"kernel module: proprietary, since {', '.join(old)} GPUs are not supported by the open modules")
    return "proprietary", allowed


def _covering(release, gpus: list[Gpu], platform: str = "linux/amd64") -> list[Variant]:
    """The release's CUDA variants whose arch list (the platform's) covers every GPU, newest CUDA first."""
    return sorted((v for v in release.variants if all(v.covers(g.compute_capability, platform) for g in gpus)),
                  key=lambda v: Version(v.cuda), reverse=True)


def _default_torch(matrix: Matrix, gpus: list[Gpu]) -> str:
    """The newest torch release with a build for every GPU (torch 2.15 dropped pre-Turing GPUs)."""
    newest_first = sorted(matrix.releases, key=Version, reverse=True)
    return next((t for t in newest_first if _covering(matrix.releases[t], gpus)), newest_first[0])


def _older_torch_fix(matrix: Matrix, torch: str, gpus: list[Gpu], platform: str = "linux/amd64") -> str:
    """The fix when a release has no build for these GPUs: the newest older release that has one,
    or, when none has, that no PyTorch image can serve them (never "an older --torch" that does not exist)."""
    older = sorted((t for t in matrix.releases if Version(t) < Version(torch)), key=Version, reverse=True)
    fits = next((t for t in older if _covering(matrix.releases[t], gpus, platform)), None)
    if fits:
        return f"use --torch {fits} (torch: \"{fits}\"), the newest release with a build for them"
    return (f"no torch release in the matrix ({', '.join(sorted(matrix.releases, key=Version))}) has a CUDA "
            f"build for {_describe(gpus)}: these GPUs cannot run a PyTorch image; plan other GPUs")


def _release(matrix: Matrix, torch: str | None, reasons: list[str], gpus: list[Gpu]):
    wanted = torch or _default_torch(matrix, gpus)
    minor = ".".join(wanted.split(".")[:2])
    release = matrix.releases.get(minor)
    if release is None:
        known = ", ".join(sorted(matrix.releases, key=Version))
        raise Unresolvable(f"torch {wanted} is not in the compatibility matrix: choose one of {known}")
    if wanted.count(".") == 2:
        if wanted not in release.patches:
            raise Unresolvable(f"torch {wanted} was not published: releases of {minor} are "
                               f"{', '.join(release.patches)}")
        patch = wanted
    else:
        patch = release.newest_patch
    how = "requested" if torch else ("the newest release in the matrix" if wanted == matrix.newest_torch()
                                     else f"the newest release with a build for {_describe(gpus)}")
    reasons.append(f"torch {patch}: {how}" + ("" if patch == wanted else f", newest patch of {minor}"))
    return release, patch


def _image_driver_min(matrix: Matrix, image, family: ImageFamily) -> DriverVersion:
    """The driver an image (a torch variant or an NGC release: anything with a `cuda`) needs."""
    if family.driver_rule == "toolkit":
        return matrix.toolkit_drivers[image.cuda]
    return matrix.minor_version_floors[int(image.cuda.split(".")[0])]


def _supports_all(matrix: Matrix, branch: int, gpus: list[Gpu]) -> bool:
    return all(matrix.architectures[g.architecture].supported_by(branch, g.compute_capability) for g in gpus)


def _platform(arch: str | None) -> str:
    """The OCI platform of a CPU architecture as `uname -m` prints it (x86_64, aarch64)."""
    platform = PLATFORMS.get((arch or "x86_64").strip().lower())
    if platform is None:
        raise Unresolvable(f"CPU architecture {arch!r}: no PyTorch image is published for it (gpuhost plans "
                           f"x86_64 and aarch64 hosts)")
    return platform


def _image_family(matrix: Matrix, policy: Policy, platform: str, reasons: list[str]) -> ImageFamily:
    """pytorch/pytorch's family of the policy's flavour where it has the platform, else NGC's."""
    wanted = matrix.images[policy.image_flavour]
    ngc = matrix.images["ngc"]
    arch = platform.split("/")[1]
    if policy.image_source == "ngc":
        reasons.append(f"image source: NGC ({ngc.repository}), as image_source says")
        return ngc
    if platform in wanted.platforms:
        return wanted
    if policy.image_source == "pytorch":
        raise Unresolvable(f"{wanted.repository} publishes no {arch} image (only "
                           f"{', '.join(p.split('/')[1] for p in wanted.platforms)}): set image_source: ngc "
                           f"(NVIDIA's NGC PyTorch container, published for arm64 and amd64) or auto")
    reasons.append(f"image source: NGC ({ngc.repository}), since {wanted.repository} publishes no {arch} image")
    return ngc


def _ngc_releases(matrix: Matrix, torch: str | None, gpus: list[Gpu], reasons: list[str]):
    """NGC releases for the requested torch minor (any when none), newest first, whose CUDA still
    supports every GPU: its toolkit's driver branch drives them (CUDA 13.1+: no Volta)."""
    if torch is not None and torch.count(".") == 2:
        raise Unresolvable(f"torch {torch}: NGC images carry NVIDIA's own torch builds, not PyPI patch releases: "
                           f"give torch as X.Y, e.g. {'.'.join(torch.split('.')[:2])}")
    known = ", ".join(f"{n.release} (torch {n.torch})" for n in matrix.ngc_releases)
    releases = [n for n in reversed(matrix.ngc_releases) if torch is None or n.torch == torch]
    if not releases:
        raise Unresolvable(f"no NGC PyTorch release in the matrix is built on torch {torch}: releases are "
                           f"{known}: choose one of those torch releases or leave torch unset")
    fitting = [n for n in releases if _supports_all(matrix, matrix.toolkit_drivers[n.cuda].major, gpus)]
    if not fitting:
        raise Unresolvable(f"no NGC PyTorch release in the matrix runs on {_describe(gpus)} (releases: {known})")
    reasons.append("torch: " + (f"{torch}, requested" if torch else f"{fitting[0].torch}, the newest NGC release's")
                   + " (NVIDIA's build)")
    return fitting


def _target_branch(matrix: Matrix, gpus: list[Gpu], policy: Policy, warnings: list[str],
                   served: frozenset[int] | None = None) -> Branch:
    if policy.driver_branch not in BRANCH_POLICIES:
        branch = matrix.branch(int(policy.driver_branch))
        if branch is None:
            known = ", ".join(str(b.branch) for b in matrix.branches)
            raise Unresolvable(f"driver branch {policy.driver_branch} is not in the matrix: choose one of {known}")
        if not _supports_all(matrix, branch.branch, gpus):
            raise Unresolvable(f"driver branch {branch.branch} does not support {_describe(gpus)}: choose another "
                               f"branch or use --driver-branch lts")
        return branch
    fitting = [b for b in matrix.branches if _supports_all(matrix, b.branch, gpus)]
    if served is not None and any(b.branch in served for b in fitting):
        fitting = [b for b in fitting if b.branch in served]
    if not fitting:
        spans = "; ".join(dict.fromkeys(
            f"{a.name} from R{a.first_branch_for(g.compute_capability)}" + (f" to R{a.last_branch}" if a.last_branch else "")
            for g in gpus for a in [matrix.architectures[g.architecture]]))
        raise Unresolvable(f"no driver branch supports every GPU ({spans}): put these GPUs in separate hosts")
    of_kind = [b for b in fitting if b.kind == policy.driver_branch]
    if of_kind:
        return of_kind[-1]
    fallback = [b for b in fitting if b.kind in ("lts", "production", "legacy")] or fitting
    warnings.append(f"no {policy.driver_branch} branch supports {_describe(gpus)}; using R{fallback[-1].branch} "
                    f"({fallback[-1].kind})")
    return fallback[-1]


def _newest_variant(matrix, covering, family: ImageFamily, driver: DriverVersion):
    return next((v for v in covering if _image_driver_min(matrix, v, family) <= driver), None)


def _branch_warnings(matrix: Matrix, branch: int, today: date, warnings: list[str]) -> None:
    known = matrix.branch(branch)
    if known is None:
        warnings.append(f"driver branch R{branch} is not a data-center branch in the matrix (no support dates known)")
        return
    if known.end_of_life is None:
        warnings.append(f"driver branch R{branch} has no published end-of-life date")
        return
    eol = date.fromisoformat(known.end_of_life)
    if eol < today:
        warnings.append(f"driver branch R{branch} reached end of life on {known.end_of_life}")
    elif eol - today <= timedelta(days=EOL_WARNING_DAYS):
        warnings.append(f"driver branch R{branch} reaches end of life on {known.end_of_life}")


def _gpu_warnings(matrix: Matrix, gpus: list[Gpu], today: date, warnings: list[str]) -> None:
    for arch_name in sorted({g.architecture for g in gpus}):
        arch = matrix.architectures[arch_name]
        if arch.last_branch is None:
            continue
        last = matrix.branch(arch.last_branch)
        if last and last.end_of_life and date.fromisoformat(last.end_of_life) < today:
            warnings.append(f"{arch_name} GPUs are out of support: R{arch.last_branch}, their last driver branch, "
                            f"ended on {last.end_of_life}")
        else:
            warnings.append(f"{arch_name} GPUs are near end of support: R{arch.last_branch} is the last driver "
                            f"branch for them")


def _os_warning(matrix: Matrix, os_name: str | None, warnings: list[str]) -> None:
    if not os_name:
        return
    os_id, _, version = os_name.partition("-")
    known = matrix.supported_os.get(os_id, ())
    if version not in known and version.split(".")[0] not in known:  # RHEL point releases: rhel-9.4
        supported = ", ".join(f"{k} {'/'.join(v)}" for k, v in matrix.supported_os.items())
        warnings.append(f"{os_name} is not a supported OS for the driver stage ({supported})")


def resolve(gpus: list[Gpu], current_driver: str | None = None, policy: Policy = Policy(),
            current_kernel_module: str | None = None, os: str | None = None,
            today: date | None = None, matrix: Matrix | None = None,
            served_branches: frozenset[int] | None = None, arch: str | None = None) -> Plan:
    """Decide driver, kernel module and image for one host. Raises Unresolvable with the reason.

    served_branches: the branches the host's driver source can install (None: any); the lts and
    production policies choose among them. arch: the host's CPU architecture as `uname -m` prints
    it (None: x86_64); an image is planned only from a repository with a manifest for it."""
    matrix = matrix or load_matrix()
    policy = policy.validated()
    today = today or date.today()
    if not gpus:
        raise Unresolvable("no NVIDIA GPU to plan for: give at least one GPU (or declare target_gpus for the host)")
    current = parse_driver_version(current_driver) if current_driver else None
    platform = _platform(arch)
    reasons: list[str] = []
    warnings: list[str] = []

    module, allowed_modules = _kernel_module(gpus, reasons)
    family = _image_family(matrix, policy, platform, reasons)
    if family.family == "ngc":
        release = None
        covering = _ngc_releases(matrix, policy.torch, gpus, reasons)
        images = "NGC PyTorch image in the matrix"
    else:
        release, patch = _release(matrix, policy.torch, reasons, gpus)
        covering = _covering(release, gpus, platform)
        images = f"torch {release.torch} {family.family} image"
        if not covering:
            builds = "; ".join(f"cu{v.cuda.replace('.', '')}: {','.join(v.arch_list_for(platform))}"
                               for v in release.variants)
            raise Unresolvable(f"torch {release.torch} has no CUDA build for {_describe(gpus)} (its builds cover "
                               f"{builds}): {_older_torch_fix(matrix, release.torch, gpus, platform)}")

    if not policy.allow_driver_change:
        if current is None:
            raise Unresolvable("no NVIDIA driver is installed and driver changes are not allowed: "
                               "allow a driver install (drop --no-driver-upgrade)")
        if not _supports_all(matrix, current.major, gpus):
            raise Unresolvable(f"driver {current} does not support {_describe(gpus)} and driver changes are not "
                               f"allowed: allow a driver upgrade")
        variant = _newest_variant(matrix, covering, family, current)
        if variant is None:
            needed = min(_image_driver_min(matrix, v, family) for v in covering)
            raise Unresolvable(f"driver {current} is too old for every {images} (the oldest needs {needed}): "
                               f"allow a driver upgrade" + (" or choose an older --torch" if release else ""))
        action, branch = "keep", current.major
        reasons.append(f"driver: keep {current}, since driver changes are not allowed")
    else:
        target = _target_branch(matrix, gpus, policy, warnings, served_branches)
        target_variant = _newest_variant(matrix, covering, family, target.first_version)
        if target_variant is None:
            raise Unresolvable(f"driver branch {target.branch} is too old for every {images}: choose a newer "
                               f"--driver-branch or an older --torch")
        keepable = (current is not None and _supports_all(matrix, current.major, gpus)
                    and (current_kernel_module is None or current_kernel_module in allowed_modules)
                    and (policy.driver_branch in BRANCH_POLICIES or current.major == target.branch))
        current_variant = _newest_variant(matrix, covering, family, current) if keepable else None
        if current_variant and Version(current_variant.cuda) >= Version(target_variant.cuda):
            action, branch, variant = "keep", current.major, current_variant
            reasons.append(f"driver: keep {current}: it drives every GPU and meets the image's minimum")
        else:
            action = "install" if current is None else "upgrade"
            branch, variant = target.branch, target_variant
            if policy.driver_branch not in BRANCH_POLICIES:
                why = "the requested branch"
            elif target.kind == policy.driver_branch:
                why = f"the newest {'LTS' if target.kind == 'lts' else target.kind} branch"
            else:  # no branch of the policy's kind drives these GPUs (K80: R470 legacy)
                why = f"the newest branch that supports {_describe(gpus)}"
            if current is not None:
                why += f"; current {current} " + (
                    "cannot drive every GPU" if not _supports_all(matrix, current.major, gpus) else
                    f"uses the {current_kernel_module} modules, which these GPUs cannot use"
                    if current_kernel_module and current_kernel_module not in allowed_modules else
                    "is not the requested branch" if policy.driver_branch not in BRANCH_POLICIES else
                    f"gives only a CUDA {current_variant.cuda} image" if current_variant else
                    "is too old for the image")
            reasons.append(f"driver: {action} R{target.branch} ({target.kind}), {why}")
        if current_kernel_module and current_kernel_module != module and action == "keep":
            warnings.append(f"the current driver uses the {current_kernel_module} kernel modules; {module} is "
                            f"recommended at the next driver change")

    driver_min = _image_driver_min(matrix, variant, family)
    rule = ("CUDA minor-version compatibility" if family.driver_rule == "minor-version" else "the toolkit's driver")
    if release is None:
        tag = family.repository + ":" + family.tag.format(release=variant.release)
        reasons.append(f"image: NGC PyTorch {variant.release} (NVIDIA's torch {variant.torch} build, CUDA "
                       f"{variant.cuda}), the newest NGC release in the matrix whose driver minimum ({driver_min}, "
                       f"{rule}) the planned driver meets")
        image = ImagePlan(variant.torch, variant.cuda, None, family.family, tag, str(driver_min), platform=platform)
    else:
        tag = family.repository + ":" + family.tag.format(torch=patch, cuda=variant.cuda, cudnn=release.cudnn)
        reasons.append(f"image: CUDA {variant.cuda}, the newest torch {release.torch} build covering "
                       f"{_describe(gpus)} whose driver minimum ({driver_min}, {rule}) the planned driver meets")
        image = ImagePlan(patch, variant.cuda, release.cudnn, family.family, tag, str(driver_min), platform=platform)
    if policy.registry:
        image = replace(image, tag=f"{policy.registry}/{tag}")
    _branch_warnings(matrix, branch, today, warnings)
    _gpu_warnings(matrix, gpus, today, warnings)
    _os_warning(matrix, os, warnings)
    return Plan(
        gpus=list(gpus),
        driver=DriverPlan(action, str(branch), str(driver_min), module, str(current) if current else None),
        image=image, os=os, arch=(arch or "x86_64").strip().lower(), reasons=reasons, warnings=warnings,
    )
