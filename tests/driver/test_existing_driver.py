"""A driver gpuhost did not install: named, then refused, moved or kept on purpose (gpuhost.driver.safety).

Readings are real output of lab hosts prepared the way real servers are
(tests/fixtures/debian12-brownfield/, see the README there): Debian's own nvidia-driver 535
installed for real and held; a runfile driver's files (TEST FIXTURE scripts, NVIDIA's layout).
"""

from __future__ import annotations

from pathlib import Path

from facts import gpu, host, managed
from facts.sections import Sections
from gpuhost.driver.safety import existing_driver_decision, other_driver, package_branch
from gpuhost.compose.settings import settings_from

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-brownfield"


def _read(parse, name):
    return parse(Sections((FIXTURES / name).read_text().splitlines()))


DEBIAN_HOST = _read(host.process_host_sections, "host-debian535-held.out")
DEBIAN_MANAGED = _read(managed.process_managed_sections, "managed-docker-docs-debian535-held.out")
RUNFILE_HOST = _read(host.process_host_sections, "host-runfile.out")
RUNFILE_GPU = _read(gpu.process_gpu_sections, "gpu-runfile.out")
NO_PACKAGES = {"packages": {}}


def test_package_branch_takes_driver_versions_only():
    assert package_branch("nvidia-driver", "535.261.03-1") == "535"
    assert package_branch("nvidia-driver-pinning-550", "550-1") == "550"
    assert package_branch("nvidia-container-toolkit", "1.17.8-1") is None
    assert package_branch("nvidia-kernel-common", "20220217+3~deb12u1") is None
    assert package_branch("cuda-cudart-12-4", "12.4.127-1") is None


def test_debian_held_535_is_named_with_its_holds():
    found = other_driver(DEBIAN_MANAGED, DEBIAN_HOST, {}, "580")
    assert found.kind == "packages" and found.branches == ("535",) and found.version == "535.261.03-1"
    assert found.held == ("nvidia-driver", "nvidia-kernel-dkms")
    assert {"nvidia-driver", "nvidia-kernel-dkms", "libnvidia-ml1", "nvidia-modprobe"} <= set(found.packages)
    assert "nvidia-kernel-common" not in found.packages  # a helper with no driver version
    assert found.label() == "R535 pkgs held"
    assert other_driver(DEBIAN_MANAGED, DEBIAN_HOST, {}, "535") is None  # the plan's own branch


def test_packages_of_another_branch_are_moved_or_kept_as_the_policy_says():
    found = other_driver(DEBIAN_MANAGED, DEBIAN_HOST, {}, "580")
    moving = existing_driver_decision(found, settings_from({}), "R580 open from cuda")
    assert not moving.blockers and not moving.keep
    assert moving.notes[0].startswith("moving from the installed R535 packages 535.261.03-1 (")
    assert "held: nvidia-driver, nvidia-kernel-dkms" in moving.notes[0]
    kept = existing_driver_decision(found, settings_from({"allow_driver_change": False}), "R580 open from cuda")
    assert kept.keep and not kept.blockers
    assert 'set driver_branch: "535" to plan for it' in kept.notes[0]


def test_runfile_driver_is_refused_unless_asked_to_replace():
    found = other_driver(NO_PACKAGES, RUNFILE_HOST, RUNFILE_GPU, "580")
    assert (found.kind, found.version, found.uninstaller) == ("runfile", "550.54.14", "/usr/bin/nvidia-uninstall")
    refused = existing_driver_decision(found, settings_from({}), "R580 open from cuda")
    assert refused.blockers == [
        "a driver installed with NVIDIA's runfile is present: runfile driver 550.54.14 (/usr/bin/nvidia-uninstall); "
        "gpuhost does not install packages over it: run '/usr/bin/nvidia-uninstall' on the host and re-run, or set "
        "host data runfile_driver: replace"]
    replaced = existing_driver_decision(found, settings_from({"runfile_driver": "replace"}), "R580 open from cuda")
    assert not replaced.blockers and "/usr/bin/nvidia-uninstall --silent first" in replaced.notes[0]


def test_a_clean_host_has_no_other_driver():
    assert other_driver(NO_PACKAGES, DEBIAN_HOST | {"runfile_driver": None}, {}, "580") is None
    assert existing_driver_decision(None, settings_from({}), "R580").blockers == []


def test_bad_runfile_driver_value_is_one_line_before_any_host():
    from gpuhost.compose.settings import check_hosts

    assert check_hosts([("gpu-01", {"runfile_driver": "remove"})]) == [
        "host gpu-01: runfile_driver is 'remove': use one of refuse, replace"]
