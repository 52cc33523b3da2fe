"""Choosing the driver source per distro, branch and flavour (gpuhost.driver.sources)."""

from __future__ import annotations

import pytest

from gpuhost.driver.sources import load_sources, select_source
from gpuhost.errors import UsageError


def host(os_id, version, arch="x86_64", kernel="6.8.0-85-generic", codename="noble"):
    return {"os": {"id": os_id, "version_id": version, "codename": codename}, "arch": arch, "kernel": kernel}


def test_ubuntu_defaults_to_its_signed_server_packages():
    src = select_source(host("ubuntu", "24.04"), "580", "open")
    assert src.name == "ubuntu" and not src.builds_modules and src.repository is None
    assert src.packages == ("nvidia-driver-580-server-open",)
    # the modules' flavour is chosen from the repository and the kernel's metapackage (gpuhost.driver.offer)
    assert src.modules == ("linux-modules-nvidia-580-server-open-", "nvidia-dkms-580-server-open")


def test_cuda_repository_on_arm64_uses_sbsa_and_a_pinned_keyring():
    src = select_source(host("ubuntu", "22.04", arch="aarch64"), "580", "proprietary", "cuda")
    assert src.repository.url.endswith("/repos/ubuntu2204/sbsa/")
    assert src.repository.fingerprint == "EB693B3035CD5710E231E123A4B469963BF863CC"
    assert src.repository.keyring.endswith("-A4B469963BF863CC.gpg")
    assert src.packages == ("nvidia-driver-pinning-580", "cuda-drivers")


def test_mirror_override_and_resigned_key():
    src = select_source(host("debian", "12", codename="bookworm"), "580", "open", None, "http://m/", "http://m/k.asc",
                        "aaaa bbbb cccc dddd eeee ffff 0000 1111 2222 3333")
    assert (src.repository.url, src.repository.key_url) == ("http://m/", "http://m/k.asc")
    assert src.repository.fingerprint == "AAAABBBBCCCCDDDDEEEEFFFF0000111122223333"


def test_debian_nonfree_is_535_proprietary_only():
    deb = host("debian", "12", kernel="6.1.0-26-amd64", codename="bookworm")
    src = select_source(deb, "535", "proprietary", "debian")
    assert src.repository.suites == ("bookworm", "bookworm-updates") and "non-free" in src.repository.components
    with pytest.raises(UsageError, match="branch 535 only on debian-12"):
        select_source(deb, "580", "proprietary", "debian")
    with pytest.raises(UsageError, match="no open kernel modules"):
        select_source(deb, "535", "open", "debian")


def test_source_for_the_wrong_distro_is_refused():
    with pytest.raises(UsageError, match="does not serve ubuntu-24.04"):
        select_source(host("ubuntu", "24.04"), "580", "open", "debian")
    with pytest.raises(UsageError, match="no driver source for arch-"):
        select_source(host("arch", "rolling"), "580", "open")


def test_rhel_point_release_maps_to_major_and_module_stream():
    src = select_source(host("rhel", "9.4", kernel="5.14.0-427.el9.x86_64"), "580", "open")
    assert src.name == "cuda-rhel" and src.module_stream == "nvidia-driver:580-open"
    assert "/repos/rhel9/x86_64/" in src.repository.url


def test_replaced_packages_are_the_family_not_the_wanted_ones():
    src = select_source(host("ubuntu", "24.04"), "580", "open")
    installed = {"nvidia-driver-535-server": 1, "linux-modules-nvidia-535-server-generic": 1,
                 "nvidia-driver-580-server-open": 1, "openssh-server": 1}
    assert src.replaced(installed) == ["linux-modules-nvidia-535-server-generic", "nvidia-driver-535-server"]




def test_every_key_records_its_source_and_a_40_digit_fingerprint():
    for name, key in load_sources()["keys"].items():
        assert len(key["fingerprint"]) == 40 and key["source"], name
    for name, src in load_sources()["sources"].items():
        assert src["reference"], name


# --- December 2026 audit (shared/reference/vendor-audit-2026-12.md): each fails on 90aa2a7 -----

def test_rhel_key_is_pinned_to_nvidias_fingerprint():
    src = select_source(host("rocky", "9.4", kernel="5.14.0-427.el9.x86_64"), "580", "open")
    assert src.repository.fingerprint == "610C7B14E068A878070DA4E99CD0A493D42D0685"


def test_cuda_pinning_package_comes_first_and_is_not_the_driver_package():
    src = select_source(host("debian", "12", codename="bookworm"), "580", "open")
    assert src.pin_package == "nvidia-driver-pinning-580" and src.packages[0] == src.pin_package
    assert src.driver_package == "nvidia-open"


@pytest.mark.parametrize("os_id,version,branch,source,names", [
    ("debian", "12", "580", "cuda", ("nvidia-fabricmanager", "libnvidia-nscq")),
    ("ubuntu", "24.04", "580", "ubuntu", ("nvidia-fabricmanager-580", "libnvidia-nscq-580")),
    ("rocky", "9", "580", "cuda-rhel", ("nvidia-fabricmanager", "libnvidia-nscq")),
])
def test_fabric_manager_names_per_branch_range_and_os(os_id, version, branch, source, names):
    assert select_source(host(os_id, version), branch, "open", source).fabric_manager == names


def test_ubuntu_transitional_server_branches_are_refused_with_the_branch_they_install():
    with pytest.raises(UsageError, match="R535's packages are transitional there .* set driver_branch: 580"):
        select_source(host("ubuntu", "24.04"), "535", "proprietary")
    with pytest.raises(UsageError, match="R570's packages are transitional"):
        select_source(host("ubuntu", "22.04", codename="jammy"), "570", "open")


def test_ubuntu_adds_multiverse_for_fabric_manager_and_595_on_noble():
    assert select_source(host("ubuntu", "24.04"), "580", "open").repository is None
    for src in (select_source(host("ubuntu", "24.04"), "580", "open", nvswitch=True),
                select_source(host("ubuntu", "24.04"), "595", "open")):
        assert src.repository.components == ("multiverse",)
        assert src.repository.suites == ("noble", "noble-updates", "noble-security")
        assert src.repository.fingerprint is None  # Ubuntu's own archive keyring
    assert select_source(host("ubuntu", "22.04", codename="jammy"), "595", "open").repository is None


def test_debian13_uses_its_own_cuda_repository_key():
    src = select_source(host("debian", "13", codename="trixie"), "620", "open")
    assert src.repository.url.endswith("/repos/debian13/x86_64/")
    assert src.repository.key_url.endswith("/8793F200.pub")
    assert src.repository.fingerprint.endswith("8793F200")


def test_ubuntu_2604_defaults_to_the_cuda_repository():
    src = select_source(host("ubuntu", "26.04", codename="resolute"), "620", "open")
    assert src.name == "cuda" and "/repos/ubuntu2604/" in src.repository.url


def test_rhel10_is_refused_with_the_reason():
    with pytest.raises(UsageError, match="RHEL/Rocky 10 has no dnf module streams"):
        select_source(host("rocky", "10.0"), "580", "open")


def test_no_pinning_package_for_535_on_the_cuda_repository():
    with pytest.raises(UsageError, match="has branch 580/.* only on debian-12"):
        select_source(host("debian", "12", codename="bookworm"), "535", "proprietary")


def test_served_branches_steer_the_lts_policy():
    from gpuhost.driver.sources import served_branches
    from gpuhost.plan.gpus import identify
    from gpuhost.plan.resolver import resolve
    ubuntu = served_branches(host("ubuntu", "24.04"))
    assert ubuntu == {580, 595}
    assert resolve([identify("H100")], served_branches=ubuntu).driver.branch == "580"
    assert resolve([identify("H100")], served_branches=served_branches(host("debian", "13"))).driver.branch == "620"
    # RHEL: only the branches whose module streams were seen
    assert resolve([identify("H100")], served_branches=served_branches(host("rocky", "9.4"))).driver.branch == "580"
    with pytest.raises(UsageError, match="has branch 580 only on rocky-9"):
        select_source(host("rocky", "9.4"), "595", "open")


def test_debian13_volta_host_is_refused_naming_what_the_repository_offers():
    """NVIDIA's debian13 repository lacks R580 (cuda-repo-management #38, #40): a V100's last branch."""
    from gpuhost.driver.sources import served_branches
    from gpuhost.plan.gpus import identify
    from gpuhost.plan.resolver import resolve
    trixie = host("debian", "13", kernel="6.12.48+deb13-amd64", codename="trixie")
    plan = resolve([identify("V100")], served_branches=served_branches(trixie))
    assert plan.driver.branch == "580"
    with pytest.raises(UsageError) as refused:
        select_source(trixie, plan.driver.branch, plan.driver.kernel_module)
    assert str(refused.value) == (
        "driver source 'cuda' on debian-13 offers R595/R615/R620, not R580: NVIDIA's debian13 repository does "
        "not carry R580, the last branch for Maxwell, Pascal and Volta (NVIDIA/cuda-repo-management #38, #40): "
        "run these GPUs on Debian 12 or Ubuntu")


def test_branches_past_end_of_life_are_not_offered():
    from gpuhost.driver.sources import served_branches
    for key in (host("debian", "12", codename="bookworm"), host("rocky", "9.4")):
        assert not served_branches(key) & {535, 570, 590, 610}
    with pytest.raises(UsageError, match="has branch 580/595/615/620 only on ubuntu-24.04"):
        select_source(host("ubuntu", "24.04"), "610", "open", "cuda")


def test_replaced_keeps_the_kept_modules_abi_packages_only():
    src = select_source(host("ubuntu", "22.04", codename="jammy"), "580", "proprietary")
    installed = {"linux-modules-nvidia-580-server-6.8.0-40-generic": 1, "linux-modules-nvidia-580-server-open-generic": 1,
                 "nvidia-driver-580-server-open": 1}
    assert src.replaced(installed, keep=["linux-modules-nvidia-580-server-generic"]) == [
        "linux-modules-nvidia-580-server-open-generic", "nvidia-driver-580-server-open"]
