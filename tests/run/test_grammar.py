"""Host-data grammars: each accepts the forms users write and refuses the rest, in one line naming
the key and the fix, before any host is touched (issue 24, item 6)."""

from __future__ import annotations

import subprocess

import pytest

from gpuhost.errors import UsageError
from gpuhost.mirror.settings import MirrorSettings
from gpuhost.monitoring.settings import MonitoringSettings
from gpuhost.run import grammar
from gpuhost.run.keys import pinned_key_script
from gpuhost.workspace import operations
from gpuhost.workspace.settings import WorkspaceSettings

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm0bE2CgKm4gRFMM0yV7Ew6bZ5pP7fDq3Y1bC1o3yNd alice@laptop"
PIN = "sha256:" + "ab" * 32
NEWLINE_UNIT = "\nExecStartPre=/usr/bin/touch /root/x"


@pytest.mark.parametrize("image", [
    "ubuntu", "ubuntu:22.04", "nvcr.io/nvidia/pytorch:25.01-py3", "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime",
    "localhost:5000/a/b@sha256:" + "0" * 64, "registry.lab:5000/team/img:v1.2_rc-3",
    "[::1]:5000/a/b:1", "quay.io/jupyter/pytorch-notebook:cuda12-2024-12-02", "a__b/c-d.e:latest",
    "mirror-01:5001/nvidia/k8s/dcgm-exporter@" + PIN,
])
def test_image_references_users_write_are_accepted(image):
    assert grammar.image_reference(image) == image


@pytest.mark.parametrize("image", [
    "ubuntu" + NEWLINE_UNIT, "Ubuntu:22.04", "ubuntu:22.04\n", "ubuntu:", "/ubuntu", "ubuntu//x", "ubuntu:-x",
    "registry:99999/a", "a b", "ubuntu;id", "$(id)", "ubuntu@sha256:abc", "", "x:" + "t" * 129, "-ubuntu",
])
def test_other_image_strings_are_refused(image):
    with pytest.raises(ValueError, match="not a Docker image reference"):
        grammar.image_reference(image)


@pytest.mark.parametrize("value", ["nvcr.io", "mirror-01:5001", "[fd00::1]:5000", "10.0.0.7:5000",
                                   "registry.lab:5000/nvidia-mirror"])
def test_registries(value):
    assert grammar.registry(value) == value


@pytest.mark.parametrize("value", ["nvcr.io\nUser=root", "https://nvcr.io", "nvcr.io:0", "nvcr io", "nvcr.io:5000:1",
                                   "$(id)", "nvcr.io/A"])
def test_not_registries(value):
    with pytest.raises(ValueError, match="not a registry"):
        grammar.registry(value)


@pytest.mark.parametrize("value", ["/srv/workspaces/alice", "/data/team-a/run_1", "/etc/ssl/ws.pem", "/", "/a/b/"])
def test_absolute_paths(value):
    assert grammar.absolute_path(value) == value


@pytest.mark.parametrize("value", ["relative/x", "/a/../etc", "/a b", "/srv/$(touch X)", "/srv/x\n", "/a:b", "/a'b",
                                   "/a%b", "/srv/\x1b[31m", "/.."])
def test_not_absolute_paths(value):
    with pytest.raises(ValueError, match="not a plain absolute path"):
        grammar.absolute_path(value)


def test_ip_addresses():
    assert [grammar.ip_address(v) for v in ("127.0.0.1", "10.0.0.7", "::1", "fd00::1")] == \
        ["127.0.0.1", "10.0.0.7", "::1", "fd00::1"]
    for bad in ("localhost", "127.0.0.1:9100", "127.0.0.1\nUser=root", "[::1]", "10.0.0.256", ""):
        with pytest.raises(ValueError, match="not an IP address"):
            grammar.ip_address(bad)


@pytest.mark.parametrize("value", ["fe80::1%eth0", "fe80::1%i]:9100 $ARGS\nUser=root\n#", "fe80::1%$(id)", "::1%\x1b"])
def test_ip_address_refuses_scope_ids(value):
    """Python's ipaddress takes any characters after % (a scope id): a newline would reach a unit file."""
    with pytest.raises(ValueError, match="scope"):
        grammar.ip_address(value)
    with pytest.raises(ValueError, match="not a host name or IP address"):
        grammar.host_or_ip(value)


def test_systemd_quote_refuses_control_characters_and_quotes_the_rest():
    assert grammar.systemd_quote("a b") == '"a b"'
    assert grammar.systemd_quote("$HOME%") == "$$HOME%%"
    for bad in ("ubuntu" + NEWLINE_UNIT, "a\tb", "a\rb", "a\x00", "a\x7f"):
        with pytest.raises(ValueError, match="control character"):
            grammar.systemd_quote(bad)


def refused_workspace(**workspace) -> str:
    with pytest.raises(UsageError) as caught:
        WorkspaceSettings.from_host_data({"workspace_users": {"alice": {"uid": 1001, "gid": 1001, "ssh_keys": [KEY]}},
                                          "workspaces": [{"user": "alice", **workspace}]})
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("workspace, line", [
    ({"image": "ubuntu" + NEWLINE_UNIT}, "workspaces[0].image: 'ubuntu\\nExecStartPre"),
    ({"image": "Ubuntu"}, "is not a Docker image reference: use [registry[:port]/]name"),
    ({"volumes": ["/srv/$(touch${IFS}X):/workspace"]}, "workspaces[0].volumes: '/srv/$(touch${IFS}X):/workspace': use"),
    ({"volumes": ["/srv/x\n:/workspace"]}, "workspaces[0].volumes:"),
    ({"volumes": ["/:/host"]}, "the host's / cannot be a workspace volume"),
    ({"jupyter_tls_cert": "/etc/ssl/c.pem\nUser=root", "jupyter_tls_key": "/etc/ssl/k.pem"},
     "workspaces[0].jupyter_tls_cert: '/etc/ssl/c.pem\\nUser=root' is not a plain absolute path"),
    ({"jupyter_tls_cert": "/etc/ssl/c.pem", "jupyter_tls_key": "key.pem"}, "workspaces[0].jupyter_tls_key: 'key.pem'"),
    ({"apt_packages": ["htop\nRUN curl evil | sh"]}, "workspaces[0].apt_packages: 'htop\\nRUN"),
    ({"memory": "64g\n"}, "workspaces[0].memory: '64g\\n' is not a size"),
])
def test_workspace_strings_have_a_grammar(workspace, line):
    assert line in refused_workspace(**workspace)


def test_workspace_accepts_what_users_write():
    settings = WorkspaceSettings.from_host_data({
        "workspace_users": {"alice": {"uid": 1001, "gid": 1001, "ssh_keys": [KEY]}},
        "workspace_pip_index": "https://pypi.lab.example:8443/simple/", "workspace_wheels": "/srv/wheels",
        "workspace_volume_root": "/srv/data",
        "workspaces": [{"user": "alice", "image": "nvcr.io/nvidia/pytorch:25.01-py3", "apt_packages": ["htop", "libgl1"],
                        "volumes": ["/srv/data/alice:/workspace", "/srv/data/alice-sets:/datasets:ro"],
                        "jupyter_tls_cert": "/etc/ssl/ws.pem", "jupyter_tls_key": "/etc/ssl/private/ws.key"}]})
    assert settings.workspaces[0].mounts[1] == ("/srv/data/alice-sets", "/datasets", "ro")
    for key, value in (("workspace_pip_index", "https://pypi/simple'; curl x"), ("workspace_wheels", "/w\n")):
        with pytest.raises(UsageError, match=f"^{key}: "):
            WorkspaceSettings.from_host_data({key: value})


def test_ssh_keys_refuse_control_characters():
    with pytest.raises(UsageError, match="is not an OpenSSH public key line"):
        WorkspaceSettings.from_host_data({"workspace_users": {"alice": {"uid": 1001, "gid": 1001,
                                                                        "ssh_keys": [KEY + "\rcommand=x"]}}})


@pytest.mark.parametrize("data, line", [
    ({"monitoring_listen": "127.0.0.1\nUser=root\nExecStartPre=/bin/sh -c 'id > /root/x'\n#"},
     "monitoring_listen"),
    ({"monitoring_listen": "gpu-01"}, "monitoring_listen"),
    ({"dcgm_exporter_registry": "nvcr.io\nExecStartPre=/bin/id"}, "dcgm_exporter_registry"),
    ({"monitoring_address": "gpu 01"}, "monitoring_address"),
])
def test_monitoring_strings_have_a_grammar(data, line):
    with pytest.raises(UsageError) as caught:
        MonitoringSettings.from_host_data(data)
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)


def test_monitoring_accepts_ipv6_and_brackets_it_where_it_listens():
    from gpuhost.monitoring import exporters
    settings = MonitoringSettings.from_host_data({"monitoring_listen": "fd00::7", "dcgm_exporter_registry":
                                                  "mirror-01:5001", "dcgm_exporter_digest": PIN, "monitoring": True})
    assert "--web.listen-address=[fd00::7]:9100" in exporters.node_exporter_dropin(settings)
    assert " -p [fd00::7]:9400:9400 " in exporters.dcgm_unit(settings)


@pytest.mark.parametrize("data", [{"mirror_storage": "/var/lib/mirror\n"}, {"mirror_storage": "/var/../etc"},
                                  {"mirror_host": "mirror-01\n"}, {"image_digest": PIN + "\n"},
                                  {"mirror_upstreams": [{"registry": "nvcr.io", "url": "https://nvcr.io/\n"}]}])
def test_mirror_strings_refuse_a_trailing_newline(data):
    with pytest.raises(UsageError):
        MirrorSettings.from_host_data(data)


def test_volume_message_quotes_the_path_it_echoes(tmp_path):
    """A volume path the grammar would refuse is still never run by the shell on the error path."""
    root = tmp_path / "r"
    root.mkdir()
    volume = root / "$(touch${IFS}PWNED)"
    volume.symlink_to("/etc")
    command = next(operations.owned_directory._inner(path=str(volume), uid=1001, gid=1001, user="a$(id)"))
    done = subprocess.run(["bash", "-c", command.get_raw_value()], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "is a symbolic link" in done.stderr
    assert not (tmp_path / "PWNED").exists()


def test_key_url_message_quotes_the_url_it_echoes(tmp_path):
    key = tmp_path / "k$(touch$IFS$9PWNED)"  # no braces: curl would glob them
    key.write_text("not a key\n")
    script = pinned_key_script(f"file://{key}", "A" * 40, str(tmp_path / "keyring.gpg"), allow_http=True)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "refusing to trust it" in done.stderr
    assert not (tmp_path / "PWNED").exists()
