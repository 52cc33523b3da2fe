"""Host plans on the platforms real fleets run, from real output (tests/driver/platforms/README.md).

The kernel's module flavour as ubuntu-drivers-common decides it (the installed linux-image
metapackage, the ABI-specific package, DKMS as the fallback), the driver version and pin chosen
from what the repository offers, fabric manager on RHEL, nvlsm on NVLink5, Debian 13 with Volta.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from facts.driver_offer import parse_dpkg_list, process_offer_sections
from facts.sections import Sections
from gpuhost.driver.offer import NotOffered, Offer, choose, kernel_metapackage
from gpuhost.driver.operations import fabric_manager_commands
from gpuhost.driver.sources import select_source
from gpuhost.driver.stage import fabric_needs
from gpuhost.plan.gpus import identify

FIXTURES = Path(__file__).parent / "platforms"


def images(name: str):
    """Installed linux-image packages from a fixture: `dpkg -l` lines (a script comment's '#' dropped),
    or the USN check's (pkg, ver) pairs."""
    text = (FIXTURES / name).read_text()
    if name.startswith("usn-"):
        return tuple(re.findall(r'pkg:"([^"]+)", ver:"([^"]+)"', text))
    return parse_dpkg_list([line.strip().lstrip("#") for line in text.splitlines()])


def ubuntu(version="24.04", kernel="6.8.0-85-generic", arch="x86_64"):
    return {"os": {"id": "ubuntu", "version_id": version, "codename": "noble"}, "arch": arch, "kernel": kernel}


@pytest.mark.parametrize("fixture,kernel,flavour,abi", [
    ("dpkg-l-ubuntu2204-ga-and-hwe.txt", "5.15.0-119-generic", "generic", "5.15.0-119-generic"),  # 22.04 GA
    ("dpkg-l-ubuntu2204-ga-and-hwe.txt", "6.8.0-40-generic", "generic-hwe-22.04", "6.8.0-40-generic"),  # HWE
    ("dpkg-l-ubuntu2204-hwe.txt", "6.8.0-138-generic", "generic-hwe-22.04", "6.8.0-138-generic"),
    ("dpkg-l-ubuntu2404-generic.txt", "6.8.0-139-generic", "generic", "6.8.0-139-generic"),
    ("dpkg-l-ubuntu-aws.txt", "4.15.0-1019-aws", "aws", "4.15.0-1019-aws"),
    ("usn-ubuntu2404-kernels.txt", "6.8.0-1021-nvidia-64k", "nvidia-64k", "6.8.0-1021-nvidia-64k"),
    ("usn-ubuntu2404-kernels.txt", "6.8.0-1021-azure", "azure", "6.8.0-1021-azure"),
])
def test_module_flavour_comes_from_the_installed_linux_image_metapackage(fixture, kernel, flavour, abi):
    installed = images(fixture)
    if fixture.startswith("usn-"):  # the USN lists every flavour; a host has its own kernel's packages
        installed = tuple(i for i in installed if i[0].endswith(kernel.split("-", 2)[2]))
    assert kernel_metapackage(kernel, installed) == (flavour, abi)


def test_azure_fde_host_reads_the_fde_metapackage_and_its_abi_image():
    installed = tuple(i for i in images("usn-ubuntu2404-kernels.txt") if i[0].endswith("azure-fde"))
    for running in ("6.8.0-1021-azure-fde", "6.8.0-1021-azure"):  # the UKI image may report the azure kernel
        assert kernel_metapackage(running, installed) == ("azure-fde", "6.8.0-1021-azure-fde")


def test_hwe_host_gets_the_hwe_modules_that_ubuntu_drivers_lists():
    """ubuntu-drivers on 24.04 HWE names linux-modules-nvidia-580-server-open-generic-hwe-24.04; the same
    flavour rule on the real 22.04 HWE listing gives the -generic-hwe-22.04 package, not -generic."""
    listed = set(re.findall(r"provided by (\S+)\)", (FIXTURES / "ubuntu-drivers-list-gpgpu-2404-hwe.txt").read_text()))
    assert "linux-modules-nvidia-580-server-open-generic-hwe-24.04" in listed
    source = select_source(ubuntu("22.04", "6.8.0-40-generic"), "580", "open")
    prefix = source.modules[0]
    offer = Offer({"nvidia-driver-580-server-open": ("580.95.05-0ubuntu0.22.04.2",)},  # premise: both modules offered
                  frozenset({prefix + "generic-hwe-22.04", prefix + "6.8.0-40-generic", prefix + "generic"}),
                  "6.8.0-40-generic", images("dpkg-l-ubuntu2204-ga-and-hwe.txt"))
    chosen = choose(source, offer)
    assert chosen.driver == (("nvidia-driver-580-server-open", "580.95.05-0ubuntu0.22.04.2"),
                             ("linux-modules-nvidia-580-server-open-generic-hwe-22.04", None))
    assert not chosen.builds_modules


@pytest.mark.parametrize("offered,expected", [
    ((), "nvidia-dkms-580-server-open"),  # no prebuilt modules for the flavour: DKMS
    (("linux-modules-nvidia-580-server-open-nvidia-64k",), "nvidia-dkms-580-server-open"),  # meta, but no ABI package
])
def test_no_prebuilt_modules_for_the_kernel_falls_back_to_dkms(offered, expected):
    installed = tuple(i for i in images("usn-ubuntu2404-kernels.txt") if i[0].endswith("nvidia-64k"))
    source = select_source(ubuntu("24.04", "6.8.0-1021-nvidia-64k", "aarch64"), "580", "open")
    offer = Offer({"nvidia-driver-580-server-open": ("580.95.05-0ubuntu0.24.04.2",),
                   "nvidia-dkms-580-server-open": ("580.95.05-0ubuntu0.24.04.2",)}, frozenset(offered),
                  "6.8.0-1021-nvidia-64k", installed)
    chosen = choose(source, offer)
    assert chosen.driver[1] == (expected, None) and chosen.builds_modules
    without_dkms = Offer({"nvidia-driver-580-server-open": ("580.95.05-0ubuntu0.24.04.2",)}, frozenset(offered),
                         offer.kernel, installed)
    with pytest.raises(NotOffered, match="neither prebuilt modules for kernel 6.8.0-1021-nvidia-64k nor "
                                         "nvidia-dkms-580-server-open"):
        choose(source, without_dkms)


def test_cuda_repository_reading_parses_real_madison_and_refuses_a_missing_branch():
    lines = ["@@gpuhost offer 1", "@@kernel 6.8.0-139-generic", "@@madison",
             *(FIXTURES / "apt-cache-madison-nvidia-open-sbsa.txt").read_text().splitlines(), "@@names", "@@images",
             *(FIXTURES / "dpkg-l-ubuntu2404-generic.txt").read_text().splitlines()]
    reading = process_offer_sections(Sections(lines))
    assert reading["versions"]["nvidia-open"] == ["610.57.04-1ubuntu1", "595.91.07-1ubuntu1", "590.48.01-0ubuntu1"]
    assert ["linux-image-generic", "6.8.0-139.139"] in reading["images"]
    offer = Offer({k: tuple(v) for k, v in reading["versions"].items()}, frozenset(), reading["kernel"])
    source = select_source(ubuntu("24.04", arch="aarch64"), "620", "open", "cuda")
    with pytest.raises(NotOffered) as refused:
        choose(source, offer)
    assert str(refused.value) == (
        "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/sbsa/ offers nvidia-open "
        "610.57.04-1ubuntu1, 595.91.07-1ubuntu1, 590.48.01-0ubuntu1, not R620: set driver_branch: \"610\"")
    newer = choose(select_source(ubuntu("24.04", arch="aarch64"), "595", "open", "cuda"), offer, "595.45.04")
    assert newer.driver == (("nvidia-open", "595.91.07-1ubuntu1"),) and newer.version == "595.91.07"
    assert "R595: 595.91.07 is the newest the repository offers (the data names 595.45.04)" in newer.notes


def test_per_version_pin_is_preferred_to_the_branch_pin():
    source = select_source(ubuntu(), "620", "open", "cuda")
    offer = Offer({"nvidia-open": ("620.70.06-1ubuntu1",), "nvidia-driver-pinning-620": ("620-1ubuntu1",)},
                  frozenset({"nvidia-driver-pinning-620", "nvidia-driver-pinning-620.70.06"}))
    assert choose(source, offer).pin == ("nvidia-driver-pinning-620.70.06", None)


def _ctx(gpu, arch="x86_64", nvswitch=True):
    return SimpleNamespace(gpu_state={"needs_fabric_manager": nvswitch}, host_state={"arch": arch},
                           host_plan=SimpleNamespace(gpus=[identify(gpu)]))


def test_rhel9_hgx_h100_gets_fabric_manager_of_the_driver_version_versionlocked():
    rocky = {"os": {"id": "rocky", "version_id": "9.4"}, "arch": "x86_64", "kernel": "5.14.0-427.el9.x86_64"}
    source = select_source(rocky, "580", "open", nvswitch=True)
    assert fabric_needs(_ctx("H100"), source) == (True, False, False)
    installed = {"nvidia-driver": ["580.95.05-1.el9"], "kmod-nvidia-open-dkms": ["580.95.05-1.el9"]}
    assert fabric_manager_commands(source, installed) == [
        "dnf -y versionlock delete nvidia-fabricmanager libnvidia-nscq >/dev/null 2>&1 || true",
        "dnf -y install nvidia-fabricmanager-580.95.05 libnvidia-nscq-580.95.05",
        "dnf -y versionlock add nvidia-fabricmanager libnvidia-nscq",
        "systemctl enable nvidia-fabricmanager"]
    installed |= {"nvidia-fabricmanager": ["580.95.05-1.el9"], "libnvidia-nscq": ["580.95.05-1.el9"]}
    assert fabric_manager_commands(source, installed) == []  # converged


def test_hgx_b200_gets_nvlsm_and_gb200_also_imex():
    debian = {"os": {"id": "debian", "version_id": "12", "codename": "bookworm"}, "arch": "x86_64",
              "kernel": "6.1.0-26-amd64"}
    source = select_source(debian, "620", "open", "cuda", nvswitch=True)
    assert fabric_needs(_ctx("B200"), source) == (True, True, False)
    assert fabric_needs(_ctx("GB200", arch="aarch64"), source) == (True, True, True)
    assert fabric_needs(_ctx("H100"), source) == (True, False, False)  # NVLink4: no subnet manager
    installed = {"nvidia-open": ["620.70.06-1"]}
    commands = fabric_manager_commands(source, installed, nvlink5=True)
    assert "nvidia-fabricmanager=620.70.06-* libnvidia-nscq=620.70.06-* nvlsm infiniband-diags" in commands[1]
    offer = Offer({"nvidia-open": ("620.70.06-1",), "nvidia-fabricmanager": ("620.70.06-1",),
                   "libnvidia-nscq": ("620.70.06-1",), "nvidia-driver-pinning-620": ("620-1",)})
    with pytest.raises(NotOffered, match="offer no nvlsm .NVLink5 hosts need it"):
        choose(source, offer, extras=source.nvlink5, exact_extras=source.fabric_manager)
    stale = Offer({**offer.versions, "nvidia-fabricmanager": ("620.60.01-1",)})  # checked before nvlsm
    with pytest.raises(NotOffered, match="offers nvidia-fabricmanager 620.60.01-1, not 620.70.06"):
        choose(source, stale, extras=source.nvlink5, exact_extras=source.fabric_manager)


def test_rhel_stops_before_the_stream_when_fabric_manager_lags_the_driver():
    from gpuhost.driver.operations import dnf_fabric_refusal
    rocky = {"os": {"id": "rocky", "version_id": "9.4"}, "arch": "x86_64", "kernel": "5.14.0-427.el9.x86_64"}
    source = select_source(rocky, "580", "open", nvswitch=True)
    offered = {"nvidia-driver": ("580.95.05-1.el9", "580.82.07-1.el9"), "nvidia-fabricmanager": ("580.82.07-1",),
               "libnvidia-nscq": ("580.95.05-1",)}
    assert dnf_fabric_refusal(source, offered, source.fabric_manager) == (
        "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/ offers nvidia-fabricmanager "
        "580.82.07-1, not 580.95.05 (the driver's version): set driver_branch to a branch whose fabric packages "
        "are published")
    offered["nvidia-fabricmanager"] = ("580.95.05-1",) + offered["nvidia-fabricmanager"]
    assert dnf_fabric_refusal(source, offered, source.fabric_manager) is None


def test_dkms_fallback_installs_the_running_kernels_headers_unheld():
    from gpuhost.driver.operations import install_commands
    installed_images = tuple(i for i in images("usn-ubuntu2404-kernels.txt") if i[0].endswith("nvidia-64k"))
    source = select_source(ubuntu("24.04", "6.8.0-1021-nvidia-64k", "aarch64"), "580", "open")
    offer = Offer({"nvidia-driver-580-server-open": ("580.95.05-0ubuntu0.24.04.2",),
                   "nvidia-dkms-580-server-open": ("580.95.05-0ubuntu0.24.04.2",)}, frozenset(),
                  "6.8.0-1021-nvidia-64k", installed_images)
    commands = install_commands(source, choose(source, offer), {}, [])
    assert commands[0] == "rm -f /etc/apt/preferences.d/gpuhost-nvidia-driver-pin"  # no stale pin of ours
    assert ("install linux-headers-6.8.0-1021-nvidia-64k nvidia-driver-580-server-open=580.95.05-0ubuntu0.24.04.2 "
            "nvidia-dkms-580-server-open 2>&1") in commands[1]
    assert commands[-1] == "apt-mark hold nvidia-driver-580-server-open nvidia-dkms-580-server-open"
