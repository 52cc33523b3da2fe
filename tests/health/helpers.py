"""Frame real and published outputs (tests/health/fixtures, README.md there says whence) as the
health script's sections, exactly as gpuhost/health/probe.py's READ_SCRIPT prints them."""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def script_output(fields: str | None = None, rows: list[str] = (), rc: int = 0, nvlink: str = "",
                  kernel_log: str = "", links: list[str] = (), fabric: str = "nvswitches=0 state=-",
                  dcgmi: str | None = None) -> list[str]:
    out = ["@@gpuhost health 1"]
    if fields is not None:
        out += [f"@@hsmi {fields}", *rows, f"@@hsmi_rc {rc}", "@@nvlink", *nvlink.splitlines()]
    out += ["@@xid", *[line for line in kernel_log.splitlines() if "NVRM: Xid" in line]]
    out += ["@@link", *links, f"@@fabric {fabric}"]
    if dcgmi is not None:
        out += ["@@dcgmi", *dcgmi.splitlines()]
    return out


def sysfs_link_line(bus: str, text: str) -> str:
    """A `bus=... speed=...` line from sysfs link files as `tail -v` or `name: value` shows them."""
    values = {}
    for name in ("current_link_speed", "current_link_width", "max_link_speed", "max_link_width"):
        match = re.search(rf"{name}(?: <==\n|: )([^\n]+)", text)
        values[name] = match.group(1).strip().replace(" ", "") if match else ""
    return (f"bus={bus} speed={values['current_link_speed']} width={values['current_link_width']} "
            f"max_speed={values['max_link_speed']} max_width={values['max_link_width']}")


def h100_idle(**extra) -> list[str]:
    """The real H100 at idle (docs/evidence/health-h100/raw)."""
    """`kernel_log` is added to the real (Xid-free) one; `links` replaces the real sysfs line."""
    extra["kernel_log"] = read("h100-idle/dmesg-iso.txt") + extra.get("kernel_log", "")
    extra.setdefault("links", [sysfs_link_line("0000:00:06.0", read("h100-idle/sysfs-link.txt"))])
    return script_output(read("h100-idle/query-fields.txt").strip(),
                         read("h100-idle/query-gpu-health-noheader.csv").splitlines(),
                         nvlink=read("h100-idle/nvlink-status.txt"), **extra)


def remap_values(text: str) -> dict:
    """`nvidia-smi -q`'s Remapped Rows block -> the --query-gpu cells it corresponds to."""
    value = {key: re.search(rf"{label}\s*: (\S+)", text) for key, label in
             (("remapped_rows.correctable", "Correctable Error"), ("remapped_rows.uncorrectable", "Uncorrectable Error"),
              ("remapped_rows.pending", "Pending"))}
    return {key: match.group(1) for key, match in value.items() if match}
