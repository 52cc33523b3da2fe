"""gpuhost's textfiles: rendered from real snapshots and verdicts, valid exposition (promtool
check metrics), written whole by one shell command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gpuhost.lab.prometheus import prometheus_tool
from gpuhost.monitoring import metrics
from gpuhost.verify.causes import classify
from gpuhost.verify.stage import verdict_record

REPO = Path(__file__).resolve().parents[2]
# The snapshot gpuhost read on the lent H200 (docs/evidence/README.md says how).
H200 = json.loads((REPO / "docs/evidence/h200/snapshot.json").read_text())["facts.snapshot.HostSnapshot"]["@local"]
IMAGE = "pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime"
PLAN = {"status": "planned", "image": IMAGE, "gpus": 1, "exporter": "dcgm"}
PROMTOOL = prometheus_tool("promtool")
needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian's prometheus) missing")


def _passed() -> dict:
    check = (REPO / "docs/evidence/check-h200.json").read_text()
    return verdict_record(IMAGE, 0, classify(0, check, ""), 38.2, None, 1796000000)


def test_host_metrics_from_the_real_h200_snapshot():
    text = metrics.host_metrics(H200["gpu"], H200["host"], H200["container"], PLAN)
    assert 'gpuhost_driver_info{version="580.159.04",flavour="open"} 1\n' in text
    assert "gpuhost_driver_library_mismatch 0\n" in text
    assert "gpuhost_gpus_expected 1\n" in text
    assert 'gpuhost_plan_status{status="planned"} 1\n' in text
    assert 'gpuhost_gpu_exporter{kind="dcgm"} 1\n' in text
    # No Docker on the lent machine: the image is reported absent, not left out.
    assert f'gpuhost_image_info{{image="{IMAGE}",digest="absent"}} 1\n' in text
    assert "gpuhost_reboot_required" in text


def test_pending_reboot_mismatch_and_digest_are_reported():
    gpu = {"driver": {"loaded": True, "version": "580.95.05", "flavour": "proprietary", "mismatch": True}}
    text = metrics.host_metrics(gpu, {"reboot": {"required": True}}, {"image_digests": {IMAGE: "sha256:abc"}}, PLAN)
    assert "gpuhost_driver_library_mismatch 1\n" in text and "gpuhost_reboot_required 1\n" in text
    assert f'gpuhost_image_info{{image="{IMAGE}",digest="sha256:abc"}} 1\n' in text
    assert "gpuhost_driver_info" not in metrics.host_metrics({}, {}, {}, PLAN)  # no driver: no info line


def test_verify_metrics_of_real_verdicts():
    assert metrics.verify_metrics(_passed(), 1796000000) == (
        "# HELP gpuhost_verify_ok 1 when the torch check passed in the plan's image.\n"
        "# TYPE gpuhost_verify_ok gauge\n"
        f'gpuhost_verify_ok{{image="{IMAGE}",cause="none"}} 1\n'
        "# HELP gpuhost_verify_timestamp_seconds When the check last ran.\n"
        "# TYPE gpuhost_verify_timestamp_seconds gauge\n"
        "gpuhost_verify_timestamp_seconds 1796000000\n"
        "# HELP gpuhost_verify_duration_seconds How long the containerized check took.\n"
        "# TYPE gpuhost_verify_duration_seconds gauge\n"
        "gpuhost_verify_duration_seconds 38.2\n")
    stderr = (REPO / "tests/fixtures/errors/docker_daemon_down.stderr").read_text()
    failed = verdict_record(IMAGE, 125, classify(125, "", stderr), 0.4)
    text = metrics.verify_metrics(failed, None)
    assert f'gpuhost_verify_ok{{image="{IMAGE}",cause="docker_daemon_down"}} 0\n' in text
    assert "gpuhost_verify_timestamp_seconds" not in text  # a record from before checked_at existed


def test_label_values_are_escaped():
    text = metrics.gauge("gpuhost_x", "h", [({"a": 'q"b\\c\nd'}, 1)])
    assert 'gpuhost_x{a="q\\"b\\\\c d"} 1' in text


@needs_promtool
def test_every_textfile_passes_promtool_check_metrics():
    texts = [metrics.host_metrics(H200["gpu"], H200["host"], H200["container"], PLAN),
             metrics.verify_metrics(_passed(), 1796000000), metrics.run_metrics(1796000000.4)]
    for text in texts:
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_atomic_write_command_writes_whole_files_through_a_rename(tmp_path):
    target = tmp_path / "textfile" / "gpuhost_host.prom"
    other = tmp_path / "textfile" / "gpuhost_run.prom"
    command = metrics.atomic_write_command({str(target): "a 1\n", str(other): 'b{x="$(touch /tmp/no)"} 2\n'},
                                           staging=str(tmp_path / "stage"))
    assert " mv -fT " in command and "mktemp -p" in command
    subprocess.run(["sh", "-c", command], check=True)
    assert target.read_text() == "a 1\n" and other.read_text() == 'b{x="$(touch /tmp/no)"} 2\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["gpuhost_host.prom", "gpuhost_run.prom"]


def test_a_link_planted_in_the_textfile_directory_is_replaced_never_followed(tmp_path):
    """The prometheus account owns the textfile directory's parent: it can plant links there."""
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    victim.chmod(0o600)
    folder = tmp_path / "node-exporter"
    folder.mkdir()
    for name in ("gpuhost_verify.prom", "gpuhost_verify.prom.tmp"):
        (folder / name).symlink_to(victim)
    command = metrics.atomic_write_command({str(folder / "gpuhost_verify.prom"): "a 1\n"}, staging=str(tmp_path / "st"))
    subprocess.run(["sh", "-c", command], check=True)
    assert victim.read_text() == "root:secret\n" and victim.stat().st_mode & 0o777 == 0o600
    assert not (folder / "gpuhost_verify.prom").is_symlink() and (folder / "gpuhost_verify.prom").read_text() == "a 1\n"
    (tmp_path / "elsewhere").mkdir()
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere")
    refused = subprocess.run(["sh", "-c", metrics.atomic_write_command({f"{linked}/x.prom": "a 1\n"},
                                                                       staging=str(tmp_path / "st"))],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "is a symbolic link" in refused.stderr
    assert not (tmp_path / "elsewhere" / "x.prom").exists()
