"""`gpuhost resolve`: what would gpuhost install on a host with these GPUs?"""

from __future__ import annotations

import json
from collections import Counter
from typing import Optional

import typer

from gpuhost.errors import UsageError
from gpuhost.plan.gpus import identify
from gpuhost.plan.resolver import Plan, Policy, resolve


def describe_gpu(gpu) -> str:
    """`H100 SXM5 80GB [10de:2330] cc 9.0 Hopper`; a GPU given by its compute capability alone:
    `cc 6.1 Pascal (no model named)`, each fact once."""
    if gpu.pci_id is None and gpu.compute_capability in gpu.name:
        return f"cc {gpu.compute_capability} {gpu.architecture} (no model named)"
    return f"{gpu.name} [{gpu.pci_id or '-'}] cc {gpu.compute_capability} {gpu.architecture}"


def render_plan(plan: Plan) -> str:
    """The plan as a short readable table, then its reasons and warnings. "needs driver >= X"
    appears once, on the image row: the driver minimum of the planned image."""
    d = plan.driver
    gpus = Counter(describe_gpu(g) for g in plan.gpus)
    rows = [("GPUs", "; ".join(text if n == 1 else f"{n} x {text}" for text, n in gpus.items())),
            ("driver", f"{d.action} R{d.branch} ({d.kernel_module} modules)"
                       + (f", current {d.current}" if d.current else "")),
            ("arch", f"{plan.arch} ({plan.image.platform})"),
            ("image", f"{plan.image.tag} (needs driver >= {plan.image.driver_min})")]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += ["", "why:"] + [f"  - {r}" for r in plan.reasons]
    if plan.warnings:
        lines += ["warnings:"] + [f"  ! {w}" for w in plan.warnings]
    return "\n".join(lines)


def resolve_command(
    gpu: list[str] = typer.Option(..., "--gpu", metavar="GPU", help="Model name (H100, 'RTX 5090'), PCI ID (10de:2330) or "
                                                     "compute capability (9.0, sm_90); repeat per GPU."),
    driver: Optional[str] = typer.Option(None, metavar="VERSION", help="The driver installed now, e.g. 580.95.05."),
    torch: Optional[str] = typer.Option(None, metavar="RELEASE", help="PyTorch release X.Y or X.Y.Z (default: newest in the matrix)."),
    no_driver_upgrade: bool = typer.Option(False, "--no-driver-upgrade", help="Never change the driver."),
    driver_branch: str = typer.Option("lts", metavar="BRANCH", help="lts, production or a branch number such as 580."),
    flavour: str = typer.Option("runtime", metavar="FLAVOUR", help="Image flavour: runtime or devel."),
    registry: Optional[str] = typer.Option(None, metavar="PREFIX", help="Registry or mirror prefix for the image."),
    arch: str = typer.Option("x86_64", metavar="ARCH", help="The host's CPU architecture (uname -m): x86_64 or "
                                                            "aarch64 (Grace: GH200, GB200, GB300, GB10)."),
    image_source: str = typer.Option("auto", metavar="SOURCE", help="auto (pytorch/pytorch where it has the "
                                                                    "architecture, else NGC), pytorch or ngc."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Resolve the driver branch, kernel module and PyTorch image for a set of GPUs.

    Exit status: 0 with a plan; 2 without one (bad flag, unknown GPU, no plan fits): one line on stderr.
    """
    if driver is not None and not driver.strip():
        raise UsageError("--driver is empty: give the installed driver as nvidia-smi prints it, e.g. "
                         "--driver 580.95.05, or leave --driver out when none is installed")
    policy = Policy(torch=torch, allow_driver_change=not no_driver_upgrade, driver_branch=driver_branch,
                    image_flavour=flavour, registry=registry, image_source=image_source)
    plan = resolve([identify(g) for g in gpu], current_driver=driver, policy=policy, arch=arch)
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        typer.echo(render_plan(plan))


def register(app: typer.Typer) -> None:
    app.command("resolve")(resolve_command)
