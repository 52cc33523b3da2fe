"""Every metric name gpuhost's rules and dashboard may use, from the code and data that make them:
gpuhost's textfiles (gpuhost.monitoring.metrics), the nvidia-smi collector's output on the real
H200 (docs/evidence/monitoring-h200/collector-load.prom), dcgm-exporter's counters CSV
(gpuhost/monitoring/data/dcgm-counters.csv) and Prometheus' own `up`."""

from __future__ import annotations

import re
from pathlib import Path

from gpuhost.monitoring import metrics
from gpuhost.monitoring.exporters import counters_csv

REPO = Path(__file__).resolve().parents[2]
H200 = REPO / "docs/evidence/monitoring-h200"
NAME = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", re.M)
# Metric names in a PromQL expression: gpuhost's namespaces, DCGM's, and `up`.
USED = re.compile(r"(?<![\w\"])(gpuhost_[a-z0-9_]+|DCGM_[A-Z0-9_]+|up)(?=\s*[{\[)\s]|$)")


def exposition_names(text: str) -> set[str]:
    return {m.group(1) for m in NAME.finditer(text) if not m.group(1).startswith("#")}


def gpuhost_names() -> set[str]:
    record = {"image": "i", "ok": True, "cause": None, "seconds": 1.0}
    gpu = {"driver": {"loaded": True, "version": "580.159.04", "flavour": "open", "mismatch": False}}
    plan = {"status": "planned", "image": "i", "gpus": 1, "exporter": "dcgm"}
    text = (metrics.verify_metrics(record, 1.0) + metrics.run_metrics(1.0)
            + metrics.host_metrics(gpu, {}, {"image_digests": {"i": "sha256:x"}}, plan))
    return exposition_names(text)


def dcgm_names() -> set[str]:
    return {line.split(",")[0].strip() for line in counters_csv().splitlines()
            if line.strip() and not line.startswith("#")}


def known() -> set[str]:
    return gpuhost_names() | dcgm_names() | exposition_names((H200 / "collector-load.prom").read_text()) | {"up"}


def used(expr: str) -> set[str]:
    return set(USED.findall(expr))
