"""The running kernel's headers: the repositories are asked only when the driver stage has work.

The snapshot reads whether the headers are installed (dpkg, /lib/modules/<kernel>/build); whether
apt offers them costs more than the rest of the host part, so the driver stage asks (DriverOffer)
only when it has work and DKMS builds the module. Captured lab snapshots (tests/fixtures/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from gpuhost.driver import stage
from gpuhost.driver.sources import select_source
from tests.fixtures.snapshot_context import snapshot_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
DATA = json.loads((FIXTURES / "bench-host-data.json").read_text())
HEADERS = "linux-headers-6.18.44-fc-v857"  # the lab kernel's: no such package anywhere


def source_of(ctx):
    d, wanted = ctx.settings.driver, ctx.host_plan.plan.driver
    return select_source(ctx.host_state, wanted.branch, wanted.kernel_module, d.source, d.repository,
                         d.repository_key, d.repository_fingerprint)


def offer(versions):
    return {"driver_offer.DriverOffer": {f"names=['{HEADERS}'], prefixes=[]": {
        "versions": versions, "names": [], "kernel": "6.18.44-fc-v857", "images": []}}}


def test_a_converged_host_is_not_asked():
    converged = snapshot_context(FIXTURES / "snapshot-bench-converged.out", DATA)
    assert stage._missing_headers(converged, source_of(converged)) == HEADERS  # DKMS, headers missing
    host = create_host(FakeState(), facts={})  # any fact asked raises KeyError
    with ctx_state.use(host.state), ctx_host.use(host):
        assert stage.driver_stage(converged) == []


@pytest.mark.parametrize(("versions", "offered"), [({}, False), ({HEADERS: ["6.18.44-1"]}, True)])
def test_a_host_with_work_asks_the_repositories(versions, offered):
    fresh = snapshot_context(FIXTURES / "snapshot-bench-fresh.out", DATA)
    assert stage.driver_pending(fresh, source_of(fresh))
    assert stage._missing_headers(fresh, source_of(fresh)) == HEADERS
    host = create_host(FakeState(), facts=offer(versions))
    with ctx_state.use(host.state), ctx_host.use(host):
        assert stage._offered(HEADERS) is offered


def test_installed_headers_are_not_asked_for():
    fresh = snapshot_context(FIXTURES / "snapshot-bench-fresh.out", DATA)
    fresh.host_state["kernel_headers"]["installed"] = True
    assert stage._missing_headers(fresh, source_of(fresh)) is None
