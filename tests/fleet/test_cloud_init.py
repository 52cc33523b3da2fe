"""`gpuhost cloud-init render`: the user-data's structure, its checks, and the first-boot script.

The lab test (tests/e2e/test_cloud_init.py) runs cloud-init itself on this user-data; these tests
pin what it contains, that bad input is one line before anything is rendered, and that the
first-boot script's marker is right when the package pin is not met (real pip, local files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuhost import __version__
from gpuhost.fleet.cloud_init import (FIRST_BOOT_SCRIPT, INVENTORY_TEMPLATE, CloudInitSettings, load_host_data,
                                pip_requirements, render, with_target_gpus)
from gpuhost.errors import UsageError

GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
SHA = "ab" * 32
WHEEL_URL = "https://files.example.com/gpuhost-0.1.0-py3-none-any.whl"
WHEELHOUSE = "http://files:8080/wheels/"


def wheel_settings(**overrides) -> CloudInitSettings:
    fields = {"package": WHEEL_URL, "package_sha256": SHA, "find_links": (WHEELHOUSE,), "no_index": True}
    return CloudInitSettings(**{**fields, **overrides})


def files_of(user_data: str) -> dict[str, dict]:
    return {f["path"]: f for f in yaml.safe_load(user_data)["write_files"]}


def test_user_data_is_cloud_config_that_writes_the_files_and_runs_the_script_once():
    user_data = render(wheel_settings(host_data={"torch": "2.9", "target_gpus": ["H100", "H100"]}))
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    assert set(config) == {"write_files", "runcmd"}
    assert config["runcmd"] == [["/usr/local/sbin/gpuhost-first-boot"]]
    files = files_of(user_data)
    assert list(files) == ["/etc/gpuhost/host-data.yaml", "/etc/gpuhost/inventory.py",
                           "/etc/gpuhost/requirements.txt", "/etc/gpuhost/first-boot.env",
                           "/usr/local/sbin/gpuhost-first-boot"]
    assert {f["owner"] for f in files.values()} == {"root:root"}
    assert files["/etc/gpuhost/host-data.yaml"]["permissions"] == "0600"  # host data may name registries, users
    assert files["/usr/local/sbin/gpuhost-first-boot"]["permissions"] == "0755"
    assert yaml.safe_load(files["/etc/gpuhost/host-data.yaml"]["content"]) == {"torch": "2.9",
                                                                                "target_gpus": ["H100", "H100"]}
    assert files["/usr/local/sbin/gpuhost-first-boot"]["content"] == FIRST_BOOT_SCRIPT.read_text()
    assert files["/etc/gpuhost/inventory.py"]["content"] == INVENTORY_TEMPLATE.read_text()
    assert "APT_LOCK_TIMEOUT=300\n" in files["/etc/gpuhost/first-boot.env"]["content"]
    # The file contents stay readable in the user-data (literal blocks, not escaped strings).
    assert "  content: |\n    #!/bin/sh\n" in user_data


def test_a_wheel_url_is_pinned_by_its_sha256_and_plain_http_wheelhouses_are_named_trusted():
    text = pip_requirements(wheel_settings(package_sha256=SHA.upper()))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["--no-index", f"--find-links {WHEELHOUSE}", "--trusted-host files:8080",
                     f"gpuhost @ {WHEEL_URL}#sha256={SHA}"]


def test_an_index_pin_needs_the_index_that_carries_it():
    text = pip_requirements(CloudInitSettings(index_url="https://pypi.internal.example/simple"))
    assert text.splitlines()[1:] == ["--index-url https://pypi.internal.example/simple", f"gpuhost=={__version__}"]


def test_apt_lock_timeout_from_host_data_reaches_the_script():
    files = files_of(render(wheel_settings(host_data={"apt_lock_timeout": 900})))
    assert "APT_LOCK_TIMEOUT=900\n" in files["/etc/gpuhost/first-boot.env"]["content"]


def test_target_gpus_flag_replaces_the_data_and_takes_commas():
    assert with_target_gpus({"target_gpus": ["V100"], "torch": "2.9"}, ["H100,H100", "B200"]) == {
        "target_gpus": ["H100", "H100", "B200"], "torch": "2.9"}
    assert with_target_gpus({"target_gpus": ["V100"]}, []) == {"target_gpus": ["V100"]}


@pytest.mark.parametrize("settings,message", [
    (wheel_settings(host_data={"reboot": "now"}), "host data: reboot is 'now': use one of auto, never"),
    (wheel_settings(host_data={"reboot": "auto"}), "reboot: auto cannot work on first boot"),
    (wheel_settings(host_data={"ssh_user": "ubuntu"}), "ssh_user does not apply"),
    (wheel_settings(host_data={"target_gpus": ["Voodoo5"]}), "host data: target_gpus is ['Voodoo5']: unknown GPU 'Voodoo5'"),
    (wheel_settings(package_sha256=None), "needs --package-sha256 HEX"),
    (wheel_settings(package_sha256="abc"), "--package-sha256 'abc' is not a sha256"),
    (wheel_settings(package="https://files.example.com/gpuhost.tar.gz"), "is not a wheel"),
    (wheel_settings(package=WHEEL_URL + "#sha256=" + SHA), "without '?' or '#'"),
    (wheel_settings(find_links=("files:8080/wheels",)), "--find-links 'files:8080/wheels' is not a URL"),
    (wheel_settings(find_links=()), "--no-index needs --find-links URL"),
    (CloudInitSettings(), "the gpuhost on PyPI is an unrelated project"),
    (CloudInitSettings(package="gpuhost", index_url="https://i.example/simple"), "is not pinned"),
    (CloudInitSettings(package="gpuhost>=0.1", index_url="https://i.example/simple"), "is not pinned"),
    (CloudInitSettings(package="gpuhost==0.1.*", index_url="https://i.example/simple"), "is not pinned"),
    (CloudInitSettings(package="torch==2.9.1", index_url="https://i.example/simple"), "use gpuhost==X.Y.Z"),
    (CloudInitSettings(package="gpuhost==0.1.0", package_sha256=SHA, index_url="https://i.example/simple"),
     "--package-sha256 pins a wheel URL"),
    (CloudInitSettings(index_url="pypi.internal/simple"), "--index-url 'pypi.internal/simple' is not a URL"),
])
def test_bad_settings_are_one_line_naming_the_flag_and_the_fix(settings, message):
    with pytest.raises(UsageError) as exc:
        render(settings)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("text,message", [
    ("torch: [2.9", "is not valid YAML"),
    ("- H100\n", "must be a mapping of host data keys"),
])
def test_a_data_file_that_is_not_a_mapping_is_refused(text, message):
    with pytest.raises(UsageError, match=message):
        load_host_data(text, "--data hosts.yaml")


def test_an_empty_data_file_is_no_data():
    assert load_host_data("# nothing yet\n", "--data hosts.yaml") == {}


# -- the CLI, as a user runs it -------------------------------------------------------------------

PINNED = ["--package", "gpuhost==" + __version__, "--find-links", "https://files.example/wheels/"]


def run_cli(*args, cwd=None):
    return subprocess.run([GPUHOST, "cloud-init", "render", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_cli_renders_data_file_and_flags(tmp_path):
    (tmp_path / "host.yaml").write_text("torch: '2.9'\nno_gpu: fail\n")
    out = tmp_path / "user-data"
    r = run_cli("--data", "host.yaml", "--target-gpus", "H100", "--package", WHEEL_URL, "--package-sha256", SHA,
                "--find-links", WHEELHOUSE, "--no-index", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    files = files_of(out.read_text())
    assert yaml.safe_load(files["/etc/gpuhost/host-data.yaml"]["content"]) == {
        "torch": "2.9", "no_gpu": "fail", "target_gpus": ["H100"]}


@pytest.mark.parametrize("args,message", [
    (["--data", "host.yaml", *PINNED], "gpuhost: error: --data host.yaml: reboot is 'now': use one of auto, never"),
    (["--data", "missing.yaml", *PINNED], "gpuhost: error: --data missing.yaml: cannot read it"),
    (["--target-gpus", "Voodoo5", *PINNED], "gpuhost: error: --target-gpus: unknown GPU 'Voodoo5'"),
    (["--package", "gpuhost==" + __version__], "gpuhost: error: --package gpuhost==" + __version__
     + " needs --index-url or --find-links"),
    ([], "gpuhost: error: Missing option '--package'"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "host.yaml").write_text("reboot: now\n")
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith(message), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.skipif(shutil.which("cloud-init") is None,
                    reason="cloud-init is not installed here; the e2e test validates inside a lab host")
def test_cloud_init_schema_accepts_it(tmp_path):
    path = tmp_path / "user-data"
    path.write_text(render(wheel_settings(host_data={"target_gpus": ["H100"]})))
    r = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# -- the first-boot script ------------------------------------------------------------------------

def test_first_boot_script_is_posix_sh():
    r = subprocess.run(["sh", "-n", str(FIRST_BOOT_SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_first_boot_refuses_a_wheel_that_does_not_match_its_pin_and_says_so_in_the_marker(tmp_path):
    """Real pip, real script; the paths point into tmp_path (the script honours GPUHOST_* for this)."""
    etc, state, venv, log = tmp_path / "etc", tmp_path / "state", tmp_path / "venv", tmp_path / "log" / "first-boot.log"
    etc.mkdir()
    wheel = tmp_path / "served" / "gpuhost-0.1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"not the wheel that was pinned")
    pinned = hashlib.sha256(b"the wheel that was pinned").hexdigest()
    settings = CloudInitSettings(package=wheel.as_uri(), package_sha256=pinned, find_links=(wheel.parent.as_uri(),),
                                 no_index=True)
    for path, entry in files_of(render(settings)).items():
        if path.startswith("/etc/gpuhost/"):
            (etc / Path(path).name).write_text(entry["content"])
    # A venv whose pip is this interpreter's pip acting on it (pip --python): a fresh venv with
    # ensurepip costs seconds; the script only needs $VENV/bin/pip and $VENV/bin/python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "pip").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip --python "{venv}/bin/python" "$@"\n')
    (venv / "bin" / "pip").chmod(0o755)

    env = {**os.environ, "GPUHOST_ETC": str(etc), "GPUHOST_STATE": str(state), "GPUHOST_VENV": str(venv),
           "GPUHOST_LOG": str(log), "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_FIND_LINKS", None)
    r = subprocess.run(["sh", str(FIRST_BOOT_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)

    assert r.returncode != 0
    marker = json.loads((state / "cloud-init.done").read_text())
    assert marker["status"] == "failed"
    assert marker["failed_stage"] == "install"
    assert marker["exit_code"] == r.returncode
    assert marker["gpuhost_version"] is None and marker["report"] is None and marker["verify"] is None
    assert marker["log"] == str(log)
    text = log.read_text()
    assert "DO NOT MATCH THE HASHES" in text and f"Expected sha256 {pinned}" in text
    assert not list(venv.glob("lib/python3*/site-packages/gpuhost*"))  # nothing was installed


def test_requirements_with_an_index_token_are_root_only():
    settings = CloudInitSettings(host_data={"target_gpus": ["H100"]}, package="gpuhost==0.1.0",
                                 index_url="https://u:TOKEN@idx.example/simple")
    requirements = files_of(render(settings))["/etc/gpuhost/requirements.txt"]
    assert "--index-url https://u:TOKEN@idx.example/simple" in requirements["content"]
    assert requirements["permissions"] == "0600"
