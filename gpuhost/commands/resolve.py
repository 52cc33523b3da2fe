"""`gpuhost resolve`: what would gpuhost install on a host with these GPUs?"""

from __future__ import annotations

import json
from typing import Optional

import typer

from gpuhost.plan.gpus import identify
from gpuhost.plan.resolver import Plan, Policy, resolve


def render_plan(plan: Plan) -> str:
    """The plan as a short readable table, then its reasons and warnings."""
    d = plan.driver
    rows = [("GPUs", "; ".join(f"{g.name} [{g.pci_id or '-'}] cc {g.compute_capability} {g.architecture}"
                               for g in plan.gpus)),
            ("driver", f"{d.action} R{d.branch} ({d.kernel_module} modules), needs >= {d.min_version}"
                       + (f", current {d.current}" if d.current else "")),
            ("image", plan.image.tag)]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += ["", "why:"] + [f"  - {r}" for r in plan.reasons]
    if plan.warnings:
        lines += ["warnings:"] + [f"  ! {w}" for w in plan.warnings]
    return "\n".join(lines)


def resolve_command(
    gpu: list[str] = typer.Option(..., "--gpu", help="Model name (H100, 'RTX 5090'), PCI ID (10de:2330) or "
                                                     "compute capability (9.0, sm_90); repeat per GPU."),
    driver: Optional[str] = typer.Option(None, help="The driver installed now, e.g. 580.95.05."),
    torch: Optional[str] = typer.Option(None, help="PyTorch release X.Y or X.Y.Z (default: newest in the matrix)."),
    no_driver_upgrade: bool = typer.Option(False, "--no-driver-upgrade", help="Never change the driver."),
    driver_branch: str = typer.Option("lts", help="lts, production or a branch number such as 580."),
    flavour: str = typer.Option("runtime", help="Image flavour: runtime or devel."),
    registry: Optional[str] = typer.Option(None, help="Registry or mirror prefix for the image."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Resolve the driver branch, kernel module and PyTorch image for a set of GPUs.

    Exit status: 0 with a plan; 2 without one (bad flag, unknown GPU, no plan fits): one line on stderr.
    """
    policy = Policy(torch=torch, allow_driver_change=not no_driver_upgrade, driver_branch=driver_branch,
                    image_flavour=flavour, registry=registry)
    plan = resolve([identify(g) for g in gpu], current_driver=driver, policy=policy)
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        typer.echo(render_plan(plan))


def register(app: typer.Typer) -> None:
    app.command("resolve")(resolve_command)
