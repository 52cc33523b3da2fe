"""Each resolver rule, on the cases the issue names and more."""

from datetime import date

import pytest

from gpuhost.errors import Unresolvable, UsageError
from gpuhost.plan.gpus import identify
from gpuhost.plan.resolver import Policy, resolve

TODAY = date(2026, 11, 23)


def plan(*gpus, driver=None, module=None, os=None, today=TODAY, **policy):
    return resolve([identify(g) for g in gpus], current_driver=driver, policy=Policy(**policy),
                   current_kernel_module=module, os=os, today=today)


def summary(p):
    return p.driver.action, p.driver.branch, p.driver.kernel_module, p.image.tag


# The examples from the issue.
def test_h100_on_580_keeps_driver_with_cuda13_image():
    assert summary(plan("H100", driver="580.159.04", torch="2.9")) == (
        "keep", "580", "open", "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime")


def test_v100_torch_29_gets_cuda128_proprietary_580():
    assert summary(plan("V100", torch="2.9")) == (
        "install", "580", "proprietary", "pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime")


def test_v100_torch_211_falls_back_to_cuda126():
    assert plan("V100", torch="2.11").image.cuda == "12.6"


def test_k80_torch_29_is_an_error():
    with pytest.raises(Unresolvable, match=r"torch 2.9 has no CUDA build for Tesla K80 \(cc 3.7\)"):
        plan("K80", torch="2.9")


def test_b200_with_v100_is_an_error():
    with pytest.raises(Unresolvable, match=r"no driver flavour drives both V100 .* and B200"):
        plan("B200", "V100")


# Kernel module.
def test_mixed_turing_and_pascal_needs_proprietary():
    assert plan("T4", "GTX 1080 Ti", torch="2.9").driver.kernel_module == "proprietary"


def test_gh200_with_pascal_is_an_error():
    with pytest.raises(Unresolvable, match="GH200"):
        plan("GH200", "P100")


# Image choice.
def test_default_torch_is_newest_release_newest_patch():
    p = plan("H100")
    assert (p.image.torch, p.image.cuda) == ("2.15.0", "13.2")
    assert "the newest release in the matrix" in p.reasons[1]


def test_explicit_patch_and_unpublished_patch():
    assert plan("H100", torch="2.9.0").image.torch == "2.9.0"
    with pytest.raises(Unresolvable, match=r"torch 2.9.7 was not published: releases of 2.9 are 2.9.0, 2.9.1"):
        plan("H100", torch="2.9.7")


def test_blackwell_needs_a_build_with_sm100():
    assert plan("B200", torch="2.7").image.cuda == "12.8"
    with pytest.raises(Unresolvable, match="torch 2.6 has no CUDA build for B200"):
        plan("B200", torch="2.6")


def test_b300_is_covered_by_sm100_entry():
    assert plan("B300", torch="2.9").image.cuda == "13.0"


def test_devel_image_needs_toolkit_driver():
    p = plan("H100", image_flavour="devel", driver_branch="580")  # R580 meets 13.0's toolkit driver, not 13.2's
    assert (p.image.cuda, p.image.tag, p.driver.min_version) == (
        "13.0", "pytorch/pytorch:2.15.0-cuda13.0-cudnn9-devel", "580.65.06")
    p = plan("H100", image_flavour="devel")  # R620 (620.70.06) meets 13.2's (595.45.04)
    assert (p.image.cuda, p.driver.branch, p.driver.min_version) == ("13.2", "620", "595.45.04")


def test_registry_prefix():
    assert plan("L4", registry="registry.lab:5000").image.tag.startswith(
        "registry.lab:5000/pytorch/pytorch:2.15.0-cuda13.2")


# Driver choice.
def test_old_driver_is_upgraded_to_lts():
    p = plan("H100", driver="550.54.15", torch="2.9")
    assert summary(p)[:2] == ("upgrade", "620")
    assert "gives only a CUDA 12.8 image" in p.reasons[2]


def test_no_driver_upgrade_picks_image_the_current_driver_runs():
    p = plan("H100", driver="550.54.15", torch="2.9", allow_driver_change=False)
    assert (p.driver.action, p.image.cuda) == ("keep", "12.8")


def test_no_driver_upgrade_without_driver_is_an_error():
    with pytest.raises(Unresolvable, match="no NVIDIA driver is installed and driver changes are not allowed"):
        plan("H100", allow_driver_change=False)


def test_no_driver_upgrade_with_too_old_driver_is_an_error():
    with pytest.raises(Unresolvable, match="driver 470.256.02 does not support"):
        plan("H100", driver="470.256.02", allow_driver_change=False)


def test_newer_production_driver_is_kept_under_lts_policy():
    p = plan("H100", driver="595.58.03")
    assert (p.driver.action, p.driver.branch, p.image.cuda) == ("keep", "595", "13.2")


def test_production_policy_and_explicit_branch():
    assert plan("H100", driver_branch="production").driver.branch == "595"
    assert summary(plan("H100", driver="595.58.03", driver_branch="580"))[:2] == ("upgrade", "580")
    with pytest.raises(Unresolvable, match="driver branch 590 is not in the matrix"):
        plan("H100", driver_branch="590")
    with pytest.raises(Unresolvable, match="driver branch 470 does not support"):
        plan("H100", driver_branch="470")


def test_blackwell_on_pre_570_driver_is_upgraded():
    assert summary(plan("RTX 5090", driver="565.57.01"))[:2] == ("upgrade", "620")


def test_proprietary_driver_on_blackwell_is_replaced():
    p = plan("B200", driver="580.95.05", module="proprietary", torch="2.9")
    assert (p.driver.action, p.driver.kernel_module) == ("upgrade", "open")
    assert "uses the proprietary modules" in p.reasons[2]


def test_proprietary_driver_on_hopper_is_kept_with_a_warning():
    p = plan("H100", driver="580.95.05", module="proprietary", torch="2.9")
    assert p.driver.action == "keep"
    assert any("open is recommended" in w for w in p.warnings)


def test_kepler_only_has_a_legacy_branch():
    p = plan("K80", torch="2.5")
    assert summary(p) == ("install", "470", "proprietary", "pytorch/pytorch:2.5.1-cuda11.8-cudnn9-runtime")
    assert any("no lts branch supports" in w for w in p.warnings)
    assert any("R470 reached end of life" in w for w in p.warnings)


# Warnings.
def test_branch_near_end_of_life():
    p = plan("H100", driver="535.104.05", torch="2.5", today=date(2026, 3, 1))
    assert p.driver.action == "keep"
    assert "driver branch R535 reaches end of life on 2026-06-30" in p.warnings


def test_gpu_near_end_of_support():
    assert "Volta GPUs are near end of support: R580 is the last driver branch for them" in plan("V100").warnings


def test_unsupported_os_warns():
    assert any("ubuntu-20.04 is not a supported OS" in w for w in plan("H100", os="ubuntu-20.04").warnings)
    assert not plan("H100", os="debian-12").warnings


# Bad input.
@pytest.mark.parametrize("kwargs,message", [
    ({"driver": "58x"}, "malformed driver version '58x'"),
    ({"torch": "two"}, "malformed torch version 'two'"),
    ({"driver_branch": "newest"}, "unknown driver branch policy 'newest'"),
    ({"image_flavour": "slim"}, "unknown image flavour 'slim'"),
    ({"registry": "https://x"}, "malformed registry prefix"),
])
def test_bad_input_is_a_usage_error(kwargs, message):
    with pytest.raises(UsageError, match=message):
        plan("H100", **kwargs)


def test_unknown_torch_release():
    with pytest.raises(Unresolvable, match="torch 3.1 is not in the compatibility matrix"):
        plan("H100", torch="3.1")


def test_no_gpus():
    with pytest.raises(Unresolvable, match="no NVIDIA GPU to plan for"):
        resolve([], today=TODAY)


def test_plan_json_shape():
    d = plan("H100", driver="580.159.04", torch="2.9").to_dict()
    assert d["gpus"] == [{"query": "H100", "name": "H100 SXM5 80GB", "pci_id": "10de:2330",
                          "compute_capability": "9.0", "architecture": "Hopper"}]
    assert d["driver"] == {"action": "keep", "branch": "580", "min_version": "580.65.06",
                           "kernel_module": "open", "current": "580.159.04"}
    assert d["image"]["tag"] == "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime"
    assert d["reasons"] and isinstance(d["warnings"], list)
