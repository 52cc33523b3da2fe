"""A user's source for a repository is set aside only once the pinned key is checked (issue 28): when
the key at NVIDIA's path is another one and the key fetched is refused, the host keeps its source."""

from __future__ import annotations

from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.operations import parse_commands
from pyinfra_testing.util import FakeState, create_host

from gpuhost.containers import operations as docker
from gpuhost.driver import operations as driver
from gpuhost.driver.sources import select_source
from gpuhost.run.keys import BACKUP_DIR

KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
USERS_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"  # NVIDIA's install guide's file
OTHER_KEY = "0123456789ABCDEF0123456789ABCDEF01234567"


def commands_of(op, facts, **kwargs):
    host = create_host(FakeState(), facts=facts)
    with ctx_state.use(host.state), ctx_host.use(host):
        return parse_commands(list(op._inner(**kwargs)))


def _order(commands) -> list[str]:
    return ["key" if "refusing to trust it" in str(c) else "set aside" if BACKUP_DIR in str(c) and "mv -f" in str(c)
            else "write" for c in commands]


def test_the_toolkit_key_is_checked_before_the_users_source_is_moved():
    commands = commands_of(docker.signed_apt_repo, {
        "files.File": {"path=/etc/apt/sources.list.d/nvidia-container-toolkit.sources": None},
        "files.Directory": {"path=/etc/apt/sources.list.d": {"mode": 755, "user": "root", "group": "root"},
                            "path=/etc/apt/sources.list.d/nvidia-container-toolkit.sources": None},
        "managed.KeyringFingerprints": {f"path={KEYRING}": [OTHER_KEY]}},
        filename="nvidia-container-toolkit", key_url="https://nvidia.github.io/libnvidia-container/gpgkey",
        fingerprint="C95B 321B 61E8 8C18 09C4 F759 DDCA E044 F796 ECB0", keyring=KEYRING,
        uri="https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)", suite="/", set_aside=(USERS_LIST,))
    assert _order(commands)[:2] == ["key", "set aside"], commands
    assert "set -e" in commands[0]  # the key script fails the operation: the set-aside never runs


def test_the_driver_key_is_checked_before_the_users_source_is_moved():
    host_state = {"os": {"id": "debian", "version_id": "12"}, "arch": "x86_64", "package_manager": "apt"}
    source = select_source(host_state, "580", "open", None, None, None, None)
    repo = source.repository
    commands = commands_of(driver.repository, {
        "managed.KeyringFingerprints": {f"path={repo.keyring}": [OTHER_KEY]},
        "files.Sha1File": {f"path={repo.sources_file}": None}},
        source=source, set_aside=("/etc/apt/sources.list.d/cuda-debian12-x86_64.list",))
    assert _order(commands)[:2] == ["key", "set aside"], commands
