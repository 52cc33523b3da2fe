"""Run only the verify stage: pyinfra INVENTORY deploys/verify.py"""

from gpuhost.context import host_context
from gpuhost.stages.verify import verify_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    verify_stage(ctx, always=True)
