"""The stages' "already in place" checks (gpuhost/converged.py and each stage's *_pending) on real
snapshots: a lab host before the deploy and the same host converged by it
(tests/fixtures/debian12-lab-host/snapshot-bench-*.out, see tests/fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facts.snapshot import HostSnapshot
from gpuhost.context import HostContext
from gpuhost.driver_sources import select_source
from gpuhost.host_plan import plan_host
from gpuhost.hostdata import settings_from
from gpuhost.stages.container_runtime import container_pending
from gpuhost.stages.driver import driver_pending
from gpuhost.stages.prepull import prepull_pending
from gpuhost.stages.verify import current_inputs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
# The host data the bench hosts had; the fixture repository's key ends in A072D6E17E4C6388 (the
# keyring's name carries those 16 digits, all the checks below depend on).
DATA = {"target_gpus": ["H100"], "reboot": "never", "driver_repository": "http://apt:8080/",
        "driver_repository_key": "http://apt:8080/fixture-key.asc",
        "driver_repository_fingerprint": "0" * 24 + "A072D6E17E4C6388",
        "registry": "registry:5000", "toolkit_source": "keep", "apt_lock_timeout": 600}


def context(fixture: str, **changes) -> HostContext:
    snap = HostSnapshot().process((FIXTURES / fixture).read_text().splitlines())
    settings = settings_from({**DATA, **changes})
    return HostContext(settings, snap["gpu"], snap["host"], plan_host(snap["gpu"], snap["host"], settings),
                       snap["container"], snap["managed"])


def source_of(ctx):
    d, wanted = ctx.settings.driver, ctx.host_plan.plan.driver
    return select_source(ctx.host_state, wanted.branch, wanted.kernel_module, d.source, d.repository,
                         d.repository_key, d.repository_fingerprint)


@pytest.fixture(scope="module")
def converged():
    return context("snapshot-bench-converged.out")


def test_converged_host_has_nothing_pending_in_any_stage(converged):
    assert driver_pending(converged, source_of(converged)) == []
    assert container_pending(converged) == []
    assert prepull_pending(converged) == []


def test_fresh_host_has_everything_pending():
    fresh = context("snapshot-bench-fresh.out")
    assert driver_pending(fresh, source_of(fresh)) == [
        "keyring /usr/share/keyrings/gpuhost-nvidia-cuda-A072D6E17E4C6388.gpg",
        "/etc/apt/sources.list.d/gpuhost-nvidia-cuda.sources", "driver packages and holds",
        "nouveau blacklist", "nvidia-persistenced"]
    assert container_pending(fresh) == ["docker.io", "docker service", "/etc/docker/daemon.json"]
    assert prepull_pending(fresh) == ["registry:5000/pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime", "pull record"]


def test_a_setting_change_makes_its_stage_pending_again():
    rotated = context("snapshot-bench-converged.out", driver_repository_fingerprint="0" * 24 + "1111222233334444")
    assert driver_pending(rotated, source_of(rotated))[0] == \
        "keyring /usr/share/keyrings/gpuhost-nvidia-cuda-1111222233334444.gpg"
    assert container_pending(context("snapshot-bench-converged.out", docker_default_runtime=True)) == [
        "/etc/docker/daemon.json"]
    assert container_pending(context("snapshot-bench-converged.out", toolkit_source="nvidia",
                                     toolkit_version="1.17.8-1"))[-4:] == [
        "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
        "libnvidia-container1"]
    older = context("snapshot-bench-converged.out", torch="2.9")
    assert prepull_pending(older) == [older.host_plan.plan.image.tag, "pull record"]


def test_held_packages_are_part_of_converged(converged):
    converged.host_state["held_packages"] = ["nvidia-open"]  # the pinning package lost its hold
    try:
        assert driver_pending(converged, source_of(converged)) == ["driver packages and holds"]
    finally:
        converged.host_state["held_packages"] = ["nvidia-driver-pinning-580", "nvidia-open", "nvidia-persistenced"]


def test_verdict_inputs_come_from_the_snapshot(converged):
    inputs = current_inputs(converged)
    assert inputs["image"] == converged.host_plan.plan.image.tag
    assert inputs["digest"] == "sha256:a7b51e9f84f7596d709069d847408e6761c91c3bf2baee36c3e4b677f81f850a"
    assert inputs["driver"] is None and inputs["gpus"] == []
    assert len(inputs["script"]) == 40
