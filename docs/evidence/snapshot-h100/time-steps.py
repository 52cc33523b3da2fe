"""Where the snapshot's wall time goes on a GPU host: the snapshot built up step by step.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/time-steps.py
Each step adds one shared reading or one part's script to the one before (as bench/snapshot.py
does in the lab); 15 interleaved rounds, wall-time medians in ms; then single commands alone.
"""

import statistics
import subprocess
import time

from facts.readings import READINGS, Part, command
from facts.snapshot import COMMAND, PARTS

readings, parts = list(READINGS), list(PARTS)
steps = {"true": "true"}
for i in range(len(readings)):
    steps[f"+ reading {readings[i]}"] = command(Part("readings", tuple(readings[:i + 1]), ""))
for i in range(len(parts)):
    steps[f"+ part {parts[i]}"] = command(Part("readings", tuple(readings), ""), *(PARTS[n][0] for n in parts[:i + 1]))
steps["the snapshot"] = COMMAND
singles = {
    "dpkg-query -W (all packages)": "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' >/dev/null",
    "dmesg | grep Xid": "dmesg --time-format iso 2>/dev/null | grep 'NVRM: Xid' | tail -n 500",
    "ldconfig -p | grep nvml": "ldconfig -p | grep 'libnvidia-ml\\.so'",
    "mokutil --sb-state": "mokutil --sb-state",
    "curl --version": "curl --version",
}
samples = {name: [] for name in [*steps, *singles]}
for _ in range(15):
    for name, text in [*steps.items(), *singles.items()]:
        started = time.perf_counter()
        subprocess.run(["sh", "-c", text], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples[name].append((time.perf_counter() - started) * 1000)
print("step or command | wall median ms | wall min ms")
for name, values in samples.items():
    print(f"{name} | {statistics.median(values):.1f} | {min(values):.1f}")
