"""When each step of the snapshot ends on a GPU host: the snapshot with a clock reading between steps.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/time-line.py
15 runs (timing.marked_snapshot, timing.timeline); then the same with nvidia-smi's three
background calls replaced by sleeps as long: does the NVML start-up beside it slow the foreground?
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import marked_snapshot, timeline  # noqa: E402

from facts.snapshot import PARTS  # noqa: E402

marked = marked_snapshot()
smi_start = next(p.start for p, _ in PARTS.values() if p.start.strip())
asleep = "slp() { sleep 0.03; }\n" + marked.replace(smi_start.strip(), smi_start.strip().replace('$ST "$smi"', "slp"))
print(timeline("as the snapshot", marked))
print(timeline("nvidia-smi calls replaced by sleep 0.03", asleep))
