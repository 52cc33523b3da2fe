"""The stage's "in place" check on real snapshots of a lab host before and after
deploys/monitoring.py (tests/fixtures/debian12-lab-host/capture_monitoring.py made them)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuhost.monitoring.stage import monitoring_pending
from gpuhost.fleet.context import HostContext
from tests.fixtures.snapshot_context import snapshot_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
DATA = json.loads((FIXTURES / "monitoring-host-data.json").read_text())
def context(fixture: str, **changes) -> HostContext:
    return snapshot_context(FIXTURES / fixture, {**DATA, **changes})


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
