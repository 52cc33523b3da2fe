"""Host data becomes settings, and every wrong value is one line naming host, key and fix."""

import re

import pytest

from gpuhost.errors import UsageError
from gpuhost.run.settings import check_hosts, settings_from


def test_defaults():
    s = settings_from({})
    assert (s.no_gpu, s.reboot, s.target_gpus) == ("skip", "never", ())
    assert (s.policy.torch, s.policy.driver_branch, s.policy.allow_driver_change) == (None, "lts", True)


def test_values_are_read():
    s = settings_from({"torch": "2.9", "driver_branch": 580, "target_gpus": ["H100", "h100"],
                       "no_gpu": "fail", "reboot": "auto", "allow_driver_change": False,
                       "registry": "registry.lab:5000", "image_flavour": "devel"})
    assert s.policy.torch == "2.9" and s.policy.driver_branch == "580"
    assert [g.name for g in s.target_gpus] == ["H100 SXM5 80GB", "H100 SXM5 80GB"]
    assert (s.no_gpu, s.reboot, s.policy.allow_driver_change) == ("fail", "auto", False)


def test_single_target_gpu_string():
    assert [g.compute_capability for g in settings_from({"target_gpus": "L4"}).target_gpus] == ["8.9"]


@pytest.mark.parametrize("data,message", [
    ({"reboot": "sometimes"}, "reboot is 'sometimes': use one of auto, never"),
    ({"verify": "sometimes"}, "verify is 'sometimes': use one of auto, always, never"),
    ({"no_gpu": "ignore"}, "no_gpu is 'ignore': use one of skip, fail"),
    ({"allow_driver_change": "yes"}, "allow_driver_change is 'yes': use true or false"),
    ({"target_gpus": ["H100", "Voodoo5"]}, "target_gpus is ['H100', 'Voodoo5']: unknown GPU 'Voodoo5'"),
    ({"target_gpus": {"a": 1}}, "target_gpus is {'a': 1}: use a list of GPU names, e.g. [H100, H100]"),
    ({"torch": "latest"}, "torch is 'latest': use a release X.Y or X.Y.Z, quoted"),
    ({"torch": ["2.9"]}, "torch is ['2.9']: use a release X.Y or X.Y.Z"),
    ({"driver_branch": "newest"}, "driver_branch is 'newest': use lts, production or a branch number"),
])
def test_bad_values(data, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        settings_from(data)


def test_check_hosts_names_each_bad_host():
    problems = check_hosts([("gpu1", {"reboot": "now"}), ("gpu2", {}), ("gpu3", {"torch": "x"})])
    assert len(problems) == 2
    assert problems[0].startswith("host gpu1: reboot is 'now'")
    assert problems[1].startswith("host gpu3: torch is 'x': use a release X.Y or X.Y.Z")


def test_container_keys_are_part_of_the_settings():
    s = settings_from({"docker_source": "keep", "registry_user": "ci", "registry_password_env": "REG_PW",
                       "prune_pulled_images": True})
    c = s.container
    assert (c.docker_source, c.registry_user, c.registry_password_env, c.prune_pulled_images) == (
        "keep", "ci", "REG_PW", True)
    assert check_hosts([("gpu1", {"prune_pulled_images": "yes"})]) == [
        "host gpu1: prune_pulled_images is 'yes': use true or false"]


def test_toolkit_mirror_keys_are_part_of_the_settings_and_checked_per_host():
    s = settings_from({"toolkit_repository": "http://mirror.lab/nvidia/", "toolkit_repository_key":
                       "http://mirror.lab/nvidia/key.asc", "toolkit_repository_fingerprint": "ab" * 20})
    c = s.container
    assert (c.toolkit_repository, c.toolkit_repository_key, c.toolkit_repository_fingerprint) == (
        "http://mirror.lab/nvidia/", "http://mirror.lab/nvidia/key.asc", "AB" * 20)
    assert check_hosts([("gpu1", {"toolkit_repository": "https://m/", "toolkit_repository_key": "https://m/k",
                                  "toolkit_repository_fingerprint": "C95B 321B"})]) == [
        "host gpu1: toolkit_repository_fingerprint is 'C95B 321B': use the key's 40-hex-digit fingerprint"]
