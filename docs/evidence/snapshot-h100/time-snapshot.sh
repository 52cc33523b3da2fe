#!/bin/sh
# The snapshot's wall time and CPU against nvidia-smi's own, on a real GPU host (issue 29): the
# snapshot of the working tree, and the BEFORE snapshots kept in this folder (snapshot-<commit>.sh).
# In the repository root on the GPU machine, with pyinfra's wheels installed (docs/evidence/README.md):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   OUT=$OUT sh docs/evidence/snapshot-h100/time-snapshot.sh
# Writes $OUT/snapshot-h100/: timings.txt (20 interleaved rounds, medians), the new snapshot's
# output and pyinfra's parse of it, `gpuhost inspect @local`, and log.txt.
set -u
REPO=$(pwd); C=$OUT/snapshot-h100
rm -rf "$C"; mkdir -p "$C"
export PYTHONPATH=/tmp/site:$REPO
date -u +%Y-%m-%dT%H:%M:%SZ > "$C/date.txt"
{ nvidia-smi --version; uname -r; nproc; python3 --version; } > "$C/machine.txt" 2>&1
python3 -c "import facts.snapshot as m; print(m.COMMAND)" > "$C/snapshot.sh" 2> "$C/snapshot-gen.err"
for part in gpu host container managed workspace health; do
  python3 -c "import facts.$part as m; print(m.COMMAND)" > "$C/part-$part.sh" 2>> "$C/snapshot-gen.err"
done
python3 -c "import facts.gpu as m; print(m.SMI_FIELDS)" > "$C/smi-fields.txt"
python3 - "$C" "$REPO" > "$C/timings.txt" 2>&1 <<'PY'
import sys
C, REPO = sys.argv[1], sys.argv[2]
fields = open(f"{C}/smi-fields.txt").read().strip()
cmds = {
    "nvidia-smi -q": ["nvidia-smi", "-q"],
    "nvidia-smi --query-gpu (the snapshot's fields)": ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
    "nvidia-smi --query-compute-apps": ["nvidia-smi", "--query-compute-apps=pid,process_name,gpu_uuid,used_memory",
                                        "--format=csv,noheader,nounits"],
    "nvidia-smi nvlink -s": ["nvidia-smi", "nvlink", "-s"],
    "snapshot (this tree)": ["sh", f"{C}/snapshot.sh"],
    "snapshot (main @ c6a4984, before the kept dpkg answer and perl's API reads)": ["sh", f"{REPO}/docs/evidence/snapshot-h100/snapshot-c6a4984.sh"],
    "snapshot (main @ d77d865, before the headers change)": ["sh", f"{REPO}/docs/evidence/snapshot-h100/snapshot-d77d865.sh"],
    "snapshot (main @ 0a0f100, before issue 29)": ["sh", f"{REPO}/docs/evidence/snapshot-h100/snapshot-0a0f100.sh"],
}
for part in ["gpu", "host", "container", "managed", "workspace", "health"]:
    cmds[f"snapshot part {part}"] = ["sh", f"{C}/part-{part}.sh"]
sys.path.insert(0, f"{REPO}/docs/evidence/snapshot-h100")
from timing import timings
print(timings(cmds, 20))
PY
echo "timings rc=$?" >> "$C/log.txt"
sh "$C/snapshot.sh" > "$C/snapshot.out" 2> "$C/snapshot.err"; echo "snapshot rc=$?" >> "$C/log.txt"
python3 -m pyinfra @local fact facts.snapshot.HostSnapshot --json > "$C/snapshot.json" 2> "$C/snapshot.log"
echo "pyinfra fact rc=$?" >> "$C/log.txt"
python3 -c 'from gpuhost.cli import main; main()' inspect @local > "$C/inspect.txt" 2>&1; echo "inspect rc=$?" >> "$C/log.txt"
cat "$C/log.txt" "$C/timings.txt"
