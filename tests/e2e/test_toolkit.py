"""The NVIDIA container toolkit part of the container-runtime stage, for real, on lab hosts.

NVIDIA's libnvidia-container repository is not reachable from the lab, so the host data points
the stage at a mirror (toolkit_repository, _key, _fingerprint): a signed local apt repository of
TEST FIXTURE packages named and laid out like NVIDIA's four (gpuhost/lab/fixture_repos.py,
TOOLKIT_PACKAGES), at two versions, served at http://apt:8080/. Real: the key download over
http (allowed because the host data names the key URL and pins its fingerprint), the fingerprint
check, the keyring, the deb822 source, apt-get update/install of an exact version, Debian's
docker.io and its dockerd reading the merged daemon.json, pyinfra's CLI over SSH.

Fixtures, labelled TEST FIXTURE: the packages' programs (nvidia-ctk, nvidia-container-runtime,
the hook; shell scripts, see gpuhost/lab/fixture_repos.py) and, on the converging host, driver_fixture.fake_smi.
The CDI step runs only when the host's driver version is known (`_cdi_driver`), and the gpu fact
knows it from the kernel module (/proc/driver/nvidia, /sys/module/nvidia: kernel files a
container cannot provide) or, without them, from nvidia-smi's driver_version (facts/gpu.py
`_driver`). So the host gets a TEST FIXTURE /usr/local/bin/nvidia-smi reporting one H100 on a
driver, as tests/e2e/driver_fixture.py does for the driver stage; the facts read it as they would
the real tool, the fixture nvidia-ctk asks it for the driver version as the real one asks NVML,
and the decisions under test (generate, leave alone, regenerate after a driver change) are
gpuhost's own, on the spec file the real fact reads back.
"""

from __future__ import annotations

import json

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.fixture_repos import (TOOLKIT_NEWER, TOOLKIT_PACKAGES, TOOLKIT_VERSION, build_repository,
                                     toolkit_repository_data)
from gpuhost.lab.results import host_statuses
from tests.e2e.driver_fixture import fake_smi

pytestmark = pytest.mark.e2e
DEPLOY = "deploys/container_runtime.py"
DRIVER = "580.95.05"
UPGRADED = "580.105.08"
CTK_LOG = "/var/log/gpuhost-fixture-nvidia-ctk.log"


def _install_smi(host, driver: str) -> None:
    host.exec("cat > /usr/local/bin/nvidia-smi && chmod 755 /usr/local/bin/nvidia-smi",
              input=fake_smi(driver, compute_process=False), check=True)


@pytest.fixture(scope="module")
def toolkit_lab(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("toolkit-repo")
    fingerprint = build_repository(root, packages=TOOLKIT_PACKAGES, versions=(TOOLKIT_VERSION, TOOLKIT_NEWER))
    data = {**toolkit_repository_data(fingerprint), "docker_cdi": True}
    hosts = [HostSpec("tk", data), HostSpec("tkbadkey", {**data, "toolkit_repository_fingerprint": "0" * 40})]
    with Lab(hosts) as lab:
        lab.serve_directory(root / "repo", name="apt")
        _install_smi(lab.host("tk"), DRIVER)
        yield lab


@pytest.fixture(scope="module")
def first_run(toolkit_lab):
    """One run over both hosts, as on a fleet: one converges, the other is refused."""
    return toolkit_lab.pyinfra(DEPLOY, "-y", "-v")


def test_pinned_mirror_toolkit_runtime_and_cdi_then_nothing_to_do(toolkit_lab, first_run):
    host = toolkit_lab.host("tk")
    assert host_statuses(first_run.stdout).get("tk", {}).get("Error", 0) == 0, first_run.stdout[-5000:]
    remote = host.testinfra()
    fingerprint = host.data["toolkit_repository_fingerprint"]

    # The mirror's key, and only it, in its own keyring; the source uses it (no trusted=yes).
    keyring = f"/usr/share/keyrings/gpuhost-nvidia-container-toolkit-{fingerprint[-16:]}.gpg"
    listed = remote.check_output(f"gpg --show-keys --with-colons {keyring} | awk -F: '/^fpr/ {{print $10}}'")
    assert listed.split() == [fingerprint]
    sources = remote.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert sources == f"Types: deb\nURIs: http://apt:8080/\nSuites: /\nSigned-By: {keyring}\n"

    # All four at exactly the pinned version, though a newer one is there for the taking.
    for name in TOOLKIT_PACKAGES:
        assert remote.package(name).version == TOOLKIT_VERSION, name
    policy = remote.check_output("apt-cache policy nvidia-container-toolkit")
    assert f"Candidate: {TOOLKIT_NEWER}" in policy and f"Installed: {TOOLKIT_VERSION}" in policy, policy
    assert remote.check_output("nvidia-ctk --version").splitlines()[0] == \
        f"NVIDIA Container Toolkit CLI version {TOOLKIT_VERSION.split('-')[0]}"

    # daemon.json has the runtime and CDI; the host's real dockerd read it.
    daemon = json.loads(remote.file("/etc/docker/daemon.json").content_string)
    assert daemon["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert daemon["features"] == {"cdi": True}
    runtimes = json.loads(host.ssh("docker info --format '{{json .Runtimes}}'").stdout)
    assert "nvidia" in runtimes

    # CDI: generated once for the driver the host reports; the real fact reads it back.
    spec = remote.file("/etc/cdi/nvidia.yaml").content_string
    assert "kind: nvidia.com/gpu" in spec and f"libcuda.so.{DRIVER}" in spec
    calls = remote.file(CTK_LOG).content_string
    assert calls.count("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml") == 1
    assert "nvidia-ctk system create-dev-char-symlinks --create-all" in calls
    started = host.ssh("systemctl show -p ActiveEnterTimestamp docker").stdout

    # Second run: the snapshot shows everything in place; nothing is queued, nothing changes.
    second = toolkit_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", "tk")
    assert second.returncode == 0, second.stdout[-4000:]
    statuses = host_statuses(second.stdout).get("tk", {})
    assert statuses.get("Success", 0) == 0 and statuses.get("Error", 0) == 0, second.stdout[-4000:]
    assert "[tk] Docker, the NVIDIA runtime and daemon.json: in place" in second.stdout, second.stdout[-4000:]
    assert "apt-get" not in second.stdout
    assert remote.file(CTK_LOG).content_string.count("cdi generate") == 1
    assert host.ssh("systemctl show -p ActiveEnterTimestamp docker").stdout == started


def test_cdi_spec_is_regenerated_after_a_driver_change(toolkit_lab, first_run):
    host = toolkit_lab.host("tk")
    if host.exec("test -e /etc/cdi/nvidia.yaml").returncode != 0:
        pytest.skip("needs the first run's CDI spec")
    started = host.ssh("systemctl show -p ActiveEnterTimestamp docker").stdout
    _install_smi(host, UPGRADED)  # the host now reports another driver (as after a driver upgrade)
    run = toolkit_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", "tk")
    assert run.returncode == 0, run.stdout[-4000:]
    assert f"CDI spec for driver {UPGRADED}" in run.stdout, run.stdout[-4000:]
    spec = host.ssh("cat /etc/cdi/nvidia.yaml").stdout
    assert f"libcuda.so.{UPGRADED}" in spec and f"libcuda.so.{DRIVER}" not in spec
    assert host.ssh("systemctl show -p ActiveEnterTimestamp docker").stdout == started  # daemon.json unchanged
    again = toolkit_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", "tk")
    assert host_statuses(again.stdout).get("tk", {}).get("Success", 0) == 0, again.stdout[-4000:]


def test_mirror_key_with_another_fingerprint_is_refused_and_not_written(toolkit_lab, first_run):
    host = toolkit_lab.host("tkbadkey")
    assert first_run.returncode != 0, "a refused host fails the run"
    assert host_statuses(first_run.stdout).get("tkbadkey", {}).get("Error", 0) == 1, first_run.stdout[-5000:]
    refusals = [line for line in first_run.stdout.splitlines() if "refusing to trust it" in line]
    assert len(refusals) == 1, first_run.stdout[-5000:]
    assert "gpuhost: key from http://apt:8080/fixture-key.asc has fingerprint " in refusals[0]
    assert f"expected {'0' * 40}: refusing to trust it" in refusals[0]
    assert host.exec("ls /usr/share/keyrings/ | grep -c nvidia-container-toolkit").stdout.strip() == "0"
    assert host.exec("test -e /etc/apt/sources.list.d/nvidia-container-toolkit.sources").returncode != 0
    assert host.exec("dpkg-query -W nvidia-container-toolkit").returncode != 0


def test_bad_fingerprint_in_host_data_is_one_line_before_any_host_is_touched(toolkit_lab, first_run):
    host = toolkit_lab.host("tk")
    before = host.exec("ls -l --time-style=+%s /etc/apt/sources.list.d/ /usr/share/keyrings/").stdout
    run = toolkit_lab.pyinfra(DEPLOY, "-y", "--data", "toolkit_repository_fingerprint=C95B321B", "--limit", "tk")
    assert run.returncode != 0
    lines = [line for line in run.stdout.splitlines() if "toolkit_repository_fingerprint" in line]
    assert len(lines) == 1 and "use the key's 40-hex-digit fingerprint" in lines[0], run.stdout[-3000:]
    assert "Traceback" not in run.stdout
    assert host.exec("ls -l --time-style=+%s /etc/apt/sources.list.d/ /usr/share/keyrings/").stdout == before
