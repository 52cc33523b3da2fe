#!/bin/sh
# Capture real GPU readings and run the gpuhost facts with pyinfra's @local connector on a
# GPU machine (the device machine: Ubuntu 24.04, NVIDIA driver 580, no network).
#
# Usage (repo root, wheels of pyinfra + deps in .whl/, see docs/evidence/README.md):
#   OUT=/some/dir TAG=h100 sh docs/evidence/capture-device.sh
# Writes $OUT/capture-$TAG.tgz (raw readings, fact outputs, pyinfra JSON) and, when
# gpuhost/verify/check/torch_check.py exists, $OUT/check-$TAG.json.
set -u
TAG=${TAG:-gpu}
C=/tmp/capture-$TAG
rm -rf "$C"; mkdir -p "$C/raw" "$C/facts" "$C/pyinfra"
log() { echo "== $*" | tee -a "$C/log.txt"; }
run() { # run NAME CMD...: stdout+stderr to raw/NAME, exit status appended to the log
  name=$1; shift
  "$@" > "$C/raw/$name" 2>&1; echo "$name rc=$?" >> "$C/log.txt"
}
REPO=$(pwd)
date -u +%Y-%m-%dT%H:%M:%SZ > "$C/date.txt"
log "device $TAG, repo $REPO"

# 1. Raw readings, as the tools print them.
F=index,name,uuid,pci.bus_id,compute_cap,memory.total,mig.mode.current,persistence_mode,driver_version
run nvidia-smi.txt nvidia-smi
run nvidia-smi-q.txt nvidia-smi -q
run nvidia-smi-q.xml nvidia-smi -q -x
run nvidia-smi-L.txt nvidia-smi -L
run nvidia-smi-query-gpu.csv nvidia-smi --query-gpu=$F --format=csv,noheader,nounits
run nvidia-smi-query-gpu-header.csv nvidia-smi --query-gpu=$F --format=csv
run nvidia-smi-query-apps.csv nvidia-smi --query-compute-apps=pid,process_name,gpu_uuid,used_memory --format=csv,noheader,nounits
run nvidia-smi-version.txt nvidia-smi --version
run proc-driver-nvidia-version.txt cat /proc/driver/nvidia/version
run proc-driver-nvidia-gpus.txt sh -c 'for f in /proc/driver/nvidia/gpus/*/information; do echo "# $f"; cat "$f"; done'
run sys-module-nvidia-version.txt cat /sys/module/nvidia/version
run proc-modules-nvidia.txt sh -c 'grep -E "^(nvidia|nouveau)" /proc/modules'
run sysfs-pci-all.txt sh -c 'for d in /sys/bus/pci/devices/*; do echo "${d##*/} $(cat $d/vendor $d/device $d/class 2>/dev/null | tr "\n" " ")"; done'
run sysfs-pci-nvidia.txt sh -c 'for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor)" = 0x10de ] || continue; echo "# $d -> $(readlink -f $d)"; for a in vendor device class subsystem_vendor subsystem_device revision numa_node local_cpulist current_link_speed current_link_width max_link_speed max_link_width; do echo "$a: $(cat $d/$a 2>&1)"; done; echo "driver: $(readlink $d/driver)"; echo "modalias: $(cat $d/modalias)"; done'
run lspci-nn.txt lspci -nn
run lspci-nnk-nvidia.txt lspci -nnk -d 10de:
run pci-ids-files.txt sh -c 'ls -l /usr/share/misc/pci.ids /usr/share/hwdata/pci.ids /usr/share/pci.ids 2>&1; for f in /usr/share/misc/pci.ids /usr/share/hwdata/pci.ids; do [ -r $f ] && grep -m1 Version: $f && grep -nP "^\t(2330|2331|2335|233b|22a3)\s" $f; done'
run os-release.txt cat /etc/os-release
run uname-a.txt uname -a
run ldconfig-nvidia.txt sh -c 'ldconfig -p | grep -E "libnvidia-ml|libcuda"'
run libnvidia-ml-files.txt sh -c 'ls -l /usr/lib/x86_64-linux-gnu/libnvidia-ml.so* /usr/local/nvidia/lib64/libnvidia-ml.so* /usr/lib64/libnvidia-ml.so* 2>&1'
run tools.txt sh -c 'for t in nvidia-smi lspci mokutil docker dockerd nvidia-ctk apt-cache dpkg-query systemctl timeout awk unshare; do echo "$t: $(command -v $t || echo absent)"; done; ls -l /bin/sh; ls -d /sys/firmware/efi 2>&1; mount | grep -E "nvidia|/proc|/sys " | head -20'

# 2. The fact commands, run with sh exactly as pyinfra sends them.
export PYTHONPATH=/tmp/site:$REPO
for f in gpu host container snapshot; do
  python3 -c "import facts.$f as m; print(m.COMMAND)" > "$C/facts/$f.sh"
  sh "$C/facts/$f.sh" > "$C/facts/$f.out" 2> "$C/facts/$f.err"; echo "fact $f rc=$?" >> "$C/log.txt"
done
# nvidia-smi removed (as on a host whose driver came without its utilities): masked in a private
# mount namespace; PCI sysfs, /proc/driver/nvidia and the libraries stay as they are.
unshare -m sh -c 'for p in /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi /usr/local/bin/nvidia-smi "$(command -v nvidia-smi)"; do [ -e "$p" ] && mount --bind /dev/null "$p"; done; command -v nvidia-smi; sh '"$C/facts/gpu.sh" \
  > "$C/facts/gpu-no-nvidia-smi.out" 2> "$C/facts/gpu-no-nvidia-smi.err"; echo "fact gpu-no-nvidia-smi rc=$?" >> "$C/log.txt"

# 3. pyinfra @local, the way a user runs a fact.
P="python3 -m pyinfra @local fact"
(cd "$REPO" && $P facts.gpu.GpuState facts.host.HostState facts.container.ContainerState --json \
  > "$C/pyinfra/facts.json" 2> "$C/pyinfra/facts.log"); echo "pyinfra facts rc=$?" >> "$C/log.txt"
(cd "$REPO" && $P facts.snapshot.HostSnapshot --json > "$C/pyinfra/snapshot.json" 2> "$C/pyinfra/snapshot.log")
echo "pyinfra snapshot rc=$?" >> "$C/log.txt"
python3 -m pyinfra --version > "$C/pyinfra/version.txt" 2>&1

# 4. With the host's pci.ids missing, install Debian's pci.ids package and read the GPUs again
#    (only where asked: INSTALL_PCIIDS=1 on the throw-away device machine).
if [ "${INSTALL_PCIIDS:-0}" = 1 ] && [ ! -r /usr/share/misc/pci.ids ] && [ ! -r /usr/share/hwdata/pci.ids ] && ls .whl/pci.ids_*.deb >/dev/null 2>&1; then
  dpkg -x .whl/pci.ids_*.deb / && echo "installed $(ls .whl/pci.ids_*.deb)" >> "$C/log.txt"
  sh "$C/facts/gpu.sh" > "$C/facts/gpu-with-pciids.out" 2>&1; echo "fact gpu-with-pciids rc=$?" >> "$C/log.txt"
  (cd "$REPO" && $P facts.gpu.GpuState --json > "$C/pyinfra/gpu-with-pciids.json" 2> "$C/pyinfra/gpu-with-pciids.log")
  echo "pyinfra gpu-with-pciids rc=$?" >> "$C/log.txt"
fi

# 4b. gpuhost inspect over @local: the fleet table and plan for this machine (one command).
(cd "$REPO" && python3 -c 'from gpuhost.cli import main; main()' inspect @local > "$C/pyinfra/inspect.txt" 2>&1
 echo "gpuhost inspect rc=$?" >> "$C/log.txt"
 python3 -c 'from gpuhost.cli import main; main()' inspect @local --json > "$C/pyinfra/inspect.json" 2> "$C/pyinfra/inspect.log")

# 5. A process using the GPU (PyTorch holding 1 GiB) while the GPU fact reads the host.
if python3 -c 'import torch' 2>/dev/null; then
  env -u PYTHONPATH python3 -c 'import torch, time; x = torch.ones(1 << 28, device="cuda"); torch.cuda.synchronize(); time.sleep(25)' &
  busy=$!
  sleep 12
  sh "$C/facts/gpu.sh" > "$C/facts/gpu-with-process.out" 2>&1; echo "fact gpu-with-process rc=$?" >> "$C/log.txt"
  nvidia-smi > "$C/raw/nvidia-smi-with-process.txt" 2>&1
  wait $busy
fi
unset PYTHONPATH
cp "$C/log.txt" "$OUT/log-$TAG.txt"
tar -C /tmp -czf "$OUT/capture-$TAG.tgz" "capture-$TAG"

# 6. The check engineer's torch check, with the device's own torch (stdlib + torch only).
if [ -f gpuhost/verify/check/torch_check.py ]; then
  timeout 300 python3 gpuhost/verify/check/torch_check.py > "$OUT/check-$TAG.json" 2> "$OUT/check-$TAG.stderr"
  echo "torch_check rc=$?" | tee -a "$OUT/log-$TAG.txt"
fi
cat "$OUT/log-$TAG.txt"
