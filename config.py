"""pyinfra's config for this repository's deploys: pyinfra's CLI loads ./config.py before it connects.

For runs of deploys/*.py, --data, the inventory file and --limit are checked first, each refused in
one line (gpuhost.fleet.cli_checks); every host gets its connect bound, keepalives, a bound on each
command and its failure said in one line (gpuhost.run.faults), and the fleet table covers every host,
also one never reached. Other pyinfra commands (exec, fact, debug-inventory) are left as pyinfra has them.
"""

from pyinfra.context import ctx_state

from gpuhost.fleet import cli_checks
from gpuhost.run import faults, summary


def _fleet_checked() -> bool:
    from gpuhost.fleet.context import fleet_settings

    return not fleet_settings()[0]


if summary.deploy_run():
    cli_checks.install()  # --data, the inventory file and --limit, each refused in one line
    state = ctx_state.get()
    faults.install(state)
    faults.read_on_connect(_fleet_checked)  # each host's snapshot starts as it connects
    summary.print_at_exit(state)
