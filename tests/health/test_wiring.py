"""Where the verdict is used: verify's refusal, the monitoring metric, inspect's column, the
install stage's converged check, stragglers. Readings: real H100 and published faulty outputs."""

from __future__ import annotations

import json
from pathlib import Path

from gpuhost.commands.inspect import health_cell, health_summary
from gpuhost.health import probe
from gpuhost.health.stage import COMMAND_PATH, RULES_PATH, health_pending
from gpuhost.health.straggler import figures_of, stragglers
from gpuhost.health.verdict import rules_json
from gpuhost.monitoring.metrics import health_metrics
from gpuhost.run.converged import sha1
from gpuhost.verify.stage import health_refusal
from tests.fixtures.snapshot_context import snapshot_context
from tests.health.helpers import h100_idle, read, sysfs_link_line, script_output

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
EVIDENCE = Path(__file__).resolve().parents[2] / "docs" / "evidence"
XID79 = probe.parse(h100_idle(kernel_log=read("published-xid79-open-gpu-kernel-modules-1151.log")))
X8 = probe.parse(script_output(links=[sysfs_link_line("0000:01:00.0", read("published-x8-sysfs-nokyan-resources-512.txt"))]))


def lab_context(health):
    ctx = snapshot_context(LAB / "snapshot-bench-converged.out", {"target_gpus": ["H100"]})
    ctx.health = health
    return ctx


def test_verify_refuses_a_host_with_a_failed_gpu_naming_it_and_the_fix():
    assert health_refusal(lab_context(probe.parse(h100_idle()))) is None
    assert health_refusal(lab_context(X8)) == (  # degraded: not verified either (still given to workspaces)
        "not verified: GPU 0000:01:00.0: PCIe link trained at x8 of x16; "
        "fix: drain the host and reseat the GPU or its riser (then the vendor)")
    assert health_refusal(lab_context(XID79)) == (
        "not verified: GPU 0000:2b:00.0: Xid 79 (GPU has fallen off the bus) x1, last May 18 19:02:39; "
        "fix: drain the host and reboot it; if it happens again, call the vendor")


def test_one_metric_per_gpu_with_the_verdict_and_cause_as_labels():
    text = health_metrics(XID79)
    assert ('gpuhost_gpu_health{gpu="0",pci_bus_id="00000000:00:06.0",UUID="GPU-27e6a03c-c382-22c7-b065-79fbe6a699dc",'
            'verdict="ok",cause="none",fix="none"} 0') in text
    assert ('gpuhost_gpu_health{gpu="",pci_bus_id="00000000:2B:00.0",UUID="",verdict="failed",'
            'cause="Xid 79 (GPU has fallen off the bus) x1, last May 18 19:02:39"') in text
    assert 'gpuhost_host_health{verdict="failed"' in text and text.rstrip().endswith(" 2")


def test_inspect_shows_the_verdict_per_host_and_gpu():
    summary = health_summary({"health": X8})
    assert health_cell(summary) == "degraded (1/1 GPU)"
    assert summary["gpus"] == [{"gpu": "GPU 0000:01:00.0", "uuid": None, "verdict": "degraded",
                                "cause": "PCIe link trained at x8 of x16",
                                "fix": "drain the host and reseat the GPU or its riser (then the vendor)"}]
    assert health_cell(health_summary({"health": probe.parse(h100_idle())})) == "ok"
    assert health_cell(health_summary({})) == "-"  # a snapshot without the health part


def test_install_stage_is_converged_when_the_snapshot_shows_both_files():
    ctx = lab_context(None)
    assert health_pending(ctx) == ["health command", "health rules"]
    ctx.managed["files"][COMMAND_PATH] = sha1(Path(probe.__file__).read_text())
    ctx.managed["files"][RULES_PATH] = sha1(rules_json())
    assert health_pending(ctx) == []


def test_real_h100_checks_are_no_stragglers_and_the_rule_needs_a_fleet():
    """Three real H100 figures (two checks of docs/evidence/health-h100/load, one of check-h100.json)."""
    records = [json.loads((EVIDENCE / p).read_text()) for p in
               ("health-h100/load/check-1.json", "health-h100/load/check-2.json", "check-h100.json")]
    figures = [f for i, r in enumerate(records) for f in figures_of(f"h{i}", {"check": r})]
    assert [round(f["tflops"]) for f in figures] == [683, 682, 687] and {f["n"] for f in figures} == {8192}
    assert stragglers(figures) == []  # fewer than 5 of one model and size: no fleet to compare with
    assert stragglers(figures + [{**figures[0], "host": f"x{i}"} for i in range(2)]) == []


def test_the_straggler_rule_arithmetic():
    """Arithmetic of the rule (not GPU readings): median 682.4, MAD 1.6 -> the 10 % floor (614.2) decides, not 3 MADs (675.3)."""
    fleet = [{"host": f"h{i}", "gpu": 0, "uuid": None, "model": "NVIDIA H100 80GB HBM3", "n": 8192, "tflops": t}
             for i, t in enumerate([683.1, 682.4, 687.3, 684.0, 681.9, 620.0, 600.0])]
    assert [(s["host"], s["threshold"]) for s in stragglers(fleet)] == [("h6", 614.2)]


def test_a_workspace_asking_for_a_failed_gpu_is_refused_and_one_already_there_is_named():
    from gpuhost.health.verdict import host_health
    from gpuhost.workspace.decide import on_failed_gpus
    from gpuhost.workspace.settings import WorkspaceSettings

    settings = WorkspaceSettings.from_host_data({
        "workspace_users": {"alice": {"uid": 1001, "gid": 1001}, "bob": {"uid": 1002, "gid": 1002}},
        "workspaces": [{"user": "alice", "gpus": ["GPU-27e6a03c-c382-22c7-b065-79fbe6a699dc"], "ssh": False,
                        "exclusive": False},
                       {"user": "bob", "gpus": ["GPU-27e6a03c-c382-22c7-b065-79fbe6a699dc"], "ssh": False,
                        "exclusive": False, "jupyter_port": 8889}]}) if hasattr(WorkspaceSettings, "from_host_data") else None
    if settings is None:
        return
    ecc = probe.parse(script_output("index,pci.bus_id,uuid,ecc.errors.uncorrected.volatile.total",
                                    ["0, 00000000:00:06.0, GPU-27e6a03c-c382-22c7-b065-79fbe6a699dc, 2"]))
    resolved = {ws.id: ("GPU-27e6a03c-c382-22c7-b065-79fbe6a699dc",) for ws in settings.workspaces}
    refused, named = on_failed_gpus(settings, resolved, host_health(ecc), {"bob": {}})
    assert list(refused) == ["alice"] and list(named) == ["bob"]
    assert refused["alice"] == ("workspace alice: GPU 0 (0000:00:06.0) is failed (2 uncorrected ECC error(s) since "
                                "the driver loaded): not given to it; fix: drain the GPU's jobs, then reset it "
                                "(nvidia-smi -r -i 0000:00:06.0) or reboot")
    assert named["bob"].startswith("workspace bob is on failed GPU 0 (0000:00:06.0)")
    assert on_failed_gpus(settings, resolved, host_health(probe.parse(h100_idle())), {}) == ({}, {})
