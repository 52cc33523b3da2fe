"""Fail one host with one line: pyinfra shows it as that host's error, and other hosts go on.

The reason is also said when the deploy is prepared (so `--dry` shows why a host would be refused,
as it shows "driver ... kept") and kept for the fleet table's CAUSE column (gpuhost.run.summary).
"""

from shlex import quote

from pyinfra import host, logger
from pyinfra.operations import server

refusals: dict[str, tuple[str, str]] = {}  # host name -> (the stop step's name, the reason), the first one


def stop_command(reason: str) -> str:
    """A shell command that prints `gpuhost: <reason>` on stderr and fails, whatever the reason holds."""
    return f"echo {quote('gpuhost: ' + reason)} >&2; exit 1"


def stop_host(reason: str, name: str = "gpuhost cannot go on with this host") -> None:
    refusals.setdefault(host.name, (name, reason))
    logger.warning(f"[{host.name}] {name}: {reason}")
    server.shell(name=name, commands=[stop_command(reason)])
