"""The driver stage for real, on Debian 12 and Debian 13 lab hosts over SSH.

NVIDIA's CUDA repository is not reachable from here, so the tests build a small local apt
repository standing in for it (gpuhost/lab/fixture_repos.py): TEST FIXTURE packages generated
from the real install's data, for the H100 plan's branch and R580 side by side (pinning package,
nvidia-open -> nvidia-driver-open -> nvidia-persistenced, fabric manager; they hold no driver,
only marker files, a systemd unit and the pin's apt preferences file), signed with a gpg key
generated per run whose fingerprint the host data pins. The lab serves it at http://apt:8080/.
Everything gpuhost does with it is real: fingerprint check, keyring, deb822 source, apt-get
update/install, the pin taking effect, apt-mark hold, the nouveau blacklist, update-initramfs,
systemctl enable. Why not Debian's own non-free nvidia-driver: it is branch 535/550 with
proprietary modules only, and its DKMS build cannot succeed here (no headers for the kernel).

A "GPU process" is simulated by a TEST FIXTURE /usr/local/bin/nvidia-smi on one host that
reports one H100 on driver 535 and one compute process; the facts read it as they would the
real tool, and the refusal under test is gpuhost's own.
"""

from __future__ import annotations

import time

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.results import host_statuses
from tests.e2e.driver_fixture import (FAKE_SMI, HOLD_LOCK, OTHER_BRANCH, build_repository, driver_version,
                                     planned_branch, repository_data)

pytestmark = pytest.mark.e2e
DEPLOY = "deploys/driver.py"


@pytest.fixture(scope="module")
def driver_lab(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("driver-repo")
    fingerprint = build_repository(root)
    common = repository_data(fingerprint)
    hosts = [HostSpec("drv", common), HostSpec("drv13", common, distro="debian13"),
             HostSpec("pinned", {**common, "driver_branch": OTHER_BRANCH}),
             HostSpec("locked", {**common, "apt_lock_timeout": 5}),
             HostSpec("busy", common), HostSpec("wrongkey", {**common, "driver_repository_fingerprint": "0" * 40})]
    with Lab(hosts) as lab:
        lab.serve_directory(root / "repo", name="apt")
        yield lab


def _statuses(proc, name):
    return host_statuses(proc.stdout).get(name, {})


@pytest.mark.parametrize("name", ["drv", "drv13"], ids=["debian12", "debian13"])
def test_declared_gpu_host_gets_repository_packages_holds_blacklist_then_converges(driver_lab, name):
    host = driver_lab.host(name)
    host.exec("apt-get update -q && apt-get install -y -q initramfs-tools", check=True, timeout=600)
    first = driver_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", name)
    assert first.returncode == 0, first.stdout[-4000:]
    assert _statuses(first, name)["Success"] >= 5, first.stdout[-4000:]  # repo, packages, blacklist, ...

    remote = host.testinfra()
    branch = planned_branch()
    for package in (f"nvidia-driver-pinning-{branch}", "nvidia-open", "nvidia-driver-open", "nvidia-persistenced"):
        assert remote.package(package).is_installed, package
    assert remote.package("nvidia-open").version == driver_version(branch)
    held = remote.check_output("apt-mark showhold").split()
    assert {f"nvidia-driver-pinning-{branch}", "nvidia-open"} <= set(held)
    sources = remote.file("/etc/apt/sources.list.d/gpuhost-nvidia-cuda.sources").content_string
    keyring = f"/usr/share/keyrings/gpuhost-nvidia-cuda-{host.data['driver_repository_fingerprint'][-16:]}.gpg"
    assert f"Signed-By: {keyring}" in sources and "URIs: http://apt:8080/" in sources
    assert "trusted" not in sources
    listed = remote.check_output(f"gpg --show-keys --with-colons {keyring} | awk -F: '/^fpr/ {{print $10}}'")
    assert listed.split() == [host.data["driver_repository_fingerprint"]]
    assert "blacklist nouveau" in remote.file("/etc/modprobe.d/blacklist-nouveau.conf").content_string
    assert remote.service("nvidia-persistenced").is_enabled
    assert remote.file("/var/run/reboot-required").exists  # reboot: never leaves it pending
    assert "Reboot required (reboot: never)" in first.stdout

    second = driver_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", name)
    assert second.returncode == 0, second.stdout[-4000:]
    statuses = _statuses(second, name)
    assert statuses.get("Success", 0) == 0 and statuses.get("Error", 0) == 0, second.stdout[-4000:]
    # The snapshot shows everything in place: no operation is even queued.
    assert f"[{name}] driver R{branch} open from cuda: in place" in second.stdout, second.stdout[-4000:]
    assert "apt-get" not in second.stdout  # no apt-get update when nothing is to be installed


def test_pinning_package_installed_first_keeps_the_driver_on_its_branch(driver_lab):
    """The repository also holds a newer branch whose nvidia-open satisfies everything: only the pin,
    installed in its own step before the driver, keeps the host on the requested branch."""
    host = driver_lab.host("pinned")
    assert OTHER_BRANCH != planned_branch()
    run = driver_lab.pyinfra(DEPLOY, "-y", "--limit", "pinned")
    assert run.returncode == 0, run.stdout[-4000:]
    remote = host.testinfra()
    assert remote.package("nvidia-open").version == driver_version(OTHER_BRANCH)
    assert remote.package("nvidia-driver-open").version == driver_version(OTHER_BRANCH)
    assert f"nvidia-driver-pinning-{OTHER_BRANCH}" in remote.check_output("apt-mark showhold").split()
    policy = remote.check_output("apt-cache policy nvidia-open")
    assert f"Candidate: {driver_version(OTHER_BRANCH)}" in policy, policy  # the pin outranks the newer branch


def test_held_dpkg_lock_is_waited_for_then_reported(driver_lab):
    host = driver_lab.host("locked")
    host.exec(HOLD_LOCK, check=True)
    for _ in range(50):
        if host.exec("test -e /run/lock-held").returncode == 0:
            break
        time.sleep(0.1)
    started = time.monotonic()
    proc = driver_lab.pyinfra(DEPLOY, "-y", "--limit", "locked")
    took = time.monotonic() - started
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "Could not get lock /var/lib/dpkg/lock-frontend" in proc.stdout, proc.stdout[-3000:]
    assert "gpuhost: the apt/dpkg lock was still held after 5s" in proc.stdout
    assert took >= 5
    assert host.exec("dpkg-query -W nvidia-open").returncode != 0  # nothing half-installed


def test_host_with_gpu_process_is_refused(driver_lab):
    host = driver_lab.host("busy")
    host.exec(f"cat > /usr/local/bin/nvidia-smi <<'EOF'\n{FAKE_SMI}EOF\nchmod 755 /usr/local/bin/nvidia-smi",
              check=True)
    proc = driver_lab.pyinfra(DEPLOY, "-y", "--limit", "busy")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "GPU processes are running (python3 (pid 4242))" in proc.stdout, proc.stdout[-3000:]
    assert "force: true" in proc.stdout
    assert host.exec("test -e /etc/apt/sources.list.d/gpuhost-nvidia-cuda.sources").returncode != 0
    assert host.exec("dpkg-query -W nvidia-open").returncode != 0


def test_repository_key_with_wrong_fingerprint_is_refused(driver_lab):
    host = driver_lab.host("wrongkey")
    proc = driver_lab.pyinfra(DEPLOY, "-y", "--limit", "wrongkey")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "expected 0000000000000000000000000000000000000000: refusing" in proc.stdout, proc.stdout[-3000:]
    assert "refusing to trust it" in proc.stdout
    assert host.exec("ls /usr/share/keyrings/gpuhost-nvidia-cuda-* 2>/dev/null").stdout.strip() == ""
