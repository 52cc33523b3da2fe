"""Host data keys of the driver stage, checked before any host is touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuhost.errors import UsageError


@dataclass(frozen=True)
class DriverSettings:
    """Host data keys of the driver stage (all optional)."""

    force: bool = False  # upgrade/reboot even with GPU processes running
    source: str | None = None  # driver_source: ubuntu | cuda | debian | cuda-rhel
    repository: str | None = None  # driver_repository: mirror URL
    repository_key: str | None = None  # driver_repository_key: key URL of a re-signed mirror
    repository_fingerprint: str | None = None  # driver_repository_fingerprint: its pinned fingerprint
    lock_timeout: int = 300  # apt_lock_timeout: seconds to wait for the apt/dpkg lock
    secure_boot_mok: bool = False  # a MOK that signs DKMS modules is enrolled


def driver_settings_from(data) -> DriverSettings:
    """The driver stage's keys; raises UsageError naming the key and the fix."""
    from gpuhost.driver.sources import SOURCE_NAMES  # noqa: PLC0415 (keeps settings light)

    for key in ("force", "secure_boot_mok"):
        if not isinstance(data.get(key, False), bool):
            raise UsageError(f"{key} is {data.get(key)!r}: use true or false")
    source = text_value(data, "driver_source")
    if source is not None and source not in SOURCE_NAMES:
        raise UsageError(f"driver_source is {source!r}: use one of {', '.join(SOURCE_NAMES)}")
    for key in ("driver_repository", "driver_repository_key"):
        value = text_value(data, key)
        if value is not None and not value.startswith(("https://", "http://", "file:/")):
            raise UsageError(f"{key} is {value!r}: use an http(s):// or file:/ URL")
    fingerprint = text_value(data, "driver_repository_fingerprint")
    if fingerprint is not None and not (len(fingerprint.replace(" ", "")) == 40
                                        and all(c in "0123456789abcdefABCDEF" for c in fingerprint.replace(" ", ""))):
        raise UsageError(f"driver_repository_fingerprint is {fingerprint!r}: use the key's 40-hex-digit fingerprint")
    timeout = data.get("apt_lock_timeout", 300)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 3600:
        raise UsageError(f"apt_lock_timeout is {timeout!r}: use whole seconds from 0 to 3600")
    return DriverSettings(data.get("force", False), source, text_value(data, "driver_repository"), text_value(data, "driver_repository_key"),
                          fingerprint, timeout, data.get("secure_boot_mok", False))



def text_value(data, key):
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{key} must be a string, got {value!r}")
    return str(value)


class ExistingDriverSettings(BaseModel):
    """What the driver stage does with a driver it did not install (host data keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runfile_driver: Literal["refuse", "replace"] = Field(
        "refuse", description="a driver installed with NVIDIA's .run installer: refuse (the host stops, "
                              "naming nvidia-uninstall) or replace (nvidia-uninstall --silent, then packages)")

    @classmethod
    def from_host_data(cls, data: dict) -> ExistingDriverSettings:
        picked = {key: data[key] for key in cls.model_fields if key in data}
        try:
            return cls(**picked)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = error["loc"][0] if error["loc"] else "runfile_driver"
            raise UsageError(f"{key} is {picked.get(key)!r}: use one of refuse, replace") from None
