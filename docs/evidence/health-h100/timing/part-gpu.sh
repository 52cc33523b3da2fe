echo '@@gpuhost gpu 1'
r() { cat "$1" 2>/dev/null || echo -; }
T=; command -v timeout >/dev/null 2>&1 && T='timeout 30'
ids=; subs=
echo '@@pci'
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor" 2>/dev/null)" = 0x10de ] || continue
  drv=-; [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
  dev=$(r "$d/device"); sv=$(r "$d/subsystem_vendor"); sd=$(r "$d/subsystem_device")
  echo "bus=${d##*/} device=$dev class=$(r "$d/class") subsystem=$sv:$sd revision=$(r "$d/revision") driver=$drv numa=$(r "$d/numa_node")"
  ids="$ids ${dev#0x}"; subs="$subs ${dev#0x}:${sv#0x}:${sd#0x}"
done
if [ -n "$ids" ]; then
  for f in /usr/share/misc/pci.ids /usr/share/hwdata/pci.ids /usr/share/pci.ids /var/lib/pciutils/pci.ids; do
    [ -r "$f" ] || continue
    echo "@@pciids $f"
    awk -v ids="$ids " -v subs="$subs " '
      NR < 40 && /^#.*Version:/ { sub(/^#[ \t]*/, ""); print "version " $0; next }
      /^10de / { v = 1; next }
      /^[0-9a-fC]/ { if (v) exit; next }
      v && /^\t\t/ { if (m && index(subs, " " d ":" $1 ":" $2 " ")) { n = $0; sub(/^\t\t[0-9a-f]+ [0-9a-f]+[ \t]*/, "", n); print "sub " d ":" $1 ":" $2 " " n }; next }
      v && /^\t[0-9a-f]/ { d = $1; m = index(ids, " " d " "); if (m) { n = $0; sub(/^\t[0-9a-f]+[ \t]*/, "", n); print "dev " d " " n }; next }
    ' "$f"
    break
  done
fi
smi=$(command -v nvidia-smi 2>/dev/null)
if [ -z "$smi" ]; then
  for p in /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi /usr/local/bin/nvidia-smi /opt/nvidia/bin/nvidia-smi; do
    [ -x "$p" ] && { smi=$p; break; }
  done
fi
echo "@@smi_path ${smi:--}"
if [ -n "$smi" ]; then
  q='index,name,uuid,pci.bus_id,compute_cap,memory.total,mig.mode.current,persistence_mode,driver_version'
  out=$($T "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?
  case "$out" in *'valid field'*|*'Invalid field'*)
    q='index,name,uuid,pci.bus_id,memory.total,mig.mode.current,persistence_mode,driver_version'
    out=$($T "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?;;
  esac
  echo "@@smi $q"; printf '%s\n' "$out"; echo "@@smi_rc $rc"
  if [ "$rc" = 0 ]; then
    echo '@@smi_list'; $T "$smi" -L 2>&1
    echo '@@apps'; $T "$smi" --query-compute-apps=pid,process_name,gpu_uuid,used_memory --format=csv,noheader,nounits 2>&1
  fi
fi
echo '@@proc_driver'; cat /proc/driver/nvidia/version 2>/dev/null
echo "@@sys_module $(cat /sys/module/nvidia/version 2>/dev/null)"
echo '@@modules'; grep -E '^(nvidia|nouveau)' /proc/modules 2>/dev/null | cut -d' ' -f1
[ -d /sys/module/nouveau ] && echo 'sysfs nouveau'
echo '@@nouveau_blacklist'
grep -lsE '^[[:space:]]*blacklist[[:space:]]+nouveau' /etc/modprobe.d/*.conf /lib/modprobe.d/*.conf /usr/lib/modprobe.d/*.conf 2>/dev/null
tr ' ' '\n' < /proc/cmdline 2>/dev/null | grep -E '^(modprobe\.blacklist=.*nouveau|nouveau\.modeset=0|rd\.driver\.blacklist=.*nouveau)'
echo '@@nvml'
{ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libnvidia-ml\.so' | while read -r lib abi arrow path; do
  echo "ldconfig $abi $(readlink -f "$path" 2>/dev/null || echo "$path")"
done
for f in /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.* /usr/lib64/libnvidia-ml.so.* /usr/lib/libnvidia-ml.so.* /usr/local/nvidia/lib64/libnvidia-ml.so.*; do
  [ -f "$f" ] && [ ! -L "$f" ] && echo "file $f"
done
fm=-; command -v nv-fabricmanager >/dev/null 2>&1 && fm=$(command -v nv-fabricmanager)
st=-; command -v systemctl >/dev/null 2>&1 && st=$(systemctl is-active nvidia-fabricmanager 2>/dev/null)
echo "@@fabricmanager binary=$fm state=${st:--}"
true
