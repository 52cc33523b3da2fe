"""Make this host a verified PyTorch-on-CUDA host.

    pyinfra inventories/lab.py deploys/gpu_host.py

Reads top to bottom: settings, detect, plan, the report, then each stage. A host with no NVIDIA GPU
is skipped (host data `no_gpu: fail` fails it instead); other hosts carry on. Every stage first
compares the one snapshot read at the start with what it wants, so a converged host costs one
command; the run ends with a table of every host.
"""

from io import StringIO

from pyinfra import host, logger
from pyinfra.operations import files

from gpuhost.driver.safety import other_driver
from gpuhost.run.context import host_context
from gpuhost.run.converged import file_current
from gpuhost.run.report import REPORT_DIR, REPORT_PATH, build_report, render_report
from gpuhost.run.summary import summarize_at_exit
from gpuhost.containers.runtime_stage import container_runtime_stage
from gpuhost.driver.stage import driver_stage
from gpuhost.health.stage import health_stage
from gpuhost.run.dpkg import repair_stage
from gpuhost.containers.prepull_stage import prepull_stage
from gpuhost.monitoring.stage import monitoring_stage
from gpuhost.run.stop import stop_host
from gpuhost.verify.stage import verify_stage
from gpuhost.workspace.stage import workspace_stage

# 1-2. Settings, detection (one command) and the plan.
ctx = host_context()
summarize_at_exit(ctx)
if ctx.host_plan.status == "skipped":
    logger.warning(f"[{host.name}] skipped: {ctx.host_plan.reason}")

# 3. Report: what was found and planned, written for every host before any stage can stop it.
plan = ctx.host_plan.plan
installed = other_driver(ctx.managed, ctx.host_state, ctx.gpu_state, plan.driver.branch) if plan else None
report = render_report(build_report(host.name, ctx.gpu_state, ctx.host_state, ctx.host_plan,
                                    installed.describe() if installed else None))
if not file_current(ctx.managed, REPORT_PATH, report):
    files.directory(name="gpuhost state directory", path=REPORT_DIR, mode="755")
    files.put(name="Write the gpuhost report", src=StringIO(report), dest=REPORT_PATH, mode="644")

# 4. Driver: install, move or keep, pinned and held (planned hosts only); an interrupted dpkg is
# repaired first.
repair_stage(ctx)
changes = driver_stage(ctx)

# 4b. GPU health: the on-host command gpuhost-health and its rules (the scheduler's health check).
if ctx.host_plan.status == "planned":
    changes += health_stage(ctx)

# 5-7. Docker + NVIDIA runtime, pre-pull the plan's image, verify in it (planned hosts only).
if ctx.host_plan.status == "planned":
    changes += container_runtime_stage(ctx)
    changes += prepull_stage(ctx)
    changes += verify_stage(ctx, after=changes)

# 8. Workspaces (host data `workspaces:`): JupyterLab and SSH on the verified image, after its check.
if ctx.host_plan.status == "planned" and ctx.settings.workspace.workspaces:
    changes += workspace_stage(ctx)

# 9. Monitoring (host data `monitoring: true`), last: node_exporter, gpuhost's metrics, the GPU exporter.
monitoring_stage(ctx, after=changes)

# A failed host stops here, with the reason as its error; so does one with a sick GPU (the verify
# and workspace stages refused it, with the GPU, the cause and the fix).
if ctx.host_plan.status == "failed":
    stop_host(ctx.host_plan.reason)
elif ctx.refusals:
    stop_host("; ".join(ctx.refusals))
