"""The YAML inventory, loaded the way pyinfra loads it: groups, group_data, precedence, bad data.

Every test runs pyinfra's own loader (pyinfra_cli.inventory.make_inventory_from_files, what
`pyinfra INVENTORY ...` and `gpuhost inspect` call) on a copy of inventories/lab.py in a temporary
folder, with its own lab.yaml and group_data/; a few run the real CLIs (`pyinfra ... debug-inventory`,
which never connects; `gpuhost inspect`, against 127.0.0.1 port 1, where nothing listens).
No test contacts a host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyinfra.api import Config, State
from pyinfra.api.exceptions import InventoryError
from pyinfra.context import ctx_config, ctx_state
from pyinfra_cli.cli import _get_inventory_pattern_matches
from pyinfra_cli.inventory import make_inventory_from_files

from gpuhost.errors import UsageError
from gpuhost.fleet.inventory_file import load_hosts, load_inventory

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ALL_PY = "driver_branch = 'lts'\nreboot = 'never'\n"


def write(folder: Path, yaml_text: str, group_data: dict[str, str] | None = None) -> Path:
    """A copy of inventories/lab.py with this lab.yaml and these group_data files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "inventories" / "lab.py", folder / "lab.py")
    (folder / "lab.yaml").write_text(textwrap.dedent(yaml_text))
    for name, text in (group_data or {}).items():
        (folder / "group_data").mkdir(exist_ok=True)
        (folder / "group_data" / f"{name}.py").write_text(textwrap.dedent(text))
    return folder / "lab.py"


def pyinfra_inventory(path: Path, override_data=None):
    """What pyinfra's CLI builds before it connects (state and config in context, as it sets them)."""
    state = State()
    state.cwd = str(path.parent)
    with ctx_state.use(state), ctx_config.use(Config()):
        return make_inventory_from_files(str(path), override_data=override_data, cwd=state.cwd)


def problems(path: Path) -> list[str]:
    """The lines pyinfra shows when the inventory module refuses the data."""
    with pytest.raises(InventoryError) as caught:
        pyinfra_inventory(path)
    return str(caught.value).splitlines()


@pytest.fixture(autouse=True)
def _default_inventory_file(monkeypatch):
    monkeypatch.delenv("GPUHOST_INVENTORY", raising=False)


# --- The shipped example --------------------------------------------------------------------------


def test_shipped_example_loads_with_groups_and_group_data():
    inventory = pyinfra_inventory(REPO / "inventories" / "lab.py")
    one, two = inventory.get_host("gpu-01.example.com"), inventory.get_host("gpu-02.example.com")
    assert one.groups == ["h100_nodes", "lab"]
    assert two.groups == ["h100_nodes", "rack2", "canary", "lab"]
    assert [h.name for h in inventory.get_group("canary")] == ["gpu-02.example.com"]
    assert one.data.torch == "2.9"  # group h100_nodes (lab.yaml)
    assert two.data.torch == "2.8"  # the host's own beats its group's
    assert one.data.driver_branch == "lts"  # group_data/all.py
    assert two.data.driver_branch == "production"  # group_data/canary.py beats group_data/all.py
    assert two.data.registry == "mirror.rack2.example.com:5000"  # group rack2
    assert one.data.ssh_user == "root"  # lab.yaml all:


# --- Precedence: --data > host > group > all ------------------------------------------------------

PRECEDENCE_YAML = """\
    all:
      ssh_user: root
      torch: "2.5"
      image_flavour: devel
    groups:
      rack1:
        torch: "2.6"
        registry: mirror.rack1.example.com:5000
      canary: {}
    hosts:
      - name: plain
        ssh_hostname: 127.0.0.1
        ssh_port: 1
      - name: grouped
        ssh_hostname: 127.0.0.1
        ssh_port: 1
        groups: [rack1, canary]
      - name: own
        ssh_hostname: 127.0.0.1
        ssh_port: 1
        groups: [rack1, canary]
        torch: "2.8"
        reboot: never
"""
PRECEDENCE_FILES = {
    "all": "reboot = 'never'\nno_gpu = 'fail'\n",
    "canary": "driver_branch = 'production'\nreboot = 'auto'\n",
}


def test_precedence_is_pyinfras_host_over_group_over_all(tmp_path):
    inventory = pyinfra_inventory(write(tmp_path, PRECEDENCE_YAML, PRECEDENCE_FILES))
    data = {host.name: host.data.dict() for host in inventory}
    # all: lab.yaml's all: plus group_data/all.py
    assert data["plain"]["torch"] == "2.5" and data["plain"]["no_gpu"] == "fail"
    assert data["plain"]["reboot"] == "never" and "registry" not in data["plain"]
    # group beats all: lab.yaml's group (torch) and group_data/canary.py (reboot over all.py's)
    assert data["grouped"]["torch"] == "2.6" and data["grouped"]["reboot"] == "auto"
    assert data["grouped"]["driver_branch"] == "production"
    assert data["grouped"]["image_flavour"] == "devel"  # untouched all: keys stay
    # host beats group
    assert data["own"]["torch"] == "2.8" and data["own"]["reboot"] == "never"


def test_override_data_beats_everything(tmp_path):
    inventory = pyinfra_inventory(write(tmp_path, PRECEDENCE_YAML, PRECEDENCE_FILES), override_data={"torch": "2.7"})
    assert {host.data.torch for host in inventory} == {"2.7"}


def test_pyinfra_cli_debug_inventory_shows_the_same_merge(tmp_path):
    path = write(tmp_path, PRECEDENCE_YAML, PRECEDENCE_FILES)
    result = subprocess.run([str(BIN / "pyinfra"), str(path), "debug-inventory", "--json", "--data", 'torch="2.7"'],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hosts = {h["name"]: h for h in json.loads(result.stdout)}
    assert hosts["grouped"]["groups"] == ["rack1", "canary", "lab"]
    assert hosts["grouped"]["data"]["torch"] == "2.7"  # --data
    assert hosts["grouped"]["data"]["reboot"] == "auto"  # group_data/canary.py over all.py
    assert hosts["own"]["data"]["reboot"] == "never"  # host over group


def test_precheck_merges_exactly_as_pyinfra_does(tmp_path):
    """The inventory module checks each host's merged settings itself (pyinfra loads group_data only
    after it): that merge must be pyinfra's, key for key."""
    path = write(tmp_path, PRECEDENCE_YAML, PRECEDENCE_FILES)
    pyinfra_view = {host.name: host.data.dict() for host in pyinfra_inventory(path)}
    state = State()
    with ctx_state.use(state):
        ours = dict(load_inventory(tmp_path / "lab.yaml", [tmp_path / "group_data"], file_group="lab").hosts)
    assert ours == pyinfra_view


def test_groups_are_pyinfra_groups_for_limit(tmp_path):
    inventory = pyinfra_inventory(write(tmp_path, PRECEDENCE_YAML, PRECEDENCE_FILES))
    limited = _get_inventory_pattern_matches(inventory, ["canary"], "--limit")  # what --limit canary picks
    assert sorted(h.name for h in limited) == ["grouped", "own"]
    assert sorted(h.name for h in inventory.get_group("lab")) == ["grouped", "own", "plain"]  # the file's group
    assert inventory.get_group("rack1") == inventory.get_group("canary")


def test_group_only_in_group_data_and_empty_groups(tmp_path):
    path = write(tmp_path, """\
        groups:
          spare: {}
        hosts:
          - {name: h1, groups: [gpu_a100]}
        """, {"gpu_a100": "torch = '2.9'\n"})
    inventory = pyinfra_inventory(path)
    assert inventory.get_host("h1").data.torch == "2.9"
    assert [h.name for h in inventory.get_group("gpu_a100")] == ["h1"]
    assert inventory.get_group("spare", default=[]) == []  # a group without hosts is accepted; pyinfra lists it not


def test_a_host_may_be_just_a_name(tmp_path):
    inventory = pyinfra_inventory(write(tmp_path, "all: {torch: '2.9'}\nhosts: [h1, h2]\n"))
    assert [(h.name, h.data.torch) for h in inventory] == [("h1", "2.9"), ("h2", "2.9")]


def test_a_host_may_settle_its_groups_clash(tmp_path):
    path = write(tmp_path, """\
        groups:
          a: {torch: "2.8"}
          b: {torch: "2.9"}
        hosts:
          - {name: h1, groups: [a, b], torch: "2.9"}
        """)
    assert pyinfra_inventory(path).get_host("h1").data.torch == "2.9"


def test_same_value_in_yaml_and_group_data_is_fine(tmp_path):
    path = write(tmp_path, 'all: {driver_branch: lts}\nhosts:\n  - {name: h1}\n', {"all": ALL_PY})
    assert pyinfra_inventory(path).get_host("h1").data.driver_branch == "lts"


def test_another_yaml_through_gpuhost_inventory(tmp_path, monkeypatch):
    path = write(tmp_path / "inv", "hosts:\n  - {name: unused}\n")
    other = tmp_path / "elsewhere.yaml"
    other.write_text("hosts:\n  - {name: h9, groups: [g]}\ngroups:\n  g: {torch: '2.7'}\n")
    monkeypatch.setenv("GPUHOST_INVENTORY", str(other))
    inventory = pyinfra_inventory(path)
    assert [h.name for h in inventory] == ["h9"] and inventory.get_host("h9").data.torch == "2.7"


# --- Bad data: refused before any connection, one line per problem -------------------------------

HOST = "ssh_hostname: 127.0.0.1\n    ssh_port: 1"


@pytest.mark.parametrize("yaml_text, files, line", [
    ("hosts:\n  - name: h1\n    reboot: now\n", {}, "host h1: reboot is 'now': use one of auto, never"),
    ("all: {torch: two}\nhosts:\n  - {name: h1}\n", {},
     'host h1: torch is \'two\': use a release X.Y or X.Y.Z, quoted, e.g. "2.9" (torch from lab.yaml:all)'),
    ("groups: {g: {driver_branch: newest}}\nhosts:\n  - {name: h1, groups: [g]}\n", {},
     "host h1: driver_branch is 'newest': use lts, production or a branch number "
     'such as "580" (driver_branch from lab.yaml:groups.g)'),
    ("hosts:\n  - {name: h1, groups: [g]}\n", {"g": "image_flavour = 'fat'\n"},
     "host h1: image_flavour is 'fat': use one of runtime, devel "
     "(image_flavour from group_data/g.py)"),
    ("hosts:\n  - {name: h1}\n", {"all": "reboot = 'sometimes'\n"},
     "host h1: reboot is 'sometimes': use one of auto, never (reboot from group_data/all.py)"),
    ("hosts:\n  - {name: h1, groups: [rack9]}\ngroups: {rack1: {}}\n", {},
     "host h1: group rack9 is not defined: add it under 'groups:' in lab.yaml or create group_data/rack9.py "
     "(groups: rack1)"),
    ("hosts:\n  - {name: h1, groups: rack1}\ngroups: {rack1: {}}\n", {},
     "host h1: groups is 'rack1': use a list of group names, e.g. [rack1]"),
    ("hosts:\n  - {name: h1}\n  - {name: h1}\n", {}, "host h1 is listed twice: merge its entries"),
    ("hosts:\n  - {ssh_hostname: 127.0.0.1}\n", {}, "hosts[0] needs a name, e.g. '- name: gpu-01'"),
    ("host:\n  - {name: h2}\nhosts:\n  - {name: h1}\n", {}, "unknown section 'host': use all, groups, hosts"),
    ("groups: {all: {torch: '2.9'}}\nhosts:\n  - {name: h1}\n", {},
     "group 'all' is reserved: put settings for every host under 'all:'"),
    ("groups: {rack-1: {}}\nhosts:\n  - {name: h1}\n", {},
     "group 'rack-1' is not a usable group name: use letters, digits and _, starting with a letter"),
    ("groups: {rack1: [a, b]}\nhosts:\n  - {name: h1}\n", {},
     "group rack1: its settings must be a mapping ({} for none), got ['a', 'b']"),
    ("groups: {h1: {}}\nhosts:\n  - {name: h1}\n", {},
     "group h1: it is also a host name, so --limit h1 is ambiguous: rename one"),
    ("all: {driver_branch: production}\nhosts:\n  - {name: h1}\n", {"all": ALL_PY},
     "all hosts: driver_branch is 'production' in lab.yaml:all but 'lts' in group_data/all.py: set it in one place"),
    ("groups: {g: {torch: '2.8'}}\nhosts:\n  - {name: h1, groups: [g]}\n", {"g": "torch = '2.9'\n"},
     "group g: torch is '2.8' in lab.yaml:groups.g but '2.9' in group_data/g.py: set it in one place"),
    ("groups: {a: {torch: '2.8'}, b: {torch: '2.9'}}\nhosts:\n  - {name: h1, groups: [a, b]}\n", {},
     "host h1: torch differs between its groups a ('2.8'), b ('2.9'): set it on the host, or in one group"),
    ("hosts:\n  - {name: h1}\n", {"broken": "x = 1 / 0\n"},
     "group_data/broken.py line 1: ZeroDivisionError: division by zero: fix the file (it should only set values)"),
    ("hosts: [[h1]]\n", {}, "hosts[0] needs a name, e.g. '- name: gpu-01'"),
])
def test_bad_data_is_one_line(tmp_path, monkeypatch, yaml_text, files, line):
    monkeypatch.chdir(tmp_path)  # paths in the lines are shown relative to the working directory
    lines = problems(write(tmp_path, yaml_text, files))
    assert len(lines) == 1, lines
    assert lines[0].removeprefix(f"inventory {tmp_path / 'lab.yaml'}: ") == line


@pytest.mark.parametrize("yaml_text, line", [
    # libyaml's C parser and PyYAML's own word the rest differently
    ("hosts: [\n", " is not valid YAML at line 2, column 1: while parsing a flow node"),
    ("hosts: {h1: {}}\n", " needs a 'hosts:' list (see inventories/lab.yaml)"),
])
def test_unreadable_file_is_one_line(tmp_path, yaml_text, line):
    lines = problems(write(tmp_path, yaml_text))
    assert len(lines) == 1 and lines[0].startswith(f"inventory {tmp_path / 'lab.yaml'}{line}"), lines


def test_every_problem_at_once_one_per_line(tmp_path):
    lines = problems(write(tmp_path, """\
        groups:
          rack1: {registry: "not a prefix!"}
        hosts:
          - {name: h1, groups: [rack1], reboot: now}
          - {name: h2, groups: [nope]}
          - {name: h3, no_gpu: maybe}
        """))
    assert lines[0] == "4 problems in the inventory (no host was contacted):"
    assert lines[1].startswith("host h2: group nope is not defined")
    assert lines[2].startswith("host h1: registry is 'not a prefix!': use host[:port][/path]")
    assert lines[2].endswith("(registry from lab.yaml:groups.rack1)")
    assert lines[3] == "host h1: reboot is 'now': use one of auto, never"
    assert lines[4] == "host h3: no_gpu is 'maybe': use one of skip, fail"
    assert len(lines) == 5


def test_missing_yaml_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUHOST_INVENTORY", str(tmp_path / "nope.yaml"))
    lines = problems(write(tmp_path, "hosts: []\n"))
    assert lines == [f"cannot read inventory {tmp_path / 'nope.yaml'}: No such file or directory"]


def test_pyinfra_cli_refuses_before_connecting(tmp_path):
    path = write(tmp_path, f"hosts:\n  - name: h1\n    {HOST}\n    reboot: now\n")
    result = subprocess.run([str(BIN / "pyinfra"), str(path), "fact", "server.Hostname", "-y"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "host h1: reboot is 'now': use one of auto, never" in result.stderr
    assert "Connecting" not in result.stderr and "Traceback" not in result.stderr


# --- gpuhost inspect on the inventory module -----------------------------------------------------


def test_gpuhost_inspect_bad_data_is_one_line(tmp_path):
    path = write(tmp_path, f"groups: {{g: {{torch: two}}}}\nhosts:\n  - name: h1\n    {HOST}\n    groups: [g]\n")
    result = subprocess.run([str(BIN / "gpuhost"), "inspect", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"gpuhost: error: inventory {path}: host h1: torch is 'two': "
                                     'use a release X.Y or X.Y.Z, quoted, e.g. "2.9" (torch from lab.yaml:groups.g)')


def test_gpuhost_inspect_reads_groups_and_group_data(tmp_path):
    """A good inventory: the hosts are tried (nothing listens on 127.0.0.1 port 1), group data reached."""
    path = write(tmp_path, f"groups: {{g: {{}}}}\nhosts:\n  - name: h1\n    {HOST}\n    groups: [g]\n",
                 {"g": "ssh_connect_retries = 0\n"})
    result = subprocess.run([str(BIN / "gpuhost"), "inspect", str(path), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr  # the host was not read
    (host,) = json.loads(result.stdout)["hosts"]
    assert host["host"] == "h1" and host["reachable"] is False
    assert host["error"] == "connection refused: nothing listens on 127.0.0.1:1"


# --- load_hosts: the YAML alone (gpuhost inspect hosts.yaml) --------------------------------------


def test_load_hosts_merges_yaml_layers(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text("all: {torch: '2.5', ssh_user: root}\ngroups: {g: {torch: '2.6'}}\n"
                    "hosts:\n  - {name: a, groups: [g]}\n  - {name: b, groups: [g], torch: '2.8'}\n  - {name: c}\n")
    assert load_hosts(path) == [("a", {"torch": "2.6", "ssh_user": "root"}),
                                ("b", {"torch": "2.8", "ssh_user": "root"}),
                                ("c", {"torch": "2.5", "ssh_user": "root"})]


def test_load_hosts_problems_are_usage_errors(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text("hosts:\n  - {name: a, reboot: now}\n")
    with pytest.raises(UsageError, match=r"^host a: reboot is 'now': use one of auto, never$"):
        load_hosts(path)
