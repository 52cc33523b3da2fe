"""The per-host report that the deploy leaves at /var/lib/gpuhost/report.json.

It holds no timestamps: on a converged host the same state gives the same bytes, so writing it
again changes nothing.
"""

from __future__ import annotations

import json

from gpuhost import __version__
from gpuhost.compose.host_plan import HostPlan

REPORT_DIR = "/var/lib/gpuhost"
REPORT_PATH = f"{REPORT_DIR}/report.json"


def build_report(host_name: str, gpu_state: dict, host_state: dict | None, host_plan: HostPlan,
                 installed_driver: str | None = None, refusal: str | None = None) -> dict:
    """`installed_driver`: a driver the plan did not see loaded that stays on the host (kept or refused;
    one being moved off is not named, so the next run's report is the same). `refusal`: why the driver
    stage will refuse the host (a runfile driver): the status is then "refused", not "planned"."""
    driver = gpu_state.get("driver") or {}
    os_info = (host_state or {}).get("os") or {}
    planned = host_plan.to_dict()
    if refusal:
        planned.update(status="refused", reason=refusal)
    return {
        "host": host_name,
        "gpuhost_version": __version__,
        **planned,
        "detected": {
            "gpus": [{"bus_id": g.get("bus_id"), "pci_id": g.get("pci_id"), "model": g.get("model")}
                     for g in gpu_state.get("gpus", [])],
            "nvswitches": len(gpu_state.get("nvswitches", [])),
            "driver": {k: driver.get(k) for k in ("version", "flavour", "library_version", "mismatch")},
            "os": os_info.get("pretty_name"),
            "kernel": (host_state or {}).get("kernel"),
            **({"installed_driver": installed_driver} if installed_driver else {}),
        },
    }


def driver_fields(installed, decision) -> dict:
    """build_report's installed_driver and refusal for a driver the plan did not put there (an
    InstalledDriver and its gpuhost.driver.safety.existing_driver_decision). Pure.

    A driver being moved off is not named: after the move the host no longer has it, and the next
    run's report must be the same bytes (no rewrite on a converged host)."""
    stays = installed is not None and (decision.keep or decision.blockers)
    return {"installed_driver": installed.describe() if stays else None,
            "refusal": "; ".join(decision.blockers) or None}


def render_report(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
