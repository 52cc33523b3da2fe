"""Run only the prepull stage: pyinfra INVENTORY deploys/prepull.py"""

from gpuhost.fleet.context import host_context
from gpuhost.containers.prepull_stage import prepull_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    prepull_stage(ctx)
