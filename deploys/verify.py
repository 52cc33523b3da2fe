"""Run only the verify stage: pyinfra INVENTORY deploys/verify.py"""

from gpuhost.run.context import host_context
from gpuhost.run.stop import stop_host
from gpuhost.verify.stage import verify_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    verify_stage(ctx, always=True)
if ctx.refusals:  # a sick GPU (gpuhost-health): the host fails with the GPU, the cause and the fix
    stop_host("; ".join(ctx.refusals))
