"""Run only the workspace stage: pyinfra INVENTORY deploys/workspace.py

JupyterLab and/or SSH workspaces on the plan's image, one systemd unit each (host data
`workspaces:` and `workspace_users:`; see the README). deploys/gpu_host.py includes this stage
when the host data lists workspaces; run alone, it expects Docker and the plan's image in place.
"""

from gpuhost.run.context import host_context
from gpuhost.run.stop import stop_host
from gpuhost.workspace.stage import workspace_stage

ctx = host_context()
if ctx.host_plan.status == "planned":
    workspace_stage(ctx)
if ctx.refusals:  # a sick GPU (gpuhost-health): the host fails with the GPU, the cause and the fix
    stop_host("; ".join(ctx.refusals))
