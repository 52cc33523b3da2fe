"""How long resolving one host takes once the matrix is loaded, and how long loading takes.

    .venv/bin/python bench/resolve.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date

from gpuhost.plan.gpus import identify
from gpuhost.plan.matrix import load_matrix, load_matrix_from
from gpuhost.plan.resolver import Policy, resolve

CASES = {
    "8x H100, driver 580, default policy": (["H100"] * 8, "580.159.04", Policy()),
    "V100, no driver, torch 2.9": (["V100"], None, Policy(torch="2.9")),
    "mixed T4 + A10G + L4, driver 550": (["T4", "A10G", "L4"], "550.54.15", Policy(torch="2.11")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    start = time.perf_counter()
    matrix = load_matrix()
    first_load_ms = (time.perf_counter() - start) * 1000
    data_dir = __import__("gpuhost").__path__[0] + "/data"
    reload_ms = statistics.median(_timed(lambda: load_matrix_from(data_dir), 5)) * 1000

    today = date.today()
    results = {}
    for name, (names, driver, policy) in CASES.items():
        gpus = [identify(n, matrix) for n in names]
        samples = _timed(lambda: resolve(gpus, driver, policy, today=today, matrix=matrix), args.rounds)
        results[name] = {"median_us": statistics.median(samples) * 1e6,
                         "p99_us": sorted(samples)[int(len(samples) * 0.99) - 1] * 1e6}
    report = {"machine": f"{platform.node()} {platform.machine()} Python {platform.python_version()}",
              "matrix_first_load_ms": round(first_load_ms, 1), "matrix_reload_median_ms": round(reload_ms, 1),
              "rounds": args.rounds,
              "resolve": {k: {m: round(v, 1) for m, v in r.items()} for k, r in results.items()}}
    width = max(len(k) for k in results)
    print(f"matrix: first load {first_load_ms:.1f} ms (once per process), reload {reload_ms:.1f} ms")
    for name, r in results.items():
        print(f"{name.ljust(width)}  median {r['median_us']:7.1f} us   p99 {r['p99_us']:7.1f} us")
    print(json.dumps(report))


def _timed(fn, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


if __name__ == "__main__":
    main()
