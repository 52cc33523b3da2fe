"""From real fact output to a host's plan: the same decision for the deploy and `gpuhost inspect`."""

from datetime import date
from pathlib import Path

from facts.gpu import GpuState
from facts.host import HostState
from gpuhost.compose.host_plan import NO_GPU, plan_host
from gpuhost.compose.settings import settings_from
from gpuhost.compose.report import build_report

FIXTURES = Path(__file__).parent.parent / "fixtures"
TODAY = date(2026, 11, 23)


def fact(cls, path):
    return cls().process((FIXTURES / path).read_text().splitlines())


def test_h100_with_driver_580_keeps_it():
    # captured on the lent H100 machine (tests/fixtures/device-h100/README.md)
    gpu, host = fact(GpuState, "device-h100/facts/gpu.out"), fact(HostState, "device-h100/facts/host.out")
    result = plan_host(gpu, host, settings_from({"torch": "2.9"}), today=TODAY)
    assert result.status == "planned", result.reason
    assert [g.architecture for g in result.gpus] == ["Hopper"]
    driver = result.plan.driver
    assert (driver.action, driver.branch, driver.kernel_module) == ("keep", "580", "open")
    assert driver.current == gpu["driver"]["version"]
    assert result.plan.image.tag == "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime"
    assert result.plan.os == "ubuntu-24.04"


def test_gpu_less_lab_host_is_skipped_or_failed_as_asked():
    # captured on a Debian 12 lab host (tests/fixtures/debian12-lab-host)
    gpu, host = fact(GpuState, "debian12-lab-host/gpu.out"), fact(HostState, "debian12-lab-host/host.out")
    skipped = plan_host(gpu, host, settings_from({}), today=TODAY)
    assert (skipped.status, skipped.reason, skipped.plan) == ("skipped", NO_GPU, None)
    assert plan_host(gpu, host, settings_from({"no_gpu": "fail"}), today=TODAY).status == "failed"


def test_declared_gpus_are_planned_on_a_gpu_less_host():
    gpu, host = fact(GpuState, "debian12-lab-host/gpu.out"), fact(HostState, "debian12-lab-host/host.out")
    result = plan_host(gpu, host, settings_from({"target_gpus": ["V100", "V100"]}), today=TODAY)
    assert (result.status, result.plan.driver.action, result.plan.driver.kernel_module) == (
        "planned", "install", "proprietary")
    assert result.plan.os == "debian-12"


def test_unservable_gpus_fail_with_the_resolvers_reason():
    gpu, host = fact(GpuState, "debian12-lab-host/gpu.out"), fact(HostState, "debian12-lab-host/host.out")
    result = plan_host(gpu, host, settings_from({"target_gpus": ["K80"], "torch": "2.9"}), today=TODAY)
    assert result.status == "failed" and "no CUDA build for Tesla K80" in result.reason


def test_report_has_no_timestamps_and_names_the_host():
    gpu, host = fact(GpuState, "device-h100/facts/gpu.out"), fact(HostState, "device-h100/facts/host.out")
    report = build_report("gpu-01", gpu, host, plan_host(gpu, host, settings_from({}), today=TODAY))
    assert report["host"] == "gpu-01" and report["status"] == "planned"
    assert report["detected"]["driver"]["flavour"] == "open"
    assert report["detected"]["gpus"][0]["pci_id"] == "10de:2330"
    assert "time" not in str(sorted(report))
