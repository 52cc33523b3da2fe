"""The stage's "in place" check on real snapshots of a lab host before and after
deploys/monitoring.py (tests/fixtures/debian12-lab-host/capture_monitoring.py made them)."""

from __future__ import annotations

import json
from pathlib import Path

from facts.snapshot import HostSnapshot
from gpuhost.monitoring.stage import monitoring_pending
from gpuhost.plan.host_plan import plan_host
from gpuhost.run.context import HostContext
from gpuhost.run.settings import settings_from

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
DATA = json.loads((FIXTURES / "monitoring-host-data.json").read_text())
# The snapshots were captured when the defaults planned R580 and torch 2.13 (2026-12-01).
CAPTURED_WITH = {"driver_branch": "580", "torch": "2.13"}


def context(fixture: str, **changes) -> HostContext:
    snap = HostSnapshot().process((FIXTURES / fixture).read_text().splitlines())
    settings = settings_from({**DATA, **CAPTURED_WITH, **changes})
    return HostContext(settings, snap["gpu"], snap["host"], plan_host(snap["gpu"], snap["host"], settings),
                       snap["container"], snap["managed"])


def test_converged_host_has_nothing_pending():
    assert monitoring_pending(context("snapshot-monitoring-converged.out")) == []


def test_fresh_host_needs_node_exporter_and_gpuhosts_metrics():
    assert monitoring_pending(context("snapshot-monitoring-fresh.out")) == ["node_exporter", "gpuhost's metrics"]


def test_a_changed_setting_or_verdict_makes_that_part_pending():
    assert monitoring_pending(context("snapshot-monitoring-converged.out", monitoring_listen="10.9.9.9")) == \
        ["node_exporter"]
    ctx = context("snapshot-monitoring-converged.out")
    ctx.managed["verify"] = {**ctx.managed["verify"], "ok": False, "cause": "docker_daemon_down"}
    assert monitoring_pending(ctx) == ["gpuhost's metrics"]
    assert monitoring_pending(context("snapshot-monitoring-fresh.out", monitoring=False)) == []
