"""The snapshot alone, back to back (as a monitoring timer or a re-run meets it), for this tree and
main at c6a4984, against nvidia-smi's own query and `nvidia-smi -q`: each timed alone, 20 runs.

In the repository root on the GPU machine, with pyinfra's wheels on the path (docs/evidence/README.md):
    PYTHONPATH=/tmp/site:. python3 docs/evidence/snapshot-h100/probe-alone.py
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from timing import timings  # noqa: E402

from facts.gpu import SMI_FIELDS  # noqa: E402
from facts.snapshot import COMMAND  # noqa: E402

commands = {
    "nvidia-smi -q": ["nvidia-smi", "-q"],
    "query (the snapshot's fields)": ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
    "the snapshot (this tree)": ["sh", "-c", COMMAND],
    "the snapshot (main @ c6a4984)": ["sh", os.path.join(HERE, "snapshot-c6a4984.sh")],
}
for round_ in (1, 2):
    print(f"# round {round_}: each alone, back to back")
    for name, argv in commands.items():
        print(timings({name: argv}, 20).splitlines()[1])
