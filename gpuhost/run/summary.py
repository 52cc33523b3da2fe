"""The fleet table printed at the end of a gpu_host run: one row per host, what it has and how it ended.

    HOST    GPUS            DRIVER                 IMAGE                                 CHANGES  RESULT    CAUSE
    gpu-01  H100 80GB x8    580.95.05 keep         pytorch/pytorch:2.9.1-cuda13.0-...    0        ok        last check passed
    gpu-02  none            -                      -                                     0        skipped   no NVIDIA GPU found
    gpu-03  none (planned: H100)  R580 open in place  pytorch/pytorch:2.9.1-cuda13.0-...   0        ok        no GPU attached: not verified

pyinfra's CLI has no hook after its own results, so the table is registered with atexit (by
config.py before pyinfra connects, else by the deploy): it prints when the pyinfra process ends,
after pyinfra's summary. Rows come from each host's context (read while the deploy file is
prepared), this run's verdicts, pyinfra's state and what gpuhost.run.faults saw. Every host
pyinfra tried gets a row, also one never reached, and a row is `failed` exactly when pyinfra
counts the host failed or did not finish it (so the exit status says the same).
"""

from __future__ import annotations

import atexit
import sys
from collections import Counter
from pathlib import Path

from gpuhost.run import faults, stop

_rows: dict[str, dict] = {}  # host name -> what the deploy knew before executing
_verdicts: dict[str, dict] = {}  # host name -> verify.json record of a check run this time
_drivers_in_place: dict[str, str] = {}  # host name -> "R580 open": the driver stage found it installed
_state = None


def print_at_exit(state) -> None:
    """Print the table when this process ends (once), for runs of this repository's deploys."""
    global _state
    if _state is None:
        _state = state
        atexit.register(_print)


def summarize_at_exit(ctx, other_driver) -> None:
    """Remember this host for the table (and print the table at exit). `other_driver`:
    gpuhost.driver.safety.other_driver, passed in (the shared runtime imports no capability)."""
    from pyinfra import host
    from pyinfra.context import ctx_state

    print_at_exit(ctx_state.get())
    _rows[host.name] = row_facts(ctx, other_driver)


def deploy_run(argv=None) -> bool:
    """This process runs one of the repository's deploy files (not `exec`, `fact`, debug-inventory)."""
    return any(arg.endswith(".py") and Path(arg).parent.name == "deploys" for arg in (argv or sys.argv)[1:])


def record_verdict(host_name: str, record: dict) -> None:
    _verdicts[host_name] = record


def record_driver_in_place(host_name: str, driver: str) -> None:
    """The driver stage found the planned driver installed (no module loaded, e.g. no GPU attached yet)."""
    _drivers_in_place[host_name] = driver


def driver_cell(planned: str, in_place: str | None) -> str:
    """The DRIVER column: "R580 open in place" once installed, else the plan ("none -> R580 open"). Pure."""
    return f"{in_place} in place" if in_place else planned


def row_facts(ctx, other_driver) -> dict:
    """The columns known before anything runs. Pure."""
    plan = ctx.host_plan.plan
    gpus = Counter(g.get("model") or g.get("pci_id") or "?" for g in ctx.gpu_state.get("gpus", []))
    if gpus:
        gpu_text = ", ".join(f"{model} x{count}" for model, count in gpus.items())
    elif ctx.settings.target_gpus:
        gpu_text = "none (planned: " + ", ".join(g.name for g in ctx.settings.target_gpus) + ")"
    else:
        gpu_text = "none"
    driver = "-"
    if plan is not None:
        # What is installed, also what no loaded driver told the plan (held packages), and how (a runfile)
        existing = other_driver(ctx.managed, ctx.host_state, ctx.gpu_state, plan.driver.branch)
        current = plan.driver.current or (existing.label() if existing else "none")
        if existing and existing.kind == "runfile" and "runfile" not in current:
            current += " runfile"
        kept = plan.driver.action == "keep" or (existing and existing.kind == "packages"
                                                and not ctx.settings.policy.allow_driver_change)
        driver = f"{current} keep" if kept else f"{current} -> R{plan.driver.branch} {plan.driver.kernel_module}"
    last = ctx.managed.get("verify") or {}
    return {"gpus": gpu_text, "driver": driver, "image": plan.image.tag if plan else "-",
            "status": ctx.host_plan.status, "reason": ctx.host_plan.reason,
            "gpu_attached": bool(gpus), "last_check_ok": bool(last.get("ok"))}


def outcome(facts: dict, failed: bool, failed_at: str | None, verdict: dict | None,
            fault: str | None = None, unfinished: str | None = None,
            refusal: tuple[str, str] | None = None) -> tuple[str, str]:
    """(result, cause) of one host. Pure.

    fault: what happened to the host itself (gpuhost.run.faults: unreachable, no answer, lost);
    unfinished: why its operations did not all run (the run was interrupted or stopped);
    refusal: (step, reason) of gpuhost.run.stop.stop_host: the reason is the cause when that step failed."""
    if fault:
        return "failed", fault
    if verdict is not None and not verdict.get("ok"):
        return "failed", f"{verdict.get('cause')}: {verdict.get('fix')}"
    if facts["status"] in ("skipped", "failed"):
        return facts["status"], facts["reason"] or ""
    if failed:
        if refusal and failed_at == refusal[0]:
            return "failed", refusal[1]
        return "failed", f"at: {failed_at}" if failed_at else "see the errors above"
    if unfinished:
        return "failed", unfinished
    if verdict is not None:
        return "verified", "torch check passed"
    if not facts["gpu_attached"]:
        return "ok", "no GPU attached: not verified"
    return "ok", "last check passed" if facts["last_check_ok"] else "not verified"


def render(rows: list[list[str]]) -> str:
    header = ["HOST", "GPUS", "DRIVER", "IMAGE", "CHANGES", "RESULT", "CAUSE"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows])


def table(state) -> str:
    """The table from pyinfra's state after the run."""
    rows = []
    for host in state.inventory:
        facts = _rows.get(host.name)
        fault = faults.causes.get(host.name)
        if facts is None:
            if host.name in faults.attempted:  # never read: unreachable, or no snapshot
                rows.append([host.name, "?", "-", "-", "0", "failed", fault or "not reached"])
            continue
        changed, failed_at, waiting = 0, None, None
        for op_hash in state.get_op_order():
            data = state.ops.get(host, {}).get(op_hash)
            if data is None:
                continue
            meta = data.operation_meta
            if not meta.is_complete():
                waiting = waiting or ", ".join(sorted(state.op_meta[op_hash].names))
                continue
            changed += meta.did_change()
            if meta.did_error() and failed_at is None:
                failed_at = ", ".join(sorted(state.op_meta[op_hash].names))
        result, cause = outcome(facts, host in state.failed_hosts, failed_at, _verdicts.get(host.name),
                                fault, _unfinished(host.name, waiting), stop.refusals.get(host.name))
        driver = driver_cell(facts["driver"], _drivers_in_place.get(host.name))
        rows.append([host.name, facts["gpus"], driver, facts["image"], str(changed), result, cause])
    return render(rows)


def _unfinished(name: str, waiting: str | None) -> str | None:
    """Why a host's operations did not all run, when they did not."""
    if waiting is None:
        return None
    if faults.interrupted:
        return f"interrupted (Ctrl-C) during {faults.steps.get(name) or waiting}"
    return f"the run stopped before {waiting} (see the error above)"


def _print() -> None:
    never_reached = faults.attempted and all(name in faults.causes for name in faults.attempted)
    if _state is None or not (_state.is_executing and _rows or never_reached and deploy_run()):
        return
    print("\n" + table(_state), flush=True)
