"""Host-data keys of the verify stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpuhost.run.host_data import HostDataModel


class VerifySettings(HostDataModel):
    """When deploys/gpu_host.py runs the torch check (deploys/verify.py always does)."""

    when: Literal["auto", "always", "never"] = Field(
        "auto", alias="verify",
        description="when `gpu_host.py` runs the torch check: `auto` when something changed or the last verdict "
                    "does not hold")
