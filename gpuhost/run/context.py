"""What every deploy file needs first: this host's settings, facts and plan, read once per host.

`deploys/gpu_host.py` and each stage's own deploy file start with `host_context()`, so a stage
runs the same on its own as inside the full deploy, and the facts are read once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, logger, state
from pyinfra.api.exceptions import DeployError

from facts.snapshot import HostSnapshot
from gpuhost.plan.host_plan import HostPlan, plan_host
from gpuhost.run import faults
from gpuhost.run.summary import summarize_at_exit
from gpuhost.run.settings import HostSettings, check_hosts, settings_from


@dataclass
class HostContext:
    settings: HostSettings
    gpu_state: dict
    host_state: dict
    host_plan: HostPlan
    container_state: dict  # as read before the run: stages that change Docker read it again
    managed: dict  # facts.managed.ManagedState: what gpuhost manages, for gpuhost.run.converged


_contexts: dict[int, HostContext] = {}


def host_context() -> HostContext:
    """Settings checked for every host (before any is touched), then one reading and the plan for this one."""
    key = id(host)
    if key not in _contexts:
        problems = check_hosts((h.name, h.data.dict()) for h in state.inventory)
        if problems:
            raise DeployError("bad inventory data: " + "; ".join(problems))
        settings = settings_from(host.data.dict())
        faults.install(state)  # bounds and keepalives, when config.py did not already
        faults.watch(host, settings.bounds)
        # Every reading a converged run needs, in one bounded command.
        snapshot, cause = faults.read_snapshot(host, settings.bounds)
        if snapshot is None:  # no reading: this host is failed with the cause, the others go on
            logger.error(f"[{host.name}] {cause}")
            state.fail_hosts({host})
            snapshot = HostSnapshot.default()
        gpu_state, host_state = snapshot["gpu"], snapshot["host"]
        host_plan = plan_host(gpu_state, host_state, settings) if cause is None else HostPlan("failed", cause, [])
        _contexts[key] = HostContext(settings, gpu_state, host_state, host_plan,
                                     snapshot["container"], snapshot["managed"])
        summarize_at_exit(_contexts[key])  # every deploy ends with the fleet table
    return _contexts[key]
