"""e2e: cloud-init converges a lab host from `gpuhost cloud-init render` user-data.

Real: cloud-init 22.4 (Debian's package) inside a lab host, fed through its NoCloud seed and run
stage by stage as on a first boot; the user-data as the CLI renders it, validated by
`cloud-init schema`; python3-venv from Debian's mirror (installed by the first-boot script); the
gpuhost wheel built from this checkout and its dependencies (the versions in this venv) served by
the lab's HTTP service and installed by pip inside the host, gpuhost pinned by sha256; pyinfra
@local running the installed deploys/gpu_host.py. The host has no GPU: the default policy skips
it (a converged GPU-less host), and `no_gpu: fail` must fail it, visibly in the marker.

Lab-only setup, labelled as such: cloud-init is limited to the NoCloud datasource with network
configuration off (the lab host must not probe cloud metadata addresses or reconfigure the
engine's network), and en_US.UTF-8 is generated as on a cloud image (Debian's minbase has no
locales, and cloud-init's locale module would fail on that).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gpuhost import __version__
from gpuhost.lab import Lab
from gpuhost.lab.state import REPO_ROOT

pytestmark = pytest.mark.e2e
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
SEED = "/var/lib/cloud/seed/nocloud"
MARKER = "/var/lib/gpuhost/cloud-init.done"
LAB_CLOUD_CFG = "datasource_list: [NoCloud, None]\nnetwork: {config: disabled}\n"
STAGES = ("init --local", "init", "modules --mode=config", "modules --mode=final")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The gpuhost wheel of this checkout at the top, its dependencies in wheels/ (pinned to this venv)."""
    root = tmp_path_factory.mktemp("served")
    constraints = root.parent / "constraints.txt"
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    constraints.write_text(freeze)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", str(REPO_ROOT), "-c", str(constraints),
                            "-w", str(root / "wheels")], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheel = next((root / "wheels").glob("gpuhost-*.whl"))
    wheel = wheel.rename(root / wheel.name)  # gpuhost only by its pinned URL, never from the wheelhouse
    return root, wheel


@pytest.fixture(scope="module")
def lab(engine, served):
    with Lab(["boot", "vm"]) as running:
        running.serve_directory(served[0], name="files")
        boot = running.host("boot")
        setup = boot.exec(
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q cloud-init locales"
            " && sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen"
            f" && mkdir -p /etc/cloud/cloud.cfg.d {SEED}", timeout=900)
        assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
        boot.exec("cat > /etc/cloud/cloud.cfg.d/90-gpuhost-lab.cfg", input=LAB_CLOUD_CFG, check=True)
        # "vm" as a Vagrant box is: user vagrant, key login, passwordless sudo.
        setup = running.host("vm").exec(
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo"
            " && useradd -m -s /bin/bash vagrant && install -d -m 700 -o vagrant -g vagrant /home/vagrant/.ssh"
            " && install -m 600 -o vagrant -g vagrant /root/.ssh/authorized_keys /home/vagrant/.ssh/"
            " && echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vagrant", timeout=900)
        assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
        yield running


def render_args(wheel: Path) -> list[str]:
    return ["--package", f"http://files:8080/{wheel.name}",
            "--package-sha256", hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "--find-links", "http://files:8080/wheels/", "--no-index"]


def render(tmp_path: Path, wheel: Path, data: dict) -> str:
    """The user-data, as a user renders it: the CLI, a --data file, the wheel URL pinned by sha256."""
    (tmp_path / "host.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run([GPUHOST, "cloud-init", "render", "--data", str(tmp_path / "host.yaml"),
                           *render_args(wheel)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def first_boot(host, user_data: str, instance_id: str, timeout: float = 900) -> dict:
    """A fresh instance: clean cloud-init's state, seed it, run the boot stages, wait for the marker."""
    host.exec("cloud-init clean --logs", check=True)
    host.exec(f"cat > {SEED}/user-data", input=user_data, check=True)
    host.exec(f"cat > {SEED}/meta-data", input=f"instance-id: {instance_id}\nlocal-hostname: boot\n", check=True)
    schema = host.exec(f"cloud-init schema --config-file {SEED}/user-data")
    assert schema.returncode == 0 and "Valid cloud-config" in schema.stdout, schema.stdout + schema.stderr
    deadline = time.monotonic() + timeout
    for stage in STAGES:  # a module failure makes a stage exit 1: the marker and result.json say which
        host.exec(f"cloud-init {stage}", timeout=max(deadline - time.monotonic(), 1))
    while time.monotonic() < deadline:
        marker = host.exec(f"cat {MARKER}")
        if marker.returncode == 0:
            return json.loads(marker.stdout)
        time.sleep(2)
    log = host.exec("tail -40 /var/log/gpuhost-cloud-init.log /var/log/cloud-init-output.log").stdout
    pytest.fail(f"no {MARKER} after {timeout:.0f}s; logs:\n{log}")


def cloud_init_errors(host) -> list[str]:
    return json.loads(host.exec("cat /run/cloud-init/result.json", check=True).stdout)["v1"]["errors"]


def test_first_boot_installs_the_pinned_toolkit_and_converges_the_host(lab, served, tmp_path):
    boot = lab.host("boot")

    # 1. A policy the host cannot meet (no GPU, `no_gpu: fail`): installed, deployed, failed, said so.
    marker = first_boot(boot, render(tmp_path, served[1], {"no_gpu": "fail"}), "gpuhost-e2e-fail")
    assert marker["status"] == "failed", marker
    assert marker["failed_stage"] == "deploy" and marker["exit_code"] != 0
    assert marker["host_status"] == "failed"
    assert "no NVIDIA GPU" in marker["reason"]
    assert any(error.startswith("('scripts-user'") for error in cloud_init_errors(boot))  # cloud-init saw it too

    # 2. The default policy: the same host converges (skipped: no GPU, nothing to install for one).
    marker = first_boot(boot, render(tmp_path, served[1], {"torch": "2.9"}), "gpuhost-e2e-ok")
    assert marker["status"] == "ok", (marker, boot.exec("tail -60 /var/log/gpuhost-cloud-init.log").stdout)
    assert marker["exit_code"] == 0 and marker["failed_stage"] is None
    assert marker["gpuhost_version"] == __version__
    assert marker["host_status"] == "skipped"
    assert marker["reason"] == "no NVIDIA GPU found on the PCI bus and no target_gpus declared"
    assert marker["verify"] is None  # no verify on a skipped host
    assert marker["reboot_required"] is False
    assert cloud_init_errors(boot) == []
    output = boot.exec("cat /var/log/cloud-init-output.log", check=True).stdout
    assert f"gpuhost first boot: ok (failed stage: -, exit code 0); marker {MARKER}" in output

    report = json.loads(boot.exec(f"cat {marker['report']}", check=True).stdout)
    assert report["host"] == "@local" and report["status"] == "skipped"
    assert report["gpuhost_version"] == __version__
    assert report["detected"]["os"].startswith("Debian GNU/Linux 12")

    # The deploy ran from the installed package, not from a checkout.
    log = boot.exec("cat /var/log/gpuhost-cloud-init.log", check=True).stdout
    assert "pyinfra /etc/gpuhost/inventory.py /opt/gpuhost/venv/lib/python3.11/site-packages/deploys/gpu_host.py" in log
    installed = boot.exec("/opt/gpuhost/venv/bin/pip show gpuhost pyinfra", check=True).stdout
    assert f"Version: {__version__}" in installed
    assert boot.exec("stat -c %a /etc/gpuhost/host-data.yaml", check=True).stdout.strip() == "600"

    # The installed wheel carries what `render` needs: the host renders the same user-data.
    boot.exec("cat > /tmp/host.yaml", input=yaml.safe_dump({"torch": "2.9"}), check=True)
    again = boot.exec(shlex.join(["/opt/gpuhost/venv/bin/gpuhost", "cloud-init", "render", "--data", "/tmp/host.yaml",
                                  *render_args(served[1])]), check=True)
    assert again.stdout == render(tmp_path, served[1], {"torch": "2.9"})


def test_vagrant_provisioning_step_deploys_over_ssh_as_the_box_user(lab, tmp_path):
    """vagrant/provision.py, called as the Vagrantfile's trigger calls it, with a lab host's SSH details.

    Vagrant itself cannot run here (no hypervisor); what its trigger hands over (address, port,
    user, key) is all provision.py uses, so the host stands in for the VM.
    """
    vm = lab.host("vm")
    (tmp_path / "host-data.yaml").write_text("torch: '2.9'\n")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "vagrant" / "provision.py"), "--name", "vm",
                           "--host", "127.0.0.1", "--port", str(vm.port), "--user", "vagrant",
                           "--key", str(vm.key_path), "--data", str(tmp_path / "host-data.yaml"),
                           "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert (tmp_path / "state" / "vm.yaml").exists()
    report = json.loads(vm.exec("cat /var/lib/gpuhost/report.json", check=True).stdout)
    assert report["host"] == "vagrant-vm" and report["status"] == "skipped"
    assert "Accepted publickey for vagrant" in vm.exec("journalctl -u ssh --no-pager -q", check=True).stdout
    # Written as root through sudo: the vagrant user cannot write there itself.
    assert vm.exec("stat -c %U /var/lib/gpuhost/report.json", check=True).stdout.strip() == "root"
    assert vm.exec("su vagrant -c 'test -w /var/lib/gpuhost'").returncode != 0
