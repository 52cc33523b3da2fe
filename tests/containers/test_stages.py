"""The pure parts of the container stage: settings, install problems, commands, script text.

The host-side behaviour (backup, restart, rollback, pull, check) is tested for real in
tests/e2e/test_containers.py; the ContainerState dicts here are shaped like facts/container.py's.
"""

from __future__ import annotations

import base64
import gzip
import re
import subprocess

import pytest

from facts.container import ContainerState
from gpuhost.errors import UsageError
from gpuhost.containers.operations import apply_script, deb822, registry_of
from gpuhost.run.keys import pinned_key_script as key_script
from gpuhost.containers.settings import ContainerSettings, repos
from gpuhost.containers.runtime_stage import install_problem
from gpuhost.verify.check import SCRIPT as CHECK_SCRIPT
from gpuhost.verify.stage import check_command, split_inputs, split_rc

EMPTY = ContainerState.default()["docker"]


@pytest.mark.parametrize("data, words", [
    ({"docker_source": "snap"}, "docker_source is 'snap': use one of distro, docker, keep"),
    ({"toolkit_source": "apt"}, "toolkit_source is 'apt'"),
    ({"docker_cdi": "yes"}, "docker_cdi is 'yes': use true or false"),
    ({"docker_daemon_options": ["a"]}, "docker_daemon_options"),
    ({"toolkit_version": 1.17}, "toolkit_version is the number 1.17: quote it"),
    ({"prune_pulled_images": "no"}, "prune_pulled_images is 'no': use true or false"),
    ({"registry_user": "bot"}, "registry_user is set without registry_password_file"),
    ({"registry_password_env": 5}, "registry_password_env is the number 5: quote it"),
])
def test_bad_settings_are_one_line(data, words):
    with pytest.raises(UsageError) as exc:
        ContainerSettings.from_host_data(data)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_default_settings():
    settings = ContainerSettings.from_host_data({})
    assert (settings.docker_source, settings.toolkit_source) == ("distro", "nvidia")
    assert settings.toolkit_version == repos()["nvidia_container_toolkit"]["default_version"]


@pytest.mark.parametrize("install, source, words", [
    (["snap"], "distro", "snap remove docker"),
    (["package", "rootless"], "distro", "rootless Docker"),
    (["binary"], "distro", "docker_source: keep"),
    ([], "keep", "not installed"),
])
def test_install_problems_say_what_to_do(install, source, words):
    docker = {**EMPTY, "install": install, "installed": bool(install)}
    assert words in install_problem(docker, source)


def test_package_install_is_fine():
    assert install_problem({**EMPTY, "install": ["package"], "installed": True}, "distro") is None
    assert install_problem(EMPTY, "distro") is None


def test_repos_pin_fingerprints_and_four_toolkit_packages():
    data = repos()
    for repo in (data["docker"], data["nvidia_container_toolkit"]):
        assert len(repo["fingerprint"]) == 40 and int(repo["fingerprint"], 16)
    assert len(data["nvidia_container_toolkit"]["packages"]) == 4


def test_key_script_refuses_other_fingerprints_and_uses_https_only():
    script = key_script("https://example.invalid/key", "ABCD" * 10, "/etc/apt/keyrings/x.gpg")
    assert "--proto '=https'" in script and '!= ' + "ABCD" * 10 in script
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_deb822_flat_and_suite_repos():
    assert deb822("https://r/deb/$(ARCH)", "/", [], "/k.gpg") == \
        "Types: deb\nURIs: https://r/deb/$(ARCH)\nSuites: /\nSigned-By: /k.gpg\n"
    assert "Components: stable\n" in deb822("https://d", "bookworm", ["stable"], "/k.gpg")


@pytest.mark.parametrize("restart", [True, False])
def test_apply_script_is_valid_sh_and_restarts_only_when_asked(restart):
    script = apply_script("/etc/docker/daemon.json", '{"a": 1}\n', restart=restart)
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert ('systemctl restart "$svc"' in script) is restart
    assert "gpuhost-backup-" in script and "--validate" in script


@pytest.mark.parametrize("image, registry", [
    ("pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", "docker.io"),
    ("registry:5000/pytorch/pytorch:2.9.1", "registry:5000"),
    ("mirror.example.com/x/pytorch/pytorch:2", "mirror.example.com"),
    ("localhost/p:1", "localhost"),
])
def test_registry_of(image, registry):
    assert registry_of(image) == registry


def test_check_command_has_least_privilege():
    cmd = check_command("img:1", expect_gpus=2)
    for flag in ("--rm", "--network none", "--read-only", "no-new-privileges", "--cap-drop ALL",
                 "--gpus all", "--expect-gpus 2"):
        assert flag in cmd


def test_check_script_travels_inside_the_command_unchanged():
    cmd = check_command("img:1")
    encoded = re.search(r"echo ([A-Za-z0-9+/=]{1000,}) \| base64 -d \| gunzip \| docker run", cmd).group(1)
    assert gzip.decompress(base64.b64decode(encoded)) == CHECK_SCRIPT.read_bytes()


def test_inputs_line_is_read_and_removed():
    stderr = "gpuhost-inputs sha256:abc 580.95.05\nwarn\ngpuhost-check-rc=0"
    inputs, rest = split_inputs(stderr)
    assert inputs == {"digest": "sha256:abc", "driver": "580.95.05"}
    assert split_rc(rest) == (0, "warn")
    assert split_inputs("gpuhost-inputs  \nx")[0] == {"digest": None, "driver": None}


def test_split_rc():
    assert split_rc("warn\ngpuhost-check-rc=3") == (3, "warn")
    assert split_rc("docker: error") == (255, "docker: error")


def test_metric_text_is_prometheus_exposition():
    from gpuhost.verify.stage import metric_text

    text = metric_text({"image": 'r:5000/p/p:1"x', "cause": "no_gpu_visible", "ok": False,
                        "seconds": 12.3}, 1700000000.4)
    assert 'gpuhost_verify_ok{image="r:5000/p/p:1\\"x",cause="no_gpu_visible"} 0\n' in text
    assert "gpuhost_verify_timestamp_seconds 1700000000\n" in text
    assert "# TYPE gpuhost_verify_duration_seconds gauge\ngpuhost_verify_duration_seconds 12.3\n" in text
    ok = metric_text({"image": "i", "cause": None, "ok": True, "seconds": 1}, 0)
    assert 'gpuhost_verify_ok{image="i",cause="none"} 1' in ok


def test_toolkit_packages_are_pinned_to_one_version():
    """What the stage asks apt for on a host without the toolkit (NVIDIA's repo is not
    reachable from the lab, so this is where the command is shown)."""
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra.operations import apt
    from pyinfra_testing.operations import parse_commands
    from pyinfra_testing.util import FakeState, create_host

    settings = ContainerSettings.from_host_data({"toolkit_version": "1.17.8-1"})
    pins = [f"{p}={settings.toolkit_version}" for p in repos()["nvidia_container_toolkit"]["packages"]]
    host = create_host(FakeState(), facts={"deb.DebPackages": {}})
    with ctx_state.use(host.state), ctx_host.use(host):
        commands = parse_commands(list(apt.packages._inner(packages=pins,
                                                           extra_install_args="-o DPkg::Lock::Timeout=300")))
    assert commands == [
        "DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=\"--force-confdef\" "
        "-o Dpkg::Options::=\"--force-confold\" install -o DPkg::Lock::Timeout=300 "
        "nvidia-container-toolkit=1.17.8-1 nvidia-container-toolkit-base=1.17.8-1 "
        "libnvidia-container-tools=1.17.8-1 libnvidia-container1=1.17.8-1"]


# --- Toolkit mirror (toolkit_repository*) and the key script's transport rule -------------------

MIRROR = {"toolkit_repository": "http://mirror.lab/libnvidia-container/stable/deb/$(ARCH)",
          "toolkit_repository_key": "http://mirror.lab/libnvidia-container/gpgkey",
          "toolkit_repository_fingerprint": "0123 4567 89ab CDEF 0123  4567 89AB cdef 0123 4567"}


@pytest.mark.parametrize("data, words", [
    ({"toolkit_repository": "mirror.lab/deb"}, "toolkit_repository is 'mirror.lab/deb': use an http(s):// or file:/ URL"),
    ({"toolkit_repository": 5}, "toolkit_repository is the number 5: quote it"),
    ({**MIRROR, "toolkit_repository_key": "ftp://m/k"}, "toolkit_repository_key is 'ftp://m/k': use an http(s)://"),
    ({**MIRROR, "toolkit_repository_fingerprint": "abc"}, "toolkit_repository_fingerprint is 'abc': use the key's 40-hex"),
    ({**MIRROR, "toolkit_repository_fingerprint": "G" * 40}, "40-hex-digit fingerprint"),
    ({"toolkit_repository_key": "https://m/k"}, "toolkit_repository_key is set without toolkit_repository"),
    ({"toolkit_repository": "https://m/", "toolkit_repository_fingerprint": "A" * 40},
     "toolkit_repository_fingerprint is set without toolkit_repository_key"),
])
def test_bad_toolkit_mirror_settings_are_one_line(data, words):
    with pytest.raises(UsageError) as exc:
        ContainerSettings.from_host_data(data)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_toolkit_mirror_settings_are_read_and_the_fingerprint_normalised():
    settings = ContainerSettings.from_host_data(MIRROR)
    assert settings.toolkit_repository == MIRROR["toolkit_repository"]
    assert settings.toolkit_repository_key == MIRROR["toolkit_repository_key"]
    assert settings.toolkit_repository_fingerprint == "0123456789ABCDEF" * 2 + "01234567"
    assert ContainerSettings.from_host_data({}).toolkit_repository is None


def test_toolkit_repo_args_default_to_nvidia_over_https_only():
    from gpuhost.containers.runtime_stage import _toolkit_repo_args

    repo = repos()["nvidia_container_toolkit"]
    args = _toolkit_repo_args(ContainerSettings.from_host_data({}))
    assert args["key_url"] == repo["key_url"] and args["key_url"].startswith("https://")
    assert (args["fingerprint"], args["keyring"], args["uri"]) == (repo["fingerprint"], repo["keyring"], repo["uri"])
    assert not args.get("allow_http")
    # A mirror that keeps NVIDIA's signatures: only the URI changes; NVIDIA's key stays https.
    args = _toolkit_repo_args(ContainerSettings.from_host_data({"toolkit_repository": "http://mirror.lab/deb"}))
    assert args["uri"] == "http://mirror.lab/deb" and args["key_url"] == repo["key_url"]
    assert not args.get("allow_http") and args["keyring"] == repo["keyring"]


def test_toolkit_repo_args_of_a_mirror_with_its_own_key():
    from gpuhost.containers.runtime_stage import _toolkit_repo_args

    args = _toolkit_repo_args(ContainerSettings.from_host_data(MIRROR))
    assert args["uri"] == MIRROR["toolkit_repository"] and args["suite"] == "/"
    assert args["key_url"] == MIRROR["toolkit_repository_key"] and args["allow_http"] is True
    assert args["fingerprint"] == "0123456789ABCDEF" * 2 + "01234567"
    # Its own keyring, named by the fingerprint: NVIDIA's keyring (another key) is never reused.
    assert args["keyring"] == "/usr/share/keyrings/gpuhost-nvidia-container-toolkit-89ABCDEF01234567.gpg"
    # A copy of NVIDIA's key on the mirror: NVIDIA's pin and keyring, the configured URL.
    copy = _toolkit_repo_args(ContainerSettings.from_host_data({**MIRROR, "toolkit_repository_fingerprint": None}))
    repo = repos()["nvidia_container_toolkit"]
    assert (copy["fingerprint"], copy["keyring"], copy["allow_http"]) == (repo["fingerprint"], repo["keyring"], True)


def test_the_stage_and_its_pending_check_use_the_same_mirror_args():
    """container_pending names the mirror's keyring and sources on a real converged lab snapshot
    (tests/fixtures/debian12-lab-host/snapshot-bench-converged.out, toolkit not installed)."""
    from pathlib import Path

    from facts.snapshot import HostSnapshot
    from gpuhost.fleet.context import HostContext
    from gpuhost.compose.host_plan import plan_host
    from gpuhost.compose.settings import settings_from
    from gpuhost.containers.runtime_stage import container_pending

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host" / "snapshot-bench-converged.out"
    snap = HostSnapshot().process(fixture.read_text().splitlines())
    settings = settings_from({"target_gpus": ["H100"], "toolkit_source": "nvidia", **MIRROR})
    ctx = HostContext(settings, snap["gpu"], snap["host"], plan_host(snap["gpu"], snap["host"], settings),
                      snap["container"], snap["managed"])
    pending = container_pending(ctx)
    assert pending[:2] == ["/usr/share/keyrings/gpuhost-nvidia-container-toolkit-89ABCDEF01234567.gpg",
                           "/etc/apt/sources.list.d/nvidia-container-toolkit.sources"]


def test_key_script_allows_http_only_when_asked():
    https_only = key_script("https://m/key", "ABCD" * 10, "/k.gpg")
    assert "--proto '=https'" in https_only and "http,file" not in https_only
    plain = key_script("http://m/key", "ABCD" * 10, "/k.gpg", allow_http=True)
    assert "--proto '=https,http,file'" in plain
    assert subprocess.run(["sh", "-n", "-c", plain]).returncode == 0


@pytest.fixture(scope="module")
def two_keys(tmp_path_factory):
    """Two real gpg keys (generated here) and armoured files: one key, and both keys in one file."""
    import shutil

    if not (shutil.which("gpg") and shutil.which("curl")):
        pytest.skip("needs gpg and curl")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    for who in ("pinned", "other"):
        subprocess.run([*gpg, "--quick-gen-key", f"gpuhost unit {who} <{who}@gpuhost.invalid>", "ed25519",
                        "sign", "1d"], check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True)
    fingerprints = [line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr")]
    files = home.parent / "keys"
    files.mkdir(exist_ok=True)
    for name, which in (("pinned.asc", fingerprints[:1]), ("both.asc", fingerprints[::-1])):
        armour = subprocess.run([*gpg, "--armor", "--export", *which], check=True, capture_output=True).stdout
        (files / name).write_bytes(armour)
    return {"pinned": fingerprints[0], "other": fingerprints[1], "dir": files}


def _keyring_fingerprints(path) -> list[str]:
    out = subprocess.run(["gpg", "--show-keys", "--with-colons", str(path)], capture_output=True, text=True).stdout
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr")]


def test_key_script_installs_only_the_pinned_key(two_keys, tmp_path):
    """Run for real: a file holding two keys gives a keyring holding only the pinned one."""
    keyring = tmp_path / "keyrings" / "mirror.gpg"
    script = key_script(f"file://{two_keys['dir']}/both.asc", two_keys["pinned"], str(keyring), allow_http=True)
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert _keyring_fingerprints(keyring) == [two_keys["pinned"]]


def test_key_script_refuses_another_key_in_one_line_and_writes_nothing(two_keys, tmp_path):
    keyring = tmp_path / "keyrings" / "mirror.gpg"
    script = key_script(f"file://{two_keys['dir']}/pinned.asc", two_keys["other"], str(keyring), allow_http=True)
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip() == (f"gpuhost: key from file://{two_keys['dir']}/pinned.asc has fingerprint "
                                  f"{two_keys['pinned']}, expected {two_keys['other']}: refusing to trust it (check the "
                                  "fingerprint its publisher gives)")
    assert not keyring.parent.exists()


def test_key_script_for_vendor_keys_refuses_plain_transports(two_keys, tmp_path):
    """Without allow_http, curl refuses anything but https (here a file: URL), before any check."""
    keyring = tmp_path / "k.gpg"
    script = key_script(f"file://{two_keys['dir']}/pinned.asc", two_keys["pinned"], str(keyring))
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert run.returncode != 0 and "protocol" in run.stderr.lower(), run.stderr
    assert not keyring.exists()
