"""A refused host says why: in the fleet table's CAUSE, in its report.json, and which driver it has
(issue 28). Readings: the brownfield runfile host (tests/fixtures/debian12-brownfield, see its README)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "driver"))
from test_existing_driver import DEBIAN_HOST, DEBIAN_MANAGED, NO_PACKAGES, RUNFILE_GPU, RUNFILE_HOST  # noqa: E402

from gpuhost.driver.safety import existing_driver_decision, other_driver  # noqa: E402
from gpuhost.compose.host_plan import plan_host  # noqa: E402
from gpuhost.compose.report import build_report, driver_fields  # noqa: E402
from gpuhost.compose.settings import settings_from  # noqa: E402
from gpuhost.run.summary import outcome, row_facts  # noqa: E402

FACTS = {"status": "planned", "reason": None, "gpu_attached": True, "last_check_ok": True}
STOP = "gpuhost cannot go on with this host"


def test_the_cause_column_carries_the_refusals_reason():
    reason = "GPU processes are running (pid 4242 python): drain the host, or set force: true"
    assert outcome(FACTS, True, STOP, None, refusal=(STOP, reason)) == ("failed", reason)
    # another step failed first: that one is named, not the refusal that never ran
    assert outcome(FACTS, True, "Write the gpuhost report", None, refusal=(STOP, reason)) == (
        "failed", "at: Write the gpuhost report")


def _runfile_context(loaded: bool):
    """The runfile host; `loaded`: its module is loaded, so nvidia-smi names the driver (a real host)."""
    gpu = RUNFILE_GPU if not loaded else {**RUNFILE_GPU, "driver": {**RUNFILE_GPU["driver"], "loaded": True,
                                                                      "version": "550.54.14"}}
    settings = settings_from({"target_gpus": ["H100"]})
    return SimpleNamespace(host_plan=plan_host(gpu, RUNFILE_HOST, settings), gpu_state=gpu, host_state=RUNFILE_HOST,
                           managed=NO_PACKAGES, settings=settings)


def test_a_runfile_driver_is_named_in_the_driver_column_also_when_loaded():
    for loaded in (False, True):
        driver = row_facts(_runfile_context(loaded), other_driver)["driver"]
        assert driver.startswith("550.54.14 runfile -> R"), driver


def test_the_report_of_a_host_refused_for_its_runfile_driver_says_refused():
    ctx = _runfile_context(False)
    installed = other_driver(ctx.managed, ctx.host_state, ctx.gpu_state, ctx.host_plan.plan.driver.branch)
    found = existing_driver_decision(installed, ctx.settings, "the plan's driver")
    report = build_report("runfile", ctx.gpu_state, ctx.host_state, ctx.host_plan, **driver_fields(installed, found))
    assert report["status"] == "refused" and report["status"] != "planned"
    assert report["reason"].startswith("a driver installed with NVIDIA's runfile is present: runfile driver 550.54.14")
    assert report["detected"]["installed_driver"] == "runfile driver 550.54.14 (/usr/bin/nvidia-uninstall)"


def test_a_driver_being_moved_off_is_not_in_the_report_so_the_next_run_writes_the_same():
    """Debian's held 535 on a host planned for R580 (moved: allow_driver_change is true): the report
    written before the move must equal the one after it, when the host no longer has R535."""
    before = other_driver(DEBIAN_MANAGED, DEBIAN_HOST, {}, "580")
    moving = driver_fields(before, existing_driver_decision(before, settings_from({}), "R580 open"))
    after = driver_fields(None, existing_driver_decision(None, settings_from({}), "R580 open"))
    assert moving == after == {"installed_driver": None, "refusal": None}
    kept = existing_driver_decision(before, settings_from({"allow_driver_change": False}), "R580 open")
    assert driver_fields(before, kept)["installed_driver"].startswith("R535 packages 535.261.03-1")
