"""pyinfra's config for this repository's deploys: pyinfra's CLI loads ./config.py before it connects.

Every host gets its connect bound, keepalives, a bound on each command and its failure said in one
line (gpuhost.run.faults); the fleet table covers every host, also one never reached.
"""

from pyinfra.context import ctx_state

from gpuhost.run import faults, summary

state = ctx_state.get()
faults.install(state)
if summary.deploy_run():
    summary.print_at_exit(state)
