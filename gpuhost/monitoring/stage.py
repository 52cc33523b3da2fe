"""The monitoring stage: node_exporter, gpuhost's own metrics, and a GPU exporter.

Reads like a runbook: node_exporter from the distribution's package (listening on
monitoring_listen), gpuhost's textfiles (verdict, driver, image, reboot, expected GPUs), then the
GPU exporter the host gets (exporters.exporter_choice): dcgm-exporter as a container under
systemd, or the nvidia-smi collector on a timer. Every part is first compared with the snapshot;
a converged host queues nothing (one command per run).
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from gpuhost.monitoring import exporters as ex
from gpuhost.monitoring import metrics
from gpuhost.monitoring import operations as monitoring
from gpuhost.monitoring.collector import SCRIPT as COLLECTOR_SCRIPT
from gpuhost.monitoring.settings import data_file
from gpuhost.run.converged import file_current, installed, sha1, unit_ok

NODE = data_file()["node_exporter"]
NODE_DROPIN = f"/etc/systemd/system/{NODE['unit']}.service.d/gpuhost-listen.conf"
SYSTEMD_DIR = "/etc/systemd/system"
COLLECTOR_OUTPUT = f"{metrics.TEXTFILE_DIR}/gpuhost_gpu.prom"
COLLECTOR_TIMER = f"{ex.COLLECTOR_UNIT}.timer"
DCGM_UNIT_PATH = f"{SYSTEMD_DIR}/{ex.DCGM_UNIT}.service"


def plan_metrics(ctx, exporter: str) -> dict:
    """What gpuhost_host.prom says about the plan."""
    plan = ctx.host_plan
    return {"status": plan.status, "image": plan.plan.image.tag if plan.plan else None,
            "gpus": len(plan.gpus), "exporter": exporter}


def metrics_current(ctx, exporter: str) -> bool:
    """gpuhost's textfiles already say what they would say now (the run timestamp aside)."""
    wanted = metrics.host_metrics(ctx.gpu_state, ctx.host_state, ctx.container_state, plan_metrics(ctx, exporter),
                                  ctx.health)
    record = ctx.managed["verify"]
    return (file_current(ctx.managed, metrics.HOST_METRICS_PATH, wanted)
            and (not record or file_current(ctx.managed, metrics.VERIFY_METRICS_PATH,
                                            metrics.verify_metrics(record, record.get("checked_at")))))


def monitoring_pending(ctx) -> list[str]:
    """What the snapshot does not show in place yet ([]: the stage has nothing to do)."""
    settings, managed, pending = ctx.settings.monitoring, ctx.managed, []
    if not settings.monitoring:
        return []
    if not (installed(managed, NODE["package"]) and file_current(managed, NODE_DROPIN, ex.node_exporter_dropin(settings))
            and unit_ok(managed, NODE["unit"], running=True)):
        pending.append("node_exporter")
    exporter, _ = ex.exporter_choice(settings, ctx.gpu_state)
    if exporter == "dcgm" and not _dcgm_current(ctx):
        pending.append("dcgm-exporter")
    if exporter == "fallback" and not _collector_current(ctx):
        pending.append("nvidia-smi collector")
    if not metrics_current(ctx, exporter):
        pending.append("gpuhost's metrics")
    return pending


def monitoring_stage(ctx, after=()) -> list:
    """Queue the monitoring stage for a host with `monitoring: true`; returns its operations.

    `after`: the operations this run queued before: when one changes the host, gpuhost's metrics
    are written again once they ran."""
    settings = ctx.settings.monitoring
    if not settings.monitoring:
        return []
    pending, ops = monitoring_pending(ctx), []
    exporter, why = ex.exporter_choice(settings, ctx.gpu_state)
    logger.info(f"[{host.name}] GPU metrics: {why}")

    # 1. node_exporter, the drop-in first so that the package's first start already listens there.
    if "node_exporter" in pending:
        apt_lock = f"-o DPkg::Lock::Timeout={ctx.settings.driver.lock_timeout}"  # host data apt_lock_timeout
        put = files.put(name="node_exporter listen address (drop-in)", src=StringIO(ex.node_exporter_dropin(settings)),
                        dest=NODE_DROPIN, mode="644", create_remote_dir=True)
        ops += [put, apt.packages(name=f"Install node_exporter ({NODE['package']})", packages=[NODE["package"]],
                                  update=True, cache_time=3600, extra_install_args=apt_lock),
                systemd.service(name="node_exporter running and enabled", service=NODE["unit"], running=True,
                                enabled=True, daemon_reload=True),
                systemd.service(name="node_exporter restarted (listen address changed)", service=NODE["unit"],
                                restarted=True, _if=put.did_change)]

    # 2. The GPU exporter: dcgm-exporter in a container, or the nvidia-smi collector.
    if "dcgm-exporter" in pending:
        ops += _dcgm_exporter(ctx)
    if "nvidia-smi collector" in pending:
        ops += _collector(ctx)

    # 3. gpuhost's own metrics: now when they differ, else after this run's changes, if any.
    plan = plan_metrics(ctx, exporter)
    if "gpuhost's metrics" in pending:
        ops.append(monitoring.gpuhost_metrics(name="gpuhost's metrics (textfile)", plan=plan))
    elif after or ops:
        ops.append(monitoring.gpuhost_metrics(name="gpuhost's metrics after this run's changes", plan=plan,
                                              _if=any_changed(*after, *ops)))
    if not pending:
        logger.info(f"[{host.name}] monitoring: in place")
    return ops


def _dcgm_current(ctx) -> bool:
    settings, managed = ctx.settings.monitoring, ctx.managed
    _, tag = ex.dcgm_image(settings)
    return ((ctx.container_state.get("image_digests") or {}).get(tag) == settings.dcgm_exporter_digest
            and file_current(managed, ex.COUNTERS_PATH, ex.counters_csv())
            and file_current(managed, DCGM_UNIT_PATH, ex.dcgm_unit(settings))
            and unit_ok(managed, ex.DCGM_UNIT, running=True))


def _dcgm_exporter(ctx) -> list:
    """Counters CSV, the image by digest (pulled now, never at unit start), the unit."""
    settings = ctx.settings.monitoring
    reference, tag = ex.dcgm_image(settings)
    changed = [files.put(name="dcgm-exporter counters (CSV)", src=StringIO(ex.counters_csv()), dest=ex.COUNTERS_PATH,
                         mode="644", create_remote_dir=True),
               files.put(name="dcgm-exporter unit", src=StringIO(ex.dcgm_unit(settings)), dest=DCGM_UNIT_PATH,
                         mode="644")]
    if (ctx.container_state.get("image_digests") or {}).get(tag) != settings.dcgm_exporter_digest:
        changed.append(monitoring.image_by_digest(name="dcgm-exporter image (by digest)", reference=reference,
                                                  tag=tag))
    return changed + [
        systemd.service(name="dcgm-exporter running and enabled", service=ex.DCGM_UNIT, running=True, enabled=True,
                        daemon_reload=True),
        systemd.service(name="dcgm-exporter restarted (unit, counters or image changed)", service=ex.DCGM_UNIT,
                        restarted=True, _if=any_changed(*changed))]


def _collector_current(ctx) -> bool:
    managed = ctx.managed
    return (managed["files"].get(ex.COLLECTOR_PATH) == sha1(COLLECTOR_SCRIPT.read_text())
            and all(file_current(managed, f"{SYSTEMD_DIR}/{name}", text)
                    for name, text in ex.collector_units(COLLECTOR_OUTPUT).items())
            and unit_ok(managed, COLLECTOR_TIMER, running=True))


def _collector(ctx) -> list:
    """The nvidia-smi collector script, its oneshot service and timer."""
    ops = [files.put(name="nvidia-smi collector", src=str(COLLECTOR_SCRIPT), dest=ex.COLLECTOR_PATH, mode="755",
                     create_remote_dir=True)]
    ops += [files.put(name=f"collector unit {name}", src=StringIO(text), dest=f"{SYSTEMD_DIR}/{name}", mode="644")
            for name, text in ex.collector_units(COLLECTOR_OUTPUT).items()]
    return ops + [systemd.service(name="nvidia-smi collector timer running and enabled", service=COLLECTOR_TIMER,
                                  running=True, enabled=True, daemon_reload=True)]


def exporters_stopped(ctx) -> list[str]:
    """Before a driver change: stop the GPU exporters the snapshot shows running (they hold GPU
    handles, as mig-parted's hooks know); returns them, for exporters_started."""
    units = ex.running_exporters(ctx.managed)
    if units:
        monitoring.exporters(name="GPU exporters stopped for the driver change", units=units, running=False)
    return units


def exporters_started(units: list[str]) -> None:
    """After the driver change: start again what exporters_stopped stopped."""
    if units:
        monitoring.exporters(name="GPU exporters started again", units=units, running=True)
