"""Operation tests for gpuhost.driver.operations, generated from the YAML files in driver/.

Each file names an operation, a host (os/arch/kernel as HostState reports them), the plan's
branch and flavour (and optionally driver_source and repository overrides), the facts the
operation reads, and the exact commands it must yield (or the noop it must report). The
harness is pyinfra-testing's (FakeState, create_host, parse_commands); the DriverSource is
built by the real select_source, so the data file and the operations are tested together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.operations import parse_commands
from pyinfra_testing.util import FakeState, create_host

from gpuhost.driver.sources import select_source
from gpuhost.driver import operations as driver

CASES = sorted((Path(__file__).parent / "operation_cases").glob("*.yaml"))


def run_case(case: dict):
    host = create_host(FakeState(), facts=case.get("facts", {}))
    kwargs = dict(case.get("kwargs") or {})
    if "plan" in case:
        plan = case["plan"]
        kwargs["source"] = select_source(case["host"], plan["branch"], plan["flavour"], plan.get("source"),
                                         plan.get("repository"), plan.get("repository_key"),
                                         plan.get("repository_fingerprint"), nvswitch=plan.get("nvswitch", False))
    op = getattr(driver, case["op"])
    with ctx_state.use(host.state), ctx_host.use(host):
        commands = parse_commands(list(op._inner(**kwargs)))
    return commands, host.noop_description


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_operation(path):
    case = yaml.safe_load(path.read_text())
    commands, noop = run_case(case)
    assert commands == case["commands"]
    if not commands:
        assert noop == case["noop_description"]


def test_every_distro_source_flavour_has_a_case():
    seen = set()
    for path in CASES:
        case = yaml.safe_load(path.read_text())
        if case["op"] == "packages":
            seen.add(path.stem.rsplit("-", 1)[0])
    for combo in ("ubuntu2404-ubuntu-open", "ubuntu2204-ubuntu-proprietary", "debian12-cuda-open",
                  "ubuntu2404-cuda-proprietary", "debian12-debian-proprietary", "rocky9-cudarhel-open"):
        assert combo in seen, combo
