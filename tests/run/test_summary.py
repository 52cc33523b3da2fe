"""The fleet table at the end of a gpu_host run: each host's result and cause (gpuhost.run.summary)."""

from __future__ import annotations

from gpuhost.lab.results import summary_rows
from gpuhost.run.summary import driver_cell, outcome, render

FACTS = {"status": "planned", "reason": None, "gpu_attached": True, "last_check_ok": True}


def test_a_failed_check_names_its_cause_and_fix():
    verdict = {"ok": False, "cause": "no_gpu_visible", "fix": "install the NVIDIA container toolkit"}
    assert outcome(FACTS, True, "torch check in the plan's image", verdict) == (
        "failed", "no_gpu_visible: install the NVIDIA container toolkit")


def test_results_in_order_of_precedence():
    assert outcome({**FACTS, "status": "skipped", "reason": "no NVIDIA GPU found"}, False, None, None) == (
        "skipped", "no NVIDIA GPU found")
    assert outcome(FACTS, True, "Driver packages R580 open", None) == ("failed", "at: Driver packages R580 open")
    assert outcome(FACTS, True, None, None) == ("failed", "see the errors above")
    assert outcome(FACTS, False, None, {"ok": True}) == ("verified", "torch check passed")
    assert outcome(FACTS, False, None, None) == ("ok", "last check passed")
    assert outcome({**FACTS, "last_check_ok": False}, False, None, None) == ("ok", "not verified")
    assert outcome({**FACTS, "gpu_attached": False}, False, None, None) == ("ok", "no GPU attached: not verified")


def test_table_reads_back_column_by_column():
    table = render([["gpu-01", "NVIDIA H100 80GB HBM3 x8", "580.95.05 keep", "pytorch/pytorch:2.9.1", "0", "ok",
                     "last check passed"],
                    ["cpu-01", "none", "-", "-", "1", "skipped", "no NVIDIA GPU found"]])
    rows = summary_rows("pyinfra output\n\n" + table + "\n")
    assert rows["gpu-01"]["GPUS"] == "NVIDIA H100 80GB HBM3 x8"
    assert rows["gpu-01"]["CAUSE"] == "last check passed"
    assert (rows["cpu-01"]["CHANGES"], rows["cpu-01"]["RESULT"]) == ("1", "skipped")


def test_a_converged_host_planned_through_target_gpus_shows_its_driver_in_place():
    """Second run on a host with no GPU attached: the planned driver is installed, no module loaded,
    so the plan still reads `none -> R580 open`; the driver stage found it in place."""
    assert driver_cell("none -> R580 open", "R580 open") == "R580 open in place"
    assert driver_cell("none -> R580 open", None) == "none -> R580 open"  # first run: being installed
    assert driver_cell("580.95.05 keep", None) == "580.95.05 keep"
