"""gpuhost's own metrics as Prometheus text, for node_exporter's textfile collector (pure).

Three files in the textfile directory, each written whole (temp file + rename):
- gpuhost_verify.prom: the last torch check: result and cause, when, how long (the verify stage);
- gpuhost_host.prom: loaded driver version and flavour, driver/library mismatch, pending reboot,
  the plan's image and its digest, the GPU count the host should have, the plan's status, and the
  health verdict of each GPU and of the host (gpuhost.health: the same verdict `inspect` shows);
- gpuhost_run.prom: when gpuhost last wrote the other two, kept apart so that the comparison a
  converged run makes (file hash in the snapshot against the text it would write) ignores it.
"""

from __future__ import annotations

import base64
import shlex

from gpuhost.monitoring.settings import data_file

TEXTFILE_DIR = data_file()["node_exporter"]["textfile_dir"]
VERIFY_METRICS_PATH = f"{TEXTFILE_DIR}/gpuhost_verify.prom"
HOST_METRICS_PATH = f"{TEXTFILE_DIR}/gpuhost_host.prom"
RUN_METRICS_PATH = f"{TEXTFILE_DIR}/gpuhost_run.prom"


def label(value) -> str:
    """A label value escaped as the text exposition format wants it."""
    return str("" if value is None else value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def gauge(name: str, help_text: str, samples: list[tuple[dict, float]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        inner = ",".join(f'{key}="{label(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def verify_metrics(record: dict, checked_at: float | None) -> str:
    """The verdict of the last check (verify.json's record): 1 passed / 0 failed, with its cause."""
    text = gauge("gpuhost_verify_ok", "1 when the torch check passed in the plan's image.",
                 [({"image": record.get("image"), "cause": record.get("cause") or "none"}, 1 if record.get("ok") else 0)])
    if checked_at is not None:
        text += gauge("gpuhost_verify_timestamp_seconds", "When the check last ran.", [({}, round(checked_at))])
    return text + gauge("gpuhost_verify_duration_seconds", "How long the containerized check took.",
                        [({}, record.get("seconds") or 0)])


def host_metrics(gpu_state: dict, host_state: dict, container_state: dict, plan: dict,
                 health: dict | None = None) -> str:
    """What the host runs and what its plan expects, from the snapshot (facts/snapshot.py) and
    `plan`: {"status", "image" (tag or None), "gpus" (the count it should have), "exporter"
    (dcgm | fallback | none: where its GPU metrics come from)}; `health`: the snapshot's health
    readings (facts/health.py), None when it has none."""
    driver = gpu_state.get("driver") or {}
    image = plan.get("image")
    text = gauge("gpuhost_plan_status", "1 for the status of gpuhost's plan for this host.",
                 [({"status": plan.get("status") or "unknown"}, 1)])
    text += gauge("gpuhost_gpus_expected", "GPUs this host should have (attached, or target_gpus).",
                  [({}, plan.get("gpus") or 0)])
    text += gauge("gpuhost_gpu_exporter", "1 for where this host's GPU metrics come from (dcgm, fallback, none).",
                  [({"kind": plan.get("exporter") or "none"}, 1)])
    if driver.get("loaded") or driver.get("version"):
        text += gauge("gpuhost_driver_info", "The NVIDIA driver the host runs: version and kernel-module flavour.",
                      [({"version": driver.get("version"), "flavour": driver.get("flavour") or "unknown"}, 1)])
    text += gauge("gpuhost_driver_library_mismatch", "1 when the kernel module and the NVML library disagree.",
                  [({}, 1 if driver.get("mismatch") else 0)])
    text += gauge("gpuhost_reboot_required", "1 when a reboot is pending (a new driver or kernel waits for it).",
                  [({}, 1 if (host_state.get("reboot") or {}).get("required") else 0)])
    if image:
        digest = (container_state.get("image_digests") or {}).get(image)
        text += gauge("gpuhost_image_info", "The plan's PyTorch image and the digest present on the host.",
                      [({"image": image, "digest": digest or "absent"}, 1)])
    if health is not None:
        text += health_metrics(health)
    return text


def health_metrics(readings: dict) -> str:
    """One series per GPU (0 ok, 1 degraded, 2 failed; cause and fix as labels), and the host's."""
    from gpuhost.health.verdict import VERDICTS, host_health  # noqa: PLC0415

    health = host_health(readings)
    samples = [({"gpu": "" if gpu.index is None else gpu.index, "pci_bus_id": dcgm_bus_id(gpu.bus_id),
                 "UUID": gpu.uuid or "", "verdict": gpu.verdict, "cause": gpu.cause or "none", "fix": gpu.fix or "none"},
                VERDICTS.index(gpu.verdict)) for gpu in health.gpus]
    text = gauge("gpuhost_gpu_health", "GPU health as gpuhost-health judges it: 0 ok, 1 degraded, 2 failed.", samples)
    return text + gauge("gpuhost_host_health", "The host's health (its worst GPU, fabric manager, DCGM): "
                        "0 ok, 1 degraded, 2 failed.",
                        [({"verdict": health.verdict, "cause": health.cause or "none", "fix": health.fix or "none"},
                          VERDICTS.index(health.verdict))])


def dcgm_bus_id(bus_id: str) -> str:
    """sysfs's 0000:2b:00.0 -> DCGM's 00000000:2B:00.0, so series join with dcgm-exporter's."""
    domain, _, rest = bus_id.partition(":")
    return f"{domain[-8:].rjust(8, '0')}:{rest}".upper() if rest else bus_id.upper()


def run_metrics(now: float) -> str:
    return gauge("gpuhost_run_timestamp_seconds", "When gpuhost last wrote its metrics on this host.",
                 [({}, round(now))])


STAGING_DIR = "/var/lib/gpuhost/tmp"  # root's own (0700), on the same file system as /var/lib/prometheus


def atomic_write_command(files: dict[str, str], staging: str = STAGING_DIR) -> str:
    """One shell command writing each file whole, so a reader (node_exporter) never sees half a file.

    The textfile directory's parent belongs to the prometheus account (Debian's postinst), so
    whoever holds that account can replace the directory and plant links in it. Root therefore
    never opens a file there: each file is written in `staging` (root's, 0700, refused when it is
    a link or another user's), then renamed into place with `mv -T`, a rename(2) that replaces a
    link at the target instead of following it. A textfile directory that is itself a link is
    refused."""
    q = shlex.quote
    stage = q(staging)
    steps = [f"mkdir -p {stage} && chmod 700 {stage} && [ ! -L {stage} ] && [ \"$(stat -c %u {stage})\" = 0 ] "
             f"|| {{ echo \"gpuhost: \"{stage}\" is a link or not root's: remove it\" >&2; exit 1; }}"]
    for path, text in files.items():
        data, target, folder = base64.b64encode(text.encode()).decode(), q(path), q(path.rsplit("/", 1)[0])
        steps.append(
            f"mkdir -p {folder} && {{ [ ! -L {folder} ] || {{ echo \"gpuhost: \"{folder}\" is a symbolic link: "
            f"not writing there\" >&2; exit 1; }}; }} && t=$(mktemp -p {stage}) && echo {data} | base64 -d > \"$t\" "
            f"&& chmod 644 \"$t\" && mv -fT \"$t\" {target}")
    return " && ".join(steps)
