"""pyinfra's command line, checked where pyinfra itself lets a mistake through (config.py installs this).

pyinfra's CLI loads ./config.py before it reads --data or the inventory, so config.py can check what
comes after it, each in one line (pyinfra's own "--> pyinfra error: ..."), before any host is contacted:
- `--data torch` without `=`: pyinfra fails with a ValueError traceback;
- a Python inventory that raises, calls sys.exit, has a syntax error or is binary (also a YAML or
  .txt file given to pyinfra, which reads it as Python): a traceback, or nothing at all after
  sys.exit; now the file, its line and what happened there;
- `--limit` naming no host: pyinfra deploys nothing and exits 0 with a warning among its output.

pyinfra has no hook for these, so three functions of pyinfra_cli.cli (pyinfra 3.10) are wrapped; if
a pyinfra release renames them, the wrapping is skipped and pyinfra's own behaviour stays.
"""

from __future__ import annotations

from pathlib import Path


def install() -> None:
    from pyinfra_cli import cli

    if getattr(cli, "_gpuhost_checks", False):
        return
    names = ("_set_override_data", "make_inventory", "_apply_inventory_limit")
    if not all(callable(getattr(cli, name, None)) for name in names):
        return
    cli._gpuhost_checks = True
    cli._set_override_data = _checked_data(cli._set_override_data)
    cli.make_inventory = _checked_inventory(cli.make_inventory)
    cli._apply_inventory_limit = _checked_limit(cli._apply_inventory_limit)


def _error(message: str):
    from pyinfra_cli.exceptions import CliError

    return CliError(message)


def data_problem(args) -> str | None:
    """`--data` arguments without `key=`; None when every one has it. Pure."""
    bad = [arg for arg in args if "=" not in arg or not arg.partition("=")[0].strip()]
    if not bad:
        return None
    key = bad[0] if "=" not in bad[0] else "KEY"
    return (f"--data {bad[0]!r} is not key=value: write --data {key}=VALUE, e.g. --data torch=2.9 (quote a "
            f"version: --data 'torch=\"2.10\"')")


def _checked_data(set_override_data):
    def checked(data, *args, **kwargs):
        problem = data_problem(data or ())
        if problem:
            raise _error(problem)
        return set_override_data(data, *args, **kwargs)

    return checked


def _checked_inventory(make_inventory):
    def checked(inventory, *args, **kwargs):
        from pyinfra.api.exceptions import PyinfraError

        from gpuhost.fleet.inventory_file import python_file_problem

        try:
            return make_inventory(inventory, *args, **kwargs)
        except PyinfraError:
            raise
        except (Exception, SystemExit) as exc:
            if not Path(inventory).is_file():
                raise
            raise _error(f"inventory {python_file_problem(Path(inventory), exc, 'define hosts and groups')}") \
                from None

    return checked


def limit_problem(patterns, matched, inventory) -> str | None:
    """`--limit` patterns that select no host; None when each selects one. Pure apart from reading groups."""
    from fnmatch import fnmatch

    from pyinfra.api.exceptions import NoGroupError

    empty = []
    for pattern in patterns:
        try:
            hosts = inventory.get_group(pattern)
        except NoGroupError:
            hosts = [host for host in inventory if fnmatch(host.name, pattern)]
        if not hosts:
            empty.append(pattern)
    if not empty and matched:
        return None
    names = [host.name for host in inventory]
    groups = sorted(inventory.groups) if hasattr(inventory, "groups") else []
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return (f"--limit {', '.join(empty or patterns)}: no host of the inventory has that name or group (pyinfra "
            f"would deploy to no host for it): use a host name ({shown})"
            + (f" or a group ({', '.join(groups)})" if groups else ""))


def _checked_limit(apply_inventory_limit):
    def checked(inventory, limit):
        matched = apply_inventory_limit(inventory, limit)
        if limit:
            problem = limit_problem(list(limit), matched, inventory)
            if problem:
                raise _error(problem)
        return matched

    return checked
