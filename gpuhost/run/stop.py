"""Fail one host with one line: pyinfra shows it as that host's error, and other hosts go on."""

from shlex import quote

from pyinfra.operations import server


def stop_command(reason: str) -> str:
    """A shell command that prints `gpuhost: <reason>` on stderr and fails, whatever the reason holds."""
    return f"echo {quote('gpuhost: ' + reason)} >&2; exit 1"


def stop_host(reason: str, name: str = "gpuhost cannot go on with this host") -> None:
    server.shell(name=name, commands=[stop_command(reason)])
