"""Keys that reach a shell, an apt line or a config, each with its own strict grammar (the refusal of
control characters in every host-data string is gpuhost/run/host_data.py's)."""

from __future__ import annotations

import pytest

from gpuhost.errors import UsageError
from gpuhost.mirror.settings import MirrorSettings
from gpuhost.compose.settings import host_problems


@pytest.mark.parametrize("data", [
    {"toolkit_version": "1.17.8-1\nid"}, {"toolkit_version": "1.17.8-1$(touch${IFS}PWNED)"},
    {"toolkit_version": "1.17.8 -1"},
    {"registry_user": "u\nx", "registry_password_env": "HOME"}, {"registry_user": "a b", "registry_password_env": "HOME"},
    {"registry_user": "bot\x1b[2J", "registry_password_env": "HOME"},
    {"registry_user": "bot", "registry_password_env": "HOME\n"}, {"registry_user": "bot", "registry_password_env": "A-B"},
    {"driver_repository": "https://m/\x1b[2J"}, {"driver_repository_key": "https://m/k\x7f", "driver_repository": "https://m/"},
    {"toolkit_repository": "https://m/\u200b"},
])
def test_hostile_values_are_refused(data):
    assert host_problems(data, local=False), data


@pytest.mark.parametrize("data", [
    {"toolkit_version": "1.17.8-1"}, {"toolkit_version": "1:2.0~rc1+dfsg-1"},
    {"registry_user": "$oauthtoken", "registry_password_env": "NGC_API_KEY"},  # NGC's documented login user
    {"toolkit_repository": "https://mirror.lab/libnvidia-container/stable/deb/$(ARCH)"},
])
def test_what_admins_write_is_accepted(data):
    assert host_problems(data, local=False) == []


@pytest.mark.parametrize("group", ["mirrors\n", "a b", "$(id)", "mirrors\x1b"])
def test_mirror_group_is_an_inventory_group_name(group):
    with pytest.raises(UsageError, match="mirror_group"):
        MirrorSettings.from_host_data({"mirror_group": group})
    assert MirrorSettings.from_host_data({"mirror_group": "gpu_mirrors-2"}).mirror_group == "gpu_mirrors-2"
