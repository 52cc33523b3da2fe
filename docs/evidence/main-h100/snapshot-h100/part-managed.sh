bg=; hp=
u=$(uname -rm 2>/dev/null); k=${u% *}; m=${u##* }
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
  if [ "$hd" != present ]; then
    if [ -n "$bg" ]; then apt-cache madison "linux-headers-$k" > "$bg/headers" 2>/dev/null & hp=$!
    else apt-cache madison "linux-headers-$k" 2>/dev/null | awk -F'|' 'NR == 1 { gsub(/ /, "", $2); print "  Candidate: " $2 }'; fi
  fi
elif command -v rpm >/dev/null 2>&1; then
  pk=
  echo '@@gpuhost managed 1'; echo '@@packages'
  rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n' 2>/dev/null | grep -E 'nvidia|cuda|docker|containerd|moby|linux-headers|kernel-devel|dkms|runc|firmware-misc-nonfree|nvlsm|infiniband-diags|prometheus'
  echo '@@gpuhost container 1'; echo '@@packages'
  rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE} ii\n' docker.io docker-ce docker-ce-cli docker-ce-rootless-extras containerd.io moby-engine podman-docker docker nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1 nvidia-docker2 nvidia-container-runtime 2>/dev/null | grep -v 'not installed'
  echo '@@gpuhost host 1'
  echo "@@headers_rpm kernel-devel-$k"; rpm -q "kernel-devel-$k" 2>/dev/null | grep -v 'not installed'
  echo '@@headers_dnf'
  command -v dnf >/dev/null 2>&1 && timeout 60 dnf -q --cacheonly list --available "kernel-devel-$k" 2>/dev/null | grep kernel-devel
  echo '@@holds'
  command -v dnf >/dev/null 2>&1 && timeout 60 dnf -q versionlock list 2>/dev/null
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
if [ -n "$hp" ]; then
  wait "$hp"; echo '@@gpuhost host 1'; echo '@@headers_candidate'
  awk -F'|' 'NR == 1 { gsub(/ /, "", $2); print "  Candidate: " $2 }' "$bg/headers"
fi
[ -n "$bg" ] && rm -rf "$bg"
true
