"""Run only the container runtime stage: pyinfra INVENTORY deploys/container_runtime.py"""

from gpuhost.run.context import host_context
from gpuhost.containers.runtime_stage import container_runtime_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    container_runtime_stage(ctx)
