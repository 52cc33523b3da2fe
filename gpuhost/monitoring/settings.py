"""Host data keys of the monitoring stage, and the facts it builds on (data/monitoring.yaml)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuhost import yamlfile
from gpuhost.errors import UsageError

DATA_DIR = Path(__file__).resolve().parent / "data"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class MonitoringSettings(BaseModel):
    """The monitoring stage's host data (all optional; `monitoring: true` turns the stage on)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    monitoring: bool = Field(False, description="install node_exporter, gpuhost's metrics and a GPU exporter")
    monitoring_listen: str = Field(
        "127.0.0.1", description="address the exporters listen on; the host's address on the monitoring "
                                 "network for a Prometheus elsewhere")
    monitoring_address: Optional[str] = Field(
        None, description="where Prometheus reaches this host (file_sd targets); default: its ssh_hostname, "
                          "else its inventory name")
    dcgm_exporter: Literal["auto", "container", "fallback", "off"] = Field(
        "auto", description="GPU metrics: auto (dcgm-exporter, the nvidia-smi collector on GeForce/TITAN), "
                            "container, fallback (nvidia-smi collector), off")
    dcgm_exporter_registry: str = Field("nvcr.io", description="registry or mirror serving nvidia/k8s/dcgm-exporter")
    dcgm_exporter_digest: Optional[str] = Field(
        None, description="sha256:<64 hex> of the dcgm-exporter image: it is pulled and run by digest only")
    dcgm_exporter_memory: str = Field("1g", pattern=r"^[1-9][0-9]*[kmg]$",
                                      description="the container's memory limit (docker --memory)")

    @classmethod
    def from_host_data(cls, data) -> "MonitoringSettings":
        """Pick this model's keys out of a host's data; UsageError names the key and the fix."""
        picked = {key: data.get(key) for key in cls.model_fields if data.get(key) is not None}
        try:
            settings = cls(**picked)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]) if error["loc"] else "monitoring"
            raise UsageError(f"{key} is {picked.get(key)!r}: {_fix(key, error)}") from None
        if settings.digest_needed and not settings.dcgm_exporter_digest:
            raise UsageError("dcgm_exporter_digest is missing: pin the dcgm-exporter image by digest (sha256:..., "
                             f"e.g. from `docker buildx imagetools inspect {settings.dcgm_exporter_registry}/"
                             f"{data_file()['dcgm_exporter']['repository']}:{data_file()['dcgm_exporter']['tag']}`) "
                             "or set dcgm_exporter: fallback")
        if settings.dcgm_exporter_digest and not DIGEST.match(settings.dcgm_exporter_digest):
            raise UsageError(f"dcgm_exporter_digest is {settings.dcgm_exporter_digest!r}: use sha256: and 64 "
                             "lower-case hex digits")
        return settings

    @property
    def digest_needed(self) -> bool:
        return self.monitoring and self.dcgm_exporter in ("auto", "container")


def _fix(key: str, error: dict) -> str:
    field = MonitoringSettings.model_fields.get(key)
    if error["type"] == "literal_error":
        return "use one of " + error["msg"].split("Input should be ", 1)[1].replace("'", "")
    if error["type"].startswith("bool"):
        return "use true or false"
    if key == "dcgm_exporter_memory":
        return "use a size such as 512m or 2g"
    return f"{error['msg']} ({field.description if field else ''})"


@lru_cache(maxsize=1)
def data_file() -> dict:
    """data/monitoring.yaml, checked: every section the stage reads is there."""
    data = yamlfile.load((DATA_DIR / "monitoring.yaml").read_text())
    for section, keys in {"node_exporter": ("package", "unit", "port", "textfile_dir", "source"),
                          "dcgm_exporter": ("repository", "default_registry", "tag", "port", "counters_file",
                                            "source")}.items():
        missing = [key for key in keys if key not in (data.get(section) or {})]
        if missing:
            raise UsageError(f"gpuhost/monitoring/data/monitoring.yaml: {section} lacks {', '.join(missing)}")
    return data
