"""Run only the container runtime stage: pyinfra INVENTORY deploys/container_runtime.py"""

from gpuhost.fleet.context import host_context
from gpuhost.containers.runtime_stage import container_runtime_stage
from gpuhost.run.dpkg import repair_stage

ctx = host_context()
repair_stage(ctx)
if ctx.host_plan.status == "planned":
    container_runtime_stage(ctx)
