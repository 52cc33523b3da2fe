"""Install, pin and (as the policy allows) reboot into the planned NVIDIA driver.

    pyinfra inventories/lab.py deploys/driver.py

Runs on its own or inside deploys/gpu_host.py: settings, facts and plan first, then the stage.
"""

from gpuhost.fleet.context import host_context
from gpuhost.driver.stage import driver_stage
from gpuhost.run.dpkg import repair_stage

ctx = host_context()
repair_stage(ctx)
driver_stage(ctx)
