bg=; hp=
bg=; smi=$(command -v nvidia-smi 2>/dev/null)
if [ -z "$smi" ]; then
  for p in /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi /usr/local/bin/nvidia-smi /opt/nvidia/bin/nvidia-smi; do
    [ -x "$p" ] && { smi=$p; break; }
  done
fi
ST=; command -v timeout >/dev/null 2>&1 && ST='timeout 30'
if [ -n "$smi" ] && bg=$(mktemp -d 2>/dev/null); then
  { $ST "$smi" --query-gpu=mig.mode.current,index,name,uuid,pci.bus_id,compute_cap,memory.total,persistence_mode,driver_version,utilization.gpu,ecc.mode.current,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total,retired_pages.sbe,retired_pages.dbe,retired_pages.pending,remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,clocks_throttle_reasons.active --format=csv,noheader,nounits > "$bg/smi" 2>&1; echo $? > "$bg/smi_rc"; } &
  $ST "$smi" --query-compute-apps=pid,process_name,gpu_uuid,used_memory --format=csv,noheader,nounits > "$bg/apps" 2>&1 &
  $ST "$smi" nvlink -s > "$bg/nvlink" 2>&1 &
fi
fm=-; command -v nv-fabricmanager >/dev/null 2>&1 && fm=$(command -v nv-fabricmanager)
wsu=; for f in /etc/systemd/system/gpuhost-workspace-*.service; do [ -e "$f" ] && wsu="$wsu ${f##*/}"; done
if [ -d /run/systemd/system ]; then
  mu=; for f in /etc/gpuhost/mirror/*.yml; do [ -e "$f" ] && { f=${f##*/}; mu="$mu gpuhost-mirror@${f%.yml}"; }; done
  # systemd is asked only about units with a unit file (it searches the disk for each unknown
  # name: a third of the cost); one without is what systemd says of it: no file state, inactive.
  un=; nf=; for x in docker nvidia-persistenced nvidia-fabricmanager prometheus-node-exporter gpuhost-dcgm-exporter gpuhost-gpu-metrics.timer docker-registry; do
    case "$x" in *.*) f=$x;; *) f=$x.service;; esac
    for dir in /etc/systemd/system /run/systemd/system /run/systemd/transient /run/systemd/generator \
               /run/systemd/generator.late /usr/local/lib/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
      [ -e "$dir/$f" ] && { un="$un $x"; f=; break; }
    done
    [ -n "$f" ] && nf="$nf $x"
  done
  { [ -n "$un$mu$wsu" ] && systemctl show -p Id -p UnitFileState -p ActiveState $un $mu $wsu 2>/dev/null; } | awk -F= -v fm="$fm" -v nf="$nf" '
    function out() { if (id != "") { line = id " " st " " ac "\n"; if (id ~ /^gpuhost-workspace-/) ws = ws line; else man = man line
                                     if (id == "nvidia-fabricmanager") fs = ac }; id = st = ac = "" }
    $1 == "Id" { id = $2; sub(/\.service$/, "", id) } $1 == "UnitFileState" { st = $2 } $1 == "ActiveState" { ac = $2 }
    /^$/ { out() }
    END { out(); n = split(nf, u, " "); for (i = 1; i <= n; i++) { id = u[i]; ac = "inactive"; out() }
          printf "@@gpuhost managed 1\n@@units\n%s", man; if (ws != "") printf "@@gpuhost workspace 1\n@@units\n%s", ws
          printf "@@gpuhost gpu 1\n@@fabricmanager binary=%s state=%s\n", fm, (fs == "" ? "-" : fs) }'
else
  printf '@@gpuhost managed 1\n@@units\n@@gpuhost gpu 1\n@@fabricmanager binary=%s state=-\n' "$fm"
fi
echo '@@gpuhost gpu 1'
r() { v=-; read -r v 2>/dev/null < "$1"; [ -n "$v" ] || v=-; }
ids=; subs=
echo '@@pci'
for d in /sys/bus/pci/devices/*; do
  r "$d/vendor"; [ "$v" = 0x10de ] || continue
  drv=-; [ -e "$d/driver" ] && drv=$(cd -P "$d/driver" 2>/dev/null && pwd) && drv=${drv##*/}
  r "$d/device"; dev=$v; r "$d/subsystem_vendor"; sv=$v; r "$d/subsystem_device"; sd=$v
  r "$d/class"; cls=$v; r "$d/revision"; rev=$v; r "$d/numa_node"; numa=$v
  echo "bus=${d##*/} device=$dev class=$cls subsystem=$sv:$sd revision=$rev driver=${drv:--} numa=$numa"
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
echo '@@proc_driver'; [ -r /proc/driver/nvidia/version ] && while IFS= read -r l; do printf '%s\n' "$l"; done < /proc/driver/nvidia/version
v=; read -r v 2>/dev/null < /sys/module/nvidia/version; echo "@@sys_module $v"
echo '@@modules'; [ -r /proc/modules ] && while read -r l _; do case "$l" in nvidia*|nouveau*) echo "$l";; esac; done < /proc/modules
[ -d /sys/module/nouveau ] && echo 'sysfs nouveau'
echo '@@nouveau_blacklist'
grep -lsE '^[[:space:]]*blacklist[[:space:]]+nouveau' /etc/modprobe.d/*.conf /lib/modprobe.d/*.conf /usr/lib/modprobe.d/*.conf 2>/dev/null
l=; read -r l 2>/dev/null < /proc/cmdline
for w in $l; do case "$w" in modprobe.blacklist=*nouveau*|nouveau.modeset=0*|rd.driver.blacklist=*nouveau*) echo "$w";; esac; done
echo '@@nvml'
{ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libnvidia-ml\.so' | while read -r lib abi arrow path; do
  echo "ldconfig $abi $(readlink -f "$path" 2>/dev/null || echo "$path")"
done
for f in /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.* /usr/lib64/libnvidia-ml.so.* /usr/lib/libnvidia-ml.so.* /usr/local/nvidia/lib64/libnvidia-ml.so.*; do
  [ -f "$f" ] && [ ! -L "$f" ] && echo "file $f"
done
echo '@@gpuhost gpu 1'
echo "@@smi_path ${smi:--}"
if [ -n "$smi" ]; then
  q='mig.mode.current,index,name,uuid,pci.bus_id,compute_cap,memory.total,persistence_mode,driver_version,utilization.gpu,ecc.mode.current,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total,retired_pages.sbe,retired_pages.dbe,retired_pages.pending,remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,clocks_throttle_reasons.active'
  if [ -n "$bg" ]; then wait; out=$(cat "$bg/smi"); read -r rc < "$bg/smi_rc"
  else out=$($ST "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?; fi
  case "$out" in *'valid field'*|*'Invalid field'*)
    q='mig.mode.current,index,name,uuid,pci.bus_id,memory.total,persistence_mode,driver_version'
    out=$($ST "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?;;
  esac
  echo "@@smi $q"; printf '%s\n' "$out"; echo "@@smi_rc $rc"
  echo '@@gpuhost health 1'; echo "@@hsmi $q"; printf '%s\n' "$out"; echo "@@hsmi_rc $rc"
  echo '@@nvlink'; [ -n "$bg" ] && cat "$bg/nvlink"
  echo '@@gpuhost gpu 1'
  if [ "$rc" = 0 ]; then
    printf '%s\n' "$out" | grep -q '^Enabled,' && { echo '@@smi_list'; $ST "$smi" -L 2>&1; }
    echo '@@apps'
    if [ -n "$bg" ]; then cat "$bg/apps"; else $ST "$smi" --query-compute-apps=pid,process_name,gpu_uuid,used_memory --format=csv,noheader,nounits 2>&1; fi
  fi
fi
[ -n "$bg" ] && rm -rf "$bg"
true
