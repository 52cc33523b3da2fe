"""Fast checks of the lab's pure parts (no Docker): inventory, host specs, recipe hash,
reading pyinfra's output. The e2e tests in tests/e2e exercise the rest for real."""

from __future__ import annotations

import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from gpuhost.errors import UsageError
from gpuhost.lab import image
from gpuhost.lab.hosts import HostSpec, LabHost
from gpuhost.lab.inventory import GROUP, write_inventory
from gpuhost.lab.results import changed, host_statuses

# Real output of `pyinfra <lab inventory> deploys/gpu_host.py -y` (pyinfra 3.10, two lab hosts,
# one with no_gpu=fail), captured from a lab run on 2025-11-23; trimmed to the status lines.
# pyinfra pads host names to the longest one, hence "[h1]  Success".
PYINFRA_OUTPUT = """\
--> Connecting to hosts...
    [h1]  Connected
    [h22] Connected
--> Starting operation: gpuhost state directory 
    [h1]  No changes
    [h22] Success
--> Starting operation: Write the gpuhost report 
    [h1]  No changes
    [h22] Success
--> Starting operation: Stop: no NVIDIA GPU found on the PCI bus and no target_gpus declared 
    [h1]  Skipped
    [h22] Unexpected error in Python callback: RuntimeError('no NVIDIA GPU found')
    [h22] Error: executed 0 commands
"""


def test_statuses_are_counted_per_host():
    statuses = host_statuses(PYINFRA_OUTPUT)
    assert statuses["h1"]["No changes"] == 2 and statuses["h1"]["Success"] == 0
    assert statuses["h1"]["Skipped"] == 1
    assert statuses["h22"]["Success"] == 2 and statuses["h22"]["Error"] == 1
    assert changed(PYINFRA_OUTPUT, "h1") == 0
    assert changed(PYINFRA_OUTPUT) == 2


def test_colour_codes_do_not_hide_statuses():
    assert changed("    [h1] \x1b[32mSuccess\x1b[0m\n", "h1") == 1


def _host(name: str, port: int, data: dict, tmp_path: Path) -> LabHost:
    return LabHost(spec=HostSpec(name, data), container=f"c-{name}", port=port, ip="172.18.0.2",
                   key_path=tmp_path / "id_ed25519")


def test_inventory_is_a_pyinfra_python_inventory_with_host_data(tmp_path):
    hosts = [_host("h1", 32801, {"target_gpus": ["H100"], "no_gpu": "fail"}, tmp_path),
             _host("h2", 32802, {}, tmp_path)]
    path = write_inventory(tmp_path / "inventory.py", hosts, "abcd1234")
    group = runpy.run_path(str(path))[GROUP]
    assert [name for name, _ in group] == ["h1", "h2"]
    h1 = dict(group)["h1"]
    assert h1["target_gpus"] == ["H100"] and h1["no_gpu"] == "fail"
    assert (h1["ssh_hostname"], h1["ssh_port"], h1["ssh_user"]) == ("127.0.0.1", 32801, "root")
    assert h1["ssh_key"] == str(tmp_path / "id_ed25519")
    assert h1["ssh_known_hosts_file"] == str(tmp_path / "known_hosts")


def test_connection_data_wins_over_host_data(tmp_path):
    hosts = [_host("h1", 32801, {"ssh_port": 22}, tmp_path)]
    group = runpy.run_path(str(write_inventory(tmp_path / "inv.py", hosts, "x")))[GROUP]
    assert group[0][1]["ssh_port"] == 32801


def test_host_data_that_is_not_a_literal_is_one_clear_error(tmp_path):
    hosts = [_host("h1", 32801, {"when": object()}, tmp_path)]
    with pytest.raises(UsageError, match="plain Python literals"):
        write_inventory(tmp_path / "inv.py", hosts, "x")


@pytest.mark.parametrize("name", ["H1", "1host", "host_1", "", "a" * 40, "h1;rm"])
def test_bad_host_names_are_refused(name):
    with pytest.raises(UsageError, match="lab host name"):
        HostSpec(name)


def test_recipe_hash_follows_the_recipe(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe"
    shutil.copytree(image.RECIPE, recipe)
    monkeypatch.setattr(image, "RECIPE", recipe)
    before = image.recipe_hash()
    assert image.recipe_hash() == before  # stable
    with open(recipe / "packages.txt", "a") as handle:
        handle.write("# a comment changes nothing\n")
    assert image.recipe_hash() == before
    with open(recipe / "packages.txt", "a") as handle:
        handle.write("jq\n")
    assert "jq" in image.packages()
    after_packages = image.recipe_hash()
    assert after_packages != before
    (recipe / "setup.sh").write_text((recipe / "setup.sh").read_text() + "\ntrue\n")
    assert image.recipe_hash() not in (before, after_packages)


def test_the_bench_writes_to_a_git_ignored_folder_unless_asked():
    bench = runpy.run_path(str(Path(__file__).parents[2] / "bench" / "converge.py"), run_name="bench")
    default, figures = bench["results_path"](10, False), bench["results_path"](10, True)
    assert figures.parent.name == "results" and default.parent.name == "out"
    repo = Path(__file__).parents[2]
    ignored = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", str(default)])
    committed = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", str(figures)])
    assert (ignored.returncode, committed.returncode) == (0, 1)
