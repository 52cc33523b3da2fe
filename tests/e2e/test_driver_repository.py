"""The repository is the truth: the driver stage installs what the host's repository really offers.

The stand-in for NVIDIA's CUDA repository here is built from RECORDED metadata only
(gpuhost/lab/fixture_repos.py RECORDED_CUDA: nvidia-open 615.71.09, 610.57.04, 595.91.07, 590.48.01,
the pins of R580 and R610, each with where it was seen), not from gpuhost's data. So it disagrees
with the data as the real repository can: it has no R620 (which the data plans for an H100), and
its R595 is 595.91.07, newer than the data's 595.45.04, with no R595 pinning package recorded.
"""

from __future__ import annotations

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.fixture_repos import build_repository, planned_branch, recorded_builds, repository_data
from gpuhost.lab.results import host_statuses

pytestmark = pytest.mark.e2e
DEPLOY = "deploys/driver.py"


@pytest.fixture(scope="module")
def recorded_lab(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("recorded-repo")
    common = repository_data(build_repository(root, builds=recorded_builds()))
    with Lab([HostSpec("short", common), HostSpec("newer", {**common, "driver_branch": "595"})]) as lab:
        lab.serve_directory(root / "repo", name="apt")
        yield lab


def test_repository_without_the_planned_branch_stops_in_one_line_and_installs_nothing(recorded_lab):
    host = recorded_lab.host("short")
    assert planned_branch() == "620"
    proc = recorded_lab.pyinfra(DEPLOY, "-y", "--limit", "short")
    assert proc.returncode != 0, proc.stdout[-3000:]
    line = ("gpuhost: http://apt:8080/ offers nvidia-open 615.71.09-1ubuntu1, 610.57.04-1ubuntu1, "
            "595.91.07-1ubuntu1, 590.48.01-0ubuntu1, not R620: set driver_branch: \"615\"")
    assert line in proc.stdout, proc.stdout[-3000:]
    assert host_statuses(proc.stdout).get("short", {}).get("Error", 0) >= 1
    listed = host.exec("dpkg-query -W -f='${Package}\\n' 'nvidia-*' 2>/dev/null").stdout.split()
    assert listed == [], listed  # nothing installed, not even the pin
    assert host.exec("apt-get update -q && apt-get install -s -q nvidia-open").returncode == 0  # apt still works


def test_newer_point_release_than_the_data_is_installed_at_its_version_and_held(recorded_lab):
    host = recorded_lab.host("newer")
    proc = recorded_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", "newer")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "R595: 595.91.07 is the newest the repository offers (the data names 595.45.04)" in proc.stdout
    remote = host.testinfra()
    for package in ("nvidia-open", "nvidia-persistenced"):  # not 615/610: the newest of R595, its dependency too
        assert remote.package(package).version == "595.91.07-1ubuntu1", package
    assert "nvidia-open" in remote.check_output("apt-mark showhold").split()
    second = recorded_lab.pyinfra(DEPLOY, "-y", "--limit", "newer")
    assert second.returncode == 0 and "[newer] driver R595 open from cuda: in place" in second.stdout, \
        second.stdout[-3000:]
