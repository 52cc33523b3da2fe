"""The driver stage for real, on Debian 12 lab hosts over SSH.

NVIDIA's CUDA repository is not reachable from here, so the tests build a small local apt
repository standing in for it: TEST FIXTURE packages named like NVIDIA's
(nvidia-driver-pinning-580, nvidia-open, nvidia-persistenced; they hold no driver, only a
marker file and a systemd unit), signed with a gpg key generated per run whose fingerprint
the host data pins. The lab serves it at http://apt:8080/. Everything gpuhost does with it is
real: fingerprint check, keyring, deb822 source, apt-get update/install, apt-mark hold, the
nouveau blacklist, update-initramfs, systemctl enable. Why not Debian's own non-free
nvidia-driver: it is branch 535 with proprietary modules only, while an H100 plan is R580 open;
and its DKMS build cannot succeed here (no headers for the machine's kernel).

A "GPU process" is simulated by a TEST FIXTURE /usr/local/bin/nvidia-smi on one host that
reports one H100 on driver 535 and one compute process; the facts read it as they would the
real tool, and the refusal under test is gpuhost's own.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.results import host_statuses

pytestmark = pytest.mark.e2e
DEPLOY = "deploys/driver.py"
VERSION = "580.95.05-1"
FIXTURE_PACKAGES = {
    "nvidia-driver-pinning-580": {"depends": None, "files": {}},
    "nvidia-persistenced": {"depends": None, "files": {
        "lib/systemd/system/nvidia-persistenced.service":
            "# TEST FIXTURE unit (gpuhost e2e), not NVIDIA's\n[Unit]\nDescription=fixture persistenced\n"
            "[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}},
    "nvidia-open": {"depends": "nvidia-persistenced", "files": {}},
}
FAKE_SMI = r"""#!/bin/sh
# TEST FIXTURE (gpuhost e2e): stands in for nvidia-smi; one H100 on 535, one compute process.
case "$*" in
  *--query-gpu=*) echo '0, NVIDIA H100 80GB HBM3, GPU-fixture-0, 00000000:00:06.0, 9.0, 81559, Disabled, Enabled, 535.104.05';;
  -L) echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-fixture-0)';;
  *--query-compute-apps=*) echo '4242, python3, GPU-fixture-0, 1024';;
esac
"""
HOLD_LOCK = ("nohup python3 -c \"import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
             "fcntl.lockf(f, fcntl.LOCK_EX); open('/run/lock-held', 'w').close(); time.sleep(900)\" "
             ">/dev/null 2>&1 &")


def _run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def build_repository(root: Path) -> str:
    """A flat, signed apt repository of fixture packages; returns the signing key's fingerprint."""
    repo, gnupg = root / "repo", root / "gnupg"
    repo.mkdir(parents=True)
    gnupg.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    _run(*gpg, "--quick-gen-key", "gpuhost e2e fixture repository <fixture@gpuhost.invalid>", "rsa3072", "sign", "1d")
    fingerprint = next(line.split(":")[9] for line in
                       _run(*gpg, "--with-colons", "--list-keys").stdout.splitlines() if line.startswith("fpr"))
    stanzas = []
    for name, spec in FIXTURE_PACKAGES.items():
        tree = root / "build" / name
        (tree / "DEBIAN").mkdir(parents=True)
        control = (f"Package: {name}\nVersion: {VERSION}\nArchitecture: all\nMaintainer: gpuhost tests "
                   f"<fixture@gpuhost.invalid>\nDescription: TEST FIXTURE standing in for NVIDIA's {name}\n")
        if spec["depends"]:
            control += f"Depends: {spec['depends']}\n"
        (tree / "DEBIAN" / "control").write_text(control)
        for path, text in {f"usr/share/doc/{name}/FIXTURE": "gpuhost e2e test fixture\n", **spec["files"]}.items():
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text(text)
        deb = repo / f"{name}_{VERSION}_all.deb"
        _run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb))
        data = deb.read_bytes()
        stanzas.append(control + f"Filename: ./{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(packages)
    release = (f"Origin: gpuhost-e2e-fixture\nLabel: gpuhost-e2e-fixture\nDate: "
               f"{time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\nSHA256:\n"
               f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    (repo / "Release").write_text(release)
    _run(*gpg, "--local-user", fingerprint, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release"))
    (repo / "fixture-key.asc").write_text(_run(*gpg, "--armor", "--export", fingerprint).stdout)
    return fingerprint


@pytest.fixture(scope="module")
def driver_lab(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("driver-repo")
    fingerprint = build_repository(root)
    common = {"target_gpus": ["H100"], "reboot": "never", "driver_repository": "http://apt:8080/",
              "driver_repository_key": "http://apt:8080/fixture-key.asc",
              "driver_repository_fingerprint": fingerprint}
    hosts = [HostSpec("drv", common), HostSpec("locked", {**common, "apt_lock_timeout": 5}),
             HostSpec("busy", common), HostSpec("wrongkey", {**common, "driver_repository_fingerprint": "0" * 40})]
    with Lab(hosts) as lab:
        lab.serve_directory(root / "repo", name="apt")
        yield lab


def _statuses(proc, name):
    return host_statuses(proc.stdout).get(name, {})


def test_declared_gpu_host_gets_repository_packages_holds_blacklist_then_converges(driver_lab):
    host = driver_lab.host("drv")
    host.exec("apt-get update -q && apt-get install -y -q initramfs-tools", check=True, timeout=600)
    first = driver_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", "drv")
    assert first.returncode == 0, first.stdout[-4000:]
    assert _statuses(first, "drv")["Success"] >= 5, first.stdout[-4000:]  # repo, packages, blacklist, ...

    remote = host.testinfra()
    for name in FIXTURE_PACKAGES:
        assert remote.package(name).is_installed, name
    held = remote.check_output("apt-mark showhold").split()
    assert {"nvidia-driver-pinning-580", "nvidia-open"} <= set(held)
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

    second = driver_lab.pyinfra(DEPLOY, "-y", "-v", "--limit", "drv")
    assert second.returncode == 0, second.stdout[-4000:]
    statuses = _statuses(second, "drv")
    assert statuses["Success"] == 0 and statuses["Error"] == 0, second.stdout[-4000:]
    assert statuses["No changes"] >= 4
    assert "apt-get" not in second.stdout  # no apt-get update when nothing is to be installed


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
    assert "is not 0000000000000000000000000000000000000000" in proc.stdout, proc.stdout[-3000:]
    assert "refusing to trust it" in proc.stdout
    assert host.exec("ls /usr/share/keyrings/gpuhost-nvidia-cuda-* 2>/dev/null").stdout.strip() == ""
