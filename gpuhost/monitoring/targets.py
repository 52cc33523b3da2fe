"""Prometheus file_sd targets for a fleet (pure): one entry per host and exporter.

Every target carries `job` (gpuhost-node: node_exporter with gpuhost's textfile metrics and the
nvidia-smi collector's; gpuhost-dcgm: dcgm-exporter), `host` (the inventory name: rules join the
exporters of one host on it) and `groups` (the host's inventory groups, comma-framed as
",canary,h100," so that `groups=~".*,canary,.*"` selects a group).
"""

from __future__ import annotations

from gpuhost.monitoring.settings import MonitoringSettings, data_file

NODE_JOB = "gpuhost-node"
DCGM_JOB = "gpuhost-dcgm"


def scrape_address(name: str, data: dict, settings: MonitoringSettings) -> str:
    """Where Prometheus reaches the host: monitoring_address, else ssh_hostname, else its name."""
    return settings.monitoring_address or data.get("ssh_hostname") or name


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def file_sd(hosts: list[tuple[str, dict, list[str]]]) -> list[dict]:
    """[(name, host data, groups)] -> file_sd target groups, for the hosts with monitoring on.

    A host gets a dcgm target unless its GPU metrics come from the nvidia-smi collector or are
    off (dcgm_exporter: fallback | off): those reach Prometheus through node_exporter."""
    ports = {NODE_JOB: data_file()["node_exporter"]["port"], DCGM_JOB: data_file()["dcgm_exporter"]["port"]}
    entries = []
    for name, data, groups in sorted(hosts, key=lambda h: h[0]):
        settings = MonitoringSettings.from_host_data(data)
        if not settings.monitoring:
            continue
        address = _host(scrape_address(name, data, settings))
        jobs = [NODE_JOB] + ([DCGM_JOB] if settings.dcgm_exporter in ("auto", "container") else [])
        for job in jobs:
            entries.append({"targets": [f"{address}:{ports[job]}"],
                            "labels": {"job": job, "host": name, "groups": "," + ",".join(sorted(groups)) + ","}})
    return entries
