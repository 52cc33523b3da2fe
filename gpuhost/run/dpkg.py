"""Repair what an interrupted apt/dpkg left half done, before any stage installs anything.

An SSH session dropped mid-install (or a killed apt) leaves dpkg's journal and half-configured
packages behind; every later apt-get then fails with "dpkg was interrupted, you must manually
run 'dpkg --configure -a'". The snapshot tells an interrupted dpkg from a running one (facts.host:
no process holds dpkg's lock), so a dpkg that really runs (unattended-upgrades mid-upgrade) is
never touched: the stages wait for its lock instead.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import StringCommand, operation


def repair_stage(ctx) -> list:
    """Queue `dpkg --configure -a` when the snapshot found dpkg interrupted; says so in one line."""
    lock = (ctx.host_state or {}).get("package_lock") or {}
    if ctx.host_plan.status != "planned" or not lock.get("dpkg_interrupted"):
        return []
    unfinished = lock.get("unfinished_packages") or []
    logger.warning(f"[{host.name}] dpkg was interrupted ({len(unfinished)} package(s) left half done"
                   f"{': ' + ', '.join(unfinished[:5]) if unfinished else ''}): repairing it first "
                   "(dpkg --configure -a)")
    return [dpkg_configured(name="Repair the interrupted dpkg (dpkg --configure -a)",
                            lock_timeout=ctx.settings.driver.lock_timeout,
                            _timeout=ctx.settings.bounds.install_timeout + ctx.settings.driver.lock_timeout)]


@operation(is_idempotent=False)
def dpkg_configured(lock_timeout: int = 300):
    """
    Finish an interrupted dpkg run: `dpkg --configure -a`, waiting for dpkg's lock first.

    + lock_timeout: seconds to wait while another process holds dpkg's lock (it may have
      started since the snapshot; then it finishes the work itself and this waits for it)

    **Example:**

    .. code:: python

        dpkg_configured(name="Repair dpkg", lock_timeout=300)
    """
    yield StringCommand(configure_script(lock_timeout))


def configure_script(lock_timeout: int) -> str:
    """dpkg --configure -a, retried while dpkg's lock is held, up to lock_timeout s. Pure."""
    return (
        f"end=$(( $(date +%s) + {lock_timeout} )); "
        "while :; do out=$(DEBIAN_FRONTEND=noninteractive dpkg --configure -a --force-confdef --force-confold 2>&1); "
        "rc=$?; if [ $rc -ne 0 ] && printf '%s' \"$out\" | grep -qi 'lock' && [ $(date +%s) -lt $end ]; "
        "then sleep 2; continue; fi; break; done; printf '%s\\n' \"$out\"; "
        "[ $rc -eq 0 ] && echo 'gpuhost: dpkg was interrupted: dpkg --configure -a finished it' "
        "|| echo 'gpuhost: dpkg --configure -a failed (see above): repair dpkg by hand, then re-run' >&2; exit $rc"
    )
