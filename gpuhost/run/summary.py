"""The fleet table printed at the end of a gpu_host run: one row per host, what it has and how it ended.

    HOST    GPUS            DRIVER                 IMAGE                                 CHANGES  RESULT    CAUSE
    gpu-01  H100 80GB x8    580.95.05 keep         pytorch/pytorch:2.9.1-cuda13.0-...    0        ok        last check passed
    gpu-02  none            -                      -                                     0        skipped   no NVIDIA GPU found

pyinfra's CLI has no hook after its own results, so the deploy registers the table with atexit:
it prints when the pyinfra process ends, after pyinfra's summary. Rows come from each host's
context (read while the deploy file is prepared), this run's verdicts, and pyinfra's state.
"""

from __future__ import annotations

import atexit
from collections import Counter

_rows: dict[str, dict] = {}  # host name -> what the deploy knew before executing
_verdicts: dict[str, dict] = {}  # host name -> verify.json record of a check run this time
_state = None


def summarize_at_exit(ctx) -> None:
    """Remember this host for the table; the first call registers the table's printing."""
    from pyinfra import host
    from pyinfra.context import ctx_state

    global _state
    if _state is None:
        _state = ctx_state.get()
        atexit.register(_print)
    _rows[host.name] = row_facts(ctx)


def record_verdict(host_name: str, record: dict) -> None:
    _verdicts[host_name] = record


def row_facts(ctx) -> dict:
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
        from gpuhost.driver.safety import other_driver  # noqa: PLC0415
        # What is installed, even when no loaded driver told the plan (a runfile, held packages)
        existing = None if plan.driver.current else other_driver(ctx.managed, ctx.host_state, ctx.gpu_state,
                                                                 plan.driver.branch)
        current = plan.driver.current or (existing.label() if existing else "none")
        kept = plan.driver.action == "keep" or (existing and existing.kind == "packages"
                                                and not ctx.settings.policy.allow_driver_change)
        driver = f"{current} keep" if kept else f"{current} -> R{plan.driver.branch} {plan.driver.kernel_module}"
    last = ctx.managed.get("verify") or {}
    return {"gpus": gpu_text, "driver": driver, "image": plan.image.tag if plan else "-",
            "status": ctx.host_plan.status, "reason": ctx.host_plan.reason,
            "gpu_attached": bool(gpus), "last_check_ok": bool(last.get("ok"))}


def outcome(facts: dict, failed: bool, failed_at: str | None, verdict: dict | None) -> tuple[str, str]:
    """(result, cause) of one host. Pure."""
    if verdict is not None and not verdict.get("ok"):
        return "failed", f"{verdict.get('cause')}: {verdict.get('fix')}"
    if facts["status"] in ("skipped", "failed"):
        return facts["status"], facts["reason"] or ""
    if failed:
        return "failed", f"at: {failed_at}" if failed_at else "see the errors above"
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
        if facts is None:
            continue
        changed, failed_at = 0, None
        for op_hash in state.get_op_order():
            data = state.ops.get(host, {}).get(op_hash)
            if data is None or not data.operation_meta.is_complete():
                continue
            meta = data.operation_meta
            changed += meta.did_change()
            if meta.did_error() and failed_at is None:
                failed_at = ", ".join(sorted(state.op_meta[op_hash].names))
        result, cause = outcome(facts, host in state.failed_hosts, failed_at, _verdicts.get(host.name))
        rows.append([host.name, facts["gpus"], facts["driver"], facts["image"], str(changed), result, cause])
    return render(rows)


def _print() -> None:
    if _state is not None and _rows and _state.is_executing:
        print("\n" + table(_state), flush=True)
