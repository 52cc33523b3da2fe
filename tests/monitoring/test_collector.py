"""The nvidia-smi collector against what nvidia-smi printed on the lent H200 (driver 580.159.04,
tests/fixtures/monitoring-h200/, captured 2026-12-01 by docs/evidence/monitoring-h200's script)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost.lab.prometheus import prometheus_tool
from gpuhost.monitoring.collector import SCRIPT
from gpuhost.monitoring.exporters import counters_csv

sys.path.insert(0, str(SCRIPT.parent))
import nvidia_smi_textfile as collector  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring-h200"
EVIDENCE = Path(__file__).resolve().parents[2] / "docs/evidence/monitoring-h200"
LABELS = ('gpu="0",UUID="GPU-b9c65e0b-eef1-be71-5993-d3b0ac500b67",pci_bus_id="00000000:00:06.0",'
          'device="nvidia0",modelName="NVIDIA H200",exporter="gpuhost-nvidia-smi"')


PROMTOOL = prometheus_tool("promtool")
def _render(name: str) -> str:
    return collector.render((FIXTURES / name).read_text(), (FIXTURES / "query-remapped-rows.csv").read_text())


def test_every_queried_field_is_one_nvidia_smi_580_knows():
    gpu_help = (FIXTURES / "help-query-gpu.txt").read_text()
    remap_help = (FIXTURES / "help-query-remapped-rows.txt").read_text()
    for field, _, _ in collector.GPU_FIELDS:
        assert f'"{field}"' in gpu_help, field
    for field, _, _ in collector.REMAP_FIELDS:
        assert f'"{field}"' in remap_help, field


def test_idle_h200_reading():
    text = _render("query-gpu.csv")
    for line in (f"DCGM_FI_DEV_GPU_TEMP{{{LABELS}}} 42", f"DCGM_FI_DEV_MEMORY_TEMP{{{LABELS}}} 42",
                 f"DCGM_FI_DEV_GPU_UTIL{{{LABELS}}} 0", f"DCGM_FI_DEV_FB_FREE{{{LABELS}}} 143156",
                 f"DCGM_FI_DEV_POWER_USAGE{{{LABELS}}} 79.22", f"DCGM_FI_DEV_SM_CLOCK{{{LABELS}}} 345",
                 f"DCGM_FI_DEV_CLOCKS_EVENT_REASONS{{{LABELS}}} 1",  # 0x...01: GPU idle
                 f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{LABELS}}} 0", f"gpuhost_gpu_row_remap_pending{{{LABELS}}} 0",
                 "gpuhost_gpu_collector_ok 1"):
        assert line + "\n" in text, line


def test_h200_under_load():
    text = _render("query-gpu-load.csv")
    assert f"DCGM_FI_DEV_GPU_UTIL{{{LABELS}}} 99\n" in text
    assert f"DCGM_FI_DEV_POWER_USAGE{{{LABELS}}} 369.98\n" in text
    assert f"DCGM_FI_DEV_CLOCKS_EVENT_REASONS{{{LABELS}}} 4\n" in text


def test_cells_nvidia_smi_cannot_fill_are_left_out():
    assert [collector.number(c) for c in ("[N/A]", "N/A", "[Not Supported]", "", "Yes", "No", "0x40", "12.5")] == \
        [None, None, None, None, 1.0, 0.0, 64.0, 12.5]
    row = (FIXTURES / "query-gpu.csv").read_text().strip().split(", ")
    row[5] = "[N/A]"  # memory temperature, as GeForce cards report it
    assert "DCGM_FI_DEV_MEMORY_TEMP" not in collector.render(", ".join(row), None)


def test_no_answer_from_nvidia_smi_is_reported_not_hidden():
    text = collector.render("", None, ok=False)
    assert "gpuhost_gpu_collector_ok 0\n" in text and "DCGM_FI_DEV" not in text


def test_the_h200_output_keeps_dcgm_names_and_labels():
    """What the collector wrote on the H200 uses dcgm-exporter's names for what DCGM also measures."""
    names = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\{", (EVIDENCE / "collector-load.prom").read_text(), re.M))
    dcgm = {line.split(",")[0].strip() for line in counters_csv().splitlines() if line and not line.startswith("#")}
    assert names - dcgm == {"gpuhost_gpu_row_remap_pending"}  # nvidia-smi's own; every other is DCGM's
    assert names == set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\{", _render("query-gpu-load.csv"), re.M))


@pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian's prometheus) missing")
def test_h200_output_passes_promtool_check_metrics():
    """Valid exposition; promtool's only remarks are on dcgm-exporter's own label names (UUID,
    modelName), which the collector keeps on purpose."""
    for text in ((EVIDENCE / "collector-load.prom").read_text(), _render("query-gpu.csv")):
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        remarks = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        assert remarks and all(line.endswith("label names should be written in 'snake_case' not 'camelCase'")
                               for line in remarks), remarks


def test_written_atomically_into_the_textfile_directory(tmp_path):
    out = tmp_path / "gpuhost_gpu.prom"
    collector.write_atomically(str(out), "x 1\n")
    assert out.read_text() == "x 1\n" and [p.name for p in tmp_path.iterdir()] == ["gpuhost_gpu.prom"]
    assert oct(out.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("linked", ["textfile", "parent"])
def test_a_textfile_directory_swapped_for_a_link_is_not_followed(tmp_path, linked):
    """The collector runs as root; prometheus, who owns the directory, could swap it for a link."""
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    if linked == "textfile":
        (tmp_path / "node-exporter").symlink_to(elsewhere)
        out = tmp_path / "node-exporter" / "gpuhost_gpu.prom"
    else:
        (tmp_path / "prometheus").symlink_to(tmp_path)
        out = tmp_path / "prometheus" / "etc" / "gpuhost_gpu.prom"
    with pytest.raises(OSError):
        collector.write_atomically(str(out), "x 1\n")
    assert list(elsewhere.iterdir()) == []
