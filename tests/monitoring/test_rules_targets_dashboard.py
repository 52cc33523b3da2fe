"""The rules (promtool check + promtool test), the file_sd targets and the Grafana dashboard: every
query names metrics that exist. Those are taken from the code and data that make them: gpuhost's
textfiles (gpuhost.monitoring.metrics), the nvidia-smi collector's output on the real H200
(docs/evidence/monitoring-h200/collector-load.prom), dcgm-exporter's counters CSV
(gpuhost/monitoring/data/dcgm-counters.csv) and Prometheus' own `up`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gpuhost import yamlfile
from gpuhost.errors import UsageError
from gpuhost.lab.prometheus import prometheus_tool
from gpuhost.monitoring import metrics
from gpuhost.monitoring.exporters import counters_csv
from gpuhost.monitoring.rules import alert_names, rules_text
from gpuhost.monitoring.targets import file_sd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DASHBOARD = REPO / "gpuhost/monitoring/data/grafana-dashboard.json"
PIN = "sha256:" + "ab" * 32
H200 = REPO / "docs/evidence/monitoring-h200"


NAME = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", re.M)
# Metric names in a PromQL expression: gpuhost's namespaces, DCGM's, and `up`.
USED = re.compile(r"(?<![\w\"])(gpuhost_[a-z0-9_]+|DCGM_[A-Z0-9_]+|up)(?=\s*[{\[),\s]|$)")


PROMTOOL = prometheus_tool("promtool")
def exposition_names(text: str) -> set[str]:
    return {m.group(1) for m in NAME.finditer(text) if not m.group(1).startswith("#")}


def gpuhost_names() -> set[str]:
    record = {"image": "i", "ok": True, "cause": None, "seconds": 1.0}
    gpu = {"driver": {"loaded": True, "version": "580.159.04", "flavour": "open", "mismatch": False}}
    plan = {"status": "planned", "image": "i", "gpus": 1, "exporter": "dcgm"}
    text = (metrics.verify_metrics(record, 1.0) + metrics.run_metrics(1.0)
            + metrics.host_metrics(gpu, {}, {"image_digests": {"i": "sha256:x"}}, plan, {"gpus": [{"bus_id": "0000:00:06.0", "index": 0}]}))
    return exposition_names(text)


def dcgm_names() -> set[str]:
    return {line.split(",")[0].strip() for line in counters_csv().splitlines()
            if line.strip() and not line.startswith("#")}


def known() -> set[str]:
    return gpuhost_names() | dcgm_names() | exposition_names((H200 / "collector-load.prom").read_text()) | {"up"}


def used(expr: str) -> set[str]:
    return set(USED.findall(expr))

needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian's prometheus) missing")


@needs_promtool
@pytest.mark.parametrize("for_duration", [None, "2s"])
def test_rules_pass_promtool_check_rules(tmp_path, for_duration):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text(for_duration))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and f"SUCCESS: {len(alert_names())} rules found" in proc.stdout, proc.stdout + proc.stderr


@needs_promtool
def test_rules_unit_tests_pass_with_promtool_test_rules(tmp_path):
    (tmp_path / "rules.yaml").write_text(rules_text())
    shutil.copy(HERE / "rules_test.yaml", tmp_path)
    proc = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test_and_names_existing_metrics():
    tests = yamlfile.load((HERE / "rules_test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == set(alert_names())
    for group in yamlfile.load(rules_text())["groups"]:
        for rule in group["rules"]:
            names = used(rule["expr"])
            assert names and names <= known(), (rule["alert"], names - known())


def test_for_override_applies_to_every_rule_and_is_checked():
    assert {rule["for"] for g in yamlfile.load(rules_text("10s"))["groups"] for rule in g["rules"]} == {"10s"}
    with pytest.raises(UsageError, match="--for '5 minutes': use a Prometheus duration"):
        rules_text("5 minutes")


def test_file_sd_has_every_host_and_exporter_with_groups_as_labels():
    hosts = [("gpu-02", {"monitoring": True, "dcgm_exporter": "fallback", "ssh_hostname": "10.0.0.2"}, ["rack-a"]),
             ("gpu-01", {"monitoring": True, "dcgm_exporter_digest": PIN, "monitoring_address": "fd00::1",
                         "ssh_hostname": "gpu-01.example"}, ["canary", "h100"]),
             ("cpu-01", {}, ["rack-a"])]  # monitoring off: left out
    assert file_sd(hosts) == [
        {"targets": ["[fd00::1]:9100"], "labels": {"job": "gpuhost-node", "host": "gpu-01", "groups": ",canary,h100,"}},
        {"targets": ["[fd00::1]:9400"], "labels": {"job": "gpuhost-dcgm", "host": "gpu-01", "groups": ",canary,h100,"}},
        {"targets": ["10.0.0.2:9100"], "labels": {"job": "gpuhost-node", "host": "gpu-02", "groups": ",rack-a,"}},
    ]
    assert file_sd([("h", {"monitoring": True, "dcgm_exporter": "off"}, [])])[0]["targets"] == ["h:9100"]


def _gpuhost(*args, cwd=REPO):
    return subprocess.run([str(REPO / ".venv/bin/gpuhost"), *args], capture_output=True, text=True, cwd=cwd)


def test_targets_command_on_a_yaml_inventory_and_its_errors(tmp_path):
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text("all: {monitoring: true, dcgm_exporter: fallback}\ngroups: {canary: {}}\n"
                         "hosts:\n  - {name: gpu-01, ssh_hostname: 10.0.0.1, groups: [canary]}\n")
    out = tmp_path / "targets.json"
    proc = _gpuhost("monitoring", "targets", str(inventory), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(out.read_text())
    assert [(e["targets"], e["labels"]["job"]) for e in entries] == [(["10.0.0.1:9100"], "gpuhost-node")]
    assert ",canary," in entries[0]["labels"]["groups"]

    inventory.write_text("hosts:\n  - {name: gpu-01, ssh_hostname: 10.0.0.1}\n")
    proc = _gpuhost("monitoring", "targets", str(inventory))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "has monitoring: true" in proc.stderr
    inventory.write_text("hosts:\n  - {name: gpu-01, monitoring: true, dcgm_exporter: gpu}\n")
    proc = _gpuhost("monitoring", "targets", str(inventory))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "host gpu-01: dcgm_exporter is 'gpu': use one of auto, container, fallback, off" in proc.stderr


def test_rules_and_dashboard_commands_print_the_shipped_files():
    assert _gpuhost("monitoring", "rules").stdout == rules_text()
    assert json.loads(_gpuhost("monitoring", "dashboard").stdout) == json.loads(DASHBOARD.read_text())
    proc = _gpuhost("monitoring", "rules", "--for", "soon")
    assert proc.returncode == 2 and "--for 'soon'" in proc.stderr


def _queries(dashboard: dict) -> list[str]:
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_dashboard_queries_name_metrics_that_exist():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _queries(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        names = used(expr)
        assert names, expr
        assert names <= known(), (expr, names - known())
    # gpuhost's verdicts and DCGM's GPU metrics are both there.
    all_names = set().union(*(used(e) for e in exprs))
    assert {"gpuhost_verify_ok", "gpuhost_driver_info", "gpuhost_image_info", "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ROW_REMAP_FAILURE"} <= all_names


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each query as a recording rule's expression (Grafana's $variables filled in)."""
    exprs = [e for e in _queries(json.loads(DASHBOARD.read_text())) if not e.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": e.replace("$host", ".*").replace("$gpu", ".*")} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(json.dumps(rules))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
