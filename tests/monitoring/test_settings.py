"""The monitoring stage's host data: defaults, and one line naming the key for each bad value."""

from __future__ import annotations

import pytest

from gpuhost.errors import UsageError
from gpuhost.monitoring.settings import MonitoringSettings
from gpuhost.compose.settings import check_hosts, settings_from

PIN = "sha256:" + "ab" * 32


def test_defaults_leave_monitoring_off():
    settings = settings_from({}).monitoring
    assert settings == MonitoringSettings()
    assert (settings.monitoring, settings.monitoring_listen, settings.dcgm_exporter) == (False, "127.0.0.1", "auto")


def test_keys_are_read():
    settings = MonitoringSettings.from_host_data({"monitoring": True, "dcgm_exporter_digest": PIN,
                                                  "dcgm_exporter_registry": "mirror:5000", "dcgm_exporter_memory": "512m",
                                                  "monitoring_listen": "10.1.2.3", "torch": "2.9"})
    assert (settings.dcgm_exporter_registry, settings.dcgm_exporter_memory, settings.monitoring_listen) == \
        ("mirror:5000", "512m", "10.1.2.3")


@pytest.mark.parametrize("data, line", [
    ({"monitoring": "yes"}, "monitoring is 'yes': use true or false"),
    ({"dcgm_exporter": "dcgm"}, "dcgm_exporter is 'dcgm': use one of auto, container, fallback, off"),
    ({"dcgm_exporter_memory": "lots"}, "dcgm_exporter_memory is 'lots': use a size such as 512m or 2g"),
    ({"dcgm_exporter_digest": "latest"}, "dcgm_exporter_digest is 'latest': use sha256: and 64 lower-case hex digits"),
    ({"monitoring": True}, "dcgm_exporter_digest is missing: pin the dcgm-exporter image by digest"),
    ({"monitoring": True, "dcgm_exporter": "container"}, "or set dcgm_exporter: fallback"),
])
def test_bad_values_are_one_line_naming_the_key(data, line):
    with pytest.raises(UsageError) as exc:
        MonitoringSettings.from_host_data(data)
    assert line in str(exc.value) and "\n" not in str(exc.value)


def test_no_digest_needed_for_the_nvidia_smi_collector_or_with_monitoring_off():
    assert MonitoringSettings.from_host_data({"monitoring": True, "dcgm_exporter": "fallback"}).monitoring
    assert not MonitoringSettings.from_host_data({"dcgm_exporter": "auto"}).monitoring


def test_bad_values_are_refused_before_any_host_is_touched():
    assert check_hosts([("gpu-01", {"monitoring": "on"}), ("gpu-02", {"monitoring": True, "dcgm_exporter": "off"})]) \
        == ["host gpu-01: monitoring is 'on': use true or false"]
