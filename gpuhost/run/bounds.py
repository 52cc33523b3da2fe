"""How long gpuhost waits for a host: host-data keys, checked before any host is contacted.

Every command gpuhost runs on a host has a bound (pyinfra's `_timeout` per command). A host past
its bound is failed with "no answer for N s during <step>"; the rest of the fleet goes on.
Keepalives find a host that stops answering altogether (frozen, powered off, cable pulled) in
keepalive_interval x keepalive_count seconds, whatever the step's own bound.
"""

from __future__ import annotations

from pydantic import Field

from gpuhost.run.host_data import HostDataModel


def _seconds(default: int, most: int, description: str):
    return Field(default, ge=1, le=most, description=description,
                 json_schema_extra={"values": f"seconds, 1 to {most}", "fix": f"use whole seconds from 1 to {most}"})


class Bounds(HostDataModel):
    """Host-data keys (all optional): seconds gpuhost waits for a host before failing it."""

    connect_timeout: int = _seconds(10, 600, "TCP connect, the SSH banner and authentication, each "
                                             "(pyinfra's CONNECT_TIMEOUT is 10)")
    command_timeout: int = _seconds(300, 86400, "each command of an operation, and the snapshot, unless the "
                                                "step has its own bound below")
    install_timeout: int = _seconds(1800, 86400, "package installs: driver, kernel headers, Docker, the container "
                                                 "toolkit (plus apt_lock_timeout)")
    pull_timeout: int = _seconds(1800, 86400, "pulling the plan's image")
    check_timeout: int = _seconds(900, 86400, "the torch check in the image")
    reboot_timeout: int = _seconds(600, 86400, "a reboot, until the host answers again")
    keepalive_interval: int = _seconds(5, 600, "seconds between SSH keepalives; each must be answered within "
                                               "interval x count")
    keepalive_count: int = _seconds(3, 100, "unanswered keepalive intervals before the connection counts as lost")

    @property
    def lost_after(self) -> int:
        """Seconds without an answer to keepalives after which the connection counts as lost."""
        return self.keepalive_interval * self.keepalive_count
