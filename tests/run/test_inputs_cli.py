"""Bad input through the real commands, refused before any host is contacted (issue 14).

Every inventory points at 127.0.0.1 port 1, where nothing listens: a command that got past the
check would try to connect ("Connecting" in pyinfra's output, an "unreachable" row in inspect's).
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLOSED = "ssh_hostname: 127.0.0.1\n    ssh_port: 1\n    ssh_connect_retries: 0"


def inventory(folder: Path, hosts_yaml: str, head: str = "") -> Path:
    """inventories/lab.py copied beside a lab.yaml with these hosts (each at the closed port)."""
    shutil.copy(REPO / "inventories" / "lab.py", folder / "lab.py")
    (folder / "lab.yaml").write_text(textwrap.dedent(head) + "hosts:\n" + textwrap.dedent(hosts_yaml))
    return folder / "lab.py"


def host(name: str, extra: str = "") -> str:
    return f"  - name: {name}\n    {CLOSED}\n" + "".join(f"    {line}\n" for line in extra.splitlines() if line)


def deploy(inv: Path, *args, env=None):
    """The deploy as a user runs it, from the inventory's folder."""
    return subprocess.run([str(BIN / "pyinfra"), str(inv), str(REPO / "deploys" / "gpu_host.py"), "-y", *args],
                          capture_output=True, text=True, timeout=120, cwd=inv.parent,
                          env={**os.environ, **(env or {})})


def gpuhost(*args, cwd=None):
    return subprocess.run([str(BIN / "gpuhost"), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def refused(result, *words):
    """Refused before connecting: non-zero, the words on one line, no connection tried, no traceback."""
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Connecting" not in out and "Traceback" not in out, out
    assert any(all(w in line for w in words) for line in out.splitlines()), out
    return out


# --- The deploy: pyinfra inventories/lab.py deploys/gpu_host.py ----------------------------------


BAD_HOST_DATA = [
    ("reboots: auto", ["host h1: unknown key 'reboots': did you mean reboot?"]),
    ('torch_version: "2.9"', ["unknown key 'torch_version': did you mean torch?"]),
    ("torch: 2.10", ["torch is the number 2.10 (read as 2.1): quote it: torch: \"2.10\""]),
    ('torch: "2.99"', ["torch is '2.99': not in the compatibility matrix: use one of"]),
    ('driver_branch: "999"', ["driver_branch is '999': not a branch in the matrix"]),
    ("target_gpus: [B200, V100]", ["target_gpus B200, V100: no plan: no driver flavour drives both"]),
    ("target_gpus: [H100x8]", ["unknown GPU 'H100x8'", "8 times"]),
    ('target_gpus: "H100,V100"', ["has a comma", "target_gpus: [H100, V100]"]),
    ("registry_user: ci\nregistry_password_file: /nonexistent/pw", ["registry_password_file /nonexistent/pw: no such file"]),
    ("registry_user: ci\nregistry_password_env: GPUHOST_TEST_UNSET_PW", ["registry_password_env GPUHOST_TEST_UNSET_PW: the variable is unset"]),
    ("ssh_key: /nonexistent/id_ed25519", ["ssh_key /nonexistent/id_ed25519: no such file"]),
    ("allow_driver_change: 'yes'", ["allow_driver_change is 'yes': use true or false"]),
]


@pytest.fixture(scope="module")
def bad_fleet_deploy(tmp_path_factory):
    """One deploy over a fleet whose every host has one of BAD_HOST_DATA's mistakes."""
    folder = tmp_path_factory.mktemp("bad-fleet")
    hosts = "".join(host(f"h{i:02d}", extra) for i, (extra, _) in enumerate(BAD_HOST_DATA))
    return deploy(inventory(folder, hosts))


@pytest.mark.parametrize("case", range(len(BAD_HOST_DATA)), ids=[extra for extra, _ in BAD_HOST_DATA])
def test_deploy_refuses_bad_host_data_before_connecting(bad_fleet_deploy, case):
    extra, words = BAD_HOST_DATA[case]
    refused(bad_fleet_deploy, *[w.replace("host h1:", f"host h{case:02d}:") for w in words])


def test_deploy_refuses_a_key_given_twice(tmp_path):
    refused(deploy(inventory(tmp_path, host("h1", "torch: '2.9'\ntorch: '2.8'"))),
            "lab.yaml is not valid YAML at line 7", "key 'torch' is given twice (first on line 6): keep one")


def test_deploy_refuses_a_world_readable_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    inv = inventory(tmp_path, host("h1", f"registry_user: ci\nregistry_password_file: {secret}"))
    out = refused(deploy(inv), f"registry_password_file {secret}: other users can read it (mode 0644): chmod 600")
    assert "hunter2" not in out


def test_deploy_refuses_ssh_port_that_is_not_a_number(tmp_path):
    (tmp_path / "lab.yaml").write_text("hosts:\n  - {name: h1, ssh_hostname: 127.0.0.1, ssh_port: abc}\n")
    shutil.copy(REPO / "inventories" / "lab.py", tmp_path / "lab.py")
    refused(deploy(tmp_path / "lab.py"), "ssh_port is 'abc': use a whole number")


@pytest.mark.parametrize("data, words", [
    ("torch=2.10", ["torch is the number 2.10 (read as 2.1)", "--data 'torch=\"2.10\"'", "(torch from --data)"]),
    ("reboot=now", ["reboot is 'now': use one of auto, never (reboot from --data)"]),
    ("rebot=auto", ["unknown key 'rebot': did you mean reboot?"]),
    ("target_gpus=H100,V100", ["has a comma"]),
])
def test_deploy_checks_data_given_with_dash_dash_data(tmp_path, data, words):
    refused(deploy(inventory(tmp_path, host("h1")), "--data", data), *words)


def test_a_problem_shared_by_forty_hosts_is_one_line(tmp_path):
    inv = inventory(tmp_path, "".join(host(f"gpu-{i:02d}") for i in range(1, 41)), head="all: {torch: 2.10}\n")
    out = refused(deploy(inv), "40 hosts (gpu-01, gpu-02, gpu-03 and 37 more): torch is the number 2.10",
                  "(torch from lab.yaml:all)")
    assert out.count("torch is the number") == 1


@pytest.mark.parametrize("name", ["'@local'", "'@docker/debian:12'", "'gpu 01'"])
def test_host_names_pyinfra_would_read_as_connectors_are_refused(tmp_path, name):
    (tmp_path / "lab.yaml").write_text(f"hosts:\n  - name: {name}\n    {CLOSED}\n")
    shutil.copy(REPO / "inventories" / "lab.py", tmp_path / "lab.py")
    refused(deploy(tmp_path / "lab.py"), f"host {name}", "usable host name" if " " in name else "pyinfra connector")


def test_inventory_that_is_not_utf8_is_one_line(tmp_path):
    shutil.copy(REPO / "inventories" / "lab.py", tmp_path / "lab.py")
    (tmp_path / "lab.yaml").write_bytes("hosts:\n  - name: gpu-\xe9\n".encode("latin-1"))
    refused(deploy(tmp_path / "lab.py"), "is not UTF-8 text (byte 0xe9", "save it as UTF-8")


def test_own_keys_are_accepted_under_x_or_user_keys(tmp_path):
    """Accepted: the deploy gets past the check and tries the (closed) port."""
    inv = inventory(tmp_path, host("h1", 'x_rack: 4\nsite_owner: ml\nrack: "r2"'),
                    head="all:\n  user_keys: [rack, 'site_*']\n")
    result = subprocess.run([str(BIN / "pyinfra"), str(inv), "debug-inventory"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "x_rack" in result.stdout + result.stderr and "site_owner" in result.stdout + result.stderr
    (tmp_path / "lab.yaml").write_text((tmp_path / "lab.yaml").read_text().replace("'site_*'", "site"))
    refused(deploy(inv), "unknown key 'site_owner'")


# --- gpuhost inspect / upgrade -----------------------------------------------------------------


@pytest.mark.parametrize("command", [["inspect"], ["upgrade", "--canary", "1"]])
def test_inspect_and_upgrade_refuse_bad_data_exit_2(tmp_path, command):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("h1", "reboots: auto") + host("h2", "reboots: auto"))
    state = tmp_path / "state.json"
    result = gpuhost(*command, str(tmp_path / "hosts.yaml"), *(["--state", str(state)] if "upgrade" in command else []))
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert "2 hosts (h1, h2): unknown key 'reboots': did you mean reboot?" in result.stderr
    assert "unreachable" not in result.stderr and not state.exists()


def test_inspect_refuses_duplicate_keys_in_a_yaml_inventory(tmp_path):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("h1", "no_gpu: fail\nno_gpu: skip"))
    result = gpuhost("inspect", str(tmp_path / "hosts.yaml"))
    assert result.returncode == 2 and "key 'no_gpu' is given twice (first on line 6): keep one" in result.stderr


# --- gpuhost cloud-init render ---------------------------------------------------------------


@pytest.mark.parametrize("data, words", [
    ("torch: 2.10\n", 'torch is the number 2.10 (read as 2.1): quote it: torch: "2.10"'),
    ("torch: '2.9'\ntorch: '2.8'\n", "key 'torch' is given twice"),
    ("reboots: never\n", "unknown key 'reboots': did you mean reboot?"),
    ("target_gpus: [B200, V100]\n", "no driver flavour drives both"),
    ("hosts:\n  - name: a\n", "is an inventory (it has hosts:)"),
])
def test_cloud_init_render_refuses_bad_data_file_exit_2(tmp_path, data, words):
    (tmp_path / "host.yaml").write_text(data)
    result = gpuhost("cloud-init", "render", "--data", str(tmp_path / "host.yaml"), "--package", "gpuhost==0.1.0",
                     "--index-url", "https://pypi.example/simple", "-o", str(tmp_path / "user-data"))
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "user-data").exists()


def test_cloud_init_password_file_is_the_vms_not_checked_here(tmp_path):
    (tmp_path / "host.yaml").write_text("registry_user: ci\nregistry_password_file: /etc/gpuhost/registry-pw\n")
    result = gpuhost("cloud-init", "render", "--data", str(tmp_path / "host.yaml"), "--package", "gpuhost==0.1.0",
                     "--index-url", "https://pypi.example/simple")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#cloud-config")


# --- gpuhost resolve -------------------------------------------------------------------------


@pytest.mark.parametrize("gpus, words", [
    (["H100,V100"], "GPU name 'H100,V100' has a comma: name one GPU at a time: repeat the flag"),
    (["H100x8"], "unknown GPU 'H100x8': name each GPU once: --gpu H100 given 8 times"),
    (["H100 SXM9"], "unknown GPU 'H100 SXM9': did you mean"),
])
def test_resolve_matches_gpu_names_exactly(gpus, words):
    result = gpuhost("resolve", *[arg for g in gpus for arg in ("--gpu", g)])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr


def test_inspect_names_a_misspelt_groups_key(tmp_path):
    (tmp_path / "hosts.yaml").write_text("groups: {rack1: {}}\nhosts:\n" + host("h1", "group: [rack1]"))
    result = gpuhost("inspect", str(tmp_path / "hosts.yaml"))
    assert result.returncode == 2 and "host h1: unknown key 'group': did you mean groups?" in result.stderr
