"""e2e: GPU health on real lab hosts whose TEST FIXTURE GPU readings show an Xid 79, a pending row
remap and a link trained at x8 (tests/e2e/health_fixture.py says what is real in them).

One module-scoped lab of three hosts, shared by the checks: the real snapshot over SSH, gpuhost
inspect, the monitoring stage with Debian's node_exporter scraped by Debian's Prometheus (alert
rules as `gpuhost monitoring rules` prints them), the verify and workspace deploys, and the on-host
command gpuhost-health installed by deploys/health.py and run on the host itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.inventory import write_inventory
from gpuhost.lab.prometheus import prometheus_tool
from gpuhost.lab.results import changed
from tests.e2e import health_fixture
from tests.e2e.test_monitoring import _free_port, _wait, _wait_alerts

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
GPUHOST = str(Path(sys.executable).parent / "gpuhost")
PROMETHEUS = prometheus_tool("prometheus")
MONITORING = {"monitoring": True, "dcgm_exporter": "off"}
WORKSPACE = {"workspace_users": {"alice": {"uid": 1001, "gid": 1001}},
             "workspaces": [{"user": "alice", "gpus": [0], "ssh": False}]}
HOSTS = [HostSpec("xid79", {**MONITORING, **WORKSPACE}), HostSpec("remap", {**MONITORING}), HostSpec("x8", {**MONITORING})]
EXPECTED = {
    "xid79": ("failed", "GPU 0 (0000:2b:00.0): Xid 79 (GPU has fallen off the bus) x1, last May 18 19:02:39",
              "drain the host and reboot it; if it happens again, call the vendor"),
    "remap": ("degraded", "GPU 0 (0000:00:06.0): row remapping pending a GPU reset (4 uncorrectable, 0 correctable "
              "rows remapped)", "drain the GPU's jobs, then reset it (nvidia-smi -r -i 0000:00:06.0) or reboot"),
    "x8": ("degraded", "GPU 0 (0000:00:06.0): PCIe link trained at x8 of x16",
           "drain the host and reseat the GPU or its riser (then the vendor)"),
}


@pytest.fixture(scope="module")
def lab(engine):
    if not PROMETHEUS:
        pytest.skip("Debian's prometheus is missing (./dev test unpacks it into .venv/prometheus)")
    with Lab(HOSTS) as running:
        for host in running.hosts:
            host.data.update(monitoring_listen=host.ip, monitoring_address=host.ip)
            health_fixture.install(host, host.name)
        write_inventory(running.inventory_path, running.hosts, running.id)
        yield running


@pytest.fixture(scope="module")
def monitored(lab):
    run = lab.pyinfra("deploys/monitoring.py", "-y")
    assert run.returncode == 0, run.stdout[-4000:]
    return run


def test_inspect_shows_each_hosts_verdict_and_each_gpus_readings(lab):
    proc = subprocess.run([GPUHOST, "inspect", str(lab.inventory_path), "--json"], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    hosts = {h["host"]: h for h in json.loads(proc.stdout)["hosts"]}
    for name, (verdict, cause, fix) in EXPECTED.items():
        health = hosts[name]["summary"]["health"]
        assert (health["verdict"], health["cause"], health["fix"]) == (verdict, cause, fix), health
    readings = {name: hosts[name]["facts"]["health"]["gpus"][0] for name in EXPECTED}
    assert readings["xid79"]["xid"]["79"]["count"] == 1
    assert readings["remap"]["remapped_rows"] == {"correctable": 0, "uncorrectable": 4, "pending": True,
                                                  "failure": False}
    assert readings["x8"]["pcie"]["width"] == 8 and readings["x8"]["pcie"]["max_width"] == 16
    table = subprocess.run([GPUHOST, "inspect", str(lab.inventory_path)], capture_output=True, text=True, cwd=REPO)
    assert "failed (1/1 GPU)" in table.stdout and f"! health: {EXPECTED['xid79'][1].split(': ', 1)[0]} failed" \
        in table.stdout


def test_prometheus_has_the_same_verdicts_and_the_alerts_fire(lab, monitored):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([GPUHOST, "monitoring", "targets", str(lab.inventory_path), "-o", str(tmp / "targets.json")],
                       check=True, cwd=REPO)
        subprocess.run([GPUHOST, "monitoring", "rules", "--for", "1s", "-o", str(tmp / "rules.yaml")], check=True)
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [rules.yaml]\n"
            "scrape_configs:\n  - job_name: gpuhost\n    file_sd_configs: [{files: [targets.json]}]\n")
        port = _free_port()
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "w"))
        prometheus = {"url": f"http://127.0.0.1:{port}", "log": tmp / "prometheus.log"}
        try:
            series = _wait(prometheus, "gpuhost_gpu_health", lambda r: len(r) == 3)
            got = {r["metric"]["host"]: (r["metric"]["verdict"], r["metric"]["cause"], r["value"][1]) for r in series}
            assert got == {name: (v, c.split(": ", 1)[1], {"failed": "2", "degraded": "1"}[v])
                           for name, (v, c, _) in EXPECTED.items()}
            def health_alerts(alerts):
                return sorted((a["labels"]["alertname"], a["labels"]["host"]) for a in alerts
                              if a["state"] == "firing" and a["labels"]["alertname"].startswith(("GpuhostGpuFailed", "GpuhostGpuDegraded",
                                                                       "GpuhostHostHealth")))

            alerts = _wait_alerts(prometheus, lambda a: len(health_alerts(a)) == 3)
            assert health_alerts(alerts) == [("GpuhostGpuDegraded", "remap"), ("GpuhostGpuDegraded", "x8"),
                                             ("GpuhostGpuFailed", "xid79")]
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_verify_refuses_each_host_naming_the_gpu_the_cause_and_the_fix(lab):
    run = lab.pyinfra("deploys/verify.py", "-y")
    assert run.returncode != 0
    for name, (_, cause, fix) in EXPECTED.items():
        assert f"gpuhost: not verified: {cause}; fix: {fix}" in run.stdout, run.stdout[-4000:]
        record = json.loads(lab.host(name).exec("cat /var/lib/gpuhost/verify.json", check=True).stdout)
        assert record["ok"] is False and record["evidence"] == cause


def test_a_workspace_asking_for_the_failed_gpu_is_refused_in_one_line(lab):
    run = lab.pyinfra("deploys/workspace.py", "-y", "--limit", "xid79")
    assert run.returncode != 0
    refusal = (f"gpuhost: workspace alice: GPU 0 (0000:2b:00.0) is failed ({EXPECTED['xid79'][1].split(': ', 1)[1]}): "
               f"not given to it; fix: {EXPECTED['xid79'][2]}")
    assert refusal in run.stdout, run.stdout[-4000:]
    assert lab.host("xid79").exec("ls /etc/systemd/system/gpuhost-workspace-* 2>/dev/null").stdout == ""


def test_the_on_host_command_agrees_in_one_line_and_its_exit_status(lab):
    run = lab.pyinfra("deploys/health.py", "-y")
    assert run.returncode == 0, run.stdout[-4000:]
    for name, (verdict, cause, fix) in EXPECTED.items():
        result = lab.host(name).ssh("/usr/local/sbin/gpuhost-health")
        assert result.returncode == {"failed": 2, "degraded": 1}[verdict], result.stdout + result.stderr
        assert result.stdout == f"{verdict}: {cause}; fix: {fix}\n"
    again = lab.pyinfra("deploys/health.py", "-y")
    assert again.returncode == 0 and changed(again.stdout) == 0, again.stdout[-4000:]
