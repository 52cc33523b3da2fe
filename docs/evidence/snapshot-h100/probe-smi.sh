#!/bin/sh
# How many NVML start-ups the snapshot's gpu part can afford (issue 29): nvidia-smi's query alone,
# with the compute processes beside it, with `nvlink -s` too (what the snapshot runs), and what
# nvidia-smi says of NVLink on this machine. In the repository root on the GPU machine:
#   OUT=$OUT sh docs/evidence/snapshot-h100/probe-smi.sh
# Writes $OUT/probe-smi/: timings.txt (30 interleaved rounds, medians) and the outputs it shows.
set -u
REPO=$(pwd); C=$OUT/probe-smi
rm -rf "$C"; mkdir -p "$C"
export PYTHONPATH=/tmp/site:$REPO
date -u +%Y-%m-%dT%H:%M:%SZ > "$C/date.txt"
F=$(python3 -c "import facts.gpu as m; print(m.SMI_FIELDS)")
A=pid,process_name,gpu_uuid,used_memory
python3 -c "import facts.snapshot as m; print(m.COMMAND)" > "$C/snapshot.sh"
{
  echo '$ nvidia-smi nvlink -s'; nvidia-smi nvlink -s; echo "rc=$?"
  echo '$ nvidia-smi nvlink -c'; nvidia-smi nvlink -c; echo "rc=$?"
  echo '$ nvidia-smi --query-gpu=F --query-compute-apps=A (one call?)'
  nvidia-smi --query-gpu="$F" --query-compute-apps=$A --format=csv,noheader,nounits; echo "rc=$?"
  echo '$ nvidia-smi --help-query-gpu | grep -i nvlink/fabric/c2c'; nvidia-smi --help-query-gpu | grep -i -n 'nvlink\|fabric\|c2c'
  echo '$ nvidia-smi -q | grep -i -A4 fabric'; nvidia-smi -q | grep -i -A4 'fabric'
  echo '$ nvidia-smi topo -m'; nvidia-smi topo -m
  echo '$ ls /proc/driver/nvidia /proc/driver/nvidia/gpus/*'; ls /proc/driver/nvidia /proc/driver/nvidia/gpus/* 2>&1
  echo '$ ls -d /proc/driver/nvidia-*'; ls -d /proc/driver/nvidia-* 2>&1
  echo '$ nvidia-smi -q -d PIDS'; nvidia-smi -q -d PIDS; echo "rc=$?"
} > "$C/nvlink.txt" 2>&1
python3 - "$C" "$F" "$A" "$REPO" > "$C/timings.txt" 2>&1 <<'PY'
import sys
C, F, A, REPO = sys.argv[1:5]
q = f"nvidia-smi --query-gpu={F} --format=csv,noheader,nounits"
apps = f"nvidia-smi --query-compute-apps={A} --format=csv,noheader,nounits"
cmds = {
    "nvidia-smi -q": "nvidia-smi -q",
    "query alone": q,
    "query + compute apps (at once)": f"{q} & {apps} & wait",
    "query + compute apps + nvlink -s (at once, as the snapshot)": f"{q} & {apps} & nvidia-smi nvlink -s & wait",
    "query, then compute apps": f"{q}; {apps}",
    "nvidia-smi -q -d PIDS": "nvidia-smi -q -d PIDS",
    "snapshot (this tree)": f"sh {C}/snapshot.sh",
}
sys.path.insert(0, f"{REPO}/docs/evidence/snapshot-h100")
from timing import timings
print(timings({name: ["sh", "-c", cmd] for name, cmd in cmds.items()}, 30))
PY
cat "$C/timings.txt"
