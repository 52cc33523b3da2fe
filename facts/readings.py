"""Readings that several parts of the snapshot use, taken once per command (facts/snapshot.py).

Each reading is a POSIX sh snippet that asks a tool ONCE and prints what it read into the block
of every part that uses it (`@@gpuhost <part> 1`, then that part's sections, in the format the
part's parser has always read): one `dpkg-query` for the packages of every part, one
`systemctl show` for every unit, one Docker Engine API call (api_perl, else api_curl) for the daemon, its running
containers, its images and gpuhost's workspace containers. A part's own script (its module's
PART) runs after the readings it needs and may use the shell variables they set (`k`, the
kernel release; `c`, the docker client; `pk`, the dpkg reading; `wsu`, the workspace units).

`command(*parts)` composes the shell command for some parts: their start steps, the readings they
need, once, in the order of READINGS, then each part's script, then the finishing steps. Work
that only waits (nvidia-smi) runs in the background when a part made a temp dir `$bg`
for it (the gpu part, on a host with nvidia-smi): the snapshot's wall time there is nvidia-smi's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --- what the readings ask for --------------------------------------------------------------------

# Package names gpuhost installs or checks (driver, headers, DKMS, Debian's firmware, Docker, toolkit,
# exporters): ManagedState's `packages`.
PACKAGE_FAMILIES = ("nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree"
                    "|nvlsm|infiniband-diags|prometheus")
# Docker's and the container toolkit's packages: ContainerState's `docker.packages`, `toolkit.packages`.
CONTAINER_PACKAGES = (
    "docker.io docker-ce docker-ce-cli docker-ce-rootless-extras containerd.io moby-engine "
    "podman-docker docker nvidia-container-toolkit nvidia-container-toolkit-base "
    "libnvidia-container-tools libnvidia-container1 nvidia-docker2 nvidia-container-runtime"
)
# Packages whose version is the docker client's / nvidia-ctk's: their --version is asked only
# when none of them is installed (a binary install).
CLIENT_PACKAGES = "docker.io docker-ce-cli moby-cli"
CTK_PACKAGES = "nvidia-container-toolkit nvidia-container-toolkit-base"
# Units: the driver's, Docker, the exporters, the registry mirror's (the package's own, and one
# instance per config file, gpuhost/mirror), and gpuhost's workspaces (one per unit file).
UNITS = ("docker nvidia-persistenced nvidia-fabricmanager prometheus-node-exporter gpuhost-dcgm-exporter "
         "gpuhost-gpu-metrics.timer docker-registry")
INFO_FORMAT = (
    "server_version={{.ServerVersion}}\n"
    "default_runtime={{.DefaultRuntime}}\n"
    "live_restore={{.LiveRestoreEnabled}}\n"
    "cgroup_driver={{.CgroupDriver}}\n"
    "runtimes={{json .Runtimes}}"
)
# Container details come from `docker inspect --format`, which reads no environment variable but one.
INSPECT_FORMAT = (
    '{{.Id}}{{"\\t"}}{{.Name}}{{"\\t"}}{{.Config.Image}}{{"\\t"}}{{.HostConfig.Runtime}}'
    '{{"\\t"}}{{json .HostConfig.DeviceRequests}}{{"\\t"}}'
    '{{range .Config.Env}}{{if ge (len .) 23}}{{if eq (slice . 0 23) "NVIDIA_VISIBLE_DEVICES="}}'
    "{{.}}{{end}}{{end}}{{end}}"
)
WORKSPACE_FILTER = "%7B%22label%22%3A%5B%22gpuhost.workspace%22%5D%7D"  # {"label":["gpuhost.workspace"]}

# --- the readings ---------------------------------------------------------------------------------

# The kernel release and machine from /proc (Linux 6.1 and later have kernel/arch), else uname.
KERNEL = r"""
k=; m=; read -r k 2>/dev/null < /proc/sys/kernel/osrelease; read -r m 2>/dev/null < /proc/sys/kernel/arch
[ -n "$k" ] && [ -n "$m" ] || { u=$(uname -rm 2>/dev/null); k=${u% *}; m=${u##* }; }
"""

# One dpkg-query for every part: gpuhost's package families (managed), Docker's and the toolkit's
# (container), holds, half-done packages and the running kernel's headers (host). Whether the
# repositories offer missing headers is not asked here (apt-cache costs more than the rest of the
# host part): the driver stage asks when it has work and DKMS builds the module (gpuhost/driver/stage.py).
DPKG = r"""
hd=absent; [ -e "/lib/modules/$k/build/Makefile" ] && hd=present
if command -v dpkg-query >/dev/null 2>&1; then
  # dpkg's database changes by a new status file renamed into place, or through its journal
  # (updates/). So the answer below is kept in /run/gpuhost (root's) under the status file's
  # identity (ctime to the nanosecond, device and inode, size) and the kernel, and used while that
  # identity holds, the journal is empty and the file had changed over a second before it was read
  # (a change within the clock's tick then gives it another ctime). About 6 ms of a snapshot.
  pk=; kk=; kd=; ok_=; kf=/run/gpuhost/dpkg.__DPKG_KEEP__
  if [ -O /run ] && [ -z "${DPKG_ADMINDIR:-}${DPKG_ROOT:-}" ] && [ -d /var/lib/dpkg/updates ] && ! [ -L /var/lib/dpkg/status ]; then
    for f in /var/lib/dpkg/updates/*; do [ -e "$f" ] && kf=; break; done
    [ -n "$kf" ] && set -- $(stat -c '%.9Z %d.%i %s' /var/lib/dpkg/status /proc/self/fd/1 2>/dev/null) && [ $# = 6 ] &&
      case "$1 $4" in [1-9]*.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]' '[1-9]*.*) [ "${1%.*}" -lt "$((${4%.*} - 1))" ] && kd="$1 $2 $3 $k";; esac
    if [ -n "$kd" ] && [ -f "$kf" ] && [ -O "$kf" ] && ! [ -L "$kf" ] && [ -O /run/gpuhost ] && ! [ -L /run/gpuhost ]; then
      while IFS= read -r l_; do if [ -z "$kk" ]; then kk=$l_; [ "$kk" = "$kd" ] || break; else pk="$pk$l_$nl"; fi; done < "$kf"
      [ "$kk" = "$kd" ] && pk=${pk%"$nl"} || pk=
    fi
  fi
  # Kept only when dpkg-query answered in full (its exit status, through awk's).
  [ -n "$pk" ] || { pk=$({ dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null && echo @@dpkg_ok; } | awk -v h="linux-headers-$k" \
      -v fam='__FAMILIES__' -v pkgs=' __PACKAGES__ ' -v cli=' __CLIENT__ ' -v ctk=' __CTK__ ' '
    $1 == "@@dpkg_ok" { ok = 1; next }
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
          if (hv != "") print "  Installed: " hv; exit !ok }') && ok_=1; }
  [ -n "$kd" ] && [ "$ok_" = 1 ] && [ "$kk" != "$kd" ] && case "$pk" in *"@@headers_apt "*)
    ( umask 077; mkdir -p /run/gpuhost && [ -O /run/gpuhost ] && [ ! -L /run/gpuhost ] && rm -f /run/gpuhost/dpkg.* \
      && printf '%s\n%s\n' "$kd" "$pk" > "$kf.$$" && mv -f "$kf.$$" "$kf" ) 2>/dev/null;; esac
  printf '%s\n' "$pk"
elif command -v rpm >/dev/null 2>&1; then
  pk=
  echo '@@gpuhost managed 1'; echo '@@packages'
  rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n' 2>/dev/null | grep -E '__FAMILIES__'
  echo '@@gpuhost container 1'; echo '@@packages'
  rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE} ii\n' __PACKAGES__ 2>/dev/null | grep -v 'not installed'
  echo '@@gpuhost host 1'
  echo "@@headers_rpm kernel-devel-$k"; rpm -q "kernel-devel-$k" 2>/dev/null | grep -v 'not installed'
  echo '@@holds'
  command -v dnf >/dev/null 2>&1 && timeout 60 dnf -q versionlock list 2>/dev/null
fi
"""
# The kept answer is named for the reading that made it: another gpuhost's may print another answer
# from the same database.
DPKG = DPKG.replace("__DPKG_KEEP__", hashlib.sha256("\0".join(
    (DPKG, PACKAGE_FAMILIES, CONTAINER_PACKAGES, CLIENT_PACKAGES, CTK_PACKAGES)).encode()).hexdigest()[:16])

# One systemctl for every unit, printed as "unit enabled-state active-state" lines: gpuhost's
# workspaces to the workspace part, the fabric manager's state to the gpu part, all others to
# managed.
UNITS_READING = r"""
on_path nv-fabricmanager; fm=${w:--}
wsu=; for f in /etc/systemd/system/gpuhost-workspace-*.service; do [ -e "$f" ] && wsu="$wsu ${f##*/}"; done
if [ -d /run/systemd/system ]; then
  mu=; for f in /etc/gpuhost/mirror/*.yml; do [ -e "$f" ] && { f=${f##*/}; mu="$mu gpuhost-mirror@${f%.yml}"; }; done
  # systemd is asked only about units with a unit file (it searches the disk for each unknown
  # name: a third of the cost); one without is what systemd says of it: no file state, inactive.
  un=; nf=; for x in __UNITS__; do
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
"""

# The Docker daemon: how it runs (dockerd processes, through /proc: no ps), then ONE pass over its
# unix socket (api_perl, else api_curl) for /info, the images, the running containers and gpuhost's
# workspace containers (each docker CLI call starts a large Go binary, several times the CPU of
# either); else the CLI. Container details come from one `docker inspect --format`, only when containers run.
DOCKER = r"""
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
  # Another user's daemon reads its own file (its --config-file may name any file root can read).
  if [ -z "$cfg" ] || [ "$uid" != 0 ]; then
    if [ "$uid" = 0 ]; then cfg=/etc/docker/daemon.json; from=default
    else cfg=$(getent passwd "$uid" | cut -d: -f6)/.config/docker/daemon.json; from=rootless; fi
  fi
  # Only root's daemon names the socket to ask: any user can start a process called dockerd.
  [ "$uid" = 0 ] && case "$sock" in unix://*) [ -z "$host" ] && host=$sock;; esac
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
  if [ -n "$icf" ] && [ -f "$icf" ] && [ -O "$icf" ] && ! [ -L "$icf" ] && [ -O /run/gpuhost ] && ! [ -L /run/gpuhost ]; then
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
if [ -n "$c" ] && [ -n "$s" ] && [ -S "$s" ] && { [ -n "$DOCKER_HOST" ] || [ -O "$s" ]; }; then
  q='/images/json @@api_containers /containers/json'
  [ -z "$ic" ] && q="/info @@api_images $q"
  [ -n "$wsu" ] && q="$q @@api_workspace_containers /containers/json?all=1&filters=__WS_FILTER__"
  for via in perl curl; do
    command -v $via >/dev/null 2>&1 || continue
    set -f; api=$([ -n "$ic" ] && printf '%s\n\n@@api_images\n' "$ic"; api_$via $q); st_=$?; set +f
    # The daemon answered: /info (or its kept answer), then the running containers (a JSON list).
    case "$api" in *'"ServerVersion"'*'@@api_containers'?'['*) rc=0; break;; *) api=;; esac
    [ "$st_" = 8 ] && break
  done
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
  [ -n "$ids" ] && $T $c inspect --format '__INSPECT_FORMAT__' $ids 2>/dev/null
  case "$api" in *@@api_workspace_containers*) echo '@@gpuhost workspace 1'; printf '@@api_workspace_containers\n%s\n' "${api#*@@api_workspace_containers}"
    echo '@@api_images'; a=${api#*@@api_images}; printf '%s\n' "${a%%@@api_containers*}"
    echo '@@gpuhost container 1';; esac
elif [ -n "$c" ]; then
  info=$($T $c info --format '__INFO_FORMAT__' 2>&1); rc=$?
  echo '@@info'; printf '%s\n' "$info" | head -n 20; echo "@@info_rc $rc"
  ids=$($T $c ps -q 2>/dev/null | tr '\n' ' ')
  echo '@@containers'
  [ -n "$ids" ] && $T $c inspect --format '__INSPECT_FORMAT__' $ids 2>/dev/null
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
"""

# on_path NAME: $w is NAME's path in $PATH, or empty: what `command -v` says of a program, without
# the subshell that w=$(command -v NAME) forks. print_file FILE: `cat FILE` without its process
# (small files). $nl: a newline.
ON_PATH = r"""
on_path() { w=; ifs_=$IFS; IFS=:; for p_ in $PATH; do [ -f "$p_/$1" ] && [ -x "$p_/$1" ] && { w=$p_/$1; break; }; done; IFS=$ifs_; }
print_file() { while IFS= read -r l_ || [ -n "$l_" ]; do printf '%s\n' "$l_"; done < "$1"; }
nl='
'
# api_perl / api_curl URL [MARKER URL]...: GET each URL of the Engine API on the unix socket $s, each
# answer followed by a newline, and by its MARKER line where one follows. Perl's socket builtins
# (Debian's and Ubuntu's perl-base is Essential) start in a third of curl's time, which loads about 30
# libraries: about 10 ms of a lab host's snapshot. HTTP/1.0: the daemon answers unchunked and closes.
# AF_UNIX and SOCK_STREAM are 1 on Linux's x86-64 and arm64. A JSON answer has no raw newline, so
# none is printed (a marker line cannot come from the daemon). Either may fail: the next is tried,
# unless perl timed out (exit 8: the daemon does not answer; curl would wait as long again).
api_perl() { perl -e '$SIG{ALRM} = sub { exit 8 }; alarm 20; my $s = shift; length($s) < 108 or exit 7;
  for my $t (@ARGV) { if ($t !~ m{^/}) { print "$t\n"; next }
  my $c; socket($c, 1, 1, 0) && connect($c, pack("S Z108", 1, $s)) or exit 7;
  syswrite $c, "GET $t HTTP/1.0\r\nHost: docker\r\n\r\n"; my $r = "";
  while (length($r) < 67108864 && sysread($c, $r, 65536, length $r)) {}
  $r =~ s/^.*?\r\n\r\n//s or exit 7; $r =~ tr/\r\n//d; print "$r\n" }' "$s" "$@" 2>/dev/null; }
api_curl() { a_=; for t_; do case "$t_" in /*) a_="$a_${a_:+ --next} -s -m 20 --unix-socket $s http://localhost$t_ -w \\n";; *) a_="$a_$t_\\n";; esac; done
  curl $a_ 2>/dev/null; }
"""

READINGS = {
    "kernel": KERNEL,
    "dpkg": DPKG,
    "units": UNITS_READING,
    "docker": DOCKER,
}
# What each reading needs read before it.
NEEDS = {"dpkg": ("kernel",), "docker": ("units",)}


@dataclass(frozen=True)
class Part:
    """One part of the snapshot: its shared readings, its own script (printing `@@gpuhost NAME 1`
    and its sections), and optional steps before the readings (start background work) and after
    every script (collect it)."""

    name: str
    reads: tuple[str, ...]
    script: str
    start: str = ""
    finish: str = ""


def _fill(script: str) -> str:
    return (script.replace("__FAMILIES__", PACKAGE_FAMILIES).replace("__PACKAGES__", CONTAINER_PACKAGES)
            .replace("__CLIENT__", CLIENT_PACKAGES).replace("__CTK__", CTK_PACKAGES).replace("__UNITS__", UNITS)
            .replace("__WS_FILTER__", WORKSPACE_FILTER).replace("__INFO_FORMAT__", INFO_FORMAT)
            .replace("__INSPECT_FORMAT__", INSPECT_FORMAT))


def command(*parts: Part) -> str:
    """One shell command for `parts`: their start steps, the readings they need (each once, in
    READINGS' order), each part's script, then the finishing steps. It exits 0, or 1 with one line
    when its reading was cut short (its shell killed).

    Its output is written at once at the end: printed as it is read, it crossed SSH in many small
    packets, each handled by the control node's paramiko (about 7 ms of a host's 10 KB, against 2
    when written at once) and by the host's sshd (2.5 ms more)."""
    wanted: set[str] = set()
    for part in parts:
        for name in part.reads:
            wanted |= {name, *NEEDS.get(name, ())}
    body = ["bg=", ON_PATH, *(part.start for part in parts)]  # no background work unless a part starts some
    body += [READINGS[name] for name in READINGS if name in wanted]
    body += [part.script for part in parts]
    body += [part.finish for part in parts]
    body.append("[ -n \"$bg\" ] && rm -rf \"$bg\"\necho .")  # the mark keeps the output's last newlines
    script = "\n".join(step.strip() for step in body if step.strip())
    return _fill(f"out_=$(\n{script}\n)\ncase \"$out_\" in *.) printf '%s' \"${{out_%.}}\";; "
                 "*) echo 'gpuhost: the reading stopped before its end' >&2; exit 1;; esac")
