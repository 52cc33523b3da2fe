bg=
on_path() { w=; ifs_=$IFS; IFS=:; for p_ in $PATH; do [ -f "$p_/$1" ] && [ -x "$p_/$1" ] && { w=$p_/$1; break; }; done; IFS=$ifs_; }
print_file() { while IFS= read -r l_ || [ -n "$l_" ]; do printf '%s\n' "$l_"; done < "$1"; }
nl='
'
bg=; on_path nvidia-smi; smi=$w
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
k=; m=; read -r k 2>/dev/null < /proc/sys/kernel/osrelease; read -r m 2>/dev/null < /proc/sys/kernel/arch
[ -n "$k" ] && [ -n "$m" ] || { u=$(uname -rm 2>/dev/null); k=${u% *}; m=${u##* }; }
hd=absent; [ -e "/lib/modules/$k/build/Makefile" ] && hd=present
if command -v dpkg-query >/dev/null 2>&1; then
  pk=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null | awk -v h="linux-headers-$k" \
      -v fam='nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree|nvlsm|infiniband-diags|prometheus' -v pkgs=' docker.io docker-ce docker-ce-cli docker-ce-rootless-extras containerd.io moby-engine podman-docker docker nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1 nvidia-docker2 nvidia-container-runtime ' -v cli=' docker.io docker-ce-cli moby-cli ' -v ctk=' nvidia-container-toolkit nvidia-container-toolkit-base ' '
    $1 ~ /^h/ { held = held $2 "\n" }
    substr($1, 2, 1) ~ /[HUFWt]/ { held = held "  unfinished " $2 "\n" }
    $1 ~ /^.i/ && $2 ~ fam { man = man $2 " " $3 "\n" }
    index(pkgs, " " $2 " ") { con = con $2 " " $3 " " $1 "\n" }
    $1 ~ /^.i/ && index(cli, " " $2 " ") { hascli = 1 }
    $1 ~ /^.i/ && index(ctk, " " $2 " ") { hasctk = 1 }
    $1 == "ii" && $2 == h { hv = $3 }
    END { printf "@@gpuhost managed 1\n@@packages\n%s@@gpuhost container 1\n@@packages\n%s", man, con
          printf "@@package_flags cli=%d ctk=%d\n", hascli, hasctk
          printf "@@gpuhost host 1\n@@holds\n%s@@headers_apt %s\n", held, h
          if (hv != "") print "  Installed: " hv }')
  printf '%s\n' "$pk"
elif command -v rpm >/dev/null 2>&1; then
  pk=
  echo '@@gpuhost managed 1'; echo '@@packages'
  rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n' 2>/dev/null | grep -E 'nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree|nvlsm|infiniband-diags|prometheus'
  echo '@@gpuhost container 1'; echo '@@packages'
  rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE} ii\n' docker.io docker-ce docker-ce-cli docker-ce-rootless-extras containerd.io moby-engine podman-docker docker nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1 nvidia-docker2 nvidia-container-runtime 2>/dev/null | grep -v 'not installed'
  echo '@@gpuhost host 1'
  echo "@@headers_rpm kernel-devel-$k"; rpm -q "kernel-devel-$k" 2>/dev/null | grep -v 'not installed'
  echo '@@holds'
  command -v dnf >/dev/null 2>&1 && timeout 60 dnf -q versionlock list 2>/dev/null
fi
on_path nv-fabricmanager; fm=${w:--}
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
T=; command -v timeout >/dev/null 2>&1 && T='timeout 20'
on_path docker; c=$w; on_path dockerd; d=$w
[ -z "$d" ] && [ -x /usr/bin/dockerd ] && d=/usr/bin/dockerd
echo '@@gpuhost container 1'
echo "@@docker_client ${c:--}"
case "$c $pk" in /usr/bin/docker*'@@package_flags cli=1'*) ;; /*) $T "$c" --version 2>&1 | head -n 1;; esac
echo "@@dockerd ${d:--}"
echo "@@docker_host ${DOCKER_HOST:--}"
echo '@@daemons'
cfgs=; host=; dn=0; dpid=; duid=; dcfg=
for p in /proc/[0-9]*/comm; do
  read -r n 2>/dev/null < "$p" || continue
  [ "$n" = dockerd ] || continue
  pid=${p#/proc/}; pid=${pid%/comm}
  # A dockerd inside a container (its own PID namespace) is not this host's daemon.
  [ -e /proc/$pid/ns/pid ] && ! [ /proc/$pid/ns/pid -ef /proc/$$/ns/pid ] && { echo "other_namespace pid=$pid"; continue; }
  uid=; while read -r key v _; do [ "$key" = Uid: ] && { uid=$v; break; }; done < /proc/$pid/status
  cfg=; sock=; cmd=; want=
  while IFS= read -r a; do
    cmd="$cmd$a "
    case "$want" in cfg) cfg=$a; want=; continue;; sock) sock=$a; want=; continue;; esac
    case "$a" in --config-file=*) cfg=${a#*=};; --config-file) want=cfg;;  # the last one, as dockerd's flags
      -H=unix:*|--host=unix:*) [ -z "$sock" ] && sock=${a#*=};; -H|--host) [ -z "$sock" ] && want=sock;; esac
  done <<CMDLINE
$(tr '\0' '\n' < /proc/$pid/cmdline 2>/dev/null)
CMDLINE
  from=--config-file
  if [ -z "$cfg" ]; then
    if [ "$uid" = 0 ]; then cfg=/etc/docker/daemon.json; from=default
    else cfg=$(getent passwd "$uid" | cut -d: -f6)/.config/docker/daemon.json; from=rootless; fi
  fi
  case "$sock" in unix://*) [ -z "$host" ] && host=$sock;; esac
  printf 'pid=%s uid=%s config=%s from=%s host=%s cmdline=%.300s\n' "$pid" "$uid" "$cfg" "$from" "${sock:--}" "$cmd"
  cfgs="$cfgs $cfg"; dn=$((dn+1)); dpid=$pid; duid=$uid; dcfg=$cfg
done
# /info has dockerd run `runc --version` and `docker-init --version` on every call (a fifth of the
# snapshot's CPU), yet what is read of it (version, runtimes, default runtime, live restore, cgroup
# driver) is fixed for a daemon's life unless it reloads a changed config. So the one root daemon's
# answer is kept in /run/gpuhost (root's), named for this boot and the daemon (pid, start ticks),
# with the config file's and its directory's identity and ctime (nanoseconds: gpuhost writes
# daemon.json and restarts Docker within a second). It is used only while: the file's path is
# absolute and has no link in it; the file and its directory last changed before the daemon wrote
# its pid file; that pid file is the daemon's own, written within 10 s of its start (by the kernel's
# clock: now - (this shell's start ticks - the daemon's)), not touched later; and the identity is
# the one kept. Then the daemon read this file at start, and a reload reads the same. Once the
# identity differs (a mount or a swap while the daemon ran), nothing is kept for that daemon again.
# Any other daemon, session or file, or a stat without nanoseconds, is asked every time.
ic=; icf=; kid=; pk_=
case "$dcfg" in /*) o_=$PWD; d_=${dcfg%/*}; d_=${d_:-/}
  cd -P "$d_" 2>/dev/null && [ "$PWD" = "$d_" ] && pk_=1; cd "$o_" 2>/dev/null;; esac
if [ -n "$pk_" ] && [ "$dn" = 1 ] && [ "$duid" = 0 ] && [ -z "$DOCKER_HOST$host" ] && [ -O /run ] && [ -f "$dcfg" ] && ! [ -L "$dcfg" ]; then
  dp=; read -r dp 2>/dev/null < /var/run/docker.pid; l=; read -r l 2>/dev/null < "/proc/$dpid/stat"
  set -- ${l##*')'}; st=${20:-}; l=; read -r l 2>/dev/null < "/proc/$$/stat"; set -- ${l##*')'}; me=${20:-}
  bi=; read -r bi 2>/dev/null < /proc/sys/kernel/random/boot_id
  if [ "$dp" = "$dpid" ] && [ -n "$st" ] && [ -n "$me" ] && [ -n "$bi" ]; then
    # The file's, its directory's and the pid file's ctime and identity, then now: the ctime of
    # stat's own output, the pipe the shell has just made.
    set -- $(stat -L -c '%.9Z %d.%i' "$dcfg" "$d_" /var/run/docker.pid /proc/self/fd/1 2>/dev/null)
    if [ $# = 8 ]; then
      kid="$2 $1 $4 $3"; ns=
      for t in "$1" "$3" "$5" "$7"; do
        case "$t" in [1-9]*.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) ns="$ns ${t%.*}${t#*.}";; *) ns=x;; esac
      done
      case "$ns $st $me" in *[!0-9' ']*) ;; *) set -- $ns
        s0=$(($4 - (me - st) * 10000000 + 10000000000))
        [ "$1" -lt "$3" ] && [ "$2" -lt "$3" ] && [ "$3" -lt "$s0" ] && icf=/run/gpuhost/docker-info.$bi.$dpid.$st;; esac
    fi
  fi
  if [ -n "$icf" ] && [ -f "$icf" ]; then
    k_=; { read -r k_; read -r ic; } < "$icf" 2>/dev/null
    [ "$k_" = "$kid" ] || { ic=; [ "$k_" = changed ] || printf 'changed\n' > "$icf"; icf=; }
  fi
fi
# A daemon on its own socket: talk to it there, unless the session chose one (DOCKER_HOST).
if [ -n "$c" ] && [ -z "$DOCKER_HOST" ] && [ -n "$host" ] && [ "$host" != unix:///var/run/docker.sock ] && [ "$host" != unix:///run/docker.sock ]; then
  c="$c -H $host"; echo "@@docker_client_host $host"
fi
rc=-; api=
s=${DOCKER_HOST:-${host:-unix:///var/run/docker.sock}}
case "$s" in unix://*) s=${s#unix://};; *) s=;; esac
if [ -n "$c" ] && [ -n "$s" ] && [ -S "$s" ] && command -v curl >/dev/null 2>&1; then
  o="-s -m 20 --unix-socket $s"
  w='\n'; ws=
  [ -n "$wsu" ] && w='\n@@api_workspace_containers\n' && ws="--next $o -w \n http://localhost/containers/json?all=1&filters=%7B%22label%22%3A%5B%22gpuhost.workspace%22%5D%7D"
  if [ -n "$ic" ]; then api=$(printf '%s\n\n@@api_images\n' "$ic"; curl $o -w '\n@@api_containers\n' http://localhost/images/json \
        --next $o -w "$w" http://localhost/containers/json $ws 2>/dev/null)
  else api=$(curl $o -w '\n@@api_images\n' http://localhost/info --next $o -w '\n@@api_containers\n' http://localhost/images/json \
        --next $o -w "$w" http://localhost/containers/json $ws 2>/dev/null); fi
  # The daemon answered: /info (or its kept answer), then the running containers (a JSON list).
  case "$api" in *'"ServerVersion"'*'@@api_containers'?'['*) rc=0;; *) api=;; esac
  j_=${api%%"$nl"*}
  case "$rc:$ic:$j_" in 0::'{'*'"ServerVersion"'*'}') [ -n "$icf" ] && ! [ -e "$icf" ] &&
    ( umask 077; mkdir -p /run/gpuhost && [ -O /run/gpuhost ] && [ ! -L /run/gpuhost ] && rm -f /run/gpuhost/docker-info.* \
      && printf '%s\n%s\n' "$kid" "$j_" > "$icf.$$" && mv -f "$icf.$$" "$icf" ) 2>/dev/null;; esac
fi
if [ -n "$api" ]; then
  echo '@@api_info'; printf '%s\n' "${api%%@@api_containers*}"
  running=${api#*@@api_containers}; running=${running%%@@api_workspace_containers*}
  ids=; case "$running" in *'"Id":"'*) ids=$(printf '%s' "$running" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 | tr '\n' ' ');; esac
  echo '@@containers'
  [ -n "$ids" ] && $T $c inspect --format '{{.Id}}{{"\t"}}{{.Name}}{{"\t"}}{{.Config.Image}}{{"\t"}}{{.HostConfig.Runtime}}{{"\t"}}{{json .HostConfig.DeviceRequests}}{{"\t"}}{{range .Config.Env}}{{if ge (len .) 23}}{{if eq (slice . 0 23) "NVIDIA_VISIBLE_DEVICES="}}{{.}}{{end}}{{end}}{{end}}' $ids 2>/dev/null
  case "$api" in *@@api_workspace_containers*) echo '@@gpuhost workspace 1'; printf '@@api_workspace_containers\n%s\n' "${api#*@@api_workspace_containers}"
    echo '@@api_images'; a=${api#*@@api_images}; printf '%s\n' "${a%%@@api_containers*}"
    echo '@@gpuhost container 1';; esac
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
  if [ -n "$wsu" ]; then
    echo '@@gpuhost workspace 1'
    echo '@@containers'
    $T $c ps -a --filter label=gpuhost.workspace --format '{{.Names}}	{{.State}}	{{.Label "gpuhost.workspace.spec"}}	{{.Status}}' 2>/dev/null
    echo '@@layers'
    tags=$($T $c images --filter label=gpuhost.workspace.recipe --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -v '<none>')
    [ -n "$tags" ] && $T $c image inspect -f '{{index .RepoTags 0}} {{index .Config.Labels "gpuhost.workspace.base-digest"}}' $tags 2>/dev/null
    echo '@@gpuhost container 1'
  fi
fi
# The daemon's version: from /info when it answers, else from the binary (slow to start).
if [ "$rc" != 0 ] && [ -n "$d" ]; then echo '@@dockerd_version'; $T "$d" --version 2>&1 | head -n 1; fi
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
echo '@@proc_driver'; [ -r /proc/driver/nvidia/version ] && print_file /proc/driver/nvidia/version
v=; read -r v 2>/dev/null < /sys/module/nvidia/version; echo "@@sys_module $v"
echo '@@modules'; [ -r /proc/modules ] && while read -r l _; do case "$l" in nvidia*|nouveau*) echo "$l";; esac; done < /proc/modules
[ -d /sys/module/nouveau ] && echo 'sysfs nouveau'
echo '@@nvml'
# NVML's version matters next to a driver (its tools, or its module loaded): only then is the
# linker cache asked, and the libraries' real files come from one readlink (one per library where
# its answer does not line up: a listed path that is gone).
if [ -n "$smi" ] || [ -d /sys/module/nvidia ]; then
  nv=$({ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libnvidia-ml\.so')
  set --; [ -n "$nv" ] && while read -r lib abi arrow path; do set -- "$@" "$path"; done <<NVML
$nv
NVML
  rp=; [ $# -gt 0 ] && rp=$(readlink -f -- "$@" 2>/dev/null)
  c=0; [ -n "$rp" ] && while read -r x; do c=$((c+1)); done <<NVML
$rp
NVML
  [ "$c" = $# ] && rp="$rp
" || rp=
  [ -n "$nv" ] && while read -r lib abi arrow path; do
    if [ -n "$rp" ]; then path=${rp%%"$nl"*}; rp=${rp#*"$nl"}; else path=$(readlink -f "$path" 2>/dev/null || echo "$path"); fi
    echo "ldconfig $abi $path"
  done <<NVML
$nv
NVML
fi
for f in /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.* /usr/lib64/libnvidia-ml.so.* /usr/lib/libnvidia-ml.so.* /usr/local/nvidia/lib64/libnvidia-ml.so.*; do
  [ -f "$f" ] && [ ! -L "$f" ] && echo "file $f"
done
echo '@@gpuhost host 1'
echo '@@os_release'
for f in /etc/os-release /usr/lib/os-release; do
  [ -r "$f" ] && { print_file "$f"; break; }
done
echo "@@arch $m"
echo "@@kernel $k"
pm=-; for p in apt-get dnf yum zypper; do command -v $p >/dev/null 2>&1 && { pm=$p; break; }; done
echo "@@package_manager $pm"
echo "@@headers_dir $hd"
efi=no; [ -d /sys/firmware/efi ] && efi=yes
echo "@@efi $efi"
# Secure Boot from its EFI variable; mokutil (which reads the same variable) only without one.
v=; for f in /sys/firmware/efi/efivars/SecureBoot-*; do [ -e "$f" ] && { v=$f; break; }; done
if [ -n "$v" ]; then v=$(od -An -t u1 -j 4 -N 1 "$v" 2>/dev/null); echo "@@efivar ${v##* }"
elif command -v mokutil >/dev/null 2>&1; then echo '@@mokutil'; mokutil --sb-state 2>&1 | head -n 3; fi
echo '@@locks'
lf=; for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do [ -e "$f" ] && lf="$lf $f"; done
# No lock at all in /proc/locks (its first line): nothing to match the files with.
ino=; [ -n "$lf" ] && read -r x 2>/dev/null < /proc/locks && ino=$(stat -c '%i %n' $lf 2>/dev/null)
[ -n "$ino" ] && [ -r /proc/locks ] && awk -v ino="$ino" '
  BEGIN { n = split(ino, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], w, " "); f[w[1]] = w[2] } }
  $2 != "->" { split($6, a, ":"); if ((a[3] in f) && !seen[a[3] " " $5]++) print f[a[3]], $5 }' /proc/locks |
while read -r f pid; do
  if [ "$pid" -gt 0 ] 2>/dev/null; then
    echo "lock=$f pid=$pid comm=$(tr -d ' ' < /proc/$pid/comm 2>/dev/null) cmdline=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c 1-200)"
  else
    echo "lock=$f pid=-"
  fi
done
di=no; for f in /var/lib/dpkg/updates/* /var/lib/dpkg/updates/.[!.]*; do [ -e "$f" ] && { di=yes; break; }; done
echo "@@dpkg_journal $di"
echo '@@reboot'
[ -e /var/run/reboot-required ] && { echo 'reboot-required'; [ -r /var/run/reboot-required.pkgs ] && cat /var/run/reboot-required.pkgs; }
if command -v needs-restarting >/dev/null 2>&1; then timeout 60 needs-restarting -r >/dev/null 2>&1; echo "needs-restarting $?"; fi
uu=no; [ -e /usr/bin/unattended-upgrade ] && uu=yes
echo "@@unattended_upgrades $uu"
sd=no; [ -d /run/systemd/system ] && sd=yes
echo "@@systemd $sd"
# NVIDIA's runfile installs nvidia-uninstall (and nvidia-installer) outside any package, and its
# libraries under the system library directory, e.g. libnvidia-ml.so.550.54.14.
on_path nvidia-uninstall; u=$w
if [ -n "$u" ] && ! { command -v dpkg-query >/dev/null 2>&1 && dpkg-query -S "$u" >/dev/null 2>&1; } \
   && ! { command -v rpm >/dev/null 2>&1 && rpm -qf "$u" >/dev/null 2>&1; }; then
  echo "@@runfile_driver $u"
  ls -1 /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.*.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.*.* /usr/lib64/libnvidia-ml.so.*.* /usr/lib/libnvidia-ml.so.*.* 2>/dev/null | head -n 1
fi
echo '@@gpuhost container 1'
echo '@@snap'
[ -e /snap/docker/current/meta/snap.yaml ] && grep -m 1 '^version:' /snap/docker/current/meta/snap.yaml
echo '@@rootless_units'
for f in /root/.config/systemd/user/docker.service /home/*/.config/systemd/user/docker.service; do [ -e "$f" ] && echo "$f"; done
if [ -z "$cfgs" ]; then
  cfgs=/etc/docker/daemon.json
  [ -e /snap/docker/current ] && cfgs="$cfgs /var/snap/docker/current/config/daemon.json"
fi
for f in $cfgs; do
  if [ -r "$f" ]; then echo "@@daemon_json $f"; head -c 65536 "$f"; echo; else echo "@@daemon_json_absent $f"; fi
done
# nvidia-ctk's version from its package when one is installed (the shared dpkg reading), else the binary.
on_path nvidia-ctk; kt=$w
echo "@@ctk ${kt:--}"
case "$pk" in *'@@package_flags cli='?' ctk=1'*) ;; *) [ -n "$kt" ] && $T "$kt" --version 2>&1 | head -n 2;; esac
on_path nvidia-container-runtime; r=$w
echo "@@nvidia_runtime_binary ${r:--}"
echo '@@cdi'
cf=; for f in /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json; do [ -f "$f" ] && cf="$cf $f"; done
[ -n "$cf" ] && awk '
  function out() { if (p != "") print "path=" p " kind=" (kd == "" ? "-" : kd) " lib=" (lb == "" ? "-" : lb) }
  FNR == 1 { out(); p = FILENAME; kd = lb = "" }
  kd == "" && match($0, /"?kind"?: *"?[A-Za-z0-9.\/_-]+/) { kd = substr($0, RSTART, RLENGTH); sub(/^"?kind"?: *"?/, "", kd) }
  lb == "" && match($0, /lib(cuda|nvidia-ml)\.so\.[0-9]+(\.[0-9]+)+/) { lb = substr($0, RSTART, RLENGTH) }
  END { out() }' $cf
echo '@@gpuhost managed 1'
echo '@@files'
sha1sum /var/lib/gpuhost/*.json /etc/modprobe.d/*.conf /etc/apt/sources.list.d/* /etc/yum.repos.d/*.repo /var/lib/prometheus/node-exporter/gpuhost_*.prom /etc/systemd/system/gpuhost-* /etc/systemd/system/prometheus-node-exporter.service.d/*.conf /etc/gpuhost/*/* /usr/local/lib/gpuhost/* /usr/local/sbin/gpuhost-* 2>/dev/null
echo '@@keyrings'
for f in /etc/apt/keyrings/* /usr/share/keyrings/* /etc/pki/rpm-gpg/*; do [ -e "$f" ] && echo "$f"; done
echo '@@verify'
[ -f /var/lib/gpuhost/verify.json ] && head -c 262144 /var/lib/gpuhost/verify.json; echo
echo '@@pulled'
[ -f /var/lib/gpuhost/pulled.json ] && head -c 65536 /var/lib/gpuhost/pulled.json; echo
echo '@@htpasswd'
for f in /etc/gpuhost/mirror/*.htpasswd; do [ -f "$f" ] && sed "s|^|$f	|" "$f"; done 2>/dev/null
echo '@@apt_sources'
sf=; for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && sf="$sf $f"; done
src=; [ -n "$sf" ] && src=$(awk 'FNR == 1 && NR > 1 { print p "\t" } { p = FILENAME } !/^[[:space:]]*#/ { print FILENAME "\t" $0 } END { if (NR) print p "\t" }' $sf 2>/dev/null)
[ -n "$src" ] && printf '%s\n' "$src"
# The keyrings the sources name (signed-by=, Signed-By:), and gpuhost's and the vendors' paths.
kr=' '
while IFS= read -r l; do
  t=${l#*	}; x=
  case "$t" in
    *signed-by=*) x=${t#*signed-by=}; x=${x%%[] ]*};;
    Signed-By:*) x=${t#Signed-By:}; x=${x#"${x%%[! 	]*}"}; x=${x%"${x##*[! 	]}"}; case "$x" in /*[[:space:]]*|[!/]*) x=;; esac;;
  esac
  [ -n "$x" ] && case "$kr" in *" $x "*) ;; *) kr="$kr$x ";; esac
done <<SOURCES
$src
SOURCES
for x in /usr/share/keyrings/gpuhost-* /usr/share/keyrings/cuda-archive-keyring.gpg /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg /etc/apt/keyrings/docker.* /etc/pki/rpm-gpg/RPM-GPG-KEY-gpuhost-*; do case "$kr" in *" $x "*) ;; *) kr="$kr$x ";; esac; done
echo '@@keyring_files'
for x in $kr; do [ -f "$x" ] && { echo "@@keyring $x"; base64 "$x" 2>/dev/null; }; done
W=/var/lib/gpuhost/workspaces
echo '@@gpuhost workspace 1'
if [ -n "$wsu" ] || [ -d $W ]; then
  echo '@@files'
  sha1sum /etc/systemd/system/gpuhost-workspace-*.service $W/bin/* $W/*/passwd $W/*/group $W/*/sshd_config $W/*/authorized_keys $W/*/workspace.json 2>/dev/null
  echo '@@tokens'
  stat -c '%n %a %u %g %s' $W/*/jupyter_token 2>/dev/null
  echo '@@records'
  for f in $W/*/workspace.json; do [ -f "$f" ] && head -c 16384 "$f" && echo; done
fi
echo '@@gpuhost health 1'
echo '@@xid'
# Xid lines are the NVIDIA kernel module's: the kernel log (a third of this part's cost) is read
# only where that module is loaded or nvidia-smi was found (the snapshot's gpu part sets $smi,
# this command's READ_SMI $h_smi: the same search).
if [ -d /sys/module/nvidia ] || [ -n "${smi:-}${h_smi:-}" ]; then
  { dmesg --time-format iso 2>/dev/null || journalctl -k -b -o short-iso --no-pager 2>/dev/null; } | grep 'NVRM: Xid' | tail -n 500
fi
echo '@@link'
h_nvs=0
for h_d in /sys/bus/pci/devices/*; do
  read -r h_v 2>/dev/null < "$h_d/vendor" || continue; [ "$h_v" = 0x10de ] || continue
  h_c=; read -r h_c 2>/dev/null < "$h_d/class"
  case "$h_c" in 0x0680*) h_nvs=$((h_nvs+1)); continue;; 0x0300*|0x0302*) ;; *) continue;; esac
  h_s=-; h_w=-; h_ms=-; h_mw=-
  read -r h_s _ 2>/dev/null < "$h_d/current_link_speed"; read -r h_w 2>/dev/null < "$h_d/current_link_width"
  read -r h_ms _ 2>/dev/null < "$h_d/max_link_speed"; read -r h_mw 2>/dev/null < "$h_d/max_link_width"
  echo "bus=${h_d##*/} speed=$h_s width=$h_w max_speed=$h_ms max_width=$h_mw"
done
h_fm=-; [ "$h_nvs" -gt 0 ] && command -v systemctl >/dev/null 2>&1 && h_fm=$(systemctl is-active nvidia-fabricmanager 2>/dev/null)
echo "@@fabric nvswitches=$h_nvs state=${h_fm:--}"
if command -v dcgmi >/dev/null 2>&1; then echo '@@dcgmi'; timeout 20 dcgmi health -c 2>&1 | head -n 60; fi
true
echo '@@gpuhost gpu 1'
echo "@@smi_path ${smi:--}"
if [ -n "$smi" ]; then
  q='mig.mode.current,index,name,uuid,pci.bus_id,compute_cap,memory.total,persistence_mode,driver_version,utilization.gpu,ecc.mode.current,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total,retired_pages.sbe,retired_pages.dbe,retired_pages.pending,remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,clocks_throttle_reasons.active'
  if [ -n "$bg" ]; then wait; out=; while IFS= read -r l || [ -n "$l" ]; do out="$out${out:+$nl}$l"; done < "$bg/smi"; read -r rc < "$bg/smi_rc"
  else out=$($ST "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?; fi
  case "$out" in *'valid field'*|*'Invalid field'*)
    q='mig.mode.current,index,name,uuid,pci.bus_id,memory.total,persistence_mode,driver_version'
    out=$($ST "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?;;
  esac
  echo "@@smi $q"; printf '%s\n' "$out"; echo "@@smi_rc $rc"
  echo '@@gpuhost health 1'; echo "@@hsmi $q"; printf '%s\n' "$out"; echo "@@hsmi_rc $rc"
  echo '@@nvlink'; [ -n "$bg" ] && print_file "$bg/nvlink"
  echo '@@gpuhost gpu 1'
  if [ "$rc" = 0 ]; then
    case "$nl$out" in *"$nl"Enabled,*) echo '@@smi_list'; $ST "$smi" -L 2>&1;; esac
    echo '@@apps'
    if [ -n "$bg" ]; then print_file "$bg/apps"; else $ST "$smi" --query-compute-apps=pid,process_name,gpu_uuid,used_memory --format=csv,noheader,nounits 2>&1; fi
  fi
fi
[ -n "$bg" ] && rm -rf "$bg"
true
