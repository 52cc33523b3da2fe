"""Run only the prepull stage: pyinfra INVENTORY deploys/prepull.py"""

from gpuhost.context import host_context
from gpuhost.stages.prepull import prepull_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    prepull_stage(ctx)
