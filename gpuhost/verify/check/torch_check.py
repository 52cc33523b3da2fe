#!/usr/bin/env python3
"""Prove that PyTorch really computes on every GPU of this machine; print one JSON object.

Usage: python3 torch_check.py [--quick] [--expect-gpus N] [--min-throughput-ratio R]

Runs inside the PyTorch image (read-only root, no network, least privilege) or directly with a
host's PyTorch. Standard library and torch only; torch is imported inside functions so that the
host side and the tests can import this file without torch.

Checks, each timed: versions (torch, CUDA, cuDNN, arch list, driver); per GPU: name, compute
capability, memory, whether the image's arch list covers it, a matrix product and a cuDNN
convolution checked against the CPU, bf16/fp16 matmul TFLOP/s against the model's dense figure;
an NCCL all-reduce across GPUs when there are two or more.

stdout carries exactly one JSON object, also on failure ({"ok": false, "error": {...}}); anything
else (library warnings, NCCL logs) goes to stderr. Exit status: 0 all checks passed, 1 a check
failed, 2 torch or CUDA not usable (no GPU visible included).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import re
import socket
import sys
import time
import traceback
import warnings

SCHEMA = "gpuhost.torch_check/1"

EXIT_OK, EXIT_CHECK_FAILED, EXIT_UNUSABLE = 0, 1, 2

# NVLink SHARP (NVLS) multicast must stay off on the lent device machines, and is harmless to
# disable elsewhere for a correctness check. Set before torch/NCCL start, inherited by workers.
NCCL_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
# Caches and temporary files go to the first writable of $TMPDIR, /tmp, /dev/shm: under a read-only
# root without a --tmpfs /tmp, Docker's /dev/shm is still writable (torch.multiprocessing.spawn
# needs a temporary file per worker). Nothing is downloaded.
TMP_CANDIDATES = (os.environ.get("TMPDIR"), "/tmp", "/dev/shm")
CACHE_ENV = {
    "TORCH_HOME": "torch",
    "XDG_CACHE_HOME": "cache",
    "CUDA_CACHE_PATH": "nv-compute-cache",
    "TRITON_CACHE_DIR": "triton",
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
}

# Relative (Frobenius) error allowed against the float64 CPU product of the same rounded inputs.
# fp32 allows TF32 (cuDNN uses it by default); fp16/bf16 allow reduced-precision reductions.
MATMUL_TOLERANCE = {"fp32": 2e-3, "fp16": 5e-3, "bf16": 2e-2}
CONV_TOLERANCE = {"fp32": 5e-3, "fp16": 5e-3}

# Sizes: the correctness matmul is n x n; the throughput matmul grows from start_n up to max_n
# while cheap, then runs for about budget_s per dtype (~1 s: an H100 does 8192^2 bf16 in ~1.5 ms).
FULL = {"matmul_n": 1024, "conv_batch": 16, "start_n": 2048, "max_n": 8192, "budget_s": 1.0}
QUICK = {"matmul_n": 256, "conv_batch": 4, "start_n": 2048, "max_n": 4096, "budget_s": 0.25}

# Expected dense (no sparsity) tensor-core TFLOP/s per GPU model, matched in order against
# torch.cuda.get_device_name(). Datasheets quote sparse figures; dense is half of them.
# (pattern, model, bf16, fp16, source); None: the model has no such tensor-core path.
# Sources are NVIDIA's product datasheets; "N sparse" is the datasheet's with-sparsity figure.
_H100 = "NVIDIA H100 datasheet (nvidia.com/en-us/data-center/h100): "
_H200 = "NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200): "
EXPECTED_TFLOPS = [
    (r"\bGH200\b", "GH200", 989.0, 989.0,
     "NVIDIA GH200 Grace Hopper Superchip datasheet: FP16/BF16 1,979 sparse"),
    (r"\bH200 NVL\b", "H200 NVL", 835.0, 835.0, _H200 + "H200 NVL BF16/FP16 1,671 sparse"),
    (r"\bH200\b", "H200 SXM", 989.0, 989.0, _H200 + "H200 SXM BF16/FP16 1,979 sparse"),
    (r"\bH100 NVL\b", "H100 NVL", 835.0, 835.0, _H100 + "H100 NVL BF16/FP16 1,671 sparse"),
    (r"\bH100 PCIe\b", "H100 PCIe", 756.0, 756.0, _H100 + "H100 PCIe BF16/FP16 1,513 sparse"),
    (r"\bH100\b", "H100 SXM5", 989.0, 989.0, _H100 + "H100 SXM BF16/FP16 1,979 sparse"),
    (r"\bA100\b", "A100", 312.0, 312.0,
     "NVIDIA A100 datasheet (nvidia.com/en-us/data-center/a100): BF16/FP16 312, 624 sparse"),
    (r"\bA30\b", "A30", 165.0, 165.0, "NVIDIA A30 datasheet: BF16/FP16 165, 330 sparse"),
    (r"\bA40\b", "A40", 149.7, 149.7, "NVIDIA A40 datasheet: BF16/FP16 149.7, 299.4 sparse"),
    (r"\bA10\b", "A10", 125.0, 125.0, "NVIDIA A10 datasheet: BF16/FP16 125, 250 sparse"),
    (r"\bL40S\b", "L40S", 362.05, 362.05, "NVIDIA L40S datasheet: BF16/FP16 362.05, 733 sparse"),
    (r"\bL40\b", "L40", 181.05, 181.05, "NVIDIA L40 datasheet: BF16/FP16 181.05, 362.1 sparse"),
    (r"\bL4\b", "L4", 121.0, 121.0, "NVIDIA L4 datasheet: BF16/FP16 242 sparse"),
    (r"\bT4\b", "T4", None, 65.0,
     "NVIDIA T4 datasheet: mixed precision (FP16/FP32) 65; no BF16 tensor cores"),
    (r"\bV100\b.*PCIE", "V100 PCIe", None, 112.0,
     "NVIDIA V100 datasheet: PCIe tensor performance 112; no BF16 tensor cores"),
    (r"\bV100\b", "V100 SXM2", None, 125.0,
     "NVIDIA V100 datasheet: SXM2 tensor performance 125; no BF16 tensor cores"),
]


# ---------------------------------------------------------------- pure helpers (no torch)

_ARCH_RE = re.compile(r"^(sm|compute)_(\d+)([af]?)$")


def parse_arch(entry: str):
    """'sm_90' -> ('sm', 9, 0, ''); 'compute_120' -> ('compute', 12, 0, ''); else None."""
    match = _ARCH_RE.match(entry.strip())
    if not match or len(match.group(2)) < 2:
        return None
    kind, digits, suffix = match.groups()
    return kind, int(digits[:-1]), int(digits[-1]), suffix


def arch_coverage(arch_list, capability) -> dict:
    """Whether a build with `arch_list` runs on a GPU of compute capability (major, minor).

    A cubin sm_XY runs on CC X.Z for Z >= Y (same major only); 'a' variants (sm_90a) run on
    exactly X.Y, 'f' variants (sm_100f) on the family X.Z, Z >= Y. PTX compute_XY is JIT-compiled
    by the driver for any CC >= X.Y ('a' PTX: exactly X.Y). Cubins are preferred over PTX.
    """
    major, minor = int(capability[0]), int(capability[1])
    cubin = None
    ptx = None
    for entry in arch_list or ():
        parsed = parse_arch(entry)
        if parsed is None:
            continue
        kind, emaj, emin, suffix = parsed
        if suffix == "a":
            fits = (emaj, emin) == (major, minor)
        elif kind == "sm" or suffix == "f":
            fits = emaj == major and emin <= minor
        else:  # plain PTX: forward compatible across majors
            fits = (emaj, emin) <= (major, minor)
        if not fits:
            continue
        if kind == "sm":
            if cubin is None or parse_arch(cubin)[1:3] < (emaj, emin):
                cubin = entry
        elif ptx is None or parse_arch(ptx)[1:3] < (emaj, emin):
            ptx = entry
    cc = "%d.%d" % (major, minor)
    if cubin:
        return {"ok": True, "covered": True, "by": cubin, "mode": "cubin", "capability": cc}
    if ptx:
        return {"ok": True, "covered": True, "by": ptx, "mode": "ptx-jit", "capability": cc}
    listed = list(arch_list or [])
    message = "sm_%d%d is not in this PyTorch's arch list %s" % (major, minor, listed)
    return {"ok": False, "covered": False, "by": None, "mode": None, "capability": cc,
            "message": message}


def expected_tflops(gpu_name: str):
    """The reference row for a device name, as a dict, or None for models not in the table."""
    for pattern, model, bf16, fp16, source in EXPECTED_TFLOPS:
        if re.search(pattern, gpu_name, re.IGNORECASE):
            return {"model": model, "bf16": bf16, "fp16": fp16, "source": source}
    return None


def cudnn_version_string(raw):
    """91002 -> '9.10.2' (cuDNN 9 encoding), 8907 -> '8.9.7' (cuDNN 8), None -> None."""
    if not raw:
        return None
    raw = int(raw)
    if raw >= 90000:
        return "%d.%d.%d" % (raw // 10000, raw % 10000 // 100, raw % 100)
    return "%d.%d.%d" % (raw // 1000, raw % 1000 // 100, raw % 100)


def gpu_count_message(expected: int, found: int) -> str:
    return "expected %d GPUs, PyTorch sees %d" % (expected, found)


def error_dict(exc: BaseException, stage: str) -> dict:
    """Exception type and message (what the host side classifies), plus a short traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"stage": stage, "type": type(exc).__name__, "message": str(exc).strip(),
            "traceback": tb[-2000:]}


def relative_error(torch, got, ref) -> float:
    """||got - ref|| / ||ref|| in float64 on the CPU; NaN/Inf in `got` gives inf."""
    got = got.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(got).all()):
        return float("inf")
    return float((got - ref).norm() / ref.norm())


# float64 CPU results, computed once and shared by every GPU (the inputs are seeded, so equal).
_CPU_REFERENCES = {}


def _timed(fn, *args) -> dict:
    """Run one check: its result dict with "seconds"; an exception becomes ok=False + error."""
    start = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none crashes the run
        result = {"ok": False, "error": error_dict(exc, getattr(fn, "__name__", "check"))}
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result


# ---------------------------------------------------------------- driver (ctypes, cheap)

def driver_info() -> dict:
    """Driver version through NVML and the CUDA driver API, without initializing CUDA."""
    info = {"version": None, "cuda_driver": None}
    try:
        with open("/proc/driver/nvidia/version") as handle:
            info["proc_version"] = handle.readline().strip()
    except OSError:
        pass
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        value = ctypes.c_int(0)
        rc = libcuda.cuDriverGetVersion(ctypes.byref(value))
        if rc == 0:
            info["cuda_driver"] = "%d.%d" % (value.value // 1000, value.value % 1000 // 10)
        else:
            info["cuda_driver_error"] = "cuDriverGetVersion returned %d" % rc
    except (OSError, AttributeError) as exc:
        info["libcuda"] = "not loadable: %s" % exc
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        nvml.nvmlErrorString.restype = ctypes.c_char_p
        rc = nvml.nvmlInit_v2()
        if rc != 0:
            reason = (nvml.nvmlErrorString(rc) or b"").decode(errors="replace")
            info["nvml_error"] = "nvmlInit_v2 failed (%d): %s" % (rc, reason)
        else:
            buf = ctypes.create_string_buffer(96)
            if nvml.nvmlSystemGetDriverVersion(buf, ctypes.c_uint(96)) == 0:
                info["version"] = buf.value.decode(errors="replace")
            nvml.nvmlShutdown()
    except (OSError, AttributeError) as exc:
        info["nvml"] = "not loadable: %s" % exc
    return info


# ---------------------------------------------------------------- per-GPU checks (torch)

def check_matmul(torch, device, capability, n: int) -> dict:
    """fp32/fp16/bf16 products on the GPU against float64 products of the same inputs on the CPU."""
    gen = torch.Generator().manual_seed(1234)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    dtypes = [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)]
    results = {}
    for name, dtype in dtypes:
        if dtype is torch.bfloat16 and capability[0] < 8:
            results[name] = {"ok": True, "skipped": "bf16 needs compute capability 8.0 or newer"}
            continue
        a_low, b_low = a.to(dtype), b.to(dtype)
        key = ("matmul", n, name)
        if key not in _CPU_REFERENCES:
            _CPU_REFERENCES[key] = a_low.double() @ b_low.double()
        ref = _CPU_REFERENCES[key]
        got = a_low.to(device) @ b_low.to(device)
        err = relative_error(torch, got, ref)
        tol = MATMUL_TOLERANCE[name]
        results[name] = {"ok": math.isfinite(err) and err <= tol, "rel_err": err, "tol": tol}
    return {"ok": all(r["ok"] for r in results.values()), "n": n, "dtypes": results}


def check_conv(torch, device, batch: int) -> dict:
    """A cuDNN 3x3 convolution (fp32 and fp16) against the float64 CPU result."""
    if device.type == "cuda" and not torch.backends.cudnn.is_available():
        return {"ok": False, "error": {"stage": "check_conv", "type": "CudnnUnavailable",
                                       "message": "cuDNN is not available in this PyTorch"}}
    conv2d = torch.nn.functional.conv2d
    gen = torch.Generator().manual_seed(4321)
    x = torch.randn(batch, 32, 32, 32, generator=gen)
    w = torch.randn(64, 32, 3, 3, generator=gen)
    bias = torch.randn(64, generator=gen)
    results = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        xl, wl, bl = x.to(dtype), w.to(dtype), bias.to(dtype)
        key = ("conv", batch, name)
        if key not in _CPU_REFERENCES:
            _CPU_REFERENCES[key] = conv2d(xl.double(), wl.double(), bl.double(), padding=1)
        ref = _CPU_REFERENCES[key]
        got = conv2d(xl.to(device), wl.to(device), bl.to(device), padding=1)
        err = relative_error(torch, got, ref)
        tol = CONV_TOLERANCE[name]
        results[name] = {"ok": math.isfinite(err) and err <= tol, "rel_err": err, "tol": tol}
    return {"ok": all(r["ok"] for r in results.values()),
            "cudnn_enabled": bool(torch.backends.cudnn.enabled),
            "shape": [batch, 32, 32, 32], "dtypes": results}


def _matmul_seconds(torch, a, b, out, iters: int) -> float:
    """Seconds for `iters` back-to-back products, timed with CUDA events on the current stream."""
    if not a.is_cuda:  # CPU tensors (the tests): wall clock
        start = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b, out=out)
        return time.perf_counter() - start
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        torch.matmul(a, b, out=out)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def measure_tflops(torch, device, dtype, start_n: int, max_n: int, budget_s: float) -> dict:
    """Achieved dense matmul TFLOP/s: grow n while it stays cheap, warm up, then time ~budget_s."""
    n = start_n
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        _matmul_seconds(torch, a, b, out, 2)  # warm-up: cuBLAS handles, heuristics, clocks
        per_iter = _matmul_seconds(torch, a, b, out, 3) / 3
        # The next size costs 8x per product: grow only while 20 of those fit in the budget.
        if n >= max_n or per_iter * 8 * 20 > budget_s:
            break
        del a, b, out
        n *= 2
    iters = int(min(max(budget_s / max(per_iter, 1e-6), 5), 1000))
    seconds = _matmul_seconds(torch, a, b, out, iters)
    tflops = 2.0 * n ** 3 * iters / seconds / 1e12
    return {"tflops": round(tflops, 2), "n": n, "iters": iters, "seconds": round(seconds, 4)}


def check_throughput(torch, device, name: str, capability, sizes: dict, min_ratio: float) -> dict:
    """bf16 and fp16 matmul throughput against the model's dense figure; flag < min_ratio."""
    reference = expected_tflops(name)
    results = {}
    for label, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if dtype is torch.bfloat16 and capability[0] < 8:
            results[label] = {"ok": True, "skipped": "bf16 needs compute capability 8.0 or newer"}
            continue
        entry = measure_tflops(torch, device, dtype, sizes["start_n"], sizes["max_n"],
                               sizes["budget_s"])
        expected = reference.get(label) if reference else None
        entry["expected_tflops"] = expected
        if expected:
            entry["ratio"] = round(entry["tflops"] / expected, 3)
            entry["ok"] = entry["ratio"] >= min_ratio
        else:
            entry["ok"] = True
        results[label] = entry
    out = {"ok": all(r["ok"] for r in results.values()), "min_ratio": min_ratio,
           "model": reference["model"] if reference else None,
           "source": reference["source"] if reference else None, "dtypes": results}
    if not out["ok"]:
        slow = ", ".join("%s %.1f of %.1f TFLOP/s" % (k, v["tflops"], v["expected_tflops"])
                         for k, v in results.items() if not v["ok"])
        out["error"] = {"stage": "check_throughput", "type": "ThroughputBelowExpected",
                        "message": "throughput far below expected: %s (< %d%% of dense peak)"
                                   % (slow, round(min_ratio * 100))}
    elif reference is None:
        out["note"] = "no reference figure for %r: throughput reported, not judged" % name
    return out


def _release(torch) -> None:
    """Give cached blocks back so the next check (and the all-reduce workers) have the memory."""
    try:
        torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - a broken context was already reported by a check
        pass


def check_gpu(torch, index: int, arch_list, args) -> dict:
    """Identity, arch coverage and the compute checks of one GPU."""
    props = torch.cuda.get_device_properties(index)
    gpu = {
        "index": index,
        "name": props.name,
        "compute_capability": "%d.%d" % (props.major, props.minor),
        "total_memory_bytes": int(props.total_memory),
        "total_memory_gib": round(props.total_memory / 2 ** 30, 2),
        "multiprocessors": int(props.multi_processor_count),
    }
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        gpu["uuid"] = str(uuid)
    gpu["arch"] = arch_coverage(arch_list, (props.major, props.minor))
    device = torch.device("cuda", index)
    capability = (props.major, props.minor)
    sizes = QUICK if args.quick else FULL
    checks = {}
    with torch.cuda.device(index):  # events and default streams belong to this GPU
        checks["matmul"] = _timed(check_matmul, torch, device, capability, sizes["matmul_n"])
        _release(torch)
        checks["conv"] = _timed(check_conv, torch, device, sizes["conv_batch"])
        _release(torch)
        checks["throughput"] = _timed(check_throughput, torch, device, props.name, capability,
                                      sizes, args.min_throughput_ratio)
        _release(torch)
    gpu["checks"] = checks
    gpu["ok"] = bool(gpu["arch"]["ok"]) and all(c["ok"] for c in checks.values())
    return gpu


# ---------------------------------------------------------------- all-reduce (NCCL workers)

def _allreduce_worker(rank, world, init_method, numel, iters, queue, backend="nccl"):
    """One process per GPU: a checked sum, then timed all-reduces for bus bandwidth.

    backend "gloo" runs the same steps on CPU tensors (the tests use it where no GPU is).
    """
    os.environ.update(NCCL_ENV)
    out = {"rank": rank, "ok": False}
    dist = None
    try:
        import datetime

        import torch
        import torch.distributed as dist

        on_gpu = backend == "nccl"
        if on_gpu:
            torch.cuda.set_device(rank)
        device = "cuda" if on_gpu else "cpu"
        start = time.perf_counter()
        dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=60))
        x = torch.full((numel,), float(rank + 1), device=device, dtype=torch.float32)
        dist.all_reduce(x)  # also creates the NCCL communicator
        expected = world * (world + 1) / 2.0
        out["sum_ok"] = bool((x == expected).all().item())  # .item() waits for the GPU
        out["first_s"] = round(time.perf_counter() - start, 4)
        y = torch.zeros(numel, device=device, dtype=torch.float32)
        dist.all_reduce(y)
        if on_gpu:
            begin = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(iters):
                dist.all_reduce(y)
            end.record()
            end.synchronize()
            per_iter = begin.elapsed_time(end) / 1000.0 / iters
        else:
            begin_s = time.perf_counter()
            for _ in range(iters):
                dist.all_reduce(y)
            per_iter = (time.perf_counter() - begin_s) / iters
        size = numel * 4
        out["seconds_per_iter"] = round(per_iter, 6)
        out["busbw_gbps"] = round(size / per_iter * 2 * (world - 1) / world / 1e9, 1)
        out["ok"] = out["sum_ok"]
    except Exception as exc:  # noqa: BLE001 - reported to the parent, never raised
        out["error"] = error_dict(exc, "allreduce")
    finally:
        try:
            if dist is not None and dist.is_initialized():
                dist.destroy_process_group()
        except Exception:  # noqa: BLE001
            pass
        queue.put(out)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_allreduce(world: int, quick: bool, backend: str = "nccl", deadline_s=None) -> dict:
    """NCCL all-reduce over `world` GPUs, one spawned process each, with a hard deadline."""
    import torch.multiprocessing as tmp

    numel = (4 if quick else 32) * 2 ** 20
    iters = 5 if quick else 20
    if deadline_s is None:
        deadline_s = 60 if quick else 120
    init_method = "tcp://127.0.0.1:%d" % _free_port()
    queue = tmp.get_context("spawn").SimpleQueue()
    context = tmp.spawn(_allreduce_worker,
                        args=(world, init_method, numel, iters, queue, backend),
                        nprocs=world, join=False)
    result = {"backend": backend, "world_size": world, "bytes": numel * 4, "iters": iters,
              "init_method": init_method}
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
            if time.monotonic() > deadline:
                result["error"] = {"stage": "allreduce", "type": "Timeout",
                                   "message": "all-reduce (%s) did not finish in %d s"
                                              % (backend, deadline_s)}
                break
    except Exception as exc:  # noqa: BLE001 - a worker died (signal, NCCL abort)
        result["error"] = error_dict(exc, "allreduce")
    finally:
        for proc in context.processes:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
    ranks = []
    while not queue.empty():
        ranks.append(queue.get())
    ranks.sort(key=lambda r: r["rank"])
    result["ranks"] = ranks
    result["ok"] = "error" not in result and len(ranks) == world and all(r["ok"] for r in ranks)
    if not result["ok"] and "error" not in result:
        failed = [r for r in ranks if r.get("error")]
        if failed:
            result["error"] = failed[0]["error"]
        else:
            bad = world - sum(r["ok"] for r in ranks)
            result["error"] = {"stage": "allreduce", "type": "AllReduceWrongSum",
                               "message": "all-reduce failed: %d of %d ranks reported a wrong or "
                                          "missing sum" % (bad, world)}
    if ranks and all("busbw_gbps" in r for r in ranks):
        result["busbw_gbps"] = min(r["busbw_gbps"] for r in ranks)
    return result


# ---------------------------------------------------------------- the run

def _versions(torch, report: dict) -> None:
    report["torch"] = torch.__version__
    report["cuda"] = torch.version.cuda
    try:
        raw = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001 - cuDNN missing/broken is reported by the conv check
        raw = None
    report["cudnn"] = cudnn_version_string(raw)
    report["cudnn_raw"] = raw


def _cuda_unusable_reason(torch) -> str:
    """Why torch.cuda.is_available() is False, in torch's own words where it has any."""
    if torch.version.cuda is None:
        return "this PyTorch build has no CUDA support (torch %s)" % torch.__version__
    try:
        torch.cuda.init()
    except Exception as exc:  # noqa: BLE001 - the message is the point
        return "%s: %s" % (type(exc).__name__, str(exc).strip())
    return "torch.cuda.device_count() is %d" % torch.cuda.device_count()


def run(args) -> dict:
    """All checks; never raises. The report's exit_code says how the process should exit."""
    t_start = time.perf_counter()
    timings = {}
    report = {
        "schema": SCHEMA, "ok": False, "exit_code": EXIT_UNUSABLE, "error": None,
        "quick": bool(args.quick), "python": platform.python_version(),
        "host": {"hostname": socket.gethostname(), "machine": platform.machine()},
        "torch": None, "cuda": None, "cudnn": None, "cudnn_raw": None, "arch_list": [],
        "driver": None, "gpu_count": 0, "expected_gpus": args.expect_gpus, "gpus": [],
        "allreduce": None, "failed_checks": [], "warnings": [], "timings_s": timings,
        "tmpdir": os.environ.get("TMPDIR"),
    }
    step = time.perf_counter()
    report["driver"] = driver_info()
    timings["driver"] = round(time.perf_counter() - step, 4)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step = time.perf_counter()
        try:
            import torch
        except BaseException as exc:  # noqa: BLE001 - ImportError, or a broken install
            report["error"] = error_dict(exc, "import_torch")
            return _finish(report, caught, t_start)
        timings["import_torch"] = round(time.perf_counter() - step, 4)
        _versions(torch, report)

        step = time.perf_counter()
        try:
            available = torch.cuda.is_available()
            count = torch.cuda.device_count() if available else 0
            if count:
                torch.cuda.init()
                report["arch_list"] = list(torch.cuda.get_arch_list())
        except Exception as exc:  # noqa: BLE001
            report["error"] = error_dict(exc, "cuda_init")
            return _finish(report, caught, t_start)
        timings["cuda_init"] = round(time.perf_counter() - step, 4)
        report["gpu_count"] = count
        if not count:
            reason = _cuda_unusable_reason(torch)
            report["error"] = {"stage": "cuda_init", "type": "NoGpuVisible",
                               "message": "no GPU visible to PyTorch: " + reason}
            return _finish(report, caught, t_start)

        report["exit_code"] = EXIT_CHECK_FAILED
        failed = report["failed_checks"]
        if args.expect_gpus is not None and count != args.expect_gpus:
            failed.append("gpu_count")
            report["error"] = {"stage": "gpu_count", "type": "GpuCountMismatch",
                               "message": gpu_count_message(args.expect_gpus, count)}
        for index in range(count):
            step = time.perf_counter()
            try:
                gpu = check_gpu(torch, index, report["arch_list"], args)
            except Exception as exc:  # noqa: BLE001 - properties of a broken device
                gpu = {"index": index, "ok": False, "error": error_dict(exc, "gpu")}
            report["gpus"].append(gpu)
            timings["gpu%d" % index] = round(time.perf_counter() - step, 4)
            if not gpu["ok"]:
                if not gpu.get("arch", {}).get("ok", True):
                    failed.append("gpu%d.arch" % index)
                failed.extend("gpu%d.%s" % (index, name)
                              for name, check in gpu.get("checks", {}).items() if not check["ok"])
                if "error" in gpu:
                    failed.append("gpu%d" % index)

        if count >= 2:
            step = time.perf_counter()
            try:
                report["allreduce"] = check_allreduce(count, args.quick)
            except Exception as exc:  # noqa: BLE001 - spawn itself failed
                report["allreduce"] = {"ok": False, "error": error_dict(exc, "allreduce")}
            timings["allreduce"] = round(time.perf_counter() - step, 4)
            if not report["allreduce"]["ok"]:
                failed.append("allreduce")
        else:
            report["allreduce"] = {"ok": True, "skipped": "needs two or more GPUs"}

        report["ok"] = not failed
        if report["ok"]:
            report["exit_code"] = EXIT_OK
        elif report["error"] is None:
            report["error"] = _first_error(report)
    return _finish(report, caught, t_start)


def _first_error(report: dict):
    """The first failed check's error, so the host side has one message to classify."""
    for gpu in report["gpus"]:
        if gpu.get("error"):
            return gpu["error"]
        if not gpu.get("arch", {}).get("ok", True):
            return {"stage": "arch", "type": "ArchNotCovered", "message": gpu["arch"]["message"]}
        for name, check in gpu.get("checks", {}).items():
            if not check["ok"]:
                if check.get("error"):
                    return check["error"]
                return {"stage": name, "type": "WrongResult",
                        "message": "gpu%d %s check gave wrong results: %s"
                                   % (gpu["index"], name, json.dumps(check.get("dtypes")))}
    allreduce = report.get("allreduce") or {}
    if allreduce.get("error"):
        return allreduce["error"]
    return None


def _finish(report: dict, caught, t_start: float) -> dict:
    report["warnings"] = ["%s: %s" % (w.category.__name__, w.message) for w in caught]
    report["timings_s"]["total"] = round(time.perf_counter() - t_start, 4)
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and shorter benchmarks (a few seconds per GPU)")
    parser.add_argument("--expect-gpus", type=int, default=None, metavar="N",
                        help="fail unless exactly N GPUs are visible")
    parser.add_argument("--min-throughput-ratio", type=float, default=0.5, metavar="R",
                        help="flag a GPU whose matmul TFLOP/s is below R x its dense figure "
                             "(default 0.5; 0 disables)")
    return parser.parse_args(argv)


def writable_tmp(candidates=TMP_CANDIDATES):
    """The first writable directory of `candidates`, or None."""
    for path in candidates:
        if path and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK):
            return path
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(NCCL_ENV)
    tmp = writable_tmp()
    if tmp:
        os.environ["TMPDIR"] = tmp
        for key, name in CACHE_ENV.items():
            os.environ.setdefault(key, os.path.join(tmp, "gpuhost-torch-check", name))
    sys.dont_write_bytecode = True
    # Keep stdout for the one JSON object: everything else printed, by Python or by C libraries
    # (NCCL_DEBUG, CUDA, workers that inherit fd 1), lands on stderr.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        report = run(args)
    except BaseException as exc:  # noqa: BLE001 - last resort: still one JSON object
        report = {"schema": SCHEMA, "ok": False, "exit_code": EXIT_CHECK_FAILED,
                  "error": error_dict(exc, "internal")}
    json_out.write(json.dumps(report, sort_keys=False, default=str) + "\n")
    json_out.flush()
    return report["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
