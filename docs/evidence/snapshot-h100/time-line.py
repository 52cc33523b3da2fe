"""When each step of the snapshot ends on a GPU host: the snapshot with a clock reading between steps.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/time-line.py
The snapshot's steps (facts.readings.command: the parts' start steps, the shared readings, each
part's script, the finishing steps) with `date +%s%N` after each (a fork each, about 1 ms); 15
runs, the median time from the start to the end of each step, in ms; then the same with
nvidia-smi's background calls replaced by sleeps.
"""

import statistics
import subprocess

from facts import readings
from facts.snapshot import PARTS

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

# The same with nvidia-smi's three background calls replaced by sleeps as long: does the NVML
# start-up beside it slow the steps in the foreground?
smi_start = next(p.start for p in parts if p.start.strip())
asleep = "slp() { sleep 0.03; }\n" + marked.replace(smi_start.strip(), smi_start.strip().replace('$ST "$smi"', "slp"))
variants = {"as the snapshot": marked, "nvidia-smi calls replaced by sleep 0.03": asleep}
for title, script in variants.items():
    runs = []
    for _ in range(15):
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
        marks = [line.split() for line in out.splitlines() if line.startswith("@@T ")]
        t0 = int(marks[0][-1])
        runs.append({" ".join(m[1:-1]): (int(m[-1]) - t0) / 1e6 for m in marks[1:]})
    print(f"# {title}\nstep | ends at, median ms from the start | min ms")
    for label in runs[0]:
        values = [r[label] for r in runs]
        print(f"{label} | {statistics.median(values):.1f} | {min(values):.1f}")
