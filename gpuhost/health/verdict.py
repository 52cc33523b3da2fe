"""The health verdict of a host and of each of its GPUs, from the snapshot's health part. Pure.

    from gpuhost.health.verdict import host_health
    health = host_health(snapshot)            # the whole snapshot, or snapshot["health"]
    health.verdict                            # "ok" | "degraded" | "failed"
    health.cause                              # one line naming the GPU and the cause ("" when ok)
    health.fix                                # what to do ("" when ok)
    health.gpus                               # per GPU: .gpu .bus_id .uuid .index .verdict .cause .fix
    health.failed_gpus()                      # the GPUs no work may be given

The judging itself is gpuhost/health/probe.py's (`judge`), the same code the on-host command
gpuhost-health runs, with the rules of data/health.yaml: Slurm and gpuhost never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from gpuhost import yamlfile
from gpuhost.errors import GpuhostError
from gpuhost.health import probe

DATA_DIR = Path(__file__).resolve().parent / "data"
RULES_FILE = DATA_DIR / "health.yaml"
SCHEMA_FILE = DATA_DIR / "health.schema.json"
VERDICTS = ("ok", "degraded", "failed")


@dataclass(frozen=True)
class GpuHealth:
    gpu: str  # "GPU 1 (0000:2b:00.0)"
    bus_id: str
    uuid: str | None
    index: int | None
    verdict: str
    cause: str
    fix: str
    findings: tuple = ()


@dataclass(frozen=True)
class HostHealth:
    verdict: str
    cause: str
    fix: str
    gpus: tuple[GpuHealth, ...] = ()
    read: bool = True  # False: the snapshot had no health reading (an older gpuhost read it)
    host_findings: tuple = field(default=())

    def failed_gpus(self) -> list[GpuHealth]:
        return [gpu for gpu in self.gpus if gpu.verdict == "failed"]

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "cause": self.cause, "fix": self.fix, "read": self.read,
                "gpus": [{"gpu": g.gpu, "bus_id": g.bus_id, "uuid": g.uuid, "index": g.index, "verdict": g.verdict,
                          "cause": g.cause, "fix": g.fix, "findings": list(g.findings)} for g in self.gpus],
                "host_findings": list(self.host_findings)}


@cache
def load_rules(path: Path = RULES_FILE) -> dict:
    """The rules, with every name they use checked (a wrong name is one line, not a KeyError later)."""
    rules = yamlfile.load(Path(path).read_text())
    problems = check_rules(rules)
    if problems:
        raise GpuhostError(f"{path}: {problems[0]}")
    return rules


def check_rules(rules: dict) -> list[str]:
    """Cross-references the schema cannot express: fixes, buckets, rules and citations named exist."""
    problems = []
    citations, fixes, buckets = rules.get("citations", {}), rules.get("fixes", {}), rules.get("buckets", {})

    def sources(where, entry):
        for ref in probe_sources(entry.get("source")):
            if ref not in citations:
                problems.append(f"{where} cites {ref!r}, which is not in citations")

    for name, action in {**{f"buckets.{k}": v for k, v in buckets.items()},
                         **{f"counters.{k}": v for k, v in rules.get("counters", {}).items()}}.items():
        if action.get("fix") not in fixes:
            problems.append(f"{name}: fix {action.get('fix')!r} is not in fixes")
        if action.get("verdict") not in VERDICTS:
            problems.append(f"{name}: verdict {action.get('verdict')!r} is not one of {', '.join(VERDICTS)}")
        sources(name, action)
    for number, xid in rules.get("xids", {}).items():
        if xid.get("bucket") not in buckets:
            problems.append(f"xids.{number}: bucket {xid.get('bucket')!r} is not in buckets")
        sources(f"xids.{number}", xid)
    for text, bucket in rules.get("recovery_actions", {}).items():
        if bucket not in buckets:
            problems.append(f"recovery_actions {text!r}: bucket {bucket!r} is not in buckets")
    for word, rule in rules.get("dcgm_overall", {}).items():
        if rule not in rules.get("counters", {}):
            problems.append(f"dcgm_overall.{word}: {rule!r} is not in counters")
    missing = {"gpu_lost", "smi_failed", "ecc_volatile_uncorrected", "row_remap_failure", "row_remap_pending",
               "retired_pages_pending", "pcie_width_below_max", "pcie_gen_below_max", "clocks_slowdown",
               "nvlink_down", "fabric_manager_down"} - set(rules.get("counters", {}))
    if missing:
        problems.append(f"counters lacks {', '.join(sorted(missing))}")
    return problems


def probe_sources(source) -> list[str]:
    return list(source) if isinstance(source, list) else [source] if source else []


@cache
def rules_json() -> str:
    """The rules as the on-host command reads them (JSON: stdlib only there)."""
    return json.dumps(load_rules(), indent=1, sort_keys=True, default=str) + "\n"


def health_part(snapshot: dict | None) -> dict | None:
    """The health readings from a whole snapshot or from its health part."""
    if not snapshot:
        return None
    return snapshot.get("health") if "health" in snapshot and "gpus" not in snapshot else snapshot


def host_health(snapshot: dict | None, rules: dict | None = None) -> HostHealth:
    """The host's verdict with its cause and fix, and each GPU's (see the module docstring)."""
    readings = health_part(snapshot)
    if readings is None:
        return HostHealth("ok", "", "", (), read=False)
    judged = probe.judge(readings, rules or load_rules())
    gpus = tuple(GpuHealth(g["gpu"], g["bus_id"], g["uuid"], g["index"], g["verdict"], g["cause"], g["fix"],
                           tuple(g["findings"])) for g in judged["gpus"])
    return HostHealth(judged["verdict"], judged["cause"], judged["fix"], gpus,
                      host_findings=tuple(judged["host_findings"]))


def one_line(health: HostHealth) -> str:
    """What the on-host command prints: the same words everywhere."""
    if health.verdict == "ok":
        return f"ok: {len(health.gpus)} GPU(s) healthy"
    return f"{health.verdict}: {health.cause}; fix: {health.fix}"
