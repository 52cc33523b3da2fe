"""Which GPU exporter a host gets, the units that run them, and the driver stage's hook."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from gpuhost.monitoring import exporters as ex
from gpuhost.monitoring.settings import MonitoringSettings

REPO = Path(__file__).resolve().parents[2]
H200_GPU = json.loads((REPO / "docs/evidence/h200/snapshot.json").read_text())["facts.snapshot.HostSnapshot"]["@local"]["gpu"]
PIN = "sha256:" + "ab" * 32
GEFORCE = {"gpus": [{"bus_id": "0000:01:00.0", "model": "NVIDIA GeForce RTX 4090"}]}


def settings(**data) -> MonitoringSettings:
    return MonitoringSettings.from_host_data({"monitoring": True, "dcgm_exporter_digest": PIN, **data})


@pytest.mark.parametrize("data, gpu_state, kind", [
    ({}, H200_GPU, "dcgm"),                                   # the real H200: data-center GPU
    ({}, GEFORCE, "fallback"),                                # DCGM is limited on GeForce
    ({"dcgm_exporter": "container"}, GEFORCE, "dcgm"),        # asked for
    ({"dcgm_exporter": "fallback"}, H200_GPU, "fallback"),
    ({"dcgm_exporter": "off"}, H200_GPU, "none"),
    ({}, {"gpus": []}, "none"),                               # golden image (target_gpus), no GPU attached
])
def test_exporter_choice(data, gpu_state, kind):
    assert ex.exporter_choice(settings(**data), gpu_state)[0] == kind


def test_dcgm_unit_runs_by_digest_never_pulls_and_is_memory_limited():
    unit = ex.dcgm_unit(settings(dcgm_exporter_registry="mirror.example:5000", dcgm_exporter_memory="768m"))
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    args = shlex.split(exec_start.split("=", 1)[1])
    assert args[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert f"mirror.example:5000/nvidia/k8s/dcgm-exporter@{PIN}" in args
    assert args[args.index("--pull") + 1] == "never" and "pull" not in unit.replace("--pull never", "")
    assert args[args.index("--memory") + 1] == "768m" == args[args.index("--memory-swap") + 1]
    assert args[args.index("-p") + 1] == "127.0.0.1:9400:9400"  # monitoring_listen
    assert f"{ex.COUNTERS_PATH}:/etc/dcgm-exporter/gpuhost-counters.csv:ro" in args
    assert args[-2:] == ["-f", "/etc/dcgm-exporter/gpuhost-counters.csv"]
    assert args[args.index("--cap-add") + 1] == "SYS_ADMIN" and "--privileged" not in args
    assert args[args.index("--security-opt") + 1] == "no-new-privileges"
    assert "Restart=always" in unit and "Requires=docker.service" in unit


def test_counters_are_dcgm_exporters_defaults_plus_what_the_rules_need():
    fields = [line.split(",")[0].strip() for line in ex.counters_csv().splitlines() if line and not line.startswith("#")]
    assert len(fields) == len(set(fields))
    assert {"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
            "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"} <= set(fields)
    for line in ex.counters_csv().splitlines():
        if line and not line.startswith("#"):
            assert len(line.split(",")) >= 3 and line.split(",")[1].strip() in ("gauge", "counter", "label"), line


def test_collector_units_and_node_exporter_dropin():
    units = ex.collector_units("/var/lib/prometheus/node-exporter/gpuhost_gpu.prom")
    assert "Type=oneshot" in units["gpuhost-gpu-metrics.service"]
    assert f"ExecStart=/usr/bin/python3 {ex.COLLECTOR_PATH} --output /var/lib/prometheus/node-exporter/gpuhost_gpu.prom" \
        in units["gpuhost-gpu-metrics.service"]
    assert "OnUnitActiveSec=15s" in units["gpuhost-gpu-metrics.timer"]
    dropin = ex.node_exporter_dropin(settings(monitoring_listen="10.0.0.7"))
    assert "ExecStart=\nExecStart=/usr/bin/prometheus-node-exporter --web.listen-address=10.0.0.7:9100 $ARGS\n" in dropin


def test_node_exporter_dropin_quotes_the_listen_address_for_systemd():
    """Defence in depth: a listen address that got past validation never starts a new directive."""
    hostile = settings(monitoring_listen="10.0.0.7").model_copy(update={"monitoring_listen": "::1%x\nUser=root"})
    with pytest.raises(ValueError, match="control character"):
        ex.node_exporter_dropin(hostile)
    spaced = settings(monitoring_listen="10.0.0.7").model_copy(update={"monitoring_listen": "::1%x $(id)"})
    assert '--web.listen-address=[::1%%x $$(id)]:9100" $ARGS' in ex.node_exporter_dropin(spaced)


def test_the_driver_stage_stops_the_running_exporters_and_starts_them_after():
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_testing.operations import parse_commands
    from pyinfra_testing.util import FakeState, create_host

    from gpuhost.monitoring import operations

    managed = {"units": {"gpuhost-dcgm-exporter": {"enabled": "enabled", "active": "active"},
                         "gpuhost-gpu-metrics.timer": {"enabled": "enabled", "active": "inactive"},
                         "docker": {"enabled": "enabled", "active": "active"}}}
    units = ex.running_exporters(managed)
    assert units == ["gpuhost-dcgm-exporter"]
    host = create_host(FakeState(), facts={})
    with ctx_state.use(host.state), ctx_host.use(host):
        assert parse_commands(list(operations.exporters._inner(units=units, running=False))) == \
            ["systemctl stop gpuhost-dcgm-exporter"]
        assert parse_commands(list(operations.exporters._inner(units=units, running=True))) == \
            ["systemctl start gpuhost-dcgm-exporter"]
        assert list(operations.exporters._inner(units=[], running=False)) == []
