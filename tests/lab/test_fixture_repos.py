"""The lab's stand-in for NVIDIA's CUDA repository is generated from the real install's data, so it can
only agree with gpuhost where gpuhost agrees with the vendor (gpuhost/lab/fixture_repos.py)."""

from __future__ import annotations

from gpuhost.driver.sources import select_source
from gpuhost.lab.fixture_repos import LAB_HOST, OTHER_BRANCH, driver_builds, driver_version, planned_branch
from gpuhost.plan.matrix import load_matrix


def test_stand_in_holds_what_the_real_install_asks_for_at_the_matrix_versions():
    builds = {(name, version) for name, version, _ in driver_builds()}
    for branch in (planned_branch(), OTHER_BRANCH):
        src = select_source(LAB_HOST, branch, "open", "cuda", nvswitch=True)
        version = driver_version(branch)
        assert version.startswith(str(load_matrix().branch(int(branch)).first_version))
        for name in (*src.packages[1:], src.persistenced, *src.fabric_manager):
            assert (name, version) in builds, (name, version)
        assert (src.pin_package, f"{branch}-5") in builds  # a pin's version is not a driver version


def test_only_the_pin_keeps_nvidia_open_on_its_branch():
    specs = {(name, version): spec for name, version, spec in driver_builds()}
    newer = max(planned_branch(), OTHER_BRANCH)
    # nvidia-open depends on nvidia-driver-open (>= its version): a newer branch satisfies an older one's
    assert specs[("nvidia-open", driver_version(OTHER_BRANCH))]["depends"].startswith("nvidia-driver-open (>= ")
    assert newer != OTHER_BRANCH
    (pref,) = specs[(f"nvidia-driver-pinning-{OTHER_BRANCH}", f"{OTHER_BRANCH}-5")]["files"].values()
    assert f"Pin: version {OTHER_BRANCH}.*" in pref and "nvidia-open" in pref and "TEST FIXTURE" in pref


def test_recorded_stand_in_holds_only_recorded_versions_and_disagrees_with_the_data():
    from gpuhost.lab.fixture_repos import RECORDED_CUDA, recorded_builds
    recorded = {(name, version) for name, version, _ in RECORDED_CUDA}
    built = {(name, version) for name, version, _ in recorded_builds() if name != "nvidia-persistenced"}
    assert built == recorded and all(cite for *_, cite in RECORDED_CUDA)
    offered = {v.split(".")[0] for n, v in recorded if n == "nvidia-open"}
    assert planned_branch() not in offered  # the data plans R620: the real repository copy has none
    r595 = [v for n, v in recorded if n == "nvidia-open" and v.startswith("595.")]
    assert r595 and not r595[0].startswith(str(load_matrix().branch(595).first_version))
