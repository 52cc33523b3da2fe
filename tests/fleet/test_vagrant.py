"""vagrant/: the Vagrantfile passes `vagrant validate`, and provision.py builds the VM's inventory.

`vagrant validate` checks a Vagrantfile offline, no provider and no box needed (Debian's
`vagrant` package; shared/reference/test-lab.md). Core settings and triggers are checked with
--ignore-provider; the libvirt block (PCI passthrough included) needs the vagrant-libvirt plugin
(Debian's `vagrant-libvirt`). Missing tools skip the test with the reason, except under CI=true,
where they fail it (as tests/e2e/conftest.py does for the lab). The provisioning step itself runs
against a lab host in tests/e2e/test_cloud_init.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
PROVISION = VAGRANT_DIR / "provision.py"


def _need(tool_ok: bool, reason: str) -> None:
    if tool_ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs {reason}", pytrace=False)
    pytest.skip(reason)


def validate(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`vagrant validate` on a copy (vagrant writes .vagrant/ beside the Vagrantfile), own VAGRANT_HOME."""
    _need(shutil.which("vagrant") is not None, "vagrant (apt-get install vagrant) to validate vagrant/Vagrantfile")
    shutil.copy(VAGRANT_DIR / "Vagrantfile", tmp_path / "Vagrantfile")
    full_env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1",
                **env}
    for key in ("GPUHOST_PCI", "GPUHOST_PCI_VM", "GPUHOST_VM_MEMORY", "GPUHOST_VM_CPUS", "GPUHOST_VM_DISK"):
        if key not in env:
            full_env.pop(key, None)
    return subprocess.run(["vagrant", "validate", *args], cwd=tmp_path, env=full_env, capture_output=True,
                          text=True, timeout=120)


def libvirt_plugin(tmp_path: Path) -> None:
    plugins = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant.d")}).stdout
    _need("vagrant-libvirt" in plugins,
          "the vagrant-libvirt plugin (apt-get install vagrant-libvirt) to validate the libvirt block")


def test_vagrantfile_core_settings_and_triggers_validate(tmp_path):
    r = validate(tmp_path, "--ignore-provider")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Vagrantfile validated successfully." in r.stdout


def test_vagrantfile_libvirt_block_validates_with_and_without_pci_passthrough(tmp_path):
    validate(tmp_path, "--ignore-provider")  # skips first when vagrant itself is missing
    libvirt_plugin(tmp_path)
    for env in ({}, {"GPUHOST_PCI": "0000:41:00.0,41:00.1", "GPUHOST_PCI_VM": "ubuntu2204"}):
        r = validate(tmp_path, VAGRANT_DEFAULT_PROVIDER="libvirt", **env)
        assert r.returncode == 0, (env, r.stdout + r.stderr)


@pytest.mark.parametrize("env,message", [
    ({"GPUHOST_PCI": "41:00"}, 'GPUHOST_PCI: "41:00" is not a PCI address such as 0000:41:00.0'),
    ({"GPUHOST_PCI_VM": "debian12"}, 'GPUHOST_PCI_VM="debian12": use one of ubuntu2204, ubuntu2404'),
    ({"GPUHOST_VM_MEMORY": "8G"}, 'GPUHOST_VM_MEMORY="8G" is not a whole number'),
])
def test_bad_settings_stop_vagrant_with_one_line(tmp_path, env, message):
    r = validate(tmp_path, "--ignore-provider", **env)
    assert r.returncode != 0
    assert r.stderr.strip() == message or r.stderr.strip().startswith(message), r.stderr


# -- provision.py: what the trigger runs --------------------------------------------------------

def provision(*args: str, data: str | None = None, tmp_path: Path) -> subprocess.CompletedProcess:
    extra = []
    if data is not None:
        (tmp_path / "data.yaml").write_text(data)
        extra = ["--data", str(tmp_path / "data.yaml")]
    env = {k: v for k, v in os.environ.items() if k != "GPUHOST_VAGRANT_DATA"}
    return subprocess.run([sys.executable, str(PROVISION), "--name", "ubuntu2404", "--host", "192.168.121.17",
                           "--port", "22", "--user", "vagrant", "--key", "/keys/private_key", *extra, *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_inventory_carries_vagrants_ssh_details_sudo_and_the_host_data(tmp_path):
    r = provision("--print-inventory", data="torch: '2.9'\ntarget_gpus: [H100]\n", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout) == {
        "all": {"torch": "2.9", "target_gpus": ["H100"]},
        "hosts": [{"name": "vagrant-ubuntu2404", "ssh_hostname": "192.168.121.17", "ssh_port": 22,
                   "ssh_user": "vagrant", "ssh_key": "/keys/private_key", "ssh_known_hosts_file": "/dev/null",
                   "ssh_strict_host_key_checking": "no", "_sudo": True}],
    }


@pytest.mark.parametrize("data,message", [
    ("reboot: now\n", "host vagrant-ubuntu2404: reboot is 'now': use one of auto, never"),
    ("ssh_user: ubuntu\n", "ssh_user comes from Vagrant: remove it"),
    ("- H100\n", "must be a mapping of host data keys"),
    ("torch: [2.9\n", "is not valid YAML"),
])
def test_bad_host_data_is_one_line_and_exit_2_before_any_connection(tmp_path, data, message):
    r = provision(data=data, tmp_path=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("gpuhost: error: ") and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == ""
