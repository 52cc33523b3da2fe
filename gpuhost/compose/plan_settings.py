"""Host-data keys of the plan: which torch, which driver branch, which image, for which GPUs."""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from gpuhost.errors import GpuhostError
from gpuhost.plan.gpus import Gpu, identify
from gpuhost.plan.resolver import REGISTRY_RE, TORCH_RE, Policy, branch_fix, registry_port_fix
from gpuhost.run.host_data import HostDataModel, Problem


def _branch_number(value):
    """`driver_branch: 580` (a YAML number) is the branch "580": nothing is lost."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _branch_policy(value: str) -> str:
    if fix := branch_fix(value):
        raise ValueError(fix)
    return value


def _gpu_list(value):
    """`target_gpus: H100` is one GPU; a tuple from a group_data file is a list."""
    return [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else value


def _known_gpus(names: list[str]) -> list[str]:
    for name in names:
        if problem := _gpu_problem(name):
            raise ValueError(problem)
    return names


@lru_cache(maxsize=256)  # hosts repeat the same few names
def _gpu_problem(name: str) -> str | None:
    try:
        identify(name)
    except GpuhostError as exc:
        return str(exc)
    return None


class PlanSettings(HostDataModel):
    """What the resolver may choose for a host (gpuhost/plan/resolver.py)."""

    torch: str | None = Field(
        None, pattern=TORCH_RE.pattern, description="the PyTorch release of the image",
        json_schema_extra={"values": 'PyTorch release `"X.Y"` or `"X.Y.Z"`', "default_text": "newest in the matrix with a build for every GPU",
                           "fix": 'use a release X.Y or X.Y.Z, quoted, e.g. "2.9"'})
    driver_branch: Annotated[str, BeforeValidator(_branch_number), AfterValidator(_branch_policy)] = Field(
        "lts", description="the driver branch to install or move to",
        json_schema_extra={"values": '`lts`, `production`, or a branch such as `"580"`'})
    allow_driver_change: bool = Field(True, description="`false`: never install, move or upgrade the driver")
    image_flavour: Literal["runtime", "devel"] = Field("runtime", description="the PyTorch image's flavour")
    image_source: Literal["auto", "pytorch", "ngc"] = Field(
        "auto", description="where the image comes from: pytorch/pytorch, or NVIDIA's NGC PyTorch container",
        json_schema_extra={"values": "`auto` (pytorch/pytorch where it has the host's CPU architecture, NGC on "
                                     "arm64), `pytorch` or `ngc`"})
    registry: str | None = Field(
        None, pattern=REGISTRY_RE.pattern,
        description="pull the image through this registry or mirror",
        json_schema_extra={"values": "registry or mirror prefix, e.g. `mirror.example.com:5000`",
                           "default_text": "Docker Hub",
                           "fix": "use host[:port][/path], e.g. registry.example.com:5000/mirror"})
    target_gpus: Annotated[list[str], BeforeValidator(_gpu_list), AfterValidator(_known_gpus)] = Field(
        default_factory=list, description="GPUs to plan for when none is attached (golden images)",
        json_schema_extra={"values": "a list of GPU names, e.g. `[H100, H100]`",
                           "fix": "use a list of GPU names, e.g. [H100, H100]"})
    no_gpu: Literal["skip", "fail"] = Field("skip", description="what a host without an NVIDIA GPU gets")

    @property
    def policy(self) -> Policy:
        return Policy(torch=self.torch, allow_driver_change=self.allow_driver_change,
                      driver_branch=self.driver_branch, image_flavour=self.image_flavour, registry=self.registry,
                      image_source=self.image_source)

    @cached_property
    def gpus(self) -> tuple[Gpu, ...]:
        return tuple(identify(name) for name in self.target_gpus)

    def unservable(self) -> list[Problem]:
        """The release and branch must be in the matrix; declared GPUs must have a plan with this policy."""
        port_fix = registry_port_fix(self.registry) if self.registry else None
        return ([Problem(("registry",), f"registry is {self.registry!r}: {port_fix}")] if port_fix else []) + \
            list(_unservable(self.torch, self.driver_branch, self.image_flavour, tuple(self.target_gpus)))


@lru_cache(maxsize=256)  # a fleet's hosts share a few combinations: each is checked once
def _unservable(torch: str | None, driver_branch: str, image_flavour: str, target_gpus: tuple[str, ...]):
    from gpuhost.plan.matrix import load_matrix
    from gpuhost.plan.resolver import resolve

    matrix = load_matrix()
    problems = []
    if torch is not None:
        minor = ".".join(torch.split(".")[:2])
        release = matrix.releases.get(minor)
        known = ", ".join(f'"{t}"' for t in sorted(matrix.releases, key=lambda t: tuple(map(int, t.split(".")))))
        if release is None:
            problems.append(Problem(("torch",), f"torch is {torch!r}: not in the compatibility matrix: use one of {known}"))
        elif torch.count(".") == 2 and torch not in release.patches:
            problems.append(Problem(("torch",), f"torch is {torch!r}: no such release: releases of {minor} "
                                                f"are {', '.join(release.patches)}"))
    if driver_branch.isdigit() and matrix.branch(int(driver_branch)) is None:
        known = ", ".join(f'"{b.branch}"' for b in matrix.branches)
        problems.append(Problem(("driver_branch",), f"driver_branch is {driver_branch!r}: not a branch in the "
                                                    f"matrix: use lts, production or one of {known}"))
    if target_gpus and not problems:
        policy = Policy(torch=torch, driver_branch=driver_branch, image_flavour=image_flavour)
        try:  # as a fresh host would be planned: no driver yet, any change allowed
            resolve([identify(name) for name in target_gpus], policy=policy)
        except GpuhostError as exc:
            defaults = {k: PlanSettings.model_fields[k].default for k in ("torch", "driver_branch", "image_flavour")}
            keys = ("target_gpus", *(k for k, v in zip(defaults, (torch, driver_branch, image_flavour))
                                     if v != defaults[k]))
            problems.append(Problem(keys, f"target_gpus {', '.join(target_gpus)}: no plan: {exc}"))
    return tuple(problems)
