"""The pre-pull's "already in place" check on the real converged lab snapshot (see tests/run/test_converged.py)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuhost.containers.prepull_stage import prepull_pending
from tests.fixtures.snapshot_context import snapshot_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
DATA = json.loads((FIXTURES / "bench-host-data.json").read_text())


def test_a_pinned_image_digest_the_host_does_not_hold_is_pending():
    held = snapshot_context(FIXTURES / "snapshot-bench-converged.out", DATA)
    tag = held.host_plan.plan.image.tag
    digest = held.container_state["image_digests"][tag]
    pinned = snapshot_context(FIXTURES / "snapshot-bench-converged.out", {**DATA, "image_digest": digest})
    assert prepull_pending(pinned) == []
    other = snapshot_context(FIXTURES / "snapshot-bench-converged.out", {**DATA, "image_digest": "sha256:" + "e" * 64})
    assert prepull_pending(other) == [tag]
