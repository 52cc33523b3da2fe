"""Host data keys of the monitoring stage, and the facts it builds on (data/monitoring.yaml)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from gpuhost import yamlfile
from gpuhost.errors import UsageError
from gpuhost.run import grammar
from gpuhost.run.host_data import HostDataModel

DATA_DIR = Path(__file__).resolve().parent / "data"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class MonitoringSettings(HostDataModel):
    """The monitoring stage's host data (all optional; `monitoring: true` turns the stage on)."""

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
        None, description="sha256:<64 hex> of the dcgm-exporter image: it is pulled and run by digest only",
        json_schema_extra={"fix": "use sha256: and 64 lower-case hex digits"})
    dcgm_exporter_memory: str = Field("1g", pattern=r"^[1-9][0-9]*[kmg]$",
                                      description="the container's memory limit (docker --memory)",
                                      json_schema_extra={"fix": "use a size such as 512m or 2g"})

    @field_validator("dcgm_exporter_digest")
    @classmethod
    def _digest(cls, value):
        if value is not None and not DIGEST.fullmatch(value):
            raise ValueError("use sha256: and 64 lower-case hex digits")
        return value

    @field_validator("monitoring_listen")
    @classmethod
    def _listen(cls, value):
        return grammar.ip_address(value)

    @field_validator("monitoring_address")
    @classmethod
    def _address(cls, value):
        return None if value is None else grammar.host_or_ip(value)

    @field_validator("dcgm_exporter_registry")
    @classmethod
    def _registry(cls, value):
        return grammar.registry(value.rstrip("/"))

    @property
    def listen_host(self) -> str:
        """monitoring_listen as a listen address's host part: an IPv6 address in brackets."""
        return f"[{self.monitoring_listen}]" if ":" in self.monitoring_listen else self.monitoring_listen

    @model_validator(mode="after")
    def _digest_pinned(self):
        if self.digest_needed and not self.dcgm_exporter_digest:
            spec = data_file()["dcgm_exporter"]
            raise ValueError("dcgm_exporter_digest is missing: pin the dcgm-exporter image by digest (sha256:..., "
                             f"e.g. from `docker buildx imagetools inspect {self.dcgm_exporter_registry}/"
                             f"{spec['repository']}:{spec['tag']}`) or set dcgm_exporter: fallback")
        return self

    @property
    def digest_needed(self) -> bool:
        return self.monitoring and self.dcgm_exporter in ("auto", "container")


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
