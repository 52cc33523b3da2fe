"""The plan knows the host's CPU architecture: an image is planned only from a repository that
publishes a manifest for it (pytorch/pytorch: amd64 only; NVIDIA's NGC PyTorch container: arm64
and amd64), or the host is refused in one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from facts.snapshot import HostSnapshot
from gpuhost.commands.inspect import HostReading, assess, plan_line, render_table
from gpuhost.errors import Unresolvable, UsageError
from gpuhost.plan.gpus import identify
from gpuhost.compose.host_plan import plan_host
from gpuhost.plan.matrix import load_matrix
from gpuhost.plan.resolver import Policy, resolve
from gpuhost.compose.settings import host_problems, settings_from

FIXTURES = Path(__file__).parent.parent / "fixtures"
TODAY = date(2026, 12, 6)
MATRIX = load_matrix()
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
NGC = "nvcr.io/nvidia/pytorch:"


def collect_env(name: str) -> tuple[dict, dict]:
    """(gpu facts, host facts) with the values a public collect_env.py report shows: its GPU lines
    (`nvidia-smi -L` without UUIDs), its driver line and the machine on its OS line (uname -m)."""
    text = (FIXTURES / "public" / name).read_text()
    os_line = re.search(r"^OS\s+: (\w+) ([\d.]+)\S* LTS \((\w+)\)$", text, re.M)
    gpu_state = {"gpus": [{"model": m, "pci_id": None} for m in re.findall(r"^GPU \d+: (.+)$", text, re.M)],
                 "driver": {"version": re.search(r"^Nvidia driver version\s+: (\S+)$", text, re.M).group(1),
                            "flavour": None},
                 "warnings": []}
    host_state = {"arch": os_line.group(3),
                  "os": {"id": os_line.group(1).lower(), "version_id": ".".join(os_line.group(2).split(".")[:2])}}
    return gpu_state, host_state


def ngc_for(driver: str) -> str:
    """The newest NGC release in the matrix whose driver minimum (its CUDA major's minor-version
    floor: the NGC family's rule) the given driver meets."""
    assert MATRIX.images["ngc"].driver_rule == "minor-version"
    fits = [n for n in MATRIX.ngc_releases if MATRIX.minor_version_floors[int(n.cuda.split(".")[0])] <= driver]
    return NGC + fits[-1].release + "-py3"


# --- the resolver: data in, plan out ------------------------------------------------------------

def test_x86_64_host_gets_pytorch_pytorch_for_amd64():
    plan = resolve([identify("H100")], today=TODAY, arch="x86_64")
    assert plan.image.tag.startswith("pytorch/pytorch:") and plan.image.platform == "linux/amd64"
    assert plan.arch == "x86_64" and plan.to_dict()["arch"] == "x86_64"
    assert resolve([identify("H100")], today=TODAY).image.tag == plan.image.tag  # x86_64 when not given


@pytest.mark.parametrize("gpu", ["GB200", "GB300", "GB10", "GH200"])
def test_aarch64_host_never_gets_an_amd64_only_image(gpu):
    plan = resolve([identify(gpu)], today=TODAY, arch="aarch64")
    assert not plan.image.tag.startswith("pytorch/pytorch")
    assert plan.image.tag == ngc_for(plan.driver.min_version) and plan.image.platform == "linux/arm64"
    assert "linux/arm64" in MATRIX.images["ngc"].platforms
    assert "linux/arm64" not in MATRIX.images["runtime"].platforms + MATRIX.images["devel"].platforms
    assert any("publishes no arm64 image" in r for r in plan.reasons)
    assert plan.to_dict()["image"]["platform"] == "linux/arm64" and plan.arch == "aarch64"


def test_aarch64_host_on_the_lts_branch_keeps_its_driver():
    # GB200 fleets run R580 (vllm-project/vllm#33543: 580.95.05): NGC's CUDA 13.x images run on it
    plan = resolve([identify("GB200")], current_driver="580.95.05", today=TODAY, arch="aarch64",
                   policy=Policy(driver_branch="580"))
    assert (plan.driver.action, plan.driver.branch) == ("keep", "580")
    assert plan.image.tag == ngc_for("580.95.05")


def test_aarch64_with_pytorch_images_only_is_refused_in_one_line():
    with pytest.raises(Unresolvable) as refused:
        resolve([identify("GB200")], today=TODAY, arch="aarch64", policy=Policy(image_source="pytorch"))
    message = str(refused.value)
    assert "\n" not in message and "no arm64 image" in message and "image_source: ngc" in message


def test_aarch64_driver_too_old_for_every_ngc_image_is_refused_without_a_change():
    with pytest.raises(Unresolvable, match=r"driver 575\.57\.08 is too old for every NGC PyTorch image"):
        resolve([identify("GB200")], current_driver="575.57.08", today=TODAY, arch="aarch64",
                policy=Policy(allow_driver_change=False))


def test_ngc_torch_is_matched_by_minor_and_patch_releases_are_refused():
    newest_214 = [n for n in MATRIX.ngc_releases if n.torch == "2.14"][-1]
    plan = resolve([identify("GB200")], today=TODAY, arch="aarch64", policy=Policy(torch="2.14"))
    assert plan.image.tag == f"{NGC}{newest_214.release}-py3" and plan.image.torch == "2.14"
    with pytest.raises(Unresolvable, match="give torch as X.Y, e.g. 2.14"):
        resolve([identify("GB200")], today=TODAY, arch="aarch64", policy=Policy(torch="2.14.1"))
    with pytest.raises(Unresolvable, match="no NGC PyTorch release in the matrix is built on torch 2.5"):
        resolve([identify("GB200")], today=TODAY, arch="aarch64", policy=Policy(torch="2.5"))


def test_ngc_on_x86_64_when_asked_and_through_a_registry():
    plan = resolve([identify("H100")], today=TODAY, policy=Policy(image_source="ngc", registry="m.lab:5000"))
    assert plan.image.tag.startswith("m.lab:5000/" + NGC) and plan.image.platform == "linux/amd64"


def test_unknown_architecture_and_image_source_are_refused():
    with pytest.raises(Unresolvable, match="CPU architecture 'ppc64le': no PyTorch image"):
        resolve([identify("H100")], today=TODAY, arch="ppc64le")
    with pytest.raises(UsageError, match="unknown image source 'docker': use auto, pytorch or ngc"):
        resolve([identify("H100")], today=TODAY, policy=Policy(image_source="docker"))


def test_aarch64_wheels_have_their_own_arch_lists():
    cu130 = next(v for v in MATRIX.releases["2.14"].variants if v.cuda == "13.0")
    assert cu130.arch_list_for("linux/arm64") == ("8.0", "9.0", "10.0", "11.0", "12.0")  # PR #182849, #197555
    assert cu130.covers("7.5") and not cu130.covers("7.5", "linux/arm64")  # no Turing on aarch64
    assert cu130.covers("11.0", "linux/arm64") and not cu130.covers("11.0")  # Thor: aarch64 only
    assert cu130.arch_list_for("linux/amd64") == cu130.arch_list


# --- a host's facts to its plan -------------------------------------------------------------------

def test_gb200_host_from_public_output_gets_the_ngc_image():
    # vllm-project/vllm#33543: 4 x NVIDIA GB200, driver 580.95.05, Ubuntu 24.04.3 on aarch64
    gpu_state, host_state = collect_env("collect-env-gb200-aarch64.txt")
    assert host_state["arch"] == "aarch64" and len(gpu_state["gpus"]) == 4
    result = plan_host(gpu_state, host_state, settings_from({}), today=TODAY)
    assert result.status == "planned", result.reason
    assert {g.name for g in result.gpus} == {"GB200"}
    plan = result.plan
    assert (plan.arch, plan.image.platform, plan.os) == ("aarch64", "linux/arm64", "ubuntu-24.04")
    assert plan.image.tag == ngc_for(plan.driver.min_version)
    assert plan.driver.current == "580.95.05"


def test_gb200_host_that_wants_pytorch_images_fails_with_the_reason():
    gpu_state, host_state = collect_env("collect-env-gb200-aarch64.txt")
    result = plan_host(gpu_state, host_state, settings_from({"image_source": "pytorch"}), today=TODAY)
    assert result.status == "failed" and "publishes no arm64 image" in result.reason and result.plan is None


def test_image_source_is_a_checked_host_data_key():
    assert host_problems({"image_source": "ngc"}, local=False) == []
    problems = host_problems({"image_source": "nvcr"}, local=False)
    assert problems and "image_source" in str(problems[0])


def test_inspect_shows_the_architecture_and_the_arm64_image():
    # the lent H100's snapshot, its machine read as the GB10's `uname -a` prints it (a GH200-like host)
    machine = (FIXTURES / "public" / "uname-a-gb10-aarch64.txt").read_text().split()[-4]
    facts = HostSnapshot().process((FIXTURES / "device-h100/facts/snapshot.out").read_text().splitlines())
    assert facts["host"]["arch"] == "x86_64"
    x86 = assess(HostReading("gpu-x86", {}, json.loads(json.dumps(facts))), today=TODAY)
    facts["host"]["arch"] = machine
    arm = assess(HostReading("gpu-arm", {}, facts), today=TODAY)
    assert arm.summary["arch"] == "aarch64" and arm.plan["plan"]["image"]["tag"].startswith(NGC)
    assert plan_line(arm.plan).endswith("-py3 (linux/arm64)")
    assert "pytorch/pytorch:" in plan_line(x86.plan) and "linux/amd64" not in plan_line(x86.plan)
    rows = render_table([x86, arm]).splitlines()
    assert "ubuntu 24.04 x86_64" in rows[1] and "ubuntu 24.04 aarch64" in rows[2]


# --- the command line -------------------------------------------------------------------------------

def run(*args):
    return subprocess.run([GPUHOST, *args], capture_output=True, text=True, timeout=60)


def test_resolve_shows_the_architecture_and_the_image_that_will_run():
    r = run("resolve", "--gpu", "GB200", "--arch", "aarch64", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["arch"] == "aarch64" and plan["image"]["platform"] == "linux/arm64"
    assert plan["image"]["tag"].startswith(NGC)
    table = run("resolve", "--gpu", "GB200", "--arch", "aarch64").stdout.splitlines()
    assert "arch    aarch64 (linux/arm64)" in table
    assert next(line for line in table if line.startswith("image")).split()[1] == plan["image"]["tag"]
    refused = run("resolve", "--gpu", "GB200", "--arch", "aarch64", "--image-source", "pytorch")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def test_ngc_releases_skip_gpus_their_cuda_dropped():
    # CUDA 13.1+ needs R590+, past Volta's last branch (R580): no NGC release in the matrix fits
    with pytest.raises(Unresolvable, match=r"no NGC PyTorch release in the matrix runs on V100 \(cc 7\.0\)"):
        resolve([identify("V100")], today=TODAY, policy=Policy(image_source="ngc"))
