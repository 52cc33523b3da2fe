"""The driver stage's safety gates (gpuhost.driver.safety.decide): pure, no host needed."""

from __future__ import annotations

import copy

import pytest

from gpuhost.driver.safety import decide
from gpuhost.driver.sources import select_source, served_branches
from gpuhost.plan.gpus import identify
from gpuhost.compose.settings import settings_from
from gpuhost.plan.resolver import resolve

# Shapes as facts/gpu.py and facts/host.py document them.
HOST = {
    "os": {"id": "ubuntu", "version_id": "24.04", "codename": "noble"}, "arch": "x86_64",
    "kernel": "6.8.0-85-generic", "package_manager": "apt-get",
    "kernel_headers": {"installed": False, "package": "linux-headers-6.8.0-85-generic", "package_installed": None},
    "secure_boot": {"state": "disabled", "efi": True, "source": "mokutil"},
    "held_packages": [], "package_lock": {"held": False, "holders": [], "dpkg_interrupted": False},
    "reboot": {"required": False, "packages": [], "source": None},
}
GPU = {"gpus": [{"bus_id": "0000:00:06.0"}], "driver": {"mismatch": False}, "processes": []}


def gate(host=HOST, gpu=GPU, data=None, source="cuda", current=None, headers_unavailable=None):
    settings = settings_from({"target_gpus": ["H100"], **(data or {})})
    plan = resolve([identify("H100")], current_driver=current, policy=settings.policy,
                   served_branches=served_branches(host, source))
    src = select_source(host, plan.driver.branch, plan.driver.kernel_module, source)
    return decide(settings, gpu, host, plan, src, headers_unavailable=headers_unavailable)


def with_(base, **changes):
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = value
    return out


def test_clean_host_has_no_blockers():
    assert gate().blockers == []


def test_secure_boot_with_dkms_source_stops_with_options():
    host = with_(HOST, secure_boot={"state": "enabled", "efi": True, "source": "mokutil"})
    (blocker,) = gate(host).blockers
    assert "Secure Boot is enabled" in blocker and "driver_source: ubuntu" in blocker and "mokutil --import" in blocker


def test_secure_boot_with_signed_ubuntu_packages_or_enrolled_mok_passes():
    host = with_(HOST, secure_boot={"state": "enabled", "efi": True, "source": "mokutil"})
    assert gate(host, source="ubuntu").blockers == []
    assert gate(host, data={"secure_boot_mok": True}).blockers == []


def test_gpu_processes_refuse_a_driver_change_unless_forced():
    busy = with_(GPU, processes=[{"pid": 4242, "process_name": "python3"}],
                 driver={"mismatch": False, "version": "535.104.05"})
    (blocker,) = gate(gpu=busy, current="535.104.05").blockers
    assert "python3 (pid 4242)" in blocker and "force: true" in blocker
    assert gate(gpu=busy, current="535.104.05", data={"force": True}).blockers == []


def test_gpu_processes_refuse_reboot_auto():
    busy = with_(GPU, processes=[{"pid": 7, "process_name": "train"}])
    assert any("reboot" in b for b in gate(gpu=busy, data={"reboot": "auto"}).blockers)


def test_missing_headers_block_a_gpu_host_but_not_an_image_build():
    unavailable = "linux-headers-6.8.0-85-generic"  # not installed, and the repositories offer none
    assert not any("kernel headers" in b for b in gate().blockers)
    assert any("kernel headers" in b and unavailable in b for b in gate(headers_unavailable=unavailable).blockers)
    decision = gate(gpu=with_(GPU, gpus=[]), headers_unavailable=unavailable)
    assert decision.blockers == [] and any("preparing an image" in n for n in decision.notes)


def test_interrupted_dpkg_is_repaired_first_and_a_running_one_waited_for():
    interrupted = gate(with_(HOST, package_lock={"held": False, "dpkg_interrupted": True, "holders": []}))
    assert interrupted.blockers == []  # gpuhost.run.dpkg repairs it before the stage runs
    assert any("dpkg --configure -a runs first" in n for n in interrupted.notes)
    running = gate(with_(HOST, package_lock={"held": True, "dpkg_running": True, "dpkg_interrupted": False,
                                             "holders": [{"command": "unattended-upgr", "pid": 812}]}),
                   data={"apt_lock_timeout": 30})
    assert running.blockers == []
    assert not any("configure -a" in n for n in running.notes)  # never while dpkg really runs
    assert any(n.startswith("dpkg is busy") and "unattended-upgr (pid 812)" in n and "30s" in n
               for n in running.notes)


def test_mismatch_and_pending_reboot_are_reported():
    gpu = with_(GPU, driver={"mismatch": True, "kernel_module_version": "570.1", "library_version": "580.95.05"})
    notes = gate(with_(HOST, reboot={"required": True}), gpu=gpu).notes
    assert any("mismatch" in n and "reboot required" in n for n in notes)
    assert any("pending reboot" in n for n in notes)


def test_unsupported_package_manager_blocks():
    assert any("zypper" in b for b in gate(with_(HOST, package_manager="zypper")).blockers)


@pytest.mark.parametrize("data, word", [({"force": "yes"}, "force"), ({"driver_source": "ppa"}, "driver_source"),
                                        ({"apt_lock_timeout": -1}, "apt_lock_timeout"),
                                        ({"driver_repository": "ftp://x"}, "driver_repository"),
                                        ({"driver_repository_fingerprint": "abc"}, "fingerprint")])
def test_bad_driver_host_data_is_one_clear_line(data, word):
    from gpuhost.errors import UsageError
    with pytest.raises(UsageError, match=word):
        settings_from(data)


def test_lock_holders_are_named_once_and_dpkg_busy_only_when_a_package_tool_holds_it():
    """dpkg holds lock-frontend and lock: one holder, named once. A process of another kind holding
    dpkg's lock file (a backup agent's flock) is not "dpkg is busy" (issue 28)."""
    dpkg = [{"lock": "/var/lib/dpkg/lock-frontend", "command": "dpkg", "pid": 77},
            {"lock": "/var/lib/dpkg/lock", "command": "dpkg", "pid": 77}]
    notes = gate(with_(HOST, package_lock={"held": True, "dpkg_running": True, "dpkg_interrupted": False,
                                           "holders": dpkg})).notes
    line = next(n for n in notes if "lock is held by" in n)
    assert line.startswith("dpkg is busy: ") and line.count("dpkg (pid 77)") == 1, line
    other = [{"lock": "/var/lib/dpkg/lock-frontend", "command": "flock", "pid": 90}]
    notes = gate(with_(HOST, package_lock={"held": True, "dpkg_running": True, "dpkg_interrupted": False,
                                           "holders": other})).notes
    line = next(n for n in notes if "lock is held by" in n)
    assert line.startswith("the apt/dpkg lock is held by flock (pid 90)"), line
