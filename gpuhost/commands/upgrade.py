"""`gpuhost upgrade`: roll the planned NVIDIA driver out over a fleet, canary first, then in batches.

    gpuhost upgrade inventories/lab.py --canary 1 --batch 25% [--max-failed 0]
        [--drain-command 'scontrol update nodename={host} state=drain reason=gpuhost']
        [--undrain-command 'scontrol update nodename={host} state=resume'] [--drain-timeout 600]
        [--scheduler slurm] [--force] [--reboot auto|never] [--deploy deploys/driver.py] [--limit HOST ...]
        [--state FILE] [--restart] [--json]

The thin shell around gpuhost/fleet/rollout.py (which decides everything; read its docstring for the
rules). What this module chooses, and why:

- Reading hosts: `inspect.gather()` (pyinfra's API, one command per host), for each batch right
  before it (GPU work starts and stops) and right after it (the verification).
- Applying: pyinfra's own CLI, once per batch: `pyinfra INVENTORY deploys/driver.py -y --limit h1
  --limit h2`, the inventory's host data forwarded as is (`--force` adds `--data force=true`,
  `--reboot` adds `--data reboot=...`). The default deploy is the driver stage alone, because an
  admin's rolling upgrade is the driver's: the container runtime, pre-pull and the torch check need
  Docker, the image and a GPU, and `--deploy deploys/gpu_host.py` runs them too (their failures
  then fail the host). A YAML inventory is read through inventories/lab.py (GPUHOST_INVENTORY),
  both here and by pyinfra, so the plan checked is the plan deployed (group_data included).
- Outcome: pyinfra's per-host status lines ("[h] Error" fails the host with the failing operation
  and its message), then the fresh snapshot must show the driver in place (rollout.verify_host).
- Draining (`--drain-command`, on this machine, `{host}` replaced): run for every host the batch
  will change, then wait up to --drain-timeout for its GPU work to end; `--undrain-command` runs
  after a host is upgraded and verified (failed hosts stay drained).
- Slurm (`--scheduler slurm`, gpuhost/commands/upgrade_slurm.py): `scontrol` on each host drains
  its node with a reason naming gpuhost and the target, waits until Slurm reports it drained, and
  resumes it only after its check passed; the rules are gpuhost/scheduler/slurm.py's.
- State: a JSON record (default $XDG_STATE_HOME or ~/.local/state, gpuhost/upgrade-<inventory>-
  <hash>.json), written after every batch; pyinfra's output per batch in <state>.logs/. A lock file
  keeps two rollouts off one record.

Exit status: 0 when every host is upgraded, current or without GPU; 1 when the rollout stopped or
left hosts failed/skipped; 2 for bad flags or inventory data (before any host is touched).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gpuhost.commands.upgrade_run import (Rollout, default_state_path, inventory_hosts, load_record, locked,
                                          now, resolve_deploy, save_record, say)
from gpuhost.errors import UsageError
from gpuhost.fleet import rollout, upgrade_record

def upgrade_command(
    inventory: str = typer.Argument(..., help="Inventory: a .py or .yaml file, or a host list (a,b)."),
    canary: int = typer.Option(1, "--canary", metavar="N", help="Hosts upgraded first, alone; any failure there stops all."),
    batch: str = typer.Option("1", "--batch", metavar="N|N%", help="Hosts per batch after the canary: a count (2) or a "
                                                   "percentage of the hosts (25%)."),
    max_failed: int = typer.Option(0, "--max-failed", metavar="N", help="Stop after a batch once more hosts than this "
                                                           "have failed in this run."),
    drain_command: Optional[str] = typer.Option(None, "--drain-command", metavar="COMMAND", help="Run here before a host is "
                                                "changed, {host} replaced (e.g. 'kubectl drain {host}')."),
    undrain_command: Optional[str] = typer.Option(None, "--undrain-command", metavar="COMMAND", help="Run here after a drained "
                                                  "host is upgraded and verified (e.g. 'kubectl uncordon {host}')."),
    drain_timeout: int = typer.Option(600, "--drain-timeout", metavar="SECONDS", help="Seconds to wait for GPU work to end "
                                                                   "after the drain command."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="NAME", help="Drain, wait for and resume "
                                            "each host in this scheduler (slurm: scontrol on the hosts)."),
    force: bool = typer.Option(False, "--force", help="Upgrade hosts even while GPU work runs (passes force: true)."),
    reboot: Optional[str] = typer.Option(None, "--reboot", metavar="POLICY", help="Override the hosts' reboot policy: auto or never."),
    deploy: Optional[str] = typer.Option(None, "--deploy", metavar="FILE", help="Deploy file run per batch (default: deploys/"
                                         "driver.py; deploys/gpu_host.py for all stages)."),
    limit: Optional[list[str]] = typer.Option(None, "--limit", metavar="HOST", help="Only this host; repeat for more."),
    state: Optional[Path] = typer.Option(None, "--state", metavar="FILE", help="The rollout's JSON record (default under "
                                                               "~/.local/state/gpuhost/)."),
    restart: bool = typer.Option(False, "--restart", help="Start a new rollout instead of resuming the recorded one."),
    as_json: bool = typer.Option(False, "--json", help="Print the rollout's JSON record instead of the table."),
) -> None:
    """Roll the planned driver out: canary first, then batches; resumable; busy hosts skipped."""
    size = rollout.check_options(canary, batch, max_failed, drain_command, drain_timeout)
    if undrain_command is not None and "{host}" not in undrain_command:
        raise UsageError("--undrain-command has no {host}: write where the host name goes, e.g. "
                         "'kubectl uncordon {host}'")
    if reboot is not None and reboot not in ("auto", "never"):
        raise UsageError(f"--reboot {reboot!r}: use auto or never")
    if scheduler is not None:
        from gpuhost.commands.upgrade_slurm import check_scheduler

        check_scheduler(scheduler, drain_command, undrain_command)
    deploy_path = resolve_deploy(deploy)
    from gpuhost.commands.inspect import inventory_entry

    source = inventory_entry(inventory)
    try:
        hosts = inventory_hosts(source, list(limit or []))
    except UsageError as exc:  # name the user's file, not the entry point that read it
        raise UsageError(str(exc).replace(source, inventory)) from None
    if canary > len(hosts):
        raise UsageError(f"--canary {canary} is more than the {len(hosts)} host(s) of this rollout: use --canary "
                         f"{len(hosts)} or fewer (0: no canary)")
    state_path = (state or default_state_path(inventory)).expanduser()
    if upgrade_record.state_path_problem(state_path):
        raise UsageError(upgrade_record.state_path_problem(state_path))
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--state {state_path}: cannot create its directory ({exc.strerror})") from None
    with locked(state_path):
        record = load_record(state_path, inventory, restart)
        kind = Rollout
        if scheduler is not None:
            from gpuhost.commands.upgrade_slurm import SlurmRollout, preflight

            preflight(source, hosts, record)
            kind = SlurmRollout
        job = kind(source, hosts, record, state_path, deploy=deploy_path, force=force, reboot=reboot,
                   drain=drain_command, undrain=undrain_command, drain_timeout=drain_timeout,
                   max_failed=max_failed)
        options = {"canary": canary, "batch": str(size), "max_failed": max_failed, "force": force,
                   "reboot": reboot, "deploy": str(deploy_path), "drain_command": drain_command,
                   "undrain_command": undrain_command, "drain_timeout": drain_timeout, "limit": list(limit or []),
                   "scheduler": scheduler}
        job.run = rollout.open_run(record, hosts, options, now())
        left = rollout.todo(record, hosts)
        batches = rollout.plan_batches(left, len(hosts), 0 if record["canary_passed"] else canary, size)
        say(f"{len(hosts)} host(s), {len(left)} to do in {len(batches)} batch(es); state: {state_path}")
        save_record(state_path, record)
        stopped = None
        try:
            for step in batches:
                job.batch(step)
                stopped = rollout.stop_reason(record, step, job.run, max_failed)
                if stopped:
                    say(f"stopping: {stopped}")
                    break
        except BaseException:
            rollout.close_run(record, hosts, job.run, None, now(), interrupted=True)
            save_record(state_path, record)
            raise
        status = rollout.close_run(record, hosts, job.run, stopped, now())
        save_record(state_path, record)
    if as_json:
        typer.echo(json.dumps({**record, "state_file": str(state_path)}, indent=2, sort_keys=True))
    else:
        typer.echo(rollout.render_summary(record, hosts, str(state_path)))
    raise typer.Exit(0 if status == "complete" else 1)


def register(app: typer.Typer) -> None:
    app.command("upgrade")(upgrade_command)
