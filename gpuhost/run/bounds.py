"""How long gpuhost waits for a host: host-data keys, checked before any host is contacted.

Every command gpuhost runs on a host has a bound (pyinfra's `_timeout` per command). A host past
its bound is failed with "no answer for N s during <step>"; the rest of the fleet goes on.
Keepalives find a host that stops answering altogether (frozen, powered off, cable pulled) in
keepalive_interval x keepalive_count seconds, whatever the step's own bound.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuhost.errors import UsageError


class Bounds(BaseModel):
    """Host-data keys (all optional): seconds gpuhost waits for a host before failing it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: int = Field(10, ge=1, le=600, description=(
        "TCP connect, the SSH banner and authentication, each (pyinfra's CONNECT_TIMEOUT is 10)"))
    command_timeout: int = Field(300, ge=1, le=86400, description=(
        "each command of an operation, and the snapshot, unless the step has its own bound below"))
    install_timeout: int = Field(1800, ge=1, le=86400, description=(
        "package installs: driver, kernel headers, Docker, the container toolkit (plus apt_lock_timeout)"))
    pull_timeout: int = Field(1800, ge=1, le=86400, description="pulling the plan's image")
    check_timeout: int = Field(900, ge=1, le=86400, description="the torch check in the image")
    reboot_timeout: int = Field(600, ge=1, le=86400, description="a reboot, until the host answers again")
    keepalive_interval: int = Field(5, ge=1, le=600, description=(
        "seconds between SSH keepalives; each must be answered within interval x count"))
    keepalive_count: int = Field(3, ge=1, le=100, description=(
        "unanswered keepalive intervals before the connection counts as lost"))

    @classmethod
    def from_host_data(cls, data) -> Bounds:
        """This model's keys from a host's data; UsageError names the key and the fix."""
        values = {key: data.get(key) for key in cls.model_fields if data.get(key) is not None}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{key} is {value!r}: use a whole number, e.g. {key}: "
                                 f"{cls.model_fields[key].default}")
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = error["loc"][0]
            raise UsageError(f"{key} is {values.get(key)!r}: {error['msg'].lower()}") from None

    @property
    def lost_after(self) -> int:
        """Seconds without an answer to keepalives after which the connection counts as lost."""
        return self.keepalive_interval * self.keepalive_count
