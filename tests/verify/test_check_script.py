"""The torch check script: importable without torch, one JSON line on stdout, real CPU-torch runs.

Tests that need torch run it in a subprocess with a Python that has it: $GPUHOST_TORCH_PYTHON, else
/tmp/torchvenv/bin/python (a venv holding the CPU wheel from /opt/wheels), else they are skipped.
The project venv itself stays without torch, which is also what the no-torch tests rely on.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost.verify.check import SCRIPT
from gpuhost.verify.check import torch_check as tc
from gpuhost.verify.causes import classify

CHECK_DIR = str(SCRIPT.parent)


def _torch_python():
    for candidate in (os.environ.get("GPUHOST_TORCH_PYTHON"), "/tmp/torchvenv/bin/python"):
        if candidate and Path(candidate).exists():
            find = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
            probe = subprocess.run([candidate, "-c", find], capture_output=True)
            if probe.returncode == 0:
                return candidate
    return None


TORCH_PYTHON = _torch_python()
NO_TORCH = "no Python with torch (set GPUHOST_TORCH_PYTHON)"
needs_torch = pytest.mark.skipif(TORCH_PYTHON is None, reason=NO_TORCH)


def run_script(python, *args, cwd="/tmp"):
    done = subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be exactly one JSON line, got: {done.stdout!r}"
    return done, json.loads(lines[0])


# ---------------------------------------------------------------- pure parts, imported directly

def test_module_imports_without_torch():
    assert "torch" not in sys.modules  # the project venv has no torch: nothing pulled it in
    assert SCRIPT.name == "torch_check.py" and SCRIPT.exists()


CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


@pytest.mark.parametrize("arch_list, cc, covered, by, mode", [
    (CU130, (9, 0), True, "sm_90", "cubin"),          # H100
    (CU130, (8, 9), True, "sm_86", "cubin"),          # L40S: best cubin of the same major
    (CU130, (8, 0), True, "sm_80", "cubin"),
    (["sm_86"], (8, 0), False, None, None),           # a later minor never runs on an earlier one
    (CU130, (10, 3), True, "sm_100", "cubin"),        # B300
    (CU130, (12, 1), True, "sm_120", "cubin"),        # GB10
    (CU130, (7, 0), False, None, None),               # V100 on cu130
    (["sm_90"], (10, 0), False, None, None),          # cubins never cross majors
    (["sm_80", "compute_90"], (10, 0), True, "compute_90", "ptx-jit"),  # PTX does, by JIT
    (["compute_90"], (8, 6), False, None, None),      # PTX never runs on an older GPU
    (["sm_80", "sm_90", "compute_90"], (9, 0), True, "sm_90", "cubin"),  # cubin before PTX
    (["sm_90a"], (9, 0), True, "sm_90a", "cubin"),
    (["sm_90a"], (9, 1), False, None, None),          # arch-specific: exactly 9.0
    (["sm_100f"], (10, 3), True, "sm_100f", "cubin"),  # family-specific: 10.x from 10.0
    ([], (9, 0), False, None, None),
    (["sm_9", "garbage", "sm_80"], (8, 6), True, "sm_80", "cubin"),
])
def test_arch_coverage(arch_list, cc, covered, by, mode):
    result = tc.arch_coverage(arch_list, cc)
    assert (result["covered"], result["by"], result["mode"]) == (covered, by, mode)
    assert result["ok"] is covered
    assert result["capability"] == "%d.%d" % cc
    if not covered:
        assert "sm_%d%d is not in this PyTorch's arch list" % cc in result["message"]


def test_uncovered_gpu_is_classified_as_arch_not_in_image():
    gpu = {"index": 0, "ok": False, "arch": tc.arch_coverage(CU130, (7, 0)), "checks": {}}
    error = tc._first_error({"gpus": [gpu], "allreduce": None})
    report = {"ok": False, "error": error, "gpus": [gpu]}
    verdict = classify(1, json.dumps(report), "")
    assert verdict.cause == "arch_not_in_image"
    assert "sm_70" in verdict.evidence


def test_wrong_result_and_gpu_count_messages_are_classified():
    gpu = {"index": 1, "ok": False, "arch": tc.arch_coverage(CU130, (9, 0)),
           "checks": {"matmul": {"ok": False, "dtypes": {"bf16": {"ok": False, "rel_err": 0.9}}}}}
    wrong = tc._first_error({"gpus": [gpu]})
    assert classify(1, json.dumps({"ok": False, "error": wrong}), "").cause == "wrong_results"
    message = tc.gpu_count_message(8, 7)
    count = {"ok": False, "error": {"type": "GpuCountMismatch", "message": message}}
    assert classify(1, json.dumps(count), "").cause == "gpu_count_mismatch"


@pytest.mark.parametrize("name, model, bf16", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM5", 989.0),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", "H100 NVL", 835.0),
    ("NVIDIA H200", "H200 SXM", 989.0),
    ("NVIDIA GH200 480GB", "GH200", 989.0),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
    ("NVIDIA A100 80GB PCIe", "A100", 312.0),
    ("NVIDIA A10", "A10", 125.0),
    ("NVIDIA L40S", "L40S", 362.05),
    ("NVIDIA L40", "L40", 181.05),
    ("NVIDIA L4", "L4", 121.0),
    ("Tesla T4", "T4", None),
    ("Tesla V100-PCIE-16GB", "V100 PCIe", None),
])
def test_expected_tflops_table(name, model, bf16):
    ref = tc.expected_tflops(name)
    assert (ref["model"], ref["bf16"]) == (model, bf16)
    assert ref["fp16"] and ref["source"]


def test_unknown_model_has_no_reference():
    assert tc.expected_tflops("NVIDIA A10G") is None  # AWS part: no public dense figure kept
    assert tc.expected_tflops("NVIDIA GeForce RTX 5090") is None
    assert all(row[4] for row in tc.EXPECTED_TFLOPS)


def test_cudnn_version_string():
    assert tc.cudnn_version_string(91002) == "9.10.2"
    assert tc.cudnn_version_string(8907) == "8.9.7"
    assert tc.cudnn_version_string(None) is None


# ---------------------------------------------------------------- the script as a process

def test_without_torch_prints_one_json_object_and_exits_2():
    done, report = run_script(sys.executable, "--quick")
    assert done.returncode == 2
    assert report["ok"] is False and report["exit_code"] == 2
    assert report["error"]["stage"] == "import_torch"
    assert report["error"]["type"] == "ModuleNotFoundError"
    assert classify(done.returncode, done.stdout, done.stderr).cause == "torch_missing"


def test_stdout_carries_only_the_json_even_when_libraries_print():
    # Python prints and a C-level write (a child process) inside the run land on stderr.
    code = (
        "import os, sys; sys.path.insert(0, %r); import torch_check as tc\n"
        "def noisy(args):\n"
        "    print('python noise'); os.system('echo c-level noise')\n"
        "    return {'ok': True, 'exit_code': 0}\n"
        "tc.run = noisy\n"
        "sys.exit(tc.main([]))\n" % CHECK_DIR)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout == '{"ok": true, "exit_code": 0}\n'
    assert "python noise" in done.stderr and "c-level noise" in done.stderr


def test_bad_flag_is_an_argparse_error_not_a_traceback():
    done = subprocess.run([sys.executable, str(SCRIPT), "--expect-gpus", "two"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "invalid int value: 'two'" in done.stderr and "Traceback" not in done.stderr


@needs_torch
def test_cpu_torch_reports_no_gpu_visible():
    done, report = run_script(TORCH_PYTHON, "--quick", "--expect-gpus", "1")
    assert done.returncode == 2
    assert report["schema"] == tc.SCHEMA
    assert report["torch"].endswith("+cpu") and report["cuda"] is None
    assert report["gpu_count"] == 0 and report["gpus"] == [] and report["arch_list"] == []
    assert report["expected_gpus"] == 1
    assert report["error"]["type"] == "NoGpuVisible"
    assert "no CUDA support" in report["error"]["message"]
    assert set(report["timings_s"]) >= {"driver", "import_torch", "cuda_init", "total"}
    assert {"version", "cuda_driver"} <= set(report["driver"])
    verdict = classify(done.returncode, done.stdout, done.stderr)
    assert verdict.cause == "no_gpu_visible"


# The script's compute checks, run for real on CPU tensors in one torch subprocess (spawn included).
PROBE = r"""
import json, sys
sys.path.insert(0, %(dir)r)
import torch
import torch_check as tc

def main():
    cpu = torch.device("cpu")
    out = {}
    out["matmul"] = tc._timed(tc.check_matmul, torch, cpu, (9, 0), 128)
    out["matmul_pre_ampere"] = tc._timed(tc.check_matmul, torch, cpu, (7, 5), 64)
    out["conv"] = tc._timed(tc.check_conv, torch, cpu, 2)
    sizes = {"start_n": 64, "max_n": 256, "budget_s": 0.05}
    out["throughput_h100"] = tc._timed(tc.check_throughput, torch, cpu, "NVIDIA H100 80GB HBM3",
                                       (9, 0), sizes, 0.5)
    out["throughput_unknown"] = tc._timed(tc.check_throughput, torch, cpu, "Some GPU", (8, 0),
                                          sizes, 0.5)
    wrong = torch.ones(4, 4)
    out["rel_err_nan"] = tc.relative_error(torch, wrong * float("nan"), wrong.double())
    out["rel_err_off"] = tc.relative_error(torch, wrong * 2, wrong.double())
    out["allreduce"] = tc.check_allreduce(2, True, backend="gloo")
    out["allreduce_deadline"] = tc.check_allreduce(2, True, backend="gloo", deadline_s=0.2)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    if TORCH_PYTHON is None:
        pytest.skip(NO_TORCH)
    path = tmp_path_factory.mktemp("probe") / "probe.py"
    path.write_text(PROBE % {"dir": CHECK_DIR})
    done = subprocess.run([TORCH_PYTHON, str(path)], capture_output=True, text=True, timeout=180,
                          cwd="/tmp")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_matmul_check_agrees_with_float64(probe):
    check = probe["matmul"]
    assert check["ok"] and check["n"] == 128
    for name, entry in check["dtypes"].items():
        assert entry["ok"] and 0 <= entry["rel_err"] < entry["tol"], name
    assert probe["matmul_pre_ampere"]["dtypes"]["bf16"]["skipped"]
    assert probe["matmul_pre_ampere"]["dtypes"]["fp16"]["ok"]


def test_relative_error_catches_nan_and_wrong_values(probe):
    assert probe["rel_err_nan"] == float("inf")  # json turns inf into Infinity and back
    assert probe["rel_err_off"] == pytest.approx(1.0)


def test_conv_check_agrees_with_float64(probe):
    check = probe["conv"]
    assert check["ok"] and check["shape"] == [2, 32, 32, 32]
    assert set(check["dtypes"]) == {"fp32", "fp16"}
    assert all(e["rel_err"] < e["tol"] for e in check["dtypes"].values())


def test_throughput_far_below_the_model_figure_is_flagged(probe):
    check = probe["throughput_h100"]  # a CPU is nowhere near an H100
    assert check["ok"] is False and check["model"] == "H100 SXM5"
    for entry in check["dtypes"].values():
        assert entry["expected_tflops"] == 989.0 and entry["ratio"] < 0.5 and entry["iters"] >= 5
    verdict = classify(1, json.dumps({"ok": False, "error": check["error"]}), "")
    assert verdict.cause == "throughput_low"


def test_throughput_of_an_unknown_model_is_reported_not_judged(probe):
    check = probe["throughput_unknown"]
    assert check["ok"] is True and check["model"] is None and "no reference figure" in check["note"]
    assert check["dtypes"]["bf16"]["iters"] >= 5 and check["dtypes"]["bf16"]["seconds"] > 0


def test_allreduce_sums_across_spawned_processes(probe):
    result = probe["allreduce"]
    assert result["ok"], result
    assert [r["rank"] for r in result["ranks"]] == [0, 1]
    assert all(r["sum_ok"] and r["busbw_gbps"] >= 0 for r in result["ranks"])
    assert result["init_method"].startswith("tcp://127.0.0.1:")


def test_allreduce_past_its_deadline_fails_and_is_classified(probe):
    result = probe["allreduce_deadline"]
    assert result["ok"] is False
    assert result["error"]["type"] == "Timeout"
    report = {"ok": False, "allreduce": result, "error": result["error"]}
    verdict = classify(1, json.dumps(report), "")
    assert verdict.cause == "allreduce_failed"


def test_temporary_files_go_to_the_first_writable_directory(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert tc.writable_tmp((None, "/nonexistent", str(a_file), str(tmp_path))) == str(tmp_path)
    assert tc.writable_tmp((None, "/nonexistent")) is None
