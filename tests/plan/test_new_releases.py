"""The branches, CUDA releases and torch releases added in December 2026 resolve
(shared/reference/vendor-audit-2026-12.md; sources in gpuhost/plan/data)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from gpuhost.plan.gpus import identify
from gpuhost.plan.matrix import load_matrix
from gpuhost.plan.resolver import Policy, resolve

TODAY = date(2026, 12, 1)
DATA = Path(__file__).resolve().parents[2] / "gpuhost" / "plan" / "data"


def test_default_plan_is_the_newest_confirmed_torch_on_the_newest_lts():
    p = resolve([identify("H100")], today=TODAY)
    assert (p.image.tag, p.driver.branch) == ("pytorch/pytorch:2.15.0-cuda13.2-cudnn9-runtime", "620")


@pytest.mark.parametrize("torch,patch,cudas", [("2.14", "2.14.1", ["12.6", "13.0", "13.2"]),
                                               ("2.15", "2.15.0", ["13.0", "13.2"])])
def test_new_torch_releases_resolve(torch, patch, cudas):
    assert [v.cuda for v in load_matrix().releases[torch].variants] == cudas
    p = resolve([identify("L4")], policy=Policy(torch=torch), today=TODAY)
    assert (p.image.torch, p.image.cuda) == (patch, "13.2")


def test_pre_turing_gpus_get_the_newest_torch_that_still_builds_for_them():
    p = resolve([identify("V100")], today=TODAY)  # 2.15 dropped CUDA 12.6, the last build with sm_70
    assert (p.image.torch, p.image.cuda, p.driver.branch) == ("2.14.1", "12.6", "580")


@pytest.mark.parametrize("branch,kind", [(615, "new-feature"), (620, "lts")])
def test_new_branches_resolve(branch, kind):
    assert load_matrix().branch(branch).kind == kind
    p = resolve([identify("B200")], policy=Policy(driver_branch=str(branch)), today=TODAY)
    assert (p.driver.branch, p.driver.kernel_module, p.image.cuda) == (str(branch), "open", "13.2")


def test_r535_and_r610_are_past_end_of_life():
    p = resolve([identify("H100")], policy=Policy(driver_branch="610"), today=TODAY)
    assert "driver branch R610 reached end of life on 2026-08-31" in p.warnings
    assert load_matrix().branch(535).end_of_life < TODAY.isoformat()
    assert load_matrix().branch(610).newest_cuda == "13.3"


def test_cuda_13_0_update_3_needs_the_580_126_20_driver():
    toolkits = yaml.safe_load((DATA / "cuda.yaml").read_text())["toolkits"]
    assert next(t for t in toolkits if t["cuda"] == "13.0")["updates"]["U3"] == "580.126.20"


@pytest.mark.parametrize("cuda,branch,driver", [("13.3", 610, "610.43.02"), ("13.4", 615, "615.71.09"),
                                                ("13.5", 620, "620.70.06")])
def test_new_cuda_releases_need_their_branch_and_that_branch_runs_them(cuda, branch, driver):
    m = load_matrix()
    assert m.toolkit_drivers[cuda] == driver == m.branch(branch).first_version
    assert Version(m.branch(branch).newest_cuda) >= Version(cuda)
    # a devel (toolkit-rule) plan on that branch meets every CUDA build's driver minimum up to it
    p = resolve([identify("H100")], policy=Policy(driver_branch=str(branch), image_flavour="devel"), today=TODAY)
    assert p.driver.branch == str(branch) and p.image.cuda == "13.2"


def test_new_os_releases_are_supported():
    m = load_matrix()
    assert "26.04" in m.supported_os["ubuntu"] and "13" in m.supported_os["debian"]
    assert not resolve([identify("H100")], os="debian-13", today=TODAY).warnings
    assert not resolve([identify("H100")], os="rhel-9.4", today=TODAY).warnings  # a point release of 9
    # RHEL 10: NVIDIA supports it, the driver stage does not (yet): the plan says so
    assert any("rhel-10 is not a supported OS" in w for w in resolve([identify("H100")], os="rhel-10",
                                                                     today=TODAY).warnings)
