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
