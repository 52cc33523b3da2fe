"""Run only the verify stage: pyinfra INVENTORY deploys/verify.py"""

from gpuhost.fleet.context import host_context
from gpuhost.verify.stage import verify_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    verify_stage(ctx, always=True)
