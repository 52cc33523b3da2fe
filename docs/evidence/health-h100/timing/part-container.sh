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
