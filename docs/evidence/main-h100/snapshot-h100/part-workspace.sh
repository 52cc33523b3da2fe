bg=; hp=
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
T=; command -v timeout >/dev/null 2>&1 && T='timeout 20'
c=$(command -v docker 2>/dev/null); d=$(command -v dockerd 2>/dev/null)
[ -z "$d" ] && [ -x /usr/bin/dockerd ] && d=/usr/bin/dockerd
echo '@@gpuhost container 1'
echo "@@docker_client ${c:--}"
case "$c $pk" in /usr/bin/docker*'@@package_flags cli=1'*) ;; /*) $T "$c" --version 2>&1 | head -n 1;; esac
echo "@@dockerd ${d:--}"
echo "@@docker_host ${DOCKER_HOST:--}"
echo '@@daemons'
cfgs=; host=
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
    case "$a" in --config-file=*) [ -z "$cfg" ] && cfg=${a#*=};; --config-file) [ -z "$cfg" ] && want=cfg;;
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
  cfgs="$cfgs $cfg"
done
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
  api=$(curl $o -w '\n@@api_images\n' http://localhost/info --next $o -w '\n@@api_containers\n' http://localhost/images/json \
        --next $o -w "$w" http://localhost/containers/json $ws 2>/dev/null)
  case "$api" in *'"ServerVersion"'*) rc=0;; *) api=;; esac
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
[ -n "$bg" ] && rm -rf "$bg"
true
