#!/bin/sh
# Runs once inside the debootstrapped root (chroot) before it becomes the lab's
# test-host image. Changing this file rebuilds the image.
set -eu

# apt: Debian's own mirror, reached through the engine's NAT like a real server
# (bookworm or trixie: the release debootstrap made).
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
cat > /etc/apt/sources.list <<SOURCES
deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SOURCES
rm -f /etc/apt/sources.list.d/debian.sources

# CA certificates this machine added (copied in by the lab before this script runs).
update-ca-certificates >/dev/null

# sshd: root by key only (the lab injects its public key when a host starts).
cat > /etc/ssh/sshd_config.d/gpuhost-lab.conf <<'SSHD'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
SSHD
mkdir -p -m 700 /root/.ssh
systemctl enable ssh.service

# systemd in a container: no consoles or hardware to wait for.
systemctl mask getty@tty1.service console-getty.service \
    systemd-udevd.service systemd-udev-trigger.service \
    systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
    systemd-remount-fs.service 2>/dev/null || true

# Every container gets its own machine id at first boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/log/*.log
