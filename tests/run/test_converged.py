"""The stages' "already in place" checks (gpuhost/run/converged.py and each stage's *_pending) on real
snapshots: a lab host before the deploy and the same host converged by it
(tests/fixtures/debian12-lab-host/snapshot-bench-*.out, see tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facts.snapshot import HostSnapshot
from gpuhost.fleet.context import HostContext
from tests.fixtures.snapshot_context import snapshot_context
from gpuhost.driver.sources import select_source
from gpuhost.compose.host_plan import plan_host
from gpuhost.compose.settings import settings_from
from gpuhost.containers.runtime_stage import container_pending
from gpuhost.driver.stage import driver_pending
from gpuhost.containers.prepull_stage import prepull_pending
from gpuhost.verify.stage import check_due, current_inputs, script_sha1

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
# The host data the lab host had (gpuhost/lab/stand_ins.py, saved with the snapshots).
DATA = json.loads((FIXTURES / "bench-host-data.json").read_text())
DRIVER_KEY = DATA["driver_repository_fingerprint"][-16:]
TOOLKIT_KEY = DATA["toolkit_repository_fingerprint"][-16:]


def context(fixture: str, **changes) -> HostContext:
    return snapshot_context(FIXTURES / fixture, {**DATA, **changes})


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
        f"keyring /usr/share/keyrings/gpuhost-nvidia-cuda-{DRIVER_KEY}.gpg",
        "/etc/apt/sources.list.d/gpuhost-nvidia-cuda.sources", "driver packages and holds",
        "nouveau blacklist", "nvidia-persistenced"]
    assert container_pending(fresh) == [
        "docker.io", "docker service",
        f"/usr/share/keyrings/gpuhost-nvidia-container-toolkit-{TOOLKIT_KEY}.gpg",
        "/etc/apt/sources.list.d/nvidia-container-toolkit.sources",
        "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
        "libnvidia-container1", "/etc/docker/daemon.json"]
    assert prepull_pending(fresh) == ["registry:5000/pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime", "pull record"]


def test_a_setting_change_makes_its_stage_pending_again():
    rotated = context("snapshot-bench-converged.out", driver_repository_fingerprint="0" * 24 + "1111222233334444")
    assert driver_pending(rotated, source_of(rotated))[0] == \
        "keyring /usr/share/keyrings/gpuhost-nvidia-cuda-1111222233334444.gpg"
    assert container_pending(context("snapshot-bench-converged.out", docker_default_runtime=True)) == [
        "/etc/docker/daemon.json"]
    assert container_pending(context("snapshot-bench-converged.out", toolkit_version="1.18.0-1")) == [
        "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
        "libnvidia-container1"]
    older = context("snapshot-bench-converged.out", torch="2.9")
    assert prepull_pending(older) == [older.host_plan.plan.image.tag, "pull record"]


def test_held_packages_are_part_of_converged():
    ctx = context("snapshot-bench-converged.out")
    ctx.host_state["held_packages"] = ["nvidia-open"]  # the pinning package lost its hold
    assert driver_pending(ctx, source_of(ctx)) == ["driver packages and holds"]


def test_verdict_inputs_come_from_the_snapshot(converged):
    inputs = current_inputs(converged)
    assert inputs["image"] == converged.host_plan.plan.image.tag
    assert inputs["digest"] == "sha256:455bc40f5d33d4a8a21e82f941d6de66a16ee5e9b57e249bc881a82fec943d9a"
    assert inputs["driver"] is None and inputs["gpus"] == []
    assert len(inputs["script"]) == 40


# --- When the torch check runs (verify: auto), on the real H100's snapshot ---------------------------

H100 = Path(__file__).resolve().parents[1] / "fixtures" / "device-h100" / "facts" / "snapshot.out"


def h100_context(verdict: dict | None, **data) -> HostContext:
    snap = HostSnapshot().process(H100.read_text().splitlines())
    snap["managed"]["verify"] = verdict
    settings = settings_from(data)
    return HostContext(settings, snap["gpu"], snap["host"], plan_host(snap["gpu"], snap["host"], settings),
                       snap["container"], snap["managed"])


def recorded(ctx, **changes) -> dict:
    """A verify.json as the check writes it there: digest and driver read on the host at check time
    (the driver from /sys/module/nvidia/version: 580.159.04 on that machine, docs/evidence/h100)."""
    inputs = {"image": ctx.host_plan.plan.image.tag, "digest": None, "driver": "580.159.04",
              "gpus": ["0000:00:06.0"], "script": script_sha1()}
    return {"ok": True, "cause": None, "inputs": {**inputs, **changes}}


def test_check_runs_once_then_only_after_a_change():
    assert check_due(h100_context(None), "auto")[0] == "now"
    ctx = h100_context(None)
    ctx.managed["verify"] = recorded(ctx)
    assert check_due(ctx, "auto") == ("if-changed", "torch check passed before with this image, driver and GPUs")
    assert check_due(ctx, "always")[0] == "now"
    assert check_due(ctx, "never")[0] == "no"


@pytest.mark.parametrize("changes", [{"driver": "580.95.05"}, {"digest": "sha256:0123"}, {"gpus": []},
                                     {"script": "0" * 40}, {"image": "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime"}])
def test_a_verdict_for_other_inputs_is_checked_again(changes):
    ctx = h100_context(None)
    ctx.managed["verify"] = recorded(ctx, **changes)
    assert check_due(ctx, "auto")[0] == "now"


def test_a_failed_verdict_is_checked_again_and_gpu_less_hosts_not_at_all(converged):
    ctx = h100_context(None)
    ctx.managed["verify"] = {**recorded(ctx), "ok": False, "cause": "out_of_memory"}
    assert check_due(ctx, "auto") == ("now", "the last check failed (out_of_memory)")
    assert check_due(converged, "auto")[0] == "no"  # planned through target_gpus, nothing attached
