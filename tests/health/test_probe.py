"""The health core (gpuhost/health/probe.py): readings parsed from real and published output,
verdicts from the rules of data/health.yaml, and the on-host command's one line and exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuhost.health import probe
from gpuhost.health.verdict import host_health, load_rules, rules_json
from tests.health.helpers import h100_idle, read, remap_values, script_output, sysfs_link_line

RULES = load_rules()


def test_real_h100_at_idle_reads_ok_with_every_reading():
    readings = probe.parse(h100_idle())
    [gpu] = readings["gpus"]
    assert gpu["bus_id"] == "0000:00:06.0" and gpu["uuid"] == "GPU-27e6a03c-c382-22c7-b065-79fbe6a699dc"
    assert gpu["ecc"] == {"volatile_uncorrected": 0, "aggregate_uncorrected": 0}
    assert gpu["pcie"] == {"gen": 5, "max_gen": 5, "width": 16, "max_width": 16, "source": "nvidia-smi"}
    assert gpu["clocks_event_reasons"] == 1 and gpu["xid"] == {} and not gpu["lost"]
    assert gpu["retired_pages"]["pending"] is None  # [N/A] on an H100: it remaps rows instead
    health = host_health({"health": readings})
    assert (health.verdict, health.cause, health.fix) == ("ok", "", "")
    assert [g.verdict for g in health.gpus] == ["ok"]


def test_real_h100_under_load_software_power_cap_is_not_a_slowdown():
    header = read("h100-load/query-gpu-health-header.csv")
    fields = ",".join(re.split(r" \[", f.strip())[0] for f in header.split(","))
    readings = probe.parse(script_output(fields, read("h100-load/query-gpu-health-units.csv").splitlines()))
    [gpu] = readings["gpus"]
    assert gpu["utilization"] == 100 and gpu["clocks_event_reasons"] == 4
    assert host_health(readings).verdict == "ok"


def test_published_xid79_fails_the_gpu_with_reboot_and_names_when():
    readings = probe.parse(h100_idle(kernel_log=read("published-xid79-open-gpu-kernel-modules-1151.log")))
    lost = next(g for g in readings["gpus"] if g["bus_id"] == "0000:2b:00.0")
    assert lost["xid"] == {"79": {"count": 1, "last": "May 18 19:02:39", "text": "GPU has fallen off the bus."}}
    health = host_health(readings)
    assert health.verdict == "failed"
    assert health.cause == "GPU 0000:2b:00.0: Xid 79 (GPU has fallen off the bus) x1, last May 18 19:02:39"
    assert health.fix.startswith("drain the host and reboot it")
    assert [g.bus_id for g in health.failed_gpus()] == ["0000:2b:00.0"]
    assert [g.verdict for g in health.gpus if g.bus_id == "0000:00:06.0"] == ["ok"]


def test_published_xid63_alone_is_recorded_but_the_counters_decide():
    readings = probe.parse(script_output(kernel_log=read("published-xid63-ml-engineering.log")))
    [gpu] = readings["gpus"]
    assert gpu["bus_id"] == "0000:10:1c.0" and gpu["xid"]["63"]["count"] == 1
    assert host_health(readings).verdict == "ok"


def test_published_pending_row_remap_is_degraded_with_reset():
    fields = read("h100-idle/query-fields.txt").strip()
    published = remap_values(read("published-remap-pending-gpud-80.txt"))
    assert published == {"remapped_rows.correctable": "0", "remapped_rows.uncorrectable": "4", "remapped_rows.pending": "Yes"}
    row = read("h100-idle/query-gpu-health-noheader.csv").strip() + ", " + ", ".join(published.values())
    readings = probe.parse(script_output(fields + "," + ",".join(published), [row]))
    health = host_health(readings)
    assert health.verdict == "degraded"
    assert health.cause == ("GPU 0 (0000:00:06.0): row remapping pending a GPU reset (4 uncorrectable, "
                            "0 correctable rows remapped)")
    assert "nvidia-smi -r -i 0000:00:06.0" in health.fix


def test_published_lost_gpu_fails_with_reboot():
    readings = probe.parse(script_output("index,pci.bus_id,uuid", [read("published-gpu-lost-marian-251.txt").strip()],
                                         rc=15))
    [gpu] = readings["gpus"]
    assert gpu["lost"] and gpu["bus_id"] == "0000:03:00.0" and "GPU is lost" in gpu["error"]
    health = host_health(readings)
    assert health.verdict == "failed" and "nvidia-smi cannot reach it (GPU is lost." in health.cause


def test_published_x8_link_from_sysfs_is_degraded():
    link = sysfs_link_line("0000:01:00.0", read("published-x8-sysfs-nokyan-resources-512.txt"))
    readings = probe.parse(script_output(links=[link]))
    [gpu] = readings["gpus"]
    assert gpu["pcie"] == {"gen": 4, "max_gen": 5, "width": 8, "max_width": 16, "source": "sysfs"}
    health = host_health(readings)
    assert health.verdict == "degraded" and health.cause == "GPU 0000:01:00.0: PCIe link trained at x8 of x16"
    assert health.fix.startswith("drain the host and reseat")


def test_a_gpu_in_sysfs_that_nvidia_smi_does_not_list_is_lost():
    other = sysfs_link_line("0000:2b:00.0", read("h100-idle/sysfs-link.txt"))
    readings = probe.parse(h100_idle(links=[sysfs_link_line("0000:00:06.0", read("h100-idle/sysfs-link.txt")), other]))
    assert [g["lost"] for g in readings["gpus"]] == [False, True]
    assert host_health(readings).verdict == "failed"


def test_nvswitch_host_without_fabric_manager_fails_the_host():
    health = host_health(probe.parse(h100_idle(fabric="nvswitches=4 state=inactive")))
    assert health.verdict == "failed"
    assert health.cause == "host: 4 NVSwitch(es) and nvidia-fabricmanager is inactive"
    assert "systemctl start nvidia-fabricmanager" in health.fix


def test_xid154_takes_the_recovery_action_it_names():
    rules = json.loads(rules_json())
    entry = {"count": 1, "last": None, "text": "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)"}
    assert probe.xid_finding(rules, 154, entry, "0000:00:06.0")["verdict"] == "failed"
    assert probe.xid_finding(rules, 154, {**entry, "text": "changed from 0x1 to 0x0 (None)"}, "x")["verdict"] == "ok"


def test_an_unknown_xid_is_degraded_and_says_to_look_it_up():
    finding = probe.xid_finding(RULES, 999, {"count": 2, "last": None, "text": ""}, "0000:00:06.0")
    assert finding["verdict"] == "degraded" and "Xid catalogue" in finding["fix"]


@pytest.mark.parametrize("reading, code", [("ok", 0), ("degraded", 1), ("failed", 2)])
def test_the_command_prints_one_line_and_exits_with_the_verdict(monkeypatch, tmp_path, capsys, reading, code):
    rules = tmp_path / "rules.json"
    rules.write_text(rules_json())
    lines = {"ok": h100_idle(),
             "degraded": script_output(links=[sysfs_link_line("0000:01:00.0",
                                                              read("published-x8-sysfs-nokyan-resources-512.txt"))]),
             "failed": h100_idle(kernel_log=read("published-xid79-open-gpu-kernel-modules-1151.log"))}[reading]
    monkeypatch.setattr(probe, "read_host", lambda: lines)
    assert probe.main(["--rules", str(rules)]) == code
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{reading}:")


def test_the_command_without_its_rules_says_so_in_one_line(capsys):
    assert probe.main(["--rules", "/nonexistent/health-rules.json"]) == 3
    [line] = capsys.readouterr().out.splitlines()
    assert "cannot read its rules /nonexistent/health-rules.json" in line


def test_the_command_runs_for_real_stdlib_only_and_fast(tmp_path):
    """The installed file as the host runs it: its own process, its real shell script; a TEST FIXTURE
    dmesg on PATH prints the published Xid 79 lines (this machine has no NVIDIA GPU), beside a TEST
    FIXTURE nvidia-smi that answers nothing (the kernel log is read only where the driver is)."""
    (tmp_path / "rules.json").write_text(rules_json())
    fake = tmp_path / "bin" / "dmesg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n# TEST FIXTURE: published Xid 79 lines (tests/health/fixtures/README.md)\ncat <<'EOF'\n"
                    + read("published-xid79-open-gpu-kernel-modules-1151.log") + "EOF\n")
    fake.chmod(0o755)
    smi = fake.parent / "nvidia-smi"
    smi.write_text("#!/bin/sh\n# TEST FIXTURE: the driver's tool is installed; it reads no GPU here\nexit 0\n")
    smi.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "GPUHOST_HEALTH_RULES": str(tmp_path / "rules.json")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-S", "-I", probe.__file__], capture_output=True, text=True, env=env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.startswith("failed: GPU 0000:2b:00.0: Xid 79 (GPU has fallen off the bus)")
    assert len(proc.stdout.splitlines()) == 1 and elapsed < 5  # well under a second on an idle machine



def test_the_kernel_log_is_not_read_where_no_driver_is(tmp_path):
    """No nvidia module loaded and no nvidia-smi: no Xid can be there, and the log (the part's dearest
    read) is left alone. This machine has neither; the TEST FIXTURE dmesg notes that it ran."""
    if Path("/sys/module/nvidia").exists():
        pytest.skip("this machine has the nvidia module loaded")
    ran = tmp_path / "dmesg-ran"
    fake = tmp_path / "bin" / "dmesg"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n# TEST FIXTURE: notes that it ran\ntouch {ran}\n")
    fake.chmod(0o755)
    proc = subprocess.run(["sh", "-c", probe.COMMAND], capture_output=True, text=True,
                          env={"PATH": f"{fake.parent}:/usr/bin:/bin"})
    assert proc.returncode == 0 and "@@xid" in proc.stdout
    assert not ran.exists()


def test_rules_of_another_shape_exit_3_not_degraded(monkeypatch, tmp_path, capsys):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"xids": {}}))
    monkeypatch.setattr(probe, "read_host", lambda: h100_idle(kernel_log=read("published-xid79-open-gpu-kernel-modules-1151.log")))
    assert probe.main(["--rules", str(rules)]) == 3
    assert capsys.readouterr().out.startswith("unknown: gpuhost-health's rules")
