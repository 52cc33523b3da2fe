"""Host data becomes settings, and every wrong value is one line naming host, key and fix."""

import re

import pytest

from gpuhost.errors import UsageError
from gpuhost.compose.settings import check_hosts, settings_from


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


# --- The input contract (issue 14): the models, unknown keys, values that cannot be served ------

from dataclasses import fields  # noqa: E402

from gpuhost import yamlfile  # noqa: E402
from gpuhost.compose.settings import CAPABILITIES, HostSettings, grouped, host_problems  # noqa: E402


def messages(data, local=True):
    return [p.message for p in host_problems(data, local)]


def test_host_settings_has_one_field_per_registered_capability():
    assert [f.name for f in fields(HostSettings)] == list(CAPABILITIES)
    s = settings_from({"apt_lock_timeout": 5, "verify": "never", "docker_cdi": True})
    assert (s.driver.lock_timeout, s.verify.when, s.container.cdi) == (5, "never", True)


@pytest.mark.parametrize("key, near", [
    ("reboots", "reboot"), ("Torch", "torch"), ("torch_version", "torch"), ("driver-branch", "driver_branch"),
    ("target_gpu", "target_gpus"), ("docker_cdi_enabled", "docker_cdi"), ("ssh_prot", "ssh_port"),
])
def test_unknown_keys_are_errors_with_did_you_mean(key, near):
    (line,) = messages({key: "x"})
    assert line.startswith(f"unknown key {key!r}: did you mean {near}") or f" or {near}" in line, line


def test_unknown_key_without_near_miss_says_how_to_keep_it():
    assert messages({"colour": "blue"}) == ["unknown key 'colour': remove it, or (a key of your own: prefix it "
                                            "x_ or list it in user_keys)"]


def test_own_keys_under_x_or_declared_in_user_keys():
    assert messages({"x_rack": 4, "user_keys": ["owner", "site_*"], "owner": "ml", "site_a": 1}) == []
    assert messages({"user_keys": "owner", "owner": 1})[0].startswith("unknown key 'owner'")


def test_pyinfra_keys_are_known_and_typed_as_pyinfra_checks_them():
    assert messages({"ssh_user": "root", "ssh_port": 22, "_sudo": True, "ssh_connect_retries": 0}) == []
    assert messages({"ssh_port": "abc"}) == ["ssh_port is 'abc': use a whole number"]
    assert messages({"_sudo": "yes"}) == ["_sudo is 'yes': use true or false"]


@pytest.mark.parametrize("text, line", [
    ("torch: 2.10", 'torch is the number 2.10 (read as 2.1): quote it: torch: "2.10" '
                    "(on the command line: --data 'torch=\"2.10\"')"),
    ("torch: 2.9", 'torch is the number 2.9: quote it: torch: "2.9"'),
    ("torch: 2", 'torch is the number 2: quote it: torch: "2"'),
    ("toolkit_version: 1.17", 'toolkit_version is the number 1.17: quote it: toolkit_version: "1.17"'),
    ("no_gpu: no", "no_gpu is false: use one of skip, fail"),
])
def test_a_number_or_boolean_where_text_is_meant(text, line):
    (found,) = messages(yamlfile.load(text))
    assert found.startswith(line), found


def test_driver_branch_number_loses_nothing_and_is_accepted():
    assert settings_from({"driver_branch": 580}).policy.driver_branch == "580"


@pytest.mark.parametrize("data, line", [
    ({"torch": "2.99"}, "torch is '2.99': not in the compatibility matrix: use one of \"2.5\""),
    ({"torch": "2.9.7"}, "torch is '2.9.7': no such release: releases of 2.9 are 2.9.0, 2.9.1"),
    ({"driver_branch": "999"}, "driver_branch is '999': not a branch in the matrix: use lts, production or one of"),
    ({"target_gpus": ["B200", "V100"]}, "target_gpus B200, V100: no plan: no driver flavour drives both"),
    ({"target_gpus": ["K80"], "torch": "2.9"}, "target_gpus K80: no plan: torch 2.9 has no CUDA build for Tesla K80"),
    ({"target_gpus": "H100,V100"}, "target_gpus is 'H100,V100': GPU name 'H100,V100' has a comma"),
    ({"target_gpus": [9.0]}, "target_gpus is [9.0]: use a list of GPU names"),
])
def test_values_that_cannot_be_served_are_refused(data, line):
    (found,) = messages(data)
    assert found.startswith(line), found


def test_password_file_must_exist_and_be_private(tmp_path):
    secret = tmp_path / "pw"
    data = {"registry_user": "ci", "registry_password_file": str(secret)}
    assert messages(data) == [f"registry_password_file {secret}: no such file or directory: create it (chmod 600) "
                              "or fix the path"]
    assert messages(data, local=False) == []  # cloud-init: the file is the VM's
    secret.write_text("pw\n")
    secret.chmod(0o640)
    assert messages(data) == [f"registry_password_file {secret}: other users can read it (mode 0640): "
                              f"chmod 600 {secret}"]
    secret.chmod(0o600)
    assert messages(data) == []
    assert messages({**data, "registry_password_file": str(tmp_path)})[0].endswith("not a regular file: point it "
                                                                                   "at the file that holds the password")


def test_password_variable_must_be_set(monkeypatch):
    data = {"registry_user": "ci", "registry_password_env": "GPUHOST_TEST_PW"}
    monkeypatch.delenv("GPUHOST_TEST_PW", raising=False)
    assert messages(data) == ["registry_password_env GPUHOST_TEST_PW: the variable is unset or empty here: "
                              "export it before running"]
    monkeypatch.setenv("GPUHOST_TEST_PW", "s3cret")
    assert messages(data) == []
    assert messages({**data, "registry_password_env": "$PW"})[0].startswith("registry_password_env is '$PW': use the name")


def test_every_problem_of_a_host_at_once():
    assert len(messages({"reboot": "now", "no_gpu": "x", "torch": 2.9, "colour": 1})) == 4


def test_problems_shared_by_hosts_are_grouped():
    lines = grouped([(f"gpu-{i:02d}", ["torch is bad"]) for i in range(40)] + [("cpu-01", ["reboot is bad"])])
    assert lines == ["40 hosts (gpu-00, gpu-01, gpu-02 and 37 more): torch is bad", "host cpu-01: reboot is bad"]
    assert check_hosts([("a", {"reboot": "now"}), ("b", {"reboot": "now"})]) == [
        "2 hosts (a, b): reboot is 'now': use one of auto, never"]


def test_yaml_duplicate_keys_are_errors_and_merge_keys_still_work():
    with pytest.raises(yamlfile.YAMLError) as err:
        yamlfile.load("hosts:\n  - name: a\n    torch: '2.9'\n    torch: '2.8'\n")
    assert yamlfile.error_line(err.value) == ("is not valid YAML at line 4, column 5: key 'torch' is given twice "
                                              "(first on line 3): keep one")
    assert yamlfile.load("base: &b {torch: '2.9'}\nh: {<<: *b, torch: '2.8'}\n")["h"] == {"torch": "2.8"}


def test_pyinfra_data_flags_are_parsed_as_pyinfra_does_with_the_text_kept():
    import click

    from gpuhost.fleet.inventory_file import cli_override_data

    with click.Context(click.Command("pyinfra"), obj=None) as ctx:
        ctx.params["data"] = ("torch=2.10", "force=true", "apt_lock_timeout=60", 'driver_branch="580"')
        data = cli_override_data()
    assert data == {"torch": 2.1, "force": True, "apt_lock_timeout": 60, "driver_branch": "580"}
    assert data["torch"].source_text == "2.10"
    assert cli_override_data() == {}  # outside pyinfra's CLI


def test_a_capability_model_may_be_any_pydantic_model():
    """Other capabilities' models (mirror, monitoring ...) register with one line, whatever their base."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    from gpuhost.run.host_data import model_keys, validated

    class MirrorSettings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        mirror_mode: Literal["off", "pull-through"] = "off"

    assert model_keys(MirrorSettings) == {"mirror_mode": "mirror_mode"}
    assert validated(MirrorSettings, {"mirror_mode": "pull-through", "torch": "2.9"})[0].mirror_mode == "pull-through"
    model, problems = validated(MirrorSettings, {"mirror_mode": "on"})
    assert model is None and [p.message for p in problems] == ["mirror_mode is 'on': use one of off, pull-through"]


def test_data_flags_read_from_pyinfras_command_line_inside_a_deploy(monkeypatch):
    """Deploy files run in a greenlet without click's context: the flags come from pyinfra's argv."""
    from gpuhost.fleet.inventory_file import cli_override_data

    monkeypatch.setattr("sys.argv", ["/venv/bin/pyinfra", "inv.py", "deploy.py", "--data", "torch=2.10",
                                     "--data=reboot=auto", "-y"])
    data = cli_override_data()
    assert data == {"torch": 2.1, "reboot": "auto"} and data["torch"].source_text == "2.10"
    assert messages(data)[0].startswith('torch is the number 2.10 (read as 2.1): quote it: torch: "2.10"')
