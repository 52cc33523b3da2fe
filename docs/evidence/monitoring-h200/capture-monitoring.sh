#!/bin/sh
# Monitoring captures on a GPU machine (gpuhost issue 16). Writes $OUT/monitoring-$TAG.tgz.
set -u
TAG=${TAG:-h200}
C=/tmp/mon-$TAG; rm -rf "$C"; mkdir -p "$C"
D=$(dirname "$0")
run() { name=$1; shift; "$@" > "$C/$name" 2>&1; echo "$name rc=$?" >> "$C/log.txt"; }
date -u +%Y-%m-%dT%H:%M:%SZ > "$C/date.txt"
COLLECTOR="python3 $D/nvidia_smi_textfile.py"
GQ=$(python3 -c "import sys; sys.path.insert(0,'$D'); import nvidia_smi_textfile as c; print(c.gpu_query()[1].split('=',1)[1])")
RQ=$(python3 -c "import sys; sys.path.insert(0,'$D'); import nvidia_smi_textfile as c; print(c.remap_query()[1].split('=',1)[1])")
run nvidia-smi.txt nvidia-smi
run query-gpu.csv nvidia-smi --query-gpu=$GQ --format=csv,noheader,nounits
run query-gpu-header.csv nvidia-smi --query-gpu=$GQ --format=csv
run query-remapped-rows.csv nvidia-smi --query-remapped-rows=$RQ --format=csv,noheader,nounits
run query-remapped-rows-header.csv nvidia-smi --query-remapped-rows=$RQ --format=csv
run help-query-gpu.txt nvidia-smi --help-query-gpu
run help-query-remapped-rows.txt nvidia-smi --help-query-remapped-rows
run q-sections.txt nvidia-smi -q -d TEMPERATURE,POWER,CLOCK,PERFORMANCE,ECC,ROW_REMAPPER,MEMORY,UTILIZATION
run dcgm-presence.txt sh -c 'for t in dcgmi nv-hostengine dcgm-exporter; do printf "%s: " $t; command -v $t || echo absent; done; ls /usr/lib/x86_64-linux-gnu/libdcgm* /usr/local/dcgm 2>&1; python3 -c "import pydcgm" 2>&1; python3 -m pip show nvidia-ml-py 2>&1 | head -2'
run collector-idle.prom $COLLECTOR --output -
# Under load: a bf16 matmul loop for ~12 s, collected in the middle.
python3 -c "
import torch, time
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = torch.randn_like(a)
end = time.time() + 12
while time.time() < end:
    for _ in range(20): a @ b
    torch.cuda.synchronize()
" > "$C/load.log" 2>&1 &
LOAD=$!
sleep 7
run query-gpu-load.csv nvidia-smi --query-gpu=$GQ --format=csv,noheader,nounits
run collector-load.prom $COLLECTOR --output -
mkdir -p "$C/textfile"
run collector-file.log $COLLECTOR --output "$C/textfile/gpuhost_gpu.prom"
wait $LOAD; echo "load rc=$?" >> "$C/log.txt"
run collector-time.txt python3 -c "import time,subprocess,sys; t=time.time(); subprocess.run([sys.executable,'$D/nvidia_smi_textfile.py','--output','-'],stdout=subprocess.DEVNULL); print(round(time.time()-t,3),'s')"
tar -C /tmp -czf "$OUT/monitoring-$TAG.tgz" "mon-$TAG"
cat "$C/log.txt"; cat "$C/collector-load.prom" | head -60
