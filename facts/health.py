"""GPU health readings of a host, read in one command (a part of facts/snapshot.py's snapshot).

The script and the parser are gpuhost/health/probe.py's, the same the on-host command
gpuhost-health runs, so `gpuhost inspect` and the scheduler read the same things the same way.
In the snapshot, the nvidia-smi fields and the NVLink status come from the gpu part's one
nvidia-smi call (facts/gpu.py prints them into this part's block); this part's own script reads
the kernel log, sysfs, the fabric manager and dcgmi. Alone (HealthState), it runs the command's
whole reading. The command always exits 0.

Shape (all keys always present)::

    {
      "gpus": [{"index": 0 | None, "bus_id": "0000:00:06.0", "uuid": "GPU-..." | None, "name": ...,
                "lost": bool, "error": "GPU is lost. ..." | None, "utilization": 0..100 | None,
                "ecc_mode": "Enabled" | None,
                "ecc": {"volatile_uncorrected": int | None, "aggregate_uncorrected": int | None},
                "retired_pages": {"sbe", "dbe": int | None, "pending": bool | None},
                "remapped_rows": {"correctable", "uncorrectable": int | None, "pending", "failure": bool | None},
                "pcie": {"gen", "max_gen", "width", "max_width": int | None, "source": "nvidia-smi" | "sysfs"},
                "clocks_event_reasons": int | None,         # NVML bitmask
                "nvlink": {"links": int, "down": [link numbers]},
                "xid": {"79": {"count": 1, "last": "2026-12-06T11:00:00", "text": "GPU has fallen off the bus."}}}],
      "smi": {"ran": bool, "error": str | None},
      "fabric_manager": {"nvswitches": int, "state": "active" | "inactive" | ... | None},
      "dcgm": None | {"overall": "Healthy" | "Warning" | "Failure" | None, "lines": [...]},
    }
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase

from facts.readings import Part
from facts.sections import part_sections
from gpuhost.health import probe

PART = Part("health", (), probe.READ_REST)
COMMAND = probe.COMMAND  # alone: its own nvidia-smi query too


def process_health_sections(sections) -> dict[str, Any]:
    """From facts.sections.Sections (the snapshot's routing) back to lines for the probe's parser."""
    lines: list[str] = []
    for section in sections.all:
        lines.append(f"@@{section.name} {section.header}".rstrip())
        lines += section.lines
    return probe.parse(lines)


class HealthState(FactBase):
    """GPU health readings (Xid, ECC, row remapping, PCIe link, clocks, NVLink, fabric manager, DCGM)."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return probe.parse([])

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_health_sections(part_sections(output, "health"))
