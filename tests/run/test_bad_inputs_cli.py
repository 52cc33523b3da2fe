"""The last bad inputs (issue 28), through the real commands: one line naming the problem and the fix,
before any host is touched, exit status 2 for gpuhost's commands, never a traceback.

As in test_inputs_cli.py, every inventory points at 127.0.0.1 port 1, where nothing listens: a
command that got past the check would try to connect ("Connecting", an "unreachable" row).
"""

import os
import signal
import subprocess
import sys

from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers of the issue-14 tests beside this file
from test_inputs_cli import BIN, REPO, deploy, gpuhost, host, inventory, refused  # noqa: E402

from gpuhost.plan.matrix import load_matrix  # noqa: E402


def one_line_exit_2(result, *words):
    """gpuhost's rule: exit 2, nothing on stdout, one stderr line holding every word, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr


# --- Values that passed the check but were wrong ------------------------------------------------

BAD_VALUES = [
    ("registry: 'mirror.example.com:99999'", "registry is 'mirror.example.com:99999': port 99999 is out of range: "
                                             "use a TCP port from 1 to 65535"),
    ("toolkit_version: '1.17 .8-1'", "toolkit_version is '1.17 .8-1': use a package version as apt-cache policy "
                                     "shows it"),
    ("target_gpus: ['H100 !!']", "GPU name 'H100 !!' has '!': a GPU name has letters, digits"),
    ('registry_user: "ci\\n"\nregistry_password_file: /etc/hostname', "registry_user is 'ci\\n': it holds the "
                                                                       "control character '\\n': remove it"),
    ('x_note: fine\nmirror_ttl: "168h\\n"', "mirror_ttl is '168h\\n': it holds the control character '\\n'"),
    ('workspaces: [{user: "ann\\t"}]', "workspaces is [{'user': 'ann\\t'}]: it holds the control character '\\t' "
                                       "(in 'ann\\t')"),
    ("registry_user: ci\nregistry_password_env: ''", "registry_password_env is '': use a non-empty quoted string"),
]
BAD_CONNECTION = [
    ("ssh_port: 70000", "ssh_port is the number 70000: use a TCP port from 1 to 65535"),
    ("ssh_port: -22", "ssh_port is the number -22: use a TCP port from 1 to 65535"),
    ("ssh_hostname: ''", "ssh_hostname is '': give the host's address or DNS name, or remove the key"),
    ('ssh_user: "root\\n"', "ssh_user is 'root\\n': it holds the control character '\\n'"),
]


@pytest.fixture(scope="module")
def bad_values_inspect(tmp_path_factory):
    """One `gpuhost inspect` over a fleet whose every host has one of the wrong values above."""
    folder = tmp_path_factory.mktemp("bad-values")
    hosts = "".join(host(f"v{i:02d}", extra) for i, (extra, _) in enumerate(BAD_VALUES))
    hosts += "".join(f"  - name: c{i:02d}\n    ssh_connect_retries: 0\n    {extra}\n"
                     + ("" if "ssh_hostname" in extra else "    ssh_hostname: 127.0.0.1\n")
                     + ("" if "ssh_port" in extra else "    ssh_port: 1\n")
                     for i, (extra, _) in enumerate(BAD_CONNECTION))
    (folder / "hosts.yaml").write_text("hosts:\n" + hosts)
    return gpuhost("inspect", str(folder / "hosts.yaml"))


@pytest.mark.parametrize("case", range(len(BAD_VALUES) + len(BAD_CONNECTION)),
                         ids=[extra for extra, _ in BAD_VALUES + BAD_CONNECTION])
def test_values_that_passed_the_check_are_refused_before_connecting(bad_values_inspect, case):
    result = bad_values_inspect
    assert result.returncode == 2 and "unreachable" not in result.stderr + result.stdout, result.stderr
    name, words = (f"v{case:02d}", BAD_VALUES[case][1]) if case < len(BAD_VALUES) else \
        (f"c{case - len(BAD_VALUES):02d}", BAD_CONNECTION[case - len(BAD_VALUES)][1])
    assert any(line.startswith(f"host {name}: ") and words in line for line in result.stderr.splitlines()), \
        result.stderr


def test_a_trailing_newline_from_a_yaml_block_is_refused_in_the_deploy(tmp_path):
    inv = inventory(tmp_path, host("h1", "registry_user: |\n      ci\nregistry_password_file: /etc/hostname"))
    refused(deploy(inv), "host h1: registry_user is 'ci\\n': it holds the control character '\\n'",
            "a YAML `|` block")


def test_empty_registry_password_env_given_with_data_is_checked(tmp_path):
    inv = inventory(tmp_path, host("h1", "registry_user: ci"))
    refused(deploy(inv, "--data", "registry_password_env="), "registry_password_env is '': use a non-empty",
            "(registry_password_env from --data)")


# --- gpuhost resolve ---------------------------------------------------------------------------


def test_resolve_refuses_an_empty_driver():
    one_line_exit_2(gpuhost("resolve", "--gpu", "H100", "--driver", ""), "--driver is empty",
                    "--driver 580.95.05", "leave --driver out")


@pytest.mark.parametrize("name", ["H100 !!", "H100;", "H100\n"])
def test_resolve_refuses_a_gpu_name_with_trailing_junk(name):
    one_line_exit_2(gpuhost("resolve", "--gpu", name), f"GPU name {name!r} has", "use e.g. H100")


def test_resolve_refuses_a_registry_port_out_of_range():
    one_line_exit_2(gpuhost("resolve", "--gpu", "H100", "--registry", "mirror.example.com:0"),
                    "port 0 is out of range: use a TCP port from 1 to 65535")


def test_no_older_torch_is_advised_when_none_has_a_build():
    """Kepler cc 3.5: no release of the matrix has a build for it; saying "an older --torch" misleads."""
    matrix = load_matrix()
    if any(v.covers("3.5") for r in matrix.releases.values() for v in r.variants):
        pytest.skip("the matrix now has a release with a build for cc 3.5")
    result = gpuhost("resolve", "--gpu", "3.5")
    one_line_exit_2(result, "no torch release in the matrix", "has a CUDA build for compute capability 3.5")
    assert "older --torch" not in result.stderr


def test_an_older_torch_is_named_when_one_has_a_build():
    matrix = load_matrix()
    newest_first = sorted(matrix.releases, key=lambda t: tuple(map(int, t.split("."))), reverse=True)
    covers_volta = [t for t in newest_first if any(v.covers("7.0") for v in matrix.releases[t].variants)]
    if not covers_volta or covers_volta[0] == newest_first[0]:
        pytest.skip("the newest release still covers Volta (cc 7.0), or none does")
    one_line_exit_2(gpuhost("resolve", "--gpu", "7.0", "--torch", newest_first[0]), f"use --torch {covers_volta[0]}",
                    "the newest release with a build for them")


# --- Conventions and arguments -----------------------------------------------------------------


def test_version():
    from gpuhost import __version__

    result = gpuhost("--version")
    assert result.returncode == 0 and result.stdout == f"gpuhost {__version__}\n", result.stdout + result.stderr


def test_a_missing_required_option_says_what_to_give():
    one_line_exit_2(gpuhost("cloud-init", "render"), "Missing option '--package'",
                    "gpuhost==X.Y.Z (with --index-url or --find-links)", "--package-sha256")


def test_cloud_init_refuses_registry_password_env_no_first_boot_has_it(tmp_path):
    (tmp_path / "host.yaml").write_text("registry_user: ci\nregistry_password_env: REGISTRY_PASSWORD\n")
    result = gpuhost("cloud-init", "render", "--data", str(tmp_path / "host.yaml"), "--package", "gpuhost==0.1.0",
                     "--index-url", "https://pypi.example/simple")
    one_line_exit_2(result, "registry_password_env REGISTRY_PASSWORD cannot be read at first boot",
                    "use registry_password_file")


def test_ctrl_c_during_start_up_exits_130_without_a_traceback():
    """SIGINT while `gpuhost resolve` still imports its commands (typer just imported: the import
    times Python prints tell where it is)."""
    proc = subprocess.Popen([str(BIN / "gpuhost"), "resolve", "--gpu", "H100"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    for line in proc.stderr:
        if line.split("|")[-1].strip() == "typer":
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=60)
    said = [line for line in rest.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 130 and said == ["gpuhost: interrupted"], (proc.returncode, said)


# --- gpuhost upgrade: its state file and --canary ------------------------------------------------


def record_text(inventory: str, **changes) -> str:
    """A record as `gpuhost upgrade` writes it (rollout.new_record), with some fields changed or removed."""
    import json

    from gpuhost.fleet import rollout

    record = {**rollout.new_record(inventory, "2026-12-06T10:00:00Z"), **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize("state, words", [
    ("a-directory/", ["--state", "is a directory: give a file in it, e.g. --state"]),
    ('{"name": "my-app", "version": 3}', ["is not a gpuhost upgrade record", "choose another --state file"]),
    ("[1, 2]", ["is not a gpuhost upgrade record"]),
    ('{"kind": "gpuhost-upgrade", "version": 1, "hosts": {}}', ["is damaged: inventory is missing (and 5 more)",
                                                                "--restart to start over"]),
    ({"canary_passed": "no"}, ["is damaged: canary_passed is 'no': input should be a valid boolean"]),
    ({"runs": 5}, ["is damaged: runs is 5: input should be a valid list"]),
    ({"hosts": {"h1": {"result": "done"}}}, ["is damaged: hosts.h1.result is 'done': input should be"]),
    ({"created": ...}, ["is damaged: created is missing"]),
    ('{"kind": "gpuhost-upgrade", "vers', ["is not JSON", "cut short: --restart to start over"]),
])
def test_upgrade_refuses_a_state_file_it_cannot_resume(tmp_path, state, words):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("h1"))
    path = tmp_path / "state.json"
    if isinstance(state, dict):  # gpuhost's own record with these fields changed (... removes one)
        path.write_text(record_text(str(tmp_path / "hosts.yaml"), **state))
    elif state.endswith("/"):
        path = tmp_path / state
        path.mkdir()
    else:
        path.write_text(state)
    one_line_exit_2(gpuhost("upgrade", str(tmp_path / "hosts.yaml"), "--state", str(path)), *words)


def test_upgrade_restart_never_overwrites_a_file_that_is_not_its_record(tmp_path):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("h1"))
    (tmp_path / "app.json").write_text('{"name": "my-app"}')
    one_line_exit_2(gpuhost("upgrade", str(tmp_path / "hosts.yaml"), "--state", str(tmp_path / "app.json"),
                            "--restart"), "is not a gpuhost upgrade record", "never overwrites")
    assert (tmp_path / "app.json").read_text() == '{"name": "my-app"}'


def test_upgrade_refuses_a_state_location_it_cannot_write(tmp_path):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("h1"))
    one_line_exit_2(gpuhost("upgrade", str(tmp_path / "hosts.yaml"), "--state", "/proc/gpuhost-upgrade.json"),
                    "--state /proc/gpuhost-upgrade.json: cannot write", "choose a --state file in a directory you "
                                                                        "can write")


def test_upgrade_refuses_a_canary_larger_than_the_fleet(tmp_path):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("h1") + host("h2"))
    state = tmp_path / "state.json"
    one_line_exit_2(gpuhost("upgrade", str(tmp_path / "hosts.yaml"), "--canary", "3", "--state", str(state)),
                    "--canary 3 is more than the 2 host(s) of this rollout: use --canary 2 or fewer")
    assert not state.exists()


# --- Inventories and group data that are Python; inventory files by name --------------------------

PYTHON_FILES = [  # (file content, words of the one line)
    ('hosts = [("h1", {"ssh_hostname": "127.0.0.1", "ssh_port": 1})]\nraise RuntimeError("rack 4 is gone")\n',
     ["line 2: RuntimeError: rack 4 is gone: fix the file"]),
    ("import sys\nhosts = ['h1']\nsys.exit(3)\n", ["line 3 calls sys.exit(3): remove it"]),
    ('hosts = [("h1", {)]\n', ["line 1: Python syntax error: closing parenthesis ')' does not match"]),
    (b"\x7fELF\x02\x01\x01\x00\xff\xfe", ["is not Python source: byte 0xff at offset 8 is not UTF-8 text"]),
]


def write(path, content):
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def pyinfra_deploy(inv, *args, env=None):
    """The deploy with the repository's config.py, as from the repository root (the README's way)."""
    return subprocess.run([str(BIN / "pyinfra"), "--config", str(REPO / "config.py"), str(inv),
                           str(REPO / "deploys" / "gpu_host.py"), "-y", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(inv).parent, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("case", range(len(PYTHON_FILES)), ids=["raises", "sys.exit", "syntax", "binary"])
def test_a_python_inventory_that_fails_is_one_line_naming_file_and_line(tmp_path, case):
    content, words = PYTHON_FILES[case]
    inv = write(tmp_path / "fleet.py", content)
    one_line_exit_2(gpuhost("inspect", str(inv)), f"inventory {inv}", *words)
    refused(pyinfra_deploy(inv), "--> pyinfra error: inventory", "fleet.py", *words)


@pytest.mark.parametrize("case", range(len(PYTHON_FILES)), ids=["raises", "sys.exit", "syntax", "binary"])
def test_a_group_data_file_that_fails_is_one_line_naming_file_and_line(tmp_path, case):
    content, words = PYTHON_FILES[case]
    inv = inventory(tmp_path, host("h1"))
    (tmp_path / "group_data").mkdir()
    write(tmp_path / "group_data" / "all.py", content.replace("hosts = ", "x_hosts = ") if isinstance(content, str)
          else content)
    refused(deploy(inv), "group_data/all.py", *words)
    one_line_exit_2(gpuhost("inspect", str(tmp_path / "lab.yaml"), cwd=tmp_path), "group_data/all.py", *words)


def test_a_yaml_inventory_given_to_pyinfra_says_how_to_read_it(tmp_path):
    inv = write(tmp_path / "hosts.txt", "hosts:\n" + host("h1"))
    refused(pyinfra_deploy(inv), "hosts.txt line 1: Python syntax error",
            f"GPUHOST_INVENTORY={inv} pyinfra inventories/lab.py")
    one_line_exit_2(gpuhost("inspect", str(inv)), "gpuhost reads a YAML inventory (.yaml or .yml",
                    "rename it, e.g. to hosts.yaml")


def test_a_yaml_inventory_named_in_capitals_is_read_as_yaml(tmp_path):
    inv = write(tmp_path / "HOSTS.YAML", "hosts:\n" + host("h1", "reboots: auto"))
    one_line_exit_2(gpuhost("inspect", str(inv)), "unknown key 'reboots': did you mean reboot?")


def test_a_host_name_with_a_space_is_refused_saying_why(tmp_path):
    (tmp_path / "hosts.yaml").write_text("hosts:\n" + host("'gpu 01'"))
    one_line_exit_2(gpuhost("inspect", str(tmp_path / "hosts.yaml")), "host 'gpu 01' is not a usable host name",
                    "pyinfra would take a name with a space, gpuhost does not", "use e.g. gpu-01")


def test_an_empty_gpuhost_inventory_is_refused(tmp_path):
    result = deploy(inventory(tmp_path, host("h1")), env={"GPUHOST_INVENTORY": ""})
    refused(result, "GPUHOST_INVENTORY is set but empty", "or unset it to read")


def test_an_alias_bomb_is_refused_early(tmp_path):
    levels = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg"))
    (tmp_path / "hosts.yaml").write_text(f"a: &a [{', '.join(['x'] * 9)}]\n{levels}hosts:\n"
                                         + host("h1", "target_gpus: *g"))
    one_line_exit_2(gpuhost("inspect", str(tmp_path / "hosts.yaml")), "is not valid YAML at line 1",
                    "expand to more than 100000 values (a YAML alias bomb?)")


# --- pyinfra's own arguments -------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--data", "torch"], ["--data 'torch' is not key=value: write --data torch=VALUE"]),
    (["--data", "=2.9"], ["--data '=2.9' is not key=value: write --data KEY=VALUE"]),
    (["--limit", "gpu-99"], ["--limit gpu-99: no host of the inventory has that name or group",
                             "use a host name (h1, h2) or a group"]),
    (["--limit", "h1", "--limit", "h3"], ["--limit h3: no host of the inventory"]),
])
def test_pyinfra_arguments_are_one_line_before_connecting(tmp_path, args, words):
    inv = inventory(tmp_path, host("h1") + host("h2"))
    refused(pyinfra_deploy(inv, *args), "--> pyinfra error: ", *words)


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    (tmp_path / "hosts.yaml").write_text("x: &loop [gpu, *loop]\nhosts:\n" + host("h1", "target_gpus: *loop"))
    one_line_exit_2(gpuhost("inspect", str(tmp_path / "hosts.yaml")), "an alias refers to the value it is in")
