t=$(mktemp -d 2>/dev/null) || t=/tmp/gpuhost-snapshot.$$; mkdir -p "$t"
(
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
) > "$t/0" 2>/dev/null &
(
echo '@@gpuhost host 1'
k=$(uname -r)
echo '@@os_release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo "@@arch $(uname -m)"
echo "@@kernel $k"
pm=-; for p in apt-get dnf yum zypper; do command -v $p >/dev/null 2>&1 && { pm=$p; break; }; done
echo "@@package_manager $pm"
hd=absent; [ -e "/lib/modules/$k/build/Makefile" ] && hd=present
echo "@@headers_dir $hd"
if command -v apt-cache >/dev/null 2>&1; then
  echo "@@headers_apt linux-headers-$k"
  # Installed from dpkg, the candidate from `apt-cache madison` (the highest version the sources
  # offer): a quarter of the CPU of `apt-cache policy`, which was this script's slowest reading.
  dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "linux-headers-$k" 2>/dev/null | awk '$1 == "ii" { print "  Installed: " $2 }'
  [ "$hd" = present ] || apt-cache madison "linux-headers-$k" 2>/dev/null | awk -F'|' 'NR == 1 { gsub(/ /, "", $2); print "  Candidate: " $2 }'
elif command -v rpm >/dev/null 2>&1; then
  echo "@@headers_rpm kernel-devel-$k"; rpm -q "kernel-devel-$k" 2>/dev/null | grep -v 'not installed'
  echo '@@headers_dnf'
  command -v dnf >/dev/null 2>&1 && timeout 60 dnf -q --cacheonly list --available "kernel-devel-$k" 2>/dev/null | grep kernel-devel
fi
efi=no; [ -d /sys/firmware/efi ] && efi=yes
echo "@@efi $efi"
if command -v mokutil >/dev/null 2>&1; then echo '@@mokutil'; mokutil --sb-state 2>&1 | head -n 3; fi
v=$(ls /sys/firmware/efi/efivars/SecureBoot-* 2>/dev/null | head -n 1)
[ -n "$v" ] && echo "@@efivar $(od -An -t u1 -j 4 -N 1 "$v" 2>/dev/null | tr -d ' ')"
echo '@@holds'
# Held packages; indented below them, packages dpkg left half done (half-installed, unpacked,
# half-configured, triggers awaited/pending): what `dpkg --configure -a` finishes.
command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 ~ /^h/ { print $2 } substr($1, 2, 1) ~ /[HUFWt]/ { print "  unfinished " $2 }'
command -v dnf >/dev/null 2>&1 && timeout 60 dnf -q versionlock list 2>/dev/null
echo '@@locks'
for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
  [ -e "$f" ] || continue
  ino=$(stat -c %i "$f" 2>/dev/null) || continue
  for pid in $(awk -v ino="$ino" '$2 != "->" { split($6, a, ":"); if (a[3] == ino) print $5 }' /proc/locks 2>/dev/null | sort -u); do
    if [ "$pid" -gt 0 ] 2>/dev/null; then
      echo "lock=$f pid=$pid comm=$(cat /proc/$pid/comm 2>/dev/null | tr -d ' ') cmdline=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c 1-200)"
    else
      echo "lock=$f pid=-"
    fi
  done
done
di=no; [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] && di=yes
echo "@@dpkg_journal $di"
echo '@@reboot'
[ -e /var/run/reboot-required ] && { echo 'reboot-required'; cat /var/run/reboot-required.pkgs 2>/dev/null; }
if command -v needs-restarting >/dev/null 2>&1; then timeout 60 needs-restarting -r >/dev/null 2>&1; echo "needs-restarting $?"; fi
uu=no; [ -e /usr/bin/unattended-upgrade ] && uu=yes
echo "@@unattended_upgrades $uu"
sd=no; [ -d /run/systemd/system ] && sd=yes
echo "@@systemd $sd"
# NVIDIA's runfile installs nvidia-uninstall (and nvidia-installer) outside any package, and its
# libraries under the system library directory, e.g. libnvidia-ml.so.550.54.14.
u=$(command -v nvidia-uninstall 2>/dev/null)
if [ -n "$u" ] && ! { command -v dpkg-query >/dev/null 2>&1 && dpkg-query -S "$u" >/dev/null 2>&1; } \
   && ! { command -v rpm >/dev/null 2>&1 && rpm -qf "$u" >/dev/null 2>&1; }; then
  echo "@@runfile_driver $u"
  ls -1 /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.*.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.*.* /usr/lib64/libnvidia-ml.so.*.* /usr/lib/libnvidia-ml.so.*.* 2>/dev/null | head -n 1
fi
true
) > "$t/1" 2>/dev/null &
(
echo '@@gpuhost container 1'
T=; command -v timeout >/dev/null 2>&1 && T='timeout 20'
c=$(command -v docker 2>/dev/null); d=$(command -v dockerd 2>/dev/null)
[ -z "$d" ] && [ -x /usr/bin/dockerd ] && d=/usr/bin/dockerd
echo "@@docker_client ${c:--}"; [ -n "$c" ] && $T "$c" --version 2>&1 | head -n 1
echo "@@dockerd ${d:--}"
echo "@@docker_host ${DOCKER_HOST:--}"
echo '@@packages'
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' docker.io docker-ce docker-ce-cli docker-ce-rootless-extras containerd.io moby-engine podman-docker docker nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1 nvidia-docker2 nvidia-container-runtime 2>/dev/null
elif command -v rpm >/dev/null 2>&1; then
  rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE} ii\n' docker.io docker-ce docker-ce-cli docker-ce-rootless-extras containerd.io moby-engine podman-docker docker nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1 nvidia-docker2 nvidia-container-runtime 2>/dev/null | grep -v 'not installed'
fi
echo '@@snap'
[ -e /snap/docker/current/meta/snap.yaml ] && grep -m 1 '^version:' /snap/docker/current/meta/snap.yaml
echo '@@rootless_units'
ls -d /root/.config/systemd/user/docker.service /home/*/.config/systemd/user/docker.service 2>/dev/null
echo '@@daemons'
cfgs=; host=; me=$(readlink /proc/self/ns/pid 2>/dev/null)
for p in $(grep -lx dockerd /proc/[0-9]*/comm 2>/dev/null); do
  pid=${p#/proc/}; pid=${pid%/comm}
  ns=$(readlink /proc/$pid/ns/pid 2>/dev/null)
  # A dockerd inside a container (its own PID namespace) is not this host's daemon.
  [ -n "$ns" ] && [ -n "$me" ] && [ "$ns" != "$me" ] && { echo "other_namespace pid=$pid"; continue; }
  uid=$(awk '/^Uid:/ { print $2 }' /proc/$pid/status 2>/dev/null)
  cmd=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c 1-300)
  cfg=$(tr '\0' '\n' < /proc/$pid/cmdline 2>/dev/null | awk 'f { print; exit } /^--config-file=/ { sub(/^--config-file=/, ""); print; exit } /^--config-file$/ { f = 1 }')
  from=--config-file
  if [ -z "$cfg" ]; then
    if [ "$uid" = 0 ]; then cfg=/etc/docker/daemon.json; from=default
    else cfg=$(getent passwd "$uid" | cut -d: -f6)/.config/docker/daemon.json; from=rootless; fi
  fi
  sock=$(tr '\0' '\n' < /proc/$pid/cmdline 2>/dev/null | awk 'f { print; exit } /^(-H|--host)=unix:/ { sub(/^[^=]*=/, ""); print; exit } /^(-H|--host)$/ { f = 1 }')
  case "$sock" in unix://*) [ -z "$host" ] && host=$sock;; esac
  echo "pid=$pid uid=$uid config=$cfg from=$from host=${sock:--} cmdline=$cmd"
  cfgs="$cfgs $cfg"
done
# A daemon on its own socket: talk to it there, unless the session chose one (DOCKER_HOST).
if [ -n "$c" ] && [ -z "$DOCKER_HOST" ] && [ -n "$host" ] && [ "$host" != unix:///var/run/docker.sock ] && [ "$host" != unix:///run/docker.sock ]; then
  c="$c -H $host"; echo "@@docker_client_host $host"
fi
if [ -z "$cfgs" ]; then
  cfgs=/etc/docker/daemon.json
  [ -e /snap/docker/current ] && cfgs="$cfgs /var/snap/docker/current/config/daemon.json"
fi
for f in $cfgs; do
  if [ -r "$f" ]; then echo "@@daemon_json $f"; head -c 65536 "$f"; echo; else echo "@@daemon_json_absent $f"; fi
done
rc=-
# The daemon's Engine API over its unix socket with curl when possible: each docker CLI call
# starts a large Go binary, about three times the CPU of a curl call. Else the CLI. Container
# details always come from `docker inspect --format`, which reads no environment but one variable.
api=; s=${DOCKER_HOST:-${host:-unix:///var/run/docker.sock}}
case "$s" in unix://*) s=${s#unix://};; *) s=;; esac
if [ -n "$c" ] && [ -n "$s" ] && [ -S "$s" ] && command -v curl >/dev/null 2>&1 \
   && info=$($T curl -sf --unix-socket "$s" http://localhost/info 2>/dev/null); then
  api=1; rc=0
  echo '@@api_info'; printf '%s\n' "$info"
  ids=$($T curl -sf --unix-socket "$s" http://localhost/containers/json 2>/dev/null | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 | tr '\n' ' ')
  echo '@@containers'
  [ -n "$ids" ] && $T $c inspect --format '{{.Id}}{{"\t"}}{{.Name}}{{"\t"}}{{.Config.Image}}{{"\t"}}{{.HostConfig.Runtime}}{{"\t"}}{{json .HostConfig.DeviceRequests}}{{"\t"}}{{range .Config.Env}}{{if ge (len .) 23}}{{if eq (slice . 0 23) "NVIDIA_VISIBLE_DEVICES="}}{{.}}{{end}}{{end}}{{end}}' $ids 2>/dev/null
  echo '@@api_images'; $T curl -sf --unix-socket "$s" http://localhost/images/json 2>/dev/null; echo
elif [ -n "$c" ]; then
  info=$($T $c info --format 'server_version={{.ServerVersion}}
default_runtime={{.DefaultRuntime}}
live_restore={{.LiveRestoreEnabled}}
cgroup_driver={{.CgroupDriver}}
runtimes={{json .Runtimes}}' 2>&1); rc=$?
  echo '@@info'; printf '%s\n' "$info" | head -n 20; echo "@@info_rc $rc"
  ids=$($T $c ps -q 2>/dev/null | tr '\n' ' ')
  echo '@@containers'
  [ -n "$ids" ] && $T $c inspect --format '{{.Id}}{{"\t"}}{{.Name}}{{"\t"}}{{.Config.Image}}{{"\t"}}{{.HostConfig.Runtime}}{{"\t"}}{{json .HostConfig.DeviceRequests}}{{"\t"}}{{range .Config.Env}}{{if ge (len .) 23}}{{if eq (slice . 0 23) "NVIDIA_VISIBLE_DEVICES="}}{{.}}{{end}}{{end}}{{end}}' $ids 2>/dev/null
  echo '@@images'; $T $c images --digests --format '{{.Repository}}:{{.Tag}} {{.Digest}}' 2>/dev/null
fi
# The daemon's version: from `docker info` when it answers, else from the binary (slow to start).
if [ "$rc" != 0 ] && [ -n "$d" ]; then echo '@@dockerd_version'; $T "$d" --version 2>&1 | head -n 1; fi
k=$(command -v nvidia-ctk 2>/dev/null)
echo "@@ctk ${k:--}"; [ -n "$k" ] && $T "$k" --version 2>&1 | head -n 2
r=$(command -v nvidia-container-runtime 2>/dev/null)
echo "@@nvidia_runtime_binary ${r:--}"
echo '@@cdi'
for f in /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json; do
  [ -f "$f" ] || continue
  kind=$(grep -m 1 -oE '"?kind"?: *"?[A-Za-z0-9./_-]+' "$f" | sed -E 's/^"?kind"?: *"?//')
  lib=$(grep -m 1 -oE 'lib(cuda|nvidia-ml)\.so\.[0-9]+(\.[0-9]+)+' "$f" | head -n 1)
  echo "path=$f kind=${kind:--} lib=${lib:--}"
done
true
) > "$t/2" 2>/dev/null &
(
echo '@@gpuhost managed 1'
echo '@@files'
sha1sum /var/lib/gpuhost/*.json /etc/modprobe.d/*.conf /etc/apt/sources.list.d/* /etc/yum.repos.d/*.repo /var/lib/prometheus/node-exporter/gpuhost_*.prom /etc/systemd/system/gpuhost-* /etc/systemd/system/prometheus-node-exporter.service.d/*.conf /etc/gpuhost/*/* /usr/local/lib/gpuhost/* 2>/dev/null
echo '@@keyrings'
ls -1d /etc/apt/keyrings/* /usr/share/keyrings/* /etc/pki/rpm-gpg/* 2>/dev/null
echo '@@packages'
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null | awk '$1 ~ /^.i/ && $2 ~ /nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree|prometheus/ { print $2, $3 }'
elif command -v rpm >/dev/null 2>&1; then
  rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n' 2>/dev/null | grep -E 'nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree|prometheus'
fi
echo '@@units'
if [ -d /run/systemd/system ]; then
  # One systemctl for all units, printed as "unit enabled-state active-state" lines.
  systemctl show -p Id -p UnitFileState -p ActiveState docker nvidia-persistenced nvidia-fabricmanager prometheus-node-exporter gpuhost-dcgm-exporter gpuhost-gpu-metrics.timer docker-registry $(ls /etc/gpuhost/mirror 2>/dev/null | sed -n 's/^\(.*\)\.yml$/gpuhost-mirror@\1/p') 2>/dev/null | awk -F= '
    $1 == "Id" { id = $2; sub(/\.service$/, "", id) } $1 == "UnitFileState" { st = $2 } $1 == "ActiveState" { ac = $2 }
    /^$/ { if (id != "") print id, st, ac; id = st = ac = "" } END { if (id != "") print id, st, ac }'
fi
echo '@@verify'
head -c 262144 /var/lib/gpuhost/verify.json 2>/dev/null; echo
echo '@@pulled'
head -c 65536 /var/lib/gpuhost/pulled.json 2>/dev/null; echo
echo '@@apt_sources'
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && grep -v '^[[:space:]]*#' "$f" 2>/dev/null | sed "s|^|$f	|"; echo "$f	"
done
if command -v gpg >/dev/null 2>&1; then
  echo '@@keyring_fingerprints'
  # One line per keyring: its path, then the fingerprint of each primary key it holds.
  for k in $( { sed -n 's/.*signed-by=\([^] ]*\).*/\1/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list
                sed -n 's/^Signed-By:[[:space:]]*\(\/[^[:space:]]*\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources
                ls -1d /usr/share/keyrings/gpuhost-* /usr/share/keyrings/cuda-archive-keyring.gpg /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg /etc/apt/keyrings/docker.* /etc/pki/rpm-gpg/RPM-GPG-KEY-gpuhost-*; } 2>/dev/null | sort -u); do
    [ -f "$k" ] || continue
    g=$(mktemp -d)
    printf '%s' "$k"; gpg --homedir "$g" --batch --show-keys --with-colons "$k" 2>/dev/null | awk -F: '$1 == "pub" { p = 1; next } p && $1 == "fpr" { printf " %s", $10; p = 0 }'; echo
    rm -rf "$g"
  done
fi
true
) > "$t/3" 2>/dev/null &
(
echo '@@gpuhost workspace 1'
W=/var/lib/gpuhost/workspaces
echo '@@files'
sha1sum /etc/systemd/system/gpuhost-workspace-*.service $W/bin/* $W/*/passwd $W/*/group $W/*/sshd_config $W/*/authorized_keys $W/*/workspace.json 2>/dev/null
echo '@@tokens'
stat -c '%n %a %u %g %s' $W/*/jupyter_token 2>/dev/null
echo '@@records'
for f in $W/*/workspace.json; do [ -f "$f" ] && head -c 16384 "$f" && echo; done
units=$(ls /etc/systemd/system/gpuhost-workspace-*.service 2>/dev/null | sed 's#.*/##')
if [ -n "$units" ] && command -v docker >/dev/null 2>&1; then
  echo '@@units'
  systemctl show -p Id -p UnitFileState -p ActiveState $units 2>/dev/null | awk -F= '
    $1 == "Id" { id = $2; sub(/\.service$/, "", id) } $1 == "UnitFileState" { st = $2 } $1 == "ActiveState" { ac = $2 }
    /^$/ { if (id != "") print id, st, ac; id = st = ac = "" } END { if (id != "") print id, st, ac }'
  echo '@@containers'
  docker ps -a --filter label=gpuhost.workspace --format '{{.Names}}	{{.State}}	{{.Label "gpuhost.workspace.spec"}}	{{.Status}}' 2>/dev/null
  echo '@@layers'
  tags=$(docker images --filter label=gpuhost.workspace.recipe --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -v '<none>')
  [ -n "$tags" ] && docker image inspect -f '{{index .RepoTags 0}} {{index .Config.Labels "gpuhost.workspace.base-digest"}}' $tags 2>/dev/null
fi
true
) > "$t/4" 2>/dev/null &
wait
cat "$t/0" "$t/1" "$t/2" "$t/3" "$t/4"
rm -rf "$t"
true
