"""Is the snapshot slower right after another nvidia-smi? The snapshot timed plain and with clock
readings between its steps, interleaved with nvidia-smi's own query and alone, back to back.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/probe-order.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import marked_snapshot, timings  # noqa: E402

from facts.gpu import SMI_FIELDS  # noqa: E402
from facts.snapshot import COMMAND  # noqa: E402

query = ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"]
print("# interleaved with nvidia-smi's query")
print(timings({"query": query, "the snapshot": ["sh", "-c", COMMAND],
               "the snapshot with clock readings": ["sh", "-c", marked_snapshot()]}, 20))
print("# each alone, back to back")
for name, argv in {"query": query, "the snapshot": ["sh", "-c", COMMAND]}.items():
    print(timings({name: argv}, 20).splitlines()[1])
print("# the snapshot, 0.3 s after the last nvidia-smi")
print(timings({"sleep 0.3": ["sleep", "0.3"], "the snapshot": ["sh", "-c", COMMAND]}, 15).splitlines()[2])
