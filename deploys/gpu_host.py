"""Make this host a verified PyTorch-on-CUDA host.

    pyinfra inventories/lab.py deploys/gpu_host.py

Reads top to bottom: check settings, detect, plan, then each stage, then the report. A host with
no NVIDIA GPU is skipped (host data `no_gpu: fail` fails it instead); other hosts carry on.
"""

from io import StringIO
from shlex import quote

from pyinfra import host, logger, state
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, server

from facts.gpu import GpuState
from facts.host import HostState
from gpuhost.host_plan import plan_host
from gpuhost.hostdata import check_hosts, settings_from
from gpuhost.report import REPORT_DIR, REPORT_PATH, build_report, render_report

# 0. Settings: every host's data is checked before any host is touched.
problems = check_hosts((h.name, h.data.dict()) for h in state.inventory)
if problems:
    raise DeployError("bad inventory data: " + "; ".join(problems))
settings = settings_from(host.data.dict())

# 1. Detect: two commands read the GPUs, the driver and the host.
gpu_state = host.get_fact(GpuState)
host_state = host.get_fact(HostState)

# 2. Plan.
host_plan = plan_host(gpu_state, host_state, settings)
if host_plan.status == "skipped":
    logger.warning(f"[{host.name}] skipped: {host_plan.reason}")


# 3-5. Driver, container runtime and pre-pull stages join here as they land (planned hosts only).

# 6. Report: written for every host, a skipped or failed one too.
files.directory(name="gpuhost state directory", path=REPORT_DIR, mode="755")
files.put(
    name="Write the gpuhost report",
    src=StringIO(render_report(build_report(host.name, gpu_state, host_state, host_plan))),
    dest=REPORT_PATH,
    mode="644",
)

# A failed host stops here, with the reason as its error.
if host_plan.status == "failed":
    server.shell(name="gpuhost cannot serve this host",
                 commands=[f"echo {quote('gpuhost: ' + host_plan.reason)} >&2; exit 1"])
