"""TEST FIXTURES for the GPU health e2e test (shared, not tests): a stand-in nvidia-smi and dmesg.

The lab has no GPU. Each faulty host gets a TEST FIXTURE /usr/local/bin/nvidia-smi answering the
queries gpuhost's snapshot makes, with the values of the real H100 the lead captured
(docs/evidence/health-h100/raw: the --query-gpu fields one by one, --query-remapped-rows; the GPU
row of tests/fixtures/device-h100/facts/gpu.out), where only the faulty reading is replaced by the
value of a published real output (tests/health/fixtures/README.md says whence):
- xid79: the GPU at the bus of NVIDIA/open-gpu-kernel-modules issue 1151 (0000:2b:00), and a TEST
  FIXTURE /usr/local/bin/dmesg printing that issue's kernel log lines (Xid 79);
- remap: remapped rows 0 correctable, 4 uncorrectable, pending Yes (leptonai/gpud pull request 80);
- x8: PCIe link 16.0 GT/s (Gen4) x8 of 32.0 GT/s (Gen5) x16 (nokyan/resources issue 512).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from gpuhost.health.probe import SMI_FIELDS

REPO = Path(__file__).resolve().parents[2]
EVIDENCE = REPO / "docs" / "evidence" / "health-h100" / "raw"
PUBLISHED = REPO / "tests" / "health" / "fixtures"
BUS = {"xid79": "00000000:2B:00.0"}
FAULTS = {
    "xid79": {},
    "remap": {"remapped_rows.uncorrectable": "4", "remapped_rows.pending": "Yes"},
    "x8": {"pcie.link.gen.current": "4", "pcie.link.width.current": "8"},
}


def real_h100_values() -> dict[str, str]:
    """Each health field's value on the real H100 (query-fields-each.txt, query-remapped-rows.csv)."""
    values = dict(line.split(": ", 1) for line in (EVIDENCE / "query-fields-each.txt").read_text().splitlines()
                  if ": " in line)
    header, row = (EVIDENCE / "query-remapped-rows.csv").read_text().splitlines()[:2]
    values.update(zip([h.strip() for h in header.split(",")], [c.strip() for c in row.split(",")]))
    values["utilization.gpu"] = values["utilization.gpu"].split()[0]  # nounits, as the snapshot asks
    values["pcie.link.gen.current"] = values["pcie.link.gen.gpucurrent"]
    values["clocks_throttle_reasons.active"] = values["clocks_event_reasons.active"]
    return values


def smi_script(case: str) -> str:
    """nvidia-smi answering --query-gpu field by field, in the order asked (a field it does not know
    reads [N/A]); the GPU row's identity fields from tests/fixtures/device-h100/facts/gpu.out."""
    values = {**real_h100_values(), **FAULTS[case]}
    values["pci.bus_id"] = BUS.get(case, values["pci.bus_id"])
    header, row = re.search(r"^@@smi (.*)\n(.*)$", (REPO / "tests/fixtures/device-h100/facts/gpu.out").read_text(),
                            re.M).groups()
    identity = dict(zip(header.split(","), [c.strip() for c in row.split(",")]))
    values = {**identity, **values}  # the health capture's uuid and bus win: one GPU, one identity
    arms = "\n".join(f"        {field}) v={shlex.quote(value)};;" for field, value in values.items())
    return (f"#!/bin/sh\n# TEST FIXTURE (gpuhost e2e, tests/e2e/health_fixture.py): stands in for nvidia-smi, {case}.\n"
            "q=; for a in \"$@\"; do case \"$a\" in --query-gpu=*) q=${a#--query-gpu=};; esac; done\n"
            "case \"$*\" in\n"
            "  *--query-gpu=*) row=; IFS=,; for f in $q; do\n"
            f"      case \"$f\" in\n{arms}\n        *) v='[N/A]';; esac\n"
            "      row=\"${row:+$row, }$v\"; done; echo \"$row\";;\n"
            f"  -L) echo {shlex.quote('GPU 0: NVIDIA H100 80GB HBM3 (UUID: ' + values['uuid'] + ')')};;\n"
            "esac\n")


def dmesg_script() -> str:
    lines = (PUBLISHED / "published-xid79-open-gpu-kernel-modules-1151.log").read_text()
    return ("#!/bin/sh\n# TEST FIXTURE (gpuhost e2e): stands in for dmesg with the published Xid 79 lines of\n"
            "# NVIDIA/open-gpu-kernel-modules issue 1151 (tests/health/fixtures/README.md).\n"
            f"cat <<'EOF'\n{lines}EOF\n")


def install(host, case: str) -> None:
    host.exec("cat > /usr/local/bin/nvidia-smi && chmod 755 /usr/local/bin/nvidia-smi", input=smi_script(case),
              check=True)
    if case == "xid79":
        host.exec("cat > /usr/local/bin/dmesg && chmod 755 /usr/local/bin/dmesg", input=dmesg_script(), check=True)
