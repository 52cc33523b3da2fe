#!/bin/sh
# Capture real GPU health readings (issue 26) and the snapshot's cost (issue 29, "before") on a GPU
# machine (the device machine: Ubuntu 24.04, driver 580, no network, no systemd, no Docker).
#
# Usage (repo root; pyinfra and its dependencies as wheels in .whl/, see docs/evidence/README.md):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   OUT=/some/dir TAG=h100 sh docs/evidence/health-h100/capture-health.sh
# Writes $OUT/health-$TAG.tgz (raw readings, timings) and prints the log.
set -u
TAG=${TAG:-gpu}
C=/tmp/health-$TAG
rm -rf "$C"; mkdir -p "$C/raw" "$C/load" "$C/timing"
REPO=$(pwd)
run() { name=$1; shift; "$@" > "$C/raw/$name" 2>&1; echo "$name rc=$?" >> "$C/log.txt"; }
date -u +%Y-%m-%dT%H:%M:%SZ > "$C/date.txt"

# 1. Health readings, idle, as the tools print them.
Q=index,uuid,pci.bus_id,name,ecc.mode.current,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total,ecc.errors.corrected.volatile.total,retired_pages.sbe,retired_pages.dbe,retired_pages.pending,pcie.link.gen.gpucurrent,pcie.link.gen.max,pcie.link.gen.gpumax,pcie.link.gen.hostmax,pcie.link.width.current,pcie.link.width.max,clocks_event_reasons.active,clocks_event_reasons.gpu_idle,clocks_event_reasons.hw_slowdown,clocks_event_reasons.hw_thermal_slowdown,clocks_event_reasons.hw_power_brake_slowdown,clocks_event_reasons.sw_thermal_slowdown,clocks_event_reasons.sw_power_cap,temperature.gpu,power.draw,utilization.gpu,memory.used
echo "$Q" > "$C/raw/query-fields.txt"
run query-gpu-health.csv nvidia-smi --query-gpu=$Q --format=csv
run query-gpu-health-noheader.csv nvidia-smi --query-gpu=$Q --format=csv,noheader,nounits
# each field alone: which are valid on this driver
for f in $(echo "$Q" | tr , ' '); do printf '%s: ' "$f"; nvidia-smi --query-gpu="$f" --format=csv,noheader 2>&1 | head -1; done > "$C/raw/query-fields-each.txt"
run query-remapped-rows.csv nvidia-smi --query-remapped-rows=gpu_bus_id,gpu_uuid,remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure --format=csv
run query-retired-pages.csv nvidia-smi --query-retired-pages=gpu_bus_id,gpu_uuid,retired_pages.address,retired_pages.cause --format=csv
run nvidia-smi-q.txt nvidia-smi -q
run nvidia-smi-q.xml nvidia-smi -q -x
run nvidia-smi-q-health.txt nvidia-smi -q -d ECC,PAGE_RETIREMENT,ROW_REMAPPER,PERFORMANCE
run nvidia-smi-q-pcie.txt sh -c 'nvidia-smi -q | sed -n "/PCI$/,/Fan Speed/p"'
run nvlink-status.txt nvidia-smi nvlink --status
run nvlink-errors.txt nvidia-smi nvlink -e
run nvlink-capabilities.txt nvidia-smi nvlink -c
run topo.txt nvidia-smi topo -m
run dmesg.txt dmesg
run dmesg-iso.txt dmesg --time-format iso
run dmesg-nvrm.txt sh -c 'dmesg --time-format iso | grep -E "NVRM|nvidia" ; true'
run kmsg-head.txt sh -c 'timeout 1 head -c 65536 /dev/kmsg | grep -aE "NVRM|nvidia" | head -50; true'
run journal.txt sh -c 'command -v journalctl && journalctl -k -b --no-pager -o short-iso | grep -E "NVRM|Xid" | tail -20; true'
run sysfs-link.txt sh -c 'for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor)" = 0x10de ] || continue; echo "# ${d##*/}"; for a in current_link_speed current_link_width max_link_speed max_link_width aer_dev_correctable aer_dev_fatal aer_dev_nonfatal; do printf "%s: " $a; cat $d/$a 2>&1 | tr "\n" " "; echo; done; up=$(readlink -f $d/..); echo "upstream: ${up##*/}"; for a in current_link_speed current_link_width max_link_speed max_link_width; do printf "up %s: " $a; cat $up/$a 2>&1; done; done'
run proc-gpus.txt sh -c 'for f in /proc/driver/nvidia/gpus/*/information; do echo "# $f"; cat "$f"; done'
run fabricmanager.txt sh -c 'for t in nv-fabricmanager nvidia-fabricmanager-start.sh dcgmi nv-hostengine nvidia-imex systemctl; do echo "$t: $(command -v $t || echo absent)"; done; ls -l /usr/share/nvidia/nvswitch 2>&1; nvidia-smi -q | grep -A4 -i fabric'
run arch.txt sh -c 'uname -m; uname -r; dpkg --print-architecture; cat /etc/os-release'
run dpkg-kernel-nvidia.txt sh -c 'dpkg-query -W -f="\${Package} \${Version} \${Status}\n" "linux-image*" "linux-modules*" "linux-headers*" "nvidia*" "libnvidia*" "linux-generic*" 2>&1'
run apt-sources.txt sh -c 'ls -l /etc/apt/sources.list.d/ /var/lib/apt/lists/ 2>&1; cat /etc/apt/sources.list.d/* 2>&1 | head -60'
run apt-cache-policy.txt sh -c 'apt-cache policy nvidia-driver-580-open nvidia-driver-580-server-open linux-modules-nvidia-580-server-open-generic cuda-drivers nvidia-open 2>&1'

# 2. Under load: a matmul loop on every GPU while the readings are taken.
if python3 -c 'import torch' 2>/dev/null; then
  env -u PYTHONPATH python3 -c '
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
end = time.time() + 20
while time.time() < end:
    for _ in range(50): c = a @ b
    torch.cuda.synchronize()
' > "$C/load/torch.log" 2>&1 &
  busy=$!
  sleep 8
  nvidia-smi --query-gpu=$Q --format=csv > "$C/load/query-gpu-health.csv" 2>&1
  nvidia-smi -q -d PERFORMANCE,CLOCK,POWER,TEMPERATURE > "$C/load/nvidia-smi-q-perf.txt" 2>&1
  nvidia-smi -q -x > "$C/load/nvidia-smi-q.xml" 2>&1
  nvidia-smi > "$C/load/nvidia-smi.txt" 2>&1
  wait $busy
  echo "load rc=$?" >> "$C/log.txt"
fi

# 3. Timings: wall and CPU (user+sys of the command and its children), 10 runs each, medians.
export PYTHONPATH=/tmp/site:$REPO
python3 -c "import facts.snapshot as m; print(m.COMMAND)" > "$C/timing/snapshot.sh" 2>"$C/timing/snapshot-gen.err"
for part in gpu host container managed workspace; do python3 -c "import facts.$part as m; print(m.COMMAND)" > "$C/timing/part-$part.sh" 2>/dev/null; done
python3 - "$C" "$Q" > "$C/timing/timings.txt" 2>&1 <<'PY'
import os, subprocess, sys, time, statistics
C, Q = sys.argv[1], sys.argv[2]
cmds = {
  "nvidia-smi -q": ["nvidia-smi", "-q"],
  "nvidia-smi -q -x": ["nvidia-smi", "-q", "-x"],
  "nvidia-smi --query-gpu (health fields)": ["nvidia-smi", f"--query-gpu={Q}", "--format=csv,noheader,nounits"],
  "nvidia-smi --query-remapped-rows": ["nvidia-smi", "--query-remapped-rows=gpu_uuid,remapped_rows.pending,remapped_rows.failure", "--format=csv,noheader"],
  "nvidia-smi -L": ["nvidia-smi", "-L"],
  "dmesg": ["dmesg"],
  "snapshot (main @ 0a0f100)": ["sh", f"{C}/timing/snapshot.sh"],
}
for part in ["gpu", "host", "container", "managed", "workspace"]:
    cmds[f"snapshot part {part}"] = ["sh", f"{C}/timing/part-{part}.sh"]
print("command | runs | wall median ms | wall min ms | cpu median ms (user+sys, children)")
for name, argv in cmds.items():
    walls, cpus = [], []
    for _ in range(10):
        t0 = time.perf_counter(); r0 = os.times()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t1 = time.perf_counter(); r1 = os.times()
        walls.append((t1 - t0) * 1000)
        cpus.append(((r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)) * 1000)
    print(f"{name} | 10 | {statistics.median(walls):.1f} | {min(walls):.1f} | {statistics.median(cpus):.1f}")
PY
sh "$C/timing/snapshot.sh" > "$C/timing/snapshot.out" 2>&1
(cd "$REPO" && python3 -m pyinfra @local fact facts.snapshot.HostSnapshot --json > "$C/timing/snapshot.json" 2> "$C/timing/snapshot.log")
(cd "$REPO" && python3 -c 'from gpuhost.cli import main; main()' inspect @local > "$C/timing/inspect.txt" 2>&1; echo "inspect rc=$?" >> "$C/log.txt")
unset PYTHONPATH

# 4. The torch check twice (matmul throughput, for the straggler rule's spread on one GPU).
for i in 1 2; do timeout 200 python3 gpuhost/verify/check/torch_check.py > "$C/load/check-$i.json" 2> "$C/load/check-$i.stderr"; echo "torch_check $i rc=$?" >> "$C/log.txt"; done
tar -C /tmp -czf "$OUT/health-$TAG.tgz" "health-$TAG"
cat "$C/log.txt"; cat "$C/timing/timings.txt"
