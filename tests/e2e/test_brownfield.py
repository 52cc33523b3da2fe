"""Hosts that are not clean: the real deploy on lab hosts prepared the way real servers are.

One lab for the module; each host carries one state that real fleets have, prepared before the
first run; the deploy runs once over several hosts at a time (driver hosts and toolkit hosts in
two pyinfra processes side by side), then again to show that nothing changes or why.

What is real: Debian's own non-free nvidia-driver 535 (bookworm), installed for real by gpuhost
(driver_source: debian) and held; apt, dpkg, apt-mark, gpg, pyinfra over SSH, Debian's docker.io.
A container cannot build or load the kernel module: without the running kernel's headers DKMS
adds the module and builds nothing ("It is likely that <kernel> belongs to a chroot's host"),
the packages configure and apt stays healthy (`dpkg --audit` is checked).

TEST FIXTURES (NVIDIA's repositories are not reachable from the lab; each is built from the
vendor's real layout and only proves gpuhost's own behaviour):
- the driver and toolkit repositories: gpuhost/lab/fixture_repos.py (signed, served in the lab);
- NVIDIA's cuda-keyring package: the files `dpkg -L cuda-keyring` lists
  (autowarefoundation/autoware_core_universe_prototype PR #265, 2022-05-02:
  /etc/apt/sources.list.d/cuda-<distro>-x86_64.list and /usr/share/keyrings/cuda-archive-keyring.gpg)
  with the source line NVIDIA documents (`deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg]
  <repo>/ /`), pointing at the lab's stand-in for NVIDIA's repository and holding its key. The
  conflict it causes is NVIDIA's own "Conflicting values set for option Signed-By"
  (NVIDIA/cuda-repo-management issue #4, 2022-04-29);
- the toolkit as NVIDIA's install guide lays it out: nvidia-container-toolkit.list with
  signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg;
- legacy nvidia-docker2 as NVIDIA/nvidia-docker's debian/nvidia-docker2.install lays it out
  (commit fe18749: daemon.json into /etc/docker, nvidia-* into /usr/bin) and nvidia-container-runtime
  as its last releases, a package with no files of its own; both without their Depends;
- a runfile driver: /usr/bin/nvidia-uninstall and nvidia-installer (scripts), nvidia-smi failing as
  the real one does without a loaded module, libnvidia-ml.so.550.54.14;
- a user's nvidia-driver-pinning-550 + nvidia-open 550.163.01, installed with dpkg and held.
Real, as a user has it: Debian's nvidia-driver 535 installed from non-free without Recommends and held.

Docker installed per Docker's docs (docker.list + docker.asc) is not run here: gpuhost's Docker
repository has no mirror setting, and the lab may not reach download.docker.com. Its source is
read and decided by the same code as the two above (gpuhost.run.keys.choose_source), unit-tested
on real output of a lab host prepared per Docker's docs (tests/run/test_keys.py).
"""

from __future__ import annotations

import base64
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.fixture_repos import (TOOLKIT_PACKAGES, driver_version, planned_branch, TOOLKIT_VERSION, build_repository,
                                       repository_data, toolkit_repository_data)
from gpuhost.lab.results import changed, host_statuses, summary_rows

BRANCH = planned_branch()  # what the real resolver plans for these H100 hosts
VERSION = driver_version(BRANCH)  # the stand-in repository's version of it

pytestmark = pytest.mark.e2e
DRIVER_URL, TOOLKIT_URL = "http://driver-repo:8080/", "http://toolkit-repo:8080/"
DRIVER_HOSTS = ("cudakeyring", "runfile", "runfilereplace", "pin550", "debheld", "debian")
# Debian's own driver as a user installs it: non-free enabled, no Recommends (which would pull
# linux-headers-amd64 and build the module for a kernel that is not running), then held.
DEBIAN_NONFREE = "deb http://deb.debian.org/debian bookworm contrib non-free non-free-firmware"
DEBIAN_DRIVER = "nvidia-driver nvidia-kernel-dkms firmware-misc-nonfree nvidia-persistenced"
TOOLKIT_HOSTS = ("toolkitdocs", "toolkitkey")
CUDA_LIST = "/etc/apt/sources.list.d/cuda-debian12-x86_64.list"
CUDA_KEYRING = "/usr/share/keyrings/cuda-archive-keyring.gpg"
TOOLKIT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
USERS_TOOLKIT_LIST = f"deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] {TOOLKIT_URL} /\n"
RUNFILE_REFUSAL = ("a driver installed with NVIDIA's runfile is present: runfile driver 550.54.14 "
                   "(/usr/bin/nvidia-uninstall); gpuhost does not install packages over it: run "
                   "'/usr/bin/nvidia-uninstall' on the host and re-run, or set host data runfile_driver: replace")
TOOLKIT_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
NVIDIA_SMI_NO_DRIVER = """#!/bin/sh
# TEST FIXTURE (gpuhost e2e): a runfile driver's nvidia-smi on a host whose module is not loaded
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
exit 9
"""
NVIDIA_UNINSTALL = """#!/bin/sh
# TEST FIXTURE (gpuhost e2e), not NVIDIA's: removes what the fixture runfile driver installed
rm -f /usr/bin/nvidia-smi /usr/bin/nvidia-installer /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.14 \\
      /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 /usr/bin/nvidia-uninstall
echo "nvidia-uninstall: the NVIDIA driver was removed (TEST FIXTURE)"
"""
LEGACY_DAEMON_JSON = '{\n    "runtimes": {\n        "nvidia": {\n            "path": "nvidia-container-runtime",\n' \
                     '            "runtimeArgs": []\n        }\n    }\n}\n'


def _deb(root: Path, name: str, version: str, files: dict[str, bytes]) -> bytes:
    """A TEST FIXTURE .deb (no Depends) holding `files`; its bytes."""
    tree = root / f"{name}_{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: gpuhost tests <fixture@gpuhost.invalid>\n"
        f"Description: TEST FIXTURE standing in for {name}\n")
    for path, data in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
        (tree / path).chmod(0o755 if data.startswith(b"#!") else 0o644)
    if any(p.startswith("etc/") for p in files):
        (tree / "DEBIAN" / "conffiles").write_text("".join(f"/{p}\n" for p in files if p.startswith("etc/")))
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(tree) + ".deb"],
                   check=True, capture_output=True)
    return Path(str(tree) + ".deb").read_bytes()


def _put(host, path: str, data: bytes, mode: str = "644") -> None:
    host.exec(f"mkdir -p $(dirname {path}) && base64 -d > {path} && chmod {mode} {path}",
              input=base64.b64encode(data).decode(), check=True)


def _dpkg_install(host, debs: dict[str, bytes]) -> None:
    for name, data in debs.items():
        _put(host, f"/tmp/{name}.deb", data)
    host.exec("dpkg -i " + " ".join(f"/tmp/{n}.deb" for n in debs), check=True)


def _binary_key(root: Path) -> bytes:
    """The fixture repository's signing key as a binary keyring (what cuda-keyring ships)."""
    return subprocess.run(["gpg", "--dearmor"], input=(root / "repo" / "fixture-key.asc").read_bytes(),
                          capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def brownfield(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("brownfield")
    driver_fpr = build_repository(root / "driver")
    toolkit_fpr = build_repository(root / "toolkit", packages=TOOLKIT_PACKAGES, versions=(TOOLKIT_VERSION,))
    driver = repository_data(driver_fpr, url=DRIVER_URL)
    toolkit = toolkit_repository_data(toolkit_fpr, url=TOOLKIT_URL)
    hosts = [
        HostSpec("cudakeyring", driver),
        HostSpec("runfile", driver),
        HostSpec("runfilereplace", {**driver, "runfile_driver": "replace"}),
        HostSpec("pin550", driver),
        HostSpec("debheld", driver),
        # Debian's own packages: a V100 is planned proprietary, the only flavour Debian has (R535)
        HostSpec("debian", {"target_gpus": ["V100"], "driver_source": "debian", "driver_branch": "535",
                            "reboot": "never"}),
        HostSpec("toolkitdocs", toolkit),
        # NVIDIA's own pin for the toolkit (no fingerprint override), the mirror's key at NVIDIA's path
        HostSpec("toolkitkey", {k: v for k, v in toolkit.items() if k != "toolkit_repository_fingerprint"}),
    ]
    debs = root / "debs"
    with Lab(hosts) as lab:
        lab.serve_directory(root / "driver" / "repo", name="driver-repo")
        lab.serve_directory(root / "toolkit" / "repo", name="toolkit-repo")

        keyring = lab.host("cudakeyring")  # NVIDIA's cuda-keyring, installed as a package
        _dpkg_install(keyring, {"cuda-keyring": _deb(debs, "cuda-keyring", "1.1-1", {
            CUDA_LIST[1:]: f"deb [signed-by={CUDA_KEYRING}] {DRIVER_URL} /\n".encode(),
            CUDA_KEYRING[1:]: _binary_key(root / "driver")})})

        for runfile in (lab.host("runfile"), lab.host("runfilereplace")):  # NVIDIA's .run installer, no packages
            for path, text in {"/usr/bin/nvidia-smi": NVIDIA_SMI_NO_DRIVER, "/usr/bin/nvidia-uninstall": NVIDIA_UNINSTALL,
                               "/usr/bin/nvidia-installer": NVIDIA_UNINSTALL}.items():
                _put(runfile, path, text.encode(), mode="755")
            _put(runfile, "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.14", b"TEST FIXTURE\n")

        pinned = lab.host("pin550")  # a user's R550 from NVIDIA's repository, held
        _dpkg_install(pinned, {"nvidia-driver-pinning-550": _deb(debs, "nvidia-driver-pinning-550", "550.163.01-1", {}),
                               "nvidia-open": _deb(debs, "nvidia-open", "550.163.01-1", {})})
        pinned.exec("apt-mark hold nvidia-driver-pinning-550 nvidia-open", check=True)

        held = lab.host("debheld")  # Debian's own nvidia-driver 535, installed for real and held
        held.exec(f"echo '{DEBIAN_NONFREE}' > /etc/apt/sources.list.d/non-free.list && apt-get update -q && "
                  f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {DEBIAN_DRIVER} && "
                  "apt-mark hold nvidia-driver nvidia-kernel-dkms", check=True, timeout=900)

        docs = lab.host("toolkitdocs")  # NVIDIA's documented toolkit source + legacy packages
        _put(docs, TOOLKIT_LIST, f"deb [signed-by={TOOLKIT_KEYRING}] {TOOLKIT_URL} /\n".encode())
        _put(docs, TOOLKIT_KEYRING, _binary_key(root / "toolkit"))
        _dpkg_install(docs, {
            "nvidia-docker2": _deb(debs, "nvidia-docker2", "2.14.0-1", {
                "etc/docker/daemon.json": LEGACY_DAEMON_JSON.encode(),
                "usr/bin/nvidia-docker": b"#!/bin/sh\n# TEST FIXTURE: nvidia-docker2's wrapper\nexec docker \"$@\"\n"}),
            "nvidia-container-runtime": _deb(debs, "nvidia-container-runtime", "3.14.0-1", {})})

        # issue 20: a file at NVIDIA's documented keyring path holding another key than the pinned
        # one (NVIDIA's), the key that signs the mirror: trusting the file would install from it.
        # issue 28: with the user's toolkit source beside it, as NVIDIA's install guide writes it.
        _put(lab.host("toolkitkey"), TOOLKIT_KEYRING, _binary_key(root / "toolkit"))
        _put(lab.host("toolkitkey"), TOOLKIT_LIST, USERS_TOOLKIT_LIST.encode())
        lab.driver_fpr, lab.toolkit_fpr = driver_fpr, toolkit_fpr
        yield lab


def _limit(names) -> list[str]:
    return [arg for name in names for arg in ("--limit", name)]


def _deploys(lab):
    """The driver deploy over the driver hosts and the container runtime over the toolkit hosts, side by side."""
    with ThreadPoolExecutor(2) as pool:
        drivers = pool.submit(lab.pyinfra, "deploys/driver.py", "-y", *_limit(DRIVER_HOSTS))
        toolkits = pool.submit(lab.pyinfra, "deploys/container_runtime.py", "-y", *_limit(TOOLKIT_HOSTS))
        return drivers.result(), toolkits.result()


@pytest.fixture(scope="module")
def first(brownfield):
    return _deploys(brownfield)


@pytest.fixture(scope="module")
def second(brownfield, first):
    return _deploys(brownfield)


def _errors(proc, name):
    return host_statuses(proc.stdout).get(name, {}).get("Error", 0)


def test_cuda_keyring_source_is_adopted_and_apt_works(brownfield, first, second):
    drivers, _ = first
    host = brownfield.host("cudakeyring")
    assert _errors(drivers, "cudakeyring") == 0, drivers.stdout[-5000:]
    assert f"[cudakeyring] adopting {CUDA_LIST} for {DRIVER_URL}: its keyring {CUDA_KEYRING} holds exactly the " \
           f"pinned key {brownfield.driver_fpr}" in drivers.stdout, drivers.stdout[-5000:]
    update = host.exec("apt-get update 2>&1")
    assert update.returncode == 0 and "Conflicting" not in update.stdout, update.stdout
    assert host.exec("ls /etc/apt/sources.list.d/").stdout.split() == ["cuda-debian12-x86_64.list"]
    assert {f"nvidia-driver-pinning-{BRANCH}", "nvidia-open"} <= set(host.exec("apt-mark showhold").stdout.split())
    assert changed(second[0].stdout, "cudakeyring") == 0, second[0].stdout[-3000:]
    assert f"[cudakeyring] driver R{BRANCH} open from cuda: in place" in second[0].stdout


def test_runfile_driver_is_refused_naming_nvidia_uninstall(brownfield, first, second):
    drivers, _ = first
    host = brownfield.host("runfile")
    for run in (drivers, second[0]):  # the second run changes nothing and says why again
        assert RUNFILE_REFUSAL in run.stdout, run.stdout[-4000:]
        row = summary_rows(run.stdout)["runfile"]
        assert row["DRIVER"] == f"550.54.14 runfile -> R{BRANCH} open"
        assert (row["RESULT"], row["CAUSE"]) == ("failed", RUNFILE_REFUSAL)  # the cause itself (issue 28)
    assert host.exec("dpkg-query -W nvidia-open").returncode != 0  # no package mixed in
    assert host.exec("test -e /etc/apt/sources.list.d/gpuhost-nvidia-cuda.sources").returncode != 0


def test_runfile_driver_is_replaced_when_asked(brownfield, first, second):
    drivers, _ = first
    host = brownfield.host("runfilereplace")
    assert _errors(drivers, "runfilereplace") == 0, drivers.stdout[-5000:]
    assert (f"[runfilereplace] replacing the runfile driver 550.54.14 (/usr/bin/nvidia-uninstall) with R{BRANCH} open from "
            "cuda (runfile_driver: replace): /usr/bin/nvidia-uninstall --silent first") in drivers.stdout
    assert host.exec("test -e /usr/bin/nvidia-uninstall || test -e /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.14"
                     ).returncode != 0  # the fixture uninstaller ran
    assert host.exec("dpkg-query -W nvidia-open").stdout.split() == ["nvidia-open", VERSION]
    assert changed(second[0].stdout, "runfilereplace") == 0, second[0].stdout[-3000:]


def test_held_r550_is_moved_and_named(brownfield, first, second):
    drivers, _ = first
    host = brownfield.host("pin550")
    assert _errors(drivers, "pin550") == 0, drivers.stdout[-5000:]
    assert ("[pin550] moving from the installed R550 packages 550.163.01-1 (nvidia-driver-pinning-550, nvidia-open, "
            f"held: nvidia-driver-pinning-550, nvidia-open) to R{BRANCH} open from cuda") in drivers.stdout, drivers.stdout[-5000:]
    assert summary_rows(drivers.stdout)["pin550"]["DRIVER"] == f"R550 pkgs held -> R{BRANCH} open"
    packages = host.exec("dpkg-query -W -f='${Package} ${Version}\\n' 'nvidia-*'").stdout
    assert "nvidia-driver-pinning-550" not in packages and f"nvidia-open {VERSION}" in packages, packages
    assert changed(second[0].stdout, "pin550") == 0, second[0].stdout[-3000:]


def test_debian_nvidia_driver_installed_for_real_and_held(brownfield, first, second):
    drivers, _ = first
    host = brownfield.host("debian")
    assert _errors(drivers, "debian") == 0, drivers.stdout[-5000:]
    state = host.exec("dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' nvidia-driver nvidia-kernel-dkms")
    assert state.stdout.split("\n")[:2] == ["hi  nvidia-driver 535.261.03-1", "hi  nvidia-kernel-dkms 535.261.03-1"], \
        state.stdout
    assert host.exec("dpkg --audit").stdout == ""  # apt is healthy: no half-configured package
    dkms = host.exec("dkms status").stdout
    assert "nvidia-current/535.261.03: added" in dkms, dkms  # added, not built: no headers for this kernel
    assert changed(second[0].stdout, "debian") == 0, second[0].stdout[-3000:]
    assert "[debian] driver R535 proprietary from debian: in place" in second[0].stdout


def test_held_debian_driver_is_moved_never_left_beside(brownfield, first, second):
    """Debian's held 535 on a host planned for the planned branch open from the CUDA repository: named and purged."""
    drivers, _ = first
    host = brownfield.host("debheld")
    assert _errors(drivers, "debheld") == 0, drivers.stdout[-5000:]
    assert "[debheld] moving from the installed R535 packages 535.261.03-1 (" in drivers.stdout, drivers.stdout[-5000:]
    assert f"held: nvidia-driver, nvidia-kernel-dkms) to R{BRANCH} open from cuda" in drivers.stdout
    assert summary_rows(drivers.stdout)["debheld"]["DRIVER"] == f"R535 pkgs held -> R{BRANCH} open"
    left = host.exec("dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' | awk '$1 ~ /^.i/'").stdout
    assert " 535." not in left, left  # one driver stack
    assert f"nvidia-open {VERSION}" in left
    assert host.exec("dpkg --audit").stdout == ""
    assert changed(second[0].stdout, "debheld") == 0, second[0].stdout[-3000:]


def test_toolkit_source_adopted_and_legacy_packages_replaced(brownfield, first, second):
    _, toolkits = first
    host = brownfield.host("toolkitdocs")
    assert _errors(toolkits, "toolkitdocs") == 0, toolkits.stdout[-5000:]
    assert f"[toolkitdocs] adopting {TOOLKIT_LIST} for {TOOLKIT_URL}" in toolkits.stdout, toolkits.stdout[-5000:]
    assert ("[toolkitdocs] replacing the deprecated nvidia-container-runtime, nvidia-docker2 with "
            f"nvidia-container-toolkit {TOOLKIT_VERSION}") in toolkits.stdout
    update = host.exec("apt-get update 2>&1")
    assert update.returncode == 0 and "Conflicting" not in update.stdout and "configured multiple times" \
        not in update.stdout, update.stdout
    states = host.exec("dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' nvidia-docker2 nvidia-container-runtime "
                       "nvidia-container-toolkit").stdout.split("\n")
    # removed: nvidia-docker2 keeps its conffile (rc), nvidia-container-runtime had none and is gone
    assert sorted(filter(None, states)) == ["ii  nvidia-container-toolkit", "rc  nvidia-docker2"], states
    assert '"nvidia"' in host.exec("cat /etc/docker/daemon.json").stdout  # the conffile stayed
    assert changed(second[1].stdout, "toolkitdocs") == 0, second[1].stdout[-3000:]


def test_keyring_at_nvidias_path_with_another_key_is_refused(brownfield, first):
    _, toolkits = first
    host = brownfield.host("toolkitkey")
    assert (f"has fingerprint {brownfield.toolkit_fpr}, expected C95B321B61E88C1809C4F759DDCAE044F796ECB0: "
            "refusing to trust it") in toolkits.stdout, toolkits.stdout[-5000:]
    assert host.exec("dpkg-query -W nvidia-container-toolkit").returncode != 0
    assert host.exec("test -e /etc/apt/sources.list.d/nvidia-container-toolkit.sources").returncode != 0
    # issue 28: decided before anything moved: the user's source is where it was, nothing set aside
    assert host.exec(f"cat {TOOLKIT_LIST}").stdout == USERS_TOOLKIT_LIST
    assert host.exec("ls /var/lib/gpuhost/backup 2>/dev/null").stdout.split() == []


def test_a_dry_run_says_why_a_host_would_be_refused(brownfield, first):
    """--dry lists the stop step as a change; the cause is said at plan time, as "driver ... kept" is."""
    dry = brownfield.pyinfra("deploys/driver.py", "--dry", "--limit", "runfile")
    assert f"[runfile] gpuhost cannot go on with this host: {RUNFILE_REFUSAL}" in dry.stdout, dry.stdout[-4000:]
