"""Which GPU exporter a host gets, and the systemd units that run them (pure).

dcgm-exporter runs as a container under systemd, from an image pulled beforehand by digest
(`--pull never`: a unit start never reaches a registry), with a memory limit (dcgm-exporter has
leaked: NVIDIA/dcgm-exporter#702) and gpuhost's counters CSV mounted read-only. Where DCGM does
not serve (GeForce, TITAN: see data/monitoring.yaml) the nvidia-smi collector runs from a timer
and writes a textfile instead.
"""

from __future__ import annotations

from gpuhost.driver.safety import gpu_attached
from gpuhost.monitoring.settings import DATA_DIR, MonitoringSettings, data_file
from gpuhost.run.grammar import systemd_command, systemd_quote

DCGM_UNIT = "gpuhost-dcgm-exporter"
DCGM_CONTAINER = "gpuhost-dcgm-exporter"
COUNTERS_PATH = "/etc/gpuhost/dcgm-exporter/counters.csv"
COLLECTOR_UNIT = "gpuhost-gpu-metrics"
COLLECTOR_PATH = "/usr/local/lib/gpuhost/nvidia_smi_textfile.py"
# Units that hold GPU handles: stopped around driver changes (mig-parted's hooks.sh does the same).
GPU_EXPORTER_UNITS = (DCGM_UNIT, f"{COLLECTOR_UNIT}.timer")


def running_exporters(managed: dict) -> list[str]:
    """The GPU exporter units the snapshot (facts/managed.py) shows active."""
    return [unit for unit in GPU_EXPORTER_UNITS if (managed["units"].get(unit) or {}).get("active") == "active"]


def exporter_choice(settings: MonitoringSettings, gpu_state: dict) -> tuple[str, str]:
    """("dcgm" | "fallback" | "none", why). A host with no GPU attached (a golden image planned
    through target_gpus) gets none: an exporter there would only report itself failing."""
    if settings.dcgm_exporter == "off":
        return "none", "GPU exporter off (dcgm_exporter: off)"
    names = [g.get("model") or g.get("name") or "" for g in gpu_state.get("gpus", [])]
    if not gpu_attached(gpu_state):
        return "none", "no GPU attached: no GPU exporter"
    if settings.dcgm_exporter == "container":
        return "dcgm", "dcgm_exporter: container"
    if settings.dcgm_exporter == "fallback":
        return "fallback", "dcgm_exporter: fallback"
    patterns = data_file()["dcgm_fallback_models"]
    served_by_smi = [n for n in names if any(p.lower() in n.lower() for p in patterns)]
    if served_by_smi:
        return "fallback", f"{served_by_smi[0]}: DCGM's functionality is limited there, nvidia-smi collector instead"
    return "dcgm", "data-center GPUs: dcgm-exporter"


def dcgm_image(settings: MonitoringSettings) -> tuple[str, str]:
    """(reference run by digest, the tag it is known by locally)."""
    dcgm = data_file()["dcgm_exporter"]
    name = f"{settings.dcgm_exporter_registry.rstrip('/')}/{dcgm['repository']}"
    return f"{name}@{settings.dcgm_exporter_digest}", f"{name}:{dcgm['tag']}"


def counters_csv() -> str:
    return (DATA_DIR / data_file()["dcgm_exporter"]["counters_file"]).read_text()


def dcgm_unit(settings: MonitoringSettings) -> str:
    """The systemd unit: docker run by digest, never pulling, memory-limited, with the privileges
    dcgm-exporter's README runs it with (`--gpus all --cap-add SYS_ADMIN`: SYS_ADMIN for the
    profiling counters) and no more (no new privileges). Not run on a GPU here: the lent GPU
    machines have no Docker."""
    reference, _ = dcgm_image(settings)
    port = data_file()["dcgm_exporter"]["port"]
    run = ["/usr/bin/docker", "run", "--rm", "--name", DCGM_CONTAINER, "--pull", "never",
           "--gpus", "all", "--cap-add", "SYS_ADMIN", "--security-opt", "no-new-privileges",
           "--memory", settings.dcgm_exporter_memory, "--memory-swap", settings.dcgm_exporter_memory,
           "-p", f"{settings.listen_host}:{port}:{port}",
           "-v", f"{COUNTERS_PATH}:/etc/dcgm-exporter/gpuhost-counters.csv:ro",
           reference, "-f", "/etc/dcgm-exporter/gpuhost-counters.csv"]
    return f"""# Written by gpuhost (gpuhost/monitoring/exporters.py): NVIDIA dcgm-exporter in a container.
[Unit]
Description=NVIDIA dcgm-exporter (gpuhost)
After=docker.service
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f {DCGM_CONTAINER}
ExecStart={systemd_command(run)}
ExecStop=/usr/bin/docker stop {DCGM_CONTAINER}
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
"""


def collector_units(textfile_path: str) -> dict[str, str]:
    """The nvidia-smi collector's oneshot service and its timer (like Debian's
    prometheus-node-exporter-collectors pairs)."""
    interval = data_file()["collector_interval"]
    return {
        f"{COLLECTOR_UNIT}.service": f"""# Written by gpuhost: GPU metrics from nvidia-smi into node_exporter's textfile directory.
[Unit]
Description=gpuhost GPU metrics from nvidia-smi (textfile)

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 {COLLECTOR_PATH} --output {textfile_path}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths={textfile_path.rsplit("/", 1)[0]}
""",
        f"{COLLECTOR_UNIT}.timer": f"""# Written by gpuhost.
[Unit]
Description=gpuhost GPU metrics from nvidia-smi every {interval}

[Timer]
OnBootSec=10s
OnUnitActiveSec={interval}
AccuracySec=1s

[Install]
WantedBy=timers.target
""",
    }


def node_exporter_dropin(settings: MonitoringSettings) -> str:
    """Listen address for Debian's node_exporter; the package's ARGS still apply."""
    node = data_file()["node_exporter"]
    return f"""# Written by gpuhost: where node_exporter listens (monitoring_listen); ARGS from
# /etc/default/{node['unit']} still apply.
[Service]
ExecStart=
ExecStart={node['binary']} {systemd_quote(f"--web.listen-address={settings.listen_host}:{node['port']}")} $ARGS
"""
