"""pyinfra operations of the monitoring stage (the rest are pyinfra's own: apt, files, systemd)."""

from __future__ import annotations

import shlex
import time

from pyinfra import logger
from pyinfra.api import FunctionCommand, StringCommand, operation

from gpuhost.monitoring import metrics


def _write_live(state, host, plan):
    """Read the host again (one command: the snapshot, so values match the converged check),
    then write gpuhost's textfiles whole (one command)."""
    from facts.snapshot import HostSnapshot  # noqa: PLC0415 (facts import pyinfra's fact machinery)

    host_ = host  # pyinfra passes state and host to callbacks whose parameters have these names
    snapshot = host_.get_fact(HostSnapshot)
    files = {metrics.HOST_METRICS_PATH: metrics.host_metrics(snapshot["gpu"], snapshot["host"],
                                                             snapshot["container"], plan, snapshot.get("health")),
             metrics.RUN_METRICS_PATH: metrics.run_metrics(time.time())}
    record = snapshot["managed"]["verify"]
    if record:
        files[metrics.VERIFY_METRICS_PATH] = metrics.verify_metrics(record, record.get("checked_at"))
    status, output = host_.run_shell_command(StringCommand(metrics.atomic_write_command(files)))
    if not status:
        logger.error(f"[{host_.name}] writing gpuhost's metrics failed: {output.stderr.strip()}")
    return status


@operation(is_idempotent=False)
def gpuhost_metrics(plan: dict):
    """
    Write gpuhost's own metrics into node_exporter's textfile directory, from the host as it is
    when this operation runs (after the stages before it changed it).

    + plan: {"status", "image", "gpus", "exporter"}: what the plan expects (gpuhost.monitoring.metrics)

    **Example:**

    .. code:: python

        gpuhost_metrics(name="gpuhost's metrics", plan={"status": "planned", "image": "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", "gpus": 8, "exporter": "dcgm"})
    """
    yield FunctionCommand(_write_live, (plan,), {})


@operation()
def image_by_digest(reference: str, tag: str):
    """
    Pull an image by digest and give it a local tag (so the snapshot can see its digest).

    + reference: ``name@sha256:...``, what the unit runs
    + tag: ``name:tag``, the local name it is also known by

    **Example:**

    .. code:: python

        image_by_digest(name="dcgm-exporter image", reference="nvcr.io/nvidia/k8s/dcgm-exporter@sha256:...", tag="nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless")
    """
    yield StringCommand(f"docker pull {shlex.quote(reference)} && docker tag {shlex.quote(reference)} {shlex.quote(tag)}")


@operation(is_idempotent=False)
def exporters(units: list[str], running: bool):
    """
    Stop or start GPU exporter units (they hold GPU handles: stopped around driver changes).

    + units: systemd units, e.g. gpuhost-dcgm-exporter, gpuhost-gpu-metrics.timer
    + running: start (True) or stop (False)

    **Example:**

    .. code:: python

        exporters(name="GPU exporters stopped", units=["gpuhost-dcgm-exporter"], running=False)
    """
    if not units:
        return
    yield StringCommand(f"systemctl {'start' if running else 'stop'} {' '.join(shlex.quote(u) for u in units)}")
