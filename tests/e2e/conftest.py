"""The e2e lab: real Debian 12 hosts (systemd + sshd containers) shared by the e2e tests.

One session-scoped lab saves host start-ups; each scenario gets its own host(s) so tests
do not depend on each other's order. Without a Docker engine and without root the e2e
tests are skipped with the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import LabUnavailable, ensure_engine
from gpuhost.lab.image import ensure_host_image

# name -> pyinfra host data. Scenarios pick their hosts with `--limit`.
HOSTS = {
    "fresh": {},                    # (a) the deploy twice on a host nobody else touches
    "nogpu": {},                    # (b) default policy: skipped
    "strict": {"no_gpu": "fail"},   # (b) same run, policy says fail
}


def _engine_or_skip() -> None:
    try:
        ensure_engine()
        ensure_host_image()
    except LabUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the e2e lab: {exc}", pytrace=False)
        pytest.skip(f"e2e lab unavailable: {exc}")


@pytest.fixture(scope="session")
def lab():
    _engine_or_skip()
    with Lab([HostSpec(name, data) for name, data in HOSTS.items()]) as running:
        yield running


@pytest.fixture(scope="session")
def engine():
    """Only the engine (tests that start their own Lab)."""
    _engine_or_skip()

