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
echo '@@gpuhost host 1'
echo '@@os_release'
for f in /etc/os-release /usr/lib/os-release; do
  [ -r "$f" ] && { while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$f"; break; }
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
ino=; [ -n "$lf" ] && ino=$(stat -c '%i %n' $lf 2>/dev/null)
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
u=$(command -v nvidia-uninstall 2>/dev/null)
if [ -n "$u" ] && ! { command -v dpkg-query >/dev/null 2>&1 && dpkg-query -S "$u" >/dev/null 2>&1; } \
   && ! { command -v rpm >/dev/null 2>&1 && rpm -qf "$u" >/dev/null 2>&1; }; then
  echo "@@runfile_driver $u"
  ls -1 /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.*.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.*.* /usr/lib64/libnvidia-ml.so.*.* /usr/lib/libnvidia-ml.so.*.* 2>/dev/null | head -n 1
fi
if [ -n "$hp" ]; then
  wait "$hp"; echo '@@gpuhost host 1'; echo '@@headers_candidate'
  awk -F'|' 'NR == 1 { gsub(/ /, "", $2); print "  Candidate: " $2 }' "$bg/headers"
fi
[ -n "$bg" ] && rm -rf "$bg"
true
