"""What every deploy file needs first: this host's settings, facts and plan, read once per host.

`deploys/gpu_host.py` and each stage's own deploy file start with `host_context()`, so a stage
runs the same on its own as inside the full deploy, and the facts are read once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra import host, logger, state
from pyinfra.api.exceptions import DeployError

from facts.snapshot import HostSnapshot
from gpuhost.compose.host_plan import HostPlan, plan_host
from gpuhost.compose.settings import HostSettings, check_fleet, problems_text
from gpuhost.driver.safety import other_driver
from gpuhost.fleet.inventory_file import cli_override_data
from gpuhost.run import faults
from gpuhost.run.summary import summarize_at_exit


@dataclass
class HostContext:
    settings: HostSettings
    gpu_state: dict
    host_state: dict
    host_plan: HostPlan
    container_state: dict  # as read before the run: stages that change Docker read it again
    managed: dict  # facts.managed.ManagedState: what gpuhost manages, for gpuhost.run.converged
    workspace: dict | None = None  # facts.workspace.WorkspaceState: gpuhost's workspaces there
    health: dict | None = None  # facts.health: GPU health readings (gpuhost.health.verdict.host_health)
    # One line each: what a stage refused on this host (a failed GPU); the deploy fails the host
    # with them at its end, after the stages that only report (monitoring) have run.
    refusals: list[str] = field(default_factory=list)


_contexts: dict[str, HostContext] = {}
# id(inventory) -> (its problems' text, "" when none; each host's settings): checked once per run.
_fleets: dict[int, tuple[str, dict[str, HostSettings]]] = {}


def host_context() -> HostContext:
    """Settings checked for every host (before any is touched), then one reading and the plan for this one."""
    key = host.name  # `host` is pyinfra's context proxy: its id() is the same for every host
    if key not in _contexts:
        problems, fleet = fleet_settings()
        if problems:
            raise DeployError(problems)
        settings = fleet[host.name]
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
                                     snapshot["container"], snapshot["managed"],
                                     snapshot.get("workspace"), snapshot.get("health"))
        summarize_at_exit(_contexts[key], other_driver)  # every deploy ends with the fleet table
    return _contexts[key]


def fleet_settings() -> tuple[str, dict[str, HostSettings]]:
    """Every host's settings, checked once per run (each host's deploy asks: once, not once per host)."""
    key = id(state.inventory)
    if key not in _fleets:
        typed = cli_override_data()  # --data as typed: `torch=2.10` is named as such
        problems, settings = check_fleet((h.name, {**h.data.dict(), **typed}) for h in state.inventory)
        _fleets[key] = (problems_text("bad inventory data", problems) if problems else "", settings)
    return _fleets[key]
