"""Host-data keys of the driver stage, checked before any host is touched."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from gpuhost.run import grammar
from gpuhost.run.host_data import HostDataModel, fingerprint, url


def _source_name(value: str) -> str:
    from gpuhost.driver.sources import SOURCE_NAMES  # noqa: PLC0415 (sources.py reads its data file)

    if value not in SOURCE_NAMES:
        raise ValueError(f"use one of {', '.join(SOURCE_NAMES)}")
    return value


class DriverSettings(HostDataModel):
    """Host-data keys of the driver stage (all optional)."""

    force: bool = Field(False, description="change the driver, or reboot, even with GPU processes running")
    reboot: Literal["auto", "never"] = Field(
        "never", description="`auto`: reboot after a driver change and check the new module is loaded")
    source: Annotated[str, AfterValidator(_source_name)] | None = Field(
        None, alias="driver_source", description="where the driver comes from",
        json_schema_extra={"values": "`ubuntu` / `cuda` / `debian` / `cuda-rhel`", "default_text": "by the host's OS"})
    repository: Annotated[str, AfterValidator(url), AfterValidator(grammar.printable)] | None = Field(
        None, alias="driver_repository", description="a mirror of the driver repository",
        json_schema_extra={"values": "an http(s):// or file:/ URL"})
    repository_key: Annotated[str, AfterValidator(url), AfterValidator(grammar.printable)] | None = Field(
        None, alias="driver_repository_key", description="the key URL of a mirror that signs with its own key",
        json_schema_extra={"values": "an http(s):// or file:/ URL"})
    repository_fingerprint: Annotated[str, AfterValidator(fingerprint)] | None = Field(
        None, alias="driver_repository_fingerprint", description="that key's pinned fingerprint",
        json_schema_extra={"values": "40 hex digits, spaces allowed"})
    lock_timeout: int = Field(
        300, alias="apt_lock_timeout", ge=0, le=3600, description="seconds to wait for a busy apt/dpkg lock",
        json_schema_extra={"values": "seconds, 0 to 3600", "fix": "use whole seconds from 0 to 3600"})
    secure_boot_mok: bool = Field(False, description="a MOK that signs DKMS modules is enrolled (Secure Boot)")
    runfile_driver: Literal["refuse", "replace"] = Field(
        "refuse", description="a driver installed with NVIDIA's .run installer: `refuse` (the host stops, naming "
                              "nvidia-uninstall) or `replace` (nvidia-uninstall --silent, then packages)")
