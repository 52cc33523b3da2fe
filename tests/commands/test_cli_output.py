"""The CLI's help and plan output, as a user reads them (the installed console script, in a subprocess):
one placeholder style, real names in usage lines, required options marked, one meaning per word,
the inspect table agreeing with the lines below it."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from facts.snapshot import HostSnapshot
from gpuhost.commands.inspect import HostReading, assess, render_table, warnings_cell

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
COMMANDS = [[], ["resolve"], ["inspect"], ["upgrade"], ["cloud-init"], ["cloud-init", "render"]]
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_|%.\[\]]*$")


@functools.lru_cache(maxsize=None)  # each command line runs once per session: the tests only read it
def run(*args):
    # A wide terminal, so that a line never wraps between an option and its placeholder.
    return subprocess.run([GPUHOST, *args], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TERM": "dumb"})


def option_rows(help_text: str) -> dict[str, str]:
    """{'--gpu': 'GPU', '--json': '', ...}: each option and the placeholder shown beside it."""
    rows = {}
    for line in help_text.splitlines():
        match = re.match(r"^\W*\*?\s*(--[a-z0-9-]+)(?:,?\s+-[a-z])?\s+(\S+)?", line)
        if match:
            word = match.group(2) or ""
            rows[match.group(1)] = word if PLACEHOLDER.match(word) or word.startswith("<") else ""
    return rows


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "gpuhost")
def test_help_has_one_placeholder_style_and_real_names(command):
    r = run(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert not re.search(r"<(bool|str|int|path|list\[[a-z]+\])>", r.stdout), r.stdout
    usage = next(line for line in r.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage and "<" not in usage, usage
    rows = option_rows(r.stdout)
    assert "--help" in rows and rows["--help"] == ""
    for option, placeholder in rows.items():
        assert placeholder == "" or PLACEHOLDER.match(placeholder), (option, placeholder)


def test_flags_have_no_placeholder_and_values_have_one():
    rows = option_rows(run("resolve", "--help").stdout)
    assert rows["--json"] == "" and rows["--no-driver-upgrade"] == ""
    assert (rows["--gpu"], rows["--driver"], rows["--driver-branch"]) == ("GPU", "VERSION", "BRANCH")
    assert option_rows(run("upgrade", "--help").stdout)["--limit"] == "HOST"


def test_usage_lines_name_the_argument():
    for command in ("inspect", "upgrade"):
        usage = next(line for line in run(command, "--help").stdout.splitlines() if "Usage:" in line)
        assert usage.split()[-1] == "INVENTORY", usage
    r = run("inspect")
    assert r.returncode == 2 and "Missing argument 'INVENTORY'" in r.stderr


def test_cloud_init_render_marks_package_required_instead_of_a_default_that_cannot_work():
    r = run("cloud-init", "render")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("gpuhost: error: Missing option '--package'"), r.stderr
    assert r.stderr.count("\n") == 1
    package = next(line for line in run("cloud-init", "render", "--help").stdout.splitlines()
                   if "--package " in line)
    assert re.match(r"^\W*\*\s+--package\s+SPEC", package), package  # typer's mark of a required option


def test_resolve_by_compute_capability_says_each_fact_once():
    r = run("resolve", "--gpu", "6.1")
    assert r.returncode == 0, r.stderr
    gpus = r.stdout.splitlines()[0]
    assert gpus.split(None, 1)[1] == "cc 6.1 Pascal (no model named)"
    assert "compute capability 6.1 (Pascal) (cc 6.1)" not in r.stdout


def test_needs_means_the_images_driver_minimum_only():
    for args in (["--gpu", "H100", "--driver", "580.159.04", "--torch", "2.9"], ["--gpu", "6.1"]):
        lines = run("resolve", *args).stdout.splitlines()
        needs = [line for line in lines if "needs" in line]
        assert len(needs) == 1 and needs[0].startswith("image") and "(needs driver >= " in needs[0], lines
    keep = run("resolve", "--gpu", "H100", "--driver", "580.159.04", "--torch", "2.9").stdout
    assert "image   pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime (needs driver >= 580.65.06)" in keep


def test_inspect_table_agrees_with_the_warnings_below_it():
    """A real snapshot (the lab host with Docker, tests/fixtures/debian12-lab-host) planned for an H100
    on 2026-11-23: the table's WARNINGS cell counts the `!` lines printed below the table."""
    facts = HostSnapshot().process((FIXTURES / "debian12-lab-host/snapshot-docker.out").read_text().splitlines())
    reading = assess(HostReading("build", {"target_gpus": ["H100"], "driver_branch": "535"}, facts),
                     today=date(2026, 11, 23))
    lines = render_table([reading]).splitlines()
    below = [line for line in lines if line.startswith("  ! ")]
    assert below, lines  # R535's end of life is near on that date: a warning
    assert lines[0].split()[-1] == "WARNINGS" and lines[1].endswith(f" {len(below)} below"), lines
    assert warnings_cell([], []) == "-"
    assert warnings_cell([], ["branch R535 reaches end of life"]) == "1 below"
    assert warnings_cell(["apt-locked"], ["a", "b"]) == "apt-locked,2 below"
