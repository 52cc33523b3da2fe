"""`gpuhost resolve` as a user runs it: the installed console script, in a subprocess."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")


def run(*args):
    return subprocess.run([GPUHOST, *args], capture_output=True, text=True, timeout=60)


def test_json_is_one_object_with_the_documented_shape():
    r = run("resolve", "--gpu", "H100", "--driver", "580.159.04", "--torch", "2.9", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert set(plan) >= {"gpus", "driver", "image", "reasons", "warnings"}
    assert plan["gpus"][0]["compute_capability"] == "9.0"
    assert plan["driver"]["action"] == "keep"
    assert plan["image"] == {"torch": "2.9.1", "cuda": "13.0", "cudnn": "9", "flavour": "runtime",
                             "tag": "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", "driver_min": "580.65.06",
                             "platform": "linux/amd64"}


def test_table_shows_plan_and_reasons():
    r = run("resolve", "--gpu", "V100", "--gpu", "v100", "--torch", "2.9")
    assert r.returncode == 0, r.stderr
    assert "install R580 (proprietary modules)" in r.stdout
    assert "pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime" in r.stdout
    assert "why:" in r.stdout and "warnings:" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--gpu", "K80", "--torch", "2.9"], "torch 2.9 has no CUDA build for Tesla K80"),
    (["--gpu", "B200", "--gpu", "V100"], "no driver flavour drives both"),
    (["--gpu", "Voodoo5"], "unknown GPU 'Voodoo5'"),
    (["--gpu", "H100", "--driver", "latest"], "malformed driver version 'latest'"),
    (["--gpu", "H100", "--torch", "9.9"], "torch 9.9 is not in the compatibility matrix"),
    (["--gpu", "H100", "--flavour", "slim"], "unknown image flavour 'slim'"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    r = run("resolve", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("args,message", [
    (["resolve"], "Missing option '--gpu'"),
    (["resolve", "--gpu", "H100", "--frob", "1"], "No such option: --frob"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_bad_flags_are_one_line_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_data_status_lists_citations_and_fails_once_they_are_stale():
    now = run("data", "status", "--today", "2026-12-01")
    assert now.returncode == 0, now.stderr
    assert "driver_sources.yaml  nvidia" not in now.stdout  # rows are citations, not keys
    assert "debian13-key: the full fingerprint is in no NVIDIA source found" in now.stdout
    assert "ended: R535 (lts) reached end of life on 2026-06-30" in now.stdout
    later = run("data", "status", "--today", "2027-06-01", "--json")
    assert later.returncode == 1
    assert {b["branch"] for b in json.loads(later.stdout)["ended_lts"]} == {595}
