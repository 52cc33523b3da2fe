"""A slow GPU is a sick GPU: flag the GPUs whose torch-check matmul throughput is far below the
same model's figures across the fleet. Pure.

The figures are those the verify stage records (/var/lib/gpuhost/verify.json: the torch check's
bf16 dense matmul TFLOP/s per GPU), compared within one group: same GPU model, same matrix size n
(the quick and the full check measure different sizes). "Far below" means

    tflops < median - max(K * 1.4826 * MAD, FLOOR * median)     K = 3, FLOOR = 0.10

in a group of at least MIN_GROUP figures. Why:
- median and MAD (median absolute deviation) are robust: the stragglers themselves do not drag
  the reference down, as they would a mean and a standard deviation; 1.4826 * MAD estimates the
  standard deviation of normal noise and 3 of those is the usual outlier bound (Leys et al., 2013,
  "Detecting outliers: Do not use standard deviation around the mean, use absolute deviation
  around the median", J. Exp. Soc. Psychol. 49(4)).
- the floor: healthy GPUs of one model measure almost the same (the real H100's two checks: 683.1
  and 682.4 TFLOP/s, 0.1 % apart, docs/evidence/health-h100/load), so MAD can be near 0 and 3 MADs
  would flag noise; hosts may also differ a few percent by power limit. 10 % below the median is
  beyond that, and well within what a throttled GPU or a bad link costs.
- MIN_GROUP = 5: below that a median says little about "the fleet".
"""

from __future__ import annotations

from statistics import median

K = 3.0
MAD_TO_SD = 1.4826
FLOOR = 0.10
MIN_GROUP = 5


def figures_of(host: str, verify_record: dict | None) -> list[dict]:
    """The bf16 matmul figures of one host's last check: [{host, gpu, uuid, model, n, tflops}]."""
    report = (verify_record or {}).get("check") or {}
    found = []
    for gpu in report.get("gpus") or []:
        bf16 = ((((gpu.get("checks") or {}).get("throughput") or {}).get("dtypes") or {}).get("bf16") or {})
        if bf16.get("tflops"):
            found.append({"host": host, "gpu": gpu.get("index"), "uuid": gpu.get("uuid"), "model": gpu.get("name"),
                          "n": bf16.get("n"), "tflops": float(bf16["tflops"])})
    return found


def stragglers(figures: list[dict]) -> list[dict]:
    """The figures far below their group's median (see the module docstring), each with
    `median`, `threshold` and `group_size` added."""
    groups: dict[tuple, list[dict]] = {}
    for figure in figures:
        groups.setdefault((figure["model"], figure["n"]), []).append(figure)
    slow = []
    for members in groups.values():
        if len(members) < MIN_GROUP:
            continue
        values = [m["tflops"] for m in members]
        middle = median(values)
        mad = median(abs(v - middle) for v in values)
        threshold = middle - max(K * MAD_TO_SD * mad, FLOOR * middle)
        slow += [{**m, "median": round(middle, 1), "threshold": round(threshold, 1), "group_size": len(members)}
                 for m in members if m["tflops"] < threshold]
    return slow


def describe(figure: dict) -> str:
    return (f"GPU {figure['gpu']} is a straggler: {figure['tflops']:.0f} bf16 TFLOP/s, the fleet's "
            f"{figure['group_size']} {figure['model']} have a median of {figure['median']:.0f} "
            f"(far below: under {figure['threshold']:.0f})")
