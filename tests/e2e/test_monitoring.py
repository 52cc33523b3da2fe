"""e2e: monitoring on real lab hosts, scraped by a real Prometheus.

Real: Debian's prometheus-node-exporter installed by deploys/monitoring.py through apt and run by
systemd on each host, gpuhost's textfiles in its textfile directory, `gpuhost monitoring targets`
and `gpuhost monitoring rules` as the CLI prints them, and Debian's Prometheus (2.42 on bookworm)
started here on 127.0.0.1 with those files, scraping the hosts on the lab's own network.

The verdicts are gpuhost's own records (gpuhost.verify.causes.classify + verdict_record) of real
check outputs: the check's JSON from the lent H100 (docs/evidence/check-h100.json) for a pass,
and a real `docker run` failure (tests/fixtures/errors/docker_daemon_down.stderr, exit 125) for
the host made to fail. The lab has no GPU, so the check itself cannot run here.

The nvidia-smi collector's units run under the host's systemd (systemd-analyze verify, the timer
started); with no GPU and no nvidia-smi in the lab, its real answer is a failure, which Prometheus
turns into GpuhostGpuCollectorFailing.

TEST FIXTURE: in dcgm-exporter's place (it needs a GPU and nvcr.io), Python's http.server on
mon-a:9400 serves real recorded dcgm-exporter output (tests/fixtures/dcgm-exporter/README.md).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import docker
from gpuhost.lab.inventory import write_inventory
from gpuhost.lab.prometheus import prometheus_tool
from gpuhost.lab.results import changed
from gpuhost.monitoring.metrics import HOST_METRICS_PATH, VERIFY_METRICS_PATH
from gpuhost.verify.causes import classify
from gpuhost.verify.stage import VERDICT_PATH, verdict_record

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
IMAGE = "pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime"
# mon-a's dcgm target is served by the TEST FIXTURE; no image is pulled on a host without a GPU,
# so this pin is never used (the settings demand one for dcgm_exporter: container).
UNUSED_PIN = "sha256:" + "0" * 64
HOSTS = [HostSpec("mon-a", {"target_gpus": ["H100"], "monitoring": True, "dcgm_exporter": "container",
                            "dcgm_exporter_digest": UNUSED_PIN}),
         HostSpec("mon-b", {"target_gpus": ["H100"], "monitoring": True, "dcgm_exporter": "fallback"})]
DEPLOY = "deploys/monitoring.py"
PROMETHEUS = prometheus_tool("prometheus")


def _record(rc: int, stdout: str, stderr: str) -> str:
    verdict = classify(rc, stdout, stderr)
    return json.dumps(verdict_record(IMAGE, rc, verdict, 41.0, None, round(time.time())), indent=2) + "\n"


PASSED = _record(0, (REPO / "docs/evidence/check-h100.json").read_text(), "")
FAILED = _record(125, "", (REPO / "tests/fixtures/errors/docker_daemon_down.stderr").read_text())


@pytest.fixture(scope="module")
def lab(engine):
    if not PROMETHEUS:
        pytest.skip("Debian's prometheus is missing (./dev test unpacks it into .venv/prometheus)")
    with Lab(HOSTS) as running:
        # The lab learns each host's address on its network only once it runs: the exporters
        # listen there and Prometheus scrapes it (monitoring_listen, monitoring_address).
        for host in running.hosts:
            host.data.update(monitoring_listen=host.ip, monitoring_address=host.ip)
            host.exec(f"mkdir -p /var/lib/gpuhost && cat > {VERDICT_PATH}", input=PASSED, check=True)
        write_inventory(running.inventory_path, running.hosts, running.id)
        mon_a = running.host("mon-a")
        mon_a.exec("mkdir -p /srv/dcgm-fixture && cat > /srv/dcgm-fixture/metrics",
                   input=(REPO / "tests/fixtures/dcgm-exporter/metrics").read_text(), check=True)
        docker("exec", "-d", mon_a.container, "python3", "-m", "http.server", "9400", "--bind", mon_a.ip,
               "--directory", "/srv/dcgm-fixture")
        yield running


@pytest.fixture(scope="module")
def deployed(lab):
    first = lab.pyinfra(DEPLOY, "-y")
    assert first.returncode == 0, first.stdout[-4000:]
    return first


@pytest.fixture(scope="module")
def prometheus(lab, deployed):
    """Debian's Prometheus on 127.0.0.1, configured with gpuhost's targets and rules (every
    `for:` 2s and a 1s scrape/evaluation interval, so the test waits seconds, not minutes)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gpuhost = str(Path(sys.executable).parent / "gpuhost")  # this venv's
        subprocess.run([gpuhost, "monitoring", "targets", str(lab.inventory_path), "-o", str(tmp / "targets.json")],
                       check=True, cwd=REPO)
        subprocess.run([gpuhost, "monitoring", "rules", "--for", "2s", "-o", str(tmp / "rules.yaml")], check=True)
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [rules.yaml]\n"
            "scrape_configs:\n"
            "  - job_name: gpuhost\n"
            "    file_sd_configs: [{files: [targets.json], refresh_interval: 1s}]\n")
        port = _free_port()
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "w"))
        try:
            yield {"url": f"http://127.0.0.1:{port}", "targets": json.loads((tmp / "targets.json").read_text()),
                   "log": tmp / "prometheus.log"}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_node_exporter_installed_listening_and_metrics_written_then_nothing_changes(lab, deployed):
    for host in lab.hosts:
        assert host.ssh("systemctl is-active prometheus-node-exporter").stdout.strip() == "active"
        listening = host.ssh("ss -ltnH 'sport = :9100'").stdout
        assert f"{host.ip}:9100" in listening, listening  # monitoring_listen, not every address
        host_prom = host.ssh(f"cat {HOST_METRICS_PATH}").stdout
        assert 'gpuhost_plan_status{status="planned"} 1' in host_prom
        assert "gpuhost_gpus_expected 1\n" in host_prom  # target_gpus: [H100]
        assert 'gpuhost_gpu_exporter{kind="none"} 1' in host_prom  # no GPU attached in the lab
        assert 'gpuhost_verify_ok{image="%s",cause="none"} 1' % IMAGE in host.ssh(f"cat {VERIFY_METRICS_PATH}").stdout
    second = lab.pyinfra(DEPLOY, "-y")
    assert second.returncode == 0, second.stdout[-4000:]
    assert changed(second.stdout) == 0, second.stdout[-4000:]


def test_prometheus_scrapes_each_hosts_check_result_and_the_dcgm_fixture(lab, prometheus):
    jobs = sorted((t["labels"]["host"], t["labels"]["job"]) for t in prometheus["targets"])
    assert jobs == [("mon-a", "gpuhost-dcgm"), ("mon-a", "gpuhost-node"), ("mon-b", "gpuhost-node")]
    # The inventory's groups; pyinfra also puts every host in a group named after the file.
    assert all(t["labels"]["groups"] == ",inventory,lab_hosts," for t in prometheus["targets"])

    results = _wait(prometheus, "gpuhost_verify_ok", lambda r: len(r) == 2)
    assert {r["metric"]["host"]: r["value"][1] for r in results} == {"mon-a": "1", "mon-b": "1"}
    assert {r["metric"]["cause"] for r in results} == {"none"}
    up = _wait(prometheus, "up", lambda r: len(r) == 3 and all(x["value"][1] == "1" for x in r))
    assert {(r["metric"]["host"], r["metric"]["job"]) for r in up} == set(jobs)
    # The recorded dcgm-exporter output: three GPUs by UUID, their temperatures as recorded.
    temps = _wait(prometheus, 'DCGM_FI_DEV_GPU_TEMP{job="gpuhost-dcgm"}', lambda r: len(r) == 3)
    assert sorted(r["value"][1] for r in temps) == ["44", "45", "50"]
    assert {r["metric"]["host"] for r in temps} == {"mon-a"}


def test_a_host_made_to_fail_its_check_fires_the_alert(lab, prometheus):
    _wait(prometheus, "gpuhost_verify_ok", lambda r: len(r) == 2)
    mon_b = lab.host("mon-b")
    mon_b.exec(f"cat > {VERDICT_PATH}", input=FAILED, check=True)
    run = lab.pyinfra(DEPLOY, "-y", "--limit", "mon-b")
    assert run.returncode == 0, run.stdout[-4000:]
    assert changed(run.stdout, "mon-b") == 1, run.stdout[-4000:]  # only gpuhost's metrics

    alerts = _wait_alerts(prometheus, lambda a: any(x["state"] == "firing" for x in a))
    firing = [a for a in alerts if a["state"] == "firing"]
    assert [(a["labels"]["alertname"], a["labels"]["host"], a["labels"]["cause"]) for a in firing] == \
        [("GpuhostCheckFailing", "mon-b", "docker_daemon_down")], alerts
    assert firing[0]["annotations"]["summary"] == "mon-b: the last torch check failed (docker_daemon_down)"


# --- Prometheus' HTTP API ---------------------------------------------------------------------------


def _get(prometheus, path: str, **params) -> dict:
    url = f"{prometheus['url']}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _wait(prometheus, query: str, done, timeout: float = 90) -> list:
    deadline, result = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            result = _get(prometheus, "/api/v1/query", query=query)["result"]
        except OSError:
            result = None  # Prometheus still starting
        if result is not None and done(result):
            return result
        time.sleep(1)
    pytest.fail(f"{query}: {result} after {timeout}s; Prometheus log: {prometheus['log'].read_text()[-2000:]}")


def _wait_alerts(prometheus, done, timeout: float = 90) -> list:
    deadline, alerts = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        alerts = _get(prometheus, "/api/v1/alerts")["alerts"]
        if done(alerts):
            return alerts
        time.sleep(1)
    pytest.fail(f"no alert fired after {timeout}s: {alerts}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_collector_units_run_under_systemd_and_a_missing_nvidia_smi_fires_its_alert(lab, prometheus):
    """The nvidia-smi collector's units as the stage writes them, run by the host's systemd with
    their hardening. The lab has no GPU and no nvidia-smi, so the collector reports that (ok 0)
    through node_exporter, and GpuhostGpuCollectorFailing fires: the failure is seen, not hidden."""
    from gpuhost.monitoring import exporters as ex
    from gpuhost.monitoring.collector import SCRIPT
    from gpuhost.monitoring.stage import COLLECTOR_OUTPUT, COLLECTOR_TIMER, SYSTEMD_DIR

    mon_b = lab.host("mon-b")
    mon_b.exec(f"mkdir -p {ex.COLLECTOR_PATH.rsplit('/', 1)[0]} && cat > {ex.COLLECTOR_PATH} && chmod 755 {ex.COLLECTOR_PATH}",
               input=SCRIPT.read_text(), check=True)
    units = ex.collector_units(COLLECTOR_OUTPUT)
    for name, text in units.items():
        mon_b.exec(f"cat > {SYSTEMD_DIR}/{name}", input=text, check=True)
    verify = mon_b.ssh("systemctl daemon-reload && systemd-analyze verify " +
                       " ".join(f"{SYSTEMD_DIR}/{name}" for name in units))
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    assert mon_b.ssh(f"systemctl enable --now {COLLECTOR_TIMER}").returncode == 0
    assert mon_b.ssh(f"systemctl is-active {COLLECTOR_TIMER}").stdout.strip() == "active"

    written = _wait(prometheus, 'gpuhost_gpu_collector_ok{host="mon-b"}', lambda r: len(r) == 1)
    assert written[0]["value"][1] == "0"
    assert "gpuhost_gpu_collector_ok 0" in mon_b.ssh(f"cat {COLLECTOR_OUTPUT}").stdout
    alerts = _wait_alerts(prometheus, lambda a: any(x["labels"]["alertname"] == "GpuhostGpuCollectorFailing"
                                                    and x["state"] == "firing" for x in a))
    assert {a["labels"]["host"] for a in alerts if a["labels"]["alertname"] == "GpuhostGpuCollectorFailing"} == {"mon-b"}
