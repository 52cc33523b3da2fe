"""Install, pin and (as the policy allows) reboot into the planned NVIDIA driver.

    pyinfra inventories/lab.py deploys/driver.py

Runs on its own or inside deploys/gpu_host.py: settings, facts and plan first, then the stage.
"""

from gpuhost.run.context import host_context
from gpuhost.driver.stage import driver_stage
from gpuhost.run.summary import summarize_at_exit

ctx = host_context()
summarize_at_exit(ctx)  # the fleet table at the end: what each host has and how it ended
driver_stage(ctx)
