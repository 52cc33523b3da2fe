"""Slurm's HealthCheckProgram on GPU nodes: pyinfra INVENTORY deploys/health.py deploys/slurm_healthcheck.py

deploys/health.py installs gpuhost-health (the GPU health command); this installs its Slurm wrapper,
/usr/local/sbin/gpuhost-slurm-healthcheck, which drains the node with the cause when the check
fails and resumes it when healthy, only if gpuhost drained it for health (docs/slurm.md shows the
slurm.conf lines). Nothing else on the host changes.
"""

from gpuhost.scheduler.stage import slurm_healthcheck_stage

slurm_healthcheck_stage()
