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
