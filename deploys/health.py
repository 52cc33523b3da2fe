"""Only the GPU health command: pyinfra INVENTORY deploys/health.py

Installs /usr/local/sbin/gpuhost-health and its rules (deploys/gpu_host.py does it too) and logs
each host's GPU health as its snapshot shows it. For Slurm's HealthCheckProgram and the like.
"""

from gpuhost.health.stage import health_stage
from gpuhost.run.context import host_context

ctx = host_context()
if ctx.host_plan.status == "planned":
    health_stage(ctx)
