"""Why the host part waits on a GPU host: /proc/locks while nvidia-smi starts, and the snapshot's
timeline with the apt/dpkg lock check and without it.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/probe-locks.py
"""

import statistics
import subprocess

from facts import host as host_fact
from facts import readings
from facts.snapshot import PARTS

print("# /proc/locks, 20 ms after three nvidia-smi calls started (as the snapshot starts them)")
print(subprocess.run(["sh", "-c", "nvidia-smi -q >/dev/null & nvidia-smi -L >/dev/null & nvidia-smi nvlink -s >/dev/null & "
                      "sleep 0.02; cat /proc/locks; wait"], capture_output=True, text=True).stdout)
print("# /proc/locks with nothing running")
print(subprocess.run(["cat", "/proc/locks"], capture_output=True, text=True).stdout)

parts = [part for part, _ in PARTS.values()]
wanted = set()
for part in parts:
    for name in part.reads:
        wanted |= {name, *readings.NEEDS.get(name, ())}
steps = [("start", "bg=\n" + readings.ON_PATH + "\n".join([*(p.first for p in parts), *(p.start for p in parts)]))]
steps += [(f"reading {name}", readings.READINGS[name]) for name in readings.READINGS if name in wanted]
steps += [(f"part {p.name}", p.script) for p in parts]
steps += [(f"finish {p.name}", p.finish) for p in parts if p.finish.strip()]
body = ['echo "@@T begin $(date +%s%N)"']
for label, script in steps:
    body += [script.strip(), f'echo "@@T {label} $(date +%s%N)"']
body.append('[ -n "$bg" ] && rm -rf "$bg"\ntrue')
marked = readings._fill("\n".join(body))
lock_check = "read -r x 2>/dev/null < /proc/locks &&"
assert lock_check in marked
variants = {"as the snapshot": marked, "without the lock check": marked.replace(lock_check, "false &&"),
            "snapshot, plain": readings._fill(__import__("facts.snapshot").snapshot.COMMAND)}
for title, script in variants.items():
    runs, walls = [], []
    for _ in range(20):
        out = subprocess.run(["sh", "-c", 'echo "@@T t0 $(date +%s%N)"\n' + script + '\necho "@@T t1 $(date +%s%N)"'],
                             capture_output=True, text=True).stdout
        marks = [line.split() for line in out.splitlines() if line.startswith("@@T ")]
        t0 = int(marks[0][-1])
        runs.append({" ".join(m[1:-1]): (int(m[-1]) - t0) / 1e6 for m in marks[1:]})
    print(f"# {title}\nstep | ends at, median ms from the start | min ms")
    for label in runs[0]:
        values = [r[label] for r in runs if label in r]
        print(f"{label} | {statistics.median(values):.1f} | {min(values):.1f}")
