"""Why the host part waited on a GPU host: /proc/locks while nvidia-smi starts, and the snapshot's
timeline with the apt/dpkg lock scan and without it.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/probe-locks.py
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import marked_snapshot, timeline, timings  # noqa: E402

from facts.snapshot import COMMAND  # noqa: E402

print("# /proc/locks, 20 ms after three nvidia-smi calls started (as the snapshot starts them)")
print(subprocess.run(["sh", "-c", "nvidia-smi -q >/dev/null & nvidia-smi -L >/dev/null & nvidia-smi nvlink -s >/dev/null & "
                      "sleep 0.02; cat /proc/locks; wait"], capture_output=True, text=True).stdout)
print("# /proc/locks with nothing running")
print(subprocess.run(["cat", "/proc/locks"], capture_output=True, text=True).stdout)
marked = marked_snapshot()
lock_check = "read -r x 2>/dev/null < /proc/locks &&"
assert lock_check in marked
print(timeline("as the snapshot", marked, 20))
print(timeline("without the lock scan", marked.replace(lock_check, "false &&"), 20))
print(timings({"nvidia-smi --query-gpu=index": ["nvidia-smi", "--query-gpu=index", "--format=csv"],
               "the snapshot": ["sh", "-c", COMMAND]}, 20))
