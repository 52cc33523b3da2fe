"""Host state that decides whether a driver change is possible and safe, read in one command.

`HostState` reads the OS, kernel and its headers, Secure Boot, package holds,
the apt/dpkg lock and its holder, and whether a reboot is pending. The command
always exits 0; a tool the host lacks (mokutil, apt, dnf, fuser) leaves its
reading at None/[]/False.

Shape of the fact (all keys always present)::

    {
      "os": {"id": "ubuntu", "version_id": "24.04", "codename": "noble",
             "pretty_name": "Ubuntu 24.04.3 LTS", "id_like": ["debian"]},
      "arch": "x86_64",
      "kernel": "6.8.0-85-generic",
      "package_manager": "apt" | "dnf" | "yum" | "zypper" | None,
      "kernel_headers": {
        "installed": bool,            # /lib/modules/$(uname -r)/build/Makefile exists
        "package": "linux-headers-6.8.0-85-generic" | "kernel-devel-..." | None,
        "package_installed": "6.8.0-85.85" | None,
      },                              # what the repositories offer is asked by the driver stage
                                      # only when DKMS will build (gpuhost/driver/stage.py)
      "secure_boot": {"state": "enabled" | "disabled" | "unsupported" | None,
                      "efi": bool, "source": "mokutil" | "efivars" | None},
      "held_packages": ["nvidia-driver-580", ...],   # dpkg holds (apt-mark hold) / dnf versionlock
      "held_nvidia_packages": [...],                 # the NVIDIA/CUDA ones among them
      "package_lock": {"held": bool,
                       "holders": [{"lock": "/var/lib/dpkg/lock-frontend", "pid": 812,
                                    "command": "apt-get", "cmdline": "apt-get install ..."}],
                       "dpkg_running": bool,         # a dpkg/apt process holds dpkg's lock now
                       "dpkg_interrupted": bool,     # `dpkg --configure -a` needed (no dpkg running,
                                                     # yet its journal or half-done packages remain)
                       "unfinished_packages": [...]},
      "reboot": {"required": bool, "packages": ["linux-image-..."],
                 "source": "reboot-required" | "needs-restarting" | None},
      "unattended_upgrades": bool,    # the unattended-upgrades package is installed
      "systemd": bool,                # systemd is PID 1 (services can be restarted)
      "runfile_driver": {"uninstaller": "/usr/bin/nvidia-uninstall", "version": "550.54.14"} | None,
                                      # a driver from NVIDIA's .run installer: its nvidia-uninstall
                                      # (owned by no package) and its NVML library's version
      "warnings": ["..."],
    }
"""

from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase

from facts.readings import Part, command
from facts.sections import Sections, env_file, key_values_with_tail, part_sections

# Driver-side packages (not CUDA libraries such as libcublas): what a driver change touches.
NVIDIA_PACKAGE_RE = re.compile(r"^(nvidia|libnvidia|cuda-drivers|kmod-nvidia|libxnvctrl)|-nvidia-|^dkms-nvidia")
DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
LOCK_FILES = (
    *DPKG_LOCKS,
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
)

# POSIX sh. The lock scan uses /proc/locks (no fuser needed): a lock file's inode listed
# there is locked, and the listed pid holds it; waiters ("->" lines) are skipped. Holds, half-done
# packages and the headers' package come from the shared dpkg reading (facts/readings.py).
SCRIPT = r"""
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
lf=; for f in __LOCK_FILES__; do [ -e "$f" ] && lf="$lf $f"; done
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
"""
PART = Part("host", ("dpkg",), SCRIPT.replace("__LOCK_FILES__", " ".join(LOCK_FILES)))
COMMAND = command(PART)


class HostState(FactBase):
    """OS, kernel + headers, Secure Boot, held packages, apt/dpkg lock, pending reboot."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_host_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_host_sections(part_sections(output, "host"))


def process_host_sections(sections: Sections) -> dict[str, Any]:
    """Turn the script's sections into the documented dict (module docstring)."""
    warnings: list[str] = []
    release = env_file(sections.lines("os_release"))
    manager = sections.header("package_manager")
    package_manager = {"apt-get": "apt"}.get(manager or "", manager)

    headers = _headers(sections)
    secure_boot = _secure_boot(sections)
    if secure_boot["state"] == "enabled":
        warnings.append("Secure Boot is enabled: driver modules must be signed (MOK enrolment)")

    held = [line.split()[0] for line in sections.lines("holds") if not line.startswith(" ")]
    unfinished = [line.split()[1] for line in sections.lines("holds") if line.startswith("  unfinished ")]
    held_nvidia = [name for name in held if NVIDIA_PACKAGE_RE.search(name.lower())]

    holders = []
    for line in sections.lines("locks"):
        values, cmdline = key_values_with_tail(line, "cmdline")
        pid = values.get("pid", "-")
        holders.append(
            {
                "lock": values.get("lock"),
                "pid": int(pid) if pid.isdigit() else None,
                "command": values.get("comm") or None,
                "cmdline": cmdline,
            }
        )
    # A running dpkg (unattended-upgrades mid-upgrade) leaves the same traces as one that was
    # killed: only with no process holding dpkg's lock is it interrupted.
    running = any(h["lock"] in DPKG_LOCKS for h in holders)
    interrupted = (sections.header("dpkg_journal") == "yes" or bool(unfinished)) and not running
    if holders:
        who = ", ".join(
            sorted({f"{h['command'] or '?'} (pid {h['pid'] or '?'})" for h in holders})
        )
        warnings.append(f"package manager lock held by {who}")
    if interrupted:
        warnings.append("dpkg was interrupted: `dpkg --configure -a` is needed (the deploy runs it first)")

    reboot = _reboot(sections)
    if reboot["required"]:
        warnings.append("a reboot is pending")
    return {
        "os": {
            "id": release.get("ID"),
            "version_id": release.get("VERSION_ID"),
            "codename": release.get("VERSION_CODENAME") or release.get("UBUNTU_CODENAME"),
            "pretty_name": release.get("PRETTY_NAME"),
            "id_like": release.get("ID_LIKE", "").split(),
        },
        "arch": sections.header("arch"),
        "kernel": sections.header("kernel"),
        "package_manager": package_manager,
        "kernel_headers": headers,
        "secure_boot": secure_boot,
        "held_packages": held,
        "held_nvidia_packages": held_nvidia,
        "package_lock": {
            "held": bool(holders),
            "holders": holders,
            "dpkg_running": running,
            "dpkg_interrupted": interrupted,
            "unfinished_packages": unfinished,
        },
        "reboot": reboot,
        "unattended_upgrades": sections.header("unattended_upgrades") == "yes",
        "systemd": sections.header("systemd") == "yes",
        "runfile_driver": _runfile_driver(sections),
        "warnings": warnings,
    }


def _runfile_driver(sections: Sections) -> dict[str, Any] | None:
    uninstaller = sections.header("runfile_driver")
    if uninstaller is None:
        return None
    libraries = sections.lines("runfile_driver")
    match = re.search(r"\.so\.(\d+\.\d+(?:\.\d+)?)$", libraries[0].strip()) if libraries else None
    return {"uninstaller": uninstaller, "version": match.group(1) if match else None}


def _headers(sections: Sections) -> dict[str, Any]:
    installed = sections.header("headers_dir") == "present"
    package = None
    package_installed = None
    if sections.first("headers_apt") is not None:
        package = sections.header("headers_apt")
        for line in sections.lines("headers_apt"):
            key, _, value = line.strip().partition(":")
            if key == "Installed" and value.strip() not in ("", "(none)"):
                package_installed = value.strip()
    elif sections.first("headers_rpm") is not None:
        package = sections.header("headers_rpm")
        rpm_lines = sections.lines("headers_rpm")
        package_installed = rpm_lines[0].strip() if rpm_lines else None
    return {"installed": installed, "package": package, "package_installed": package_installed}


def _secure_boot(sections: Sections) -> dict[str, Any]:
    efi = sections.header("efi") == "yes"
    mokutil = " ".join(sections.lines("mokutil")).lower()
    if mokutil:
        if "secureboot enabled" in mokutil:
            return {"state": "enabled", "efi": efi, "source": "mokutil"}
        if "secureboot disabled" in mokutil:
            return {"state": "disabled", "efi": efi, "source": "mokutil"}
        if "not supported" in mokutil or "doesn't support" in mokutil:
            return {"state": "unsupported", "efi": efi, "source": "mokutil"}
    byte = sections.header("efivar")
    if byte in ("0", "1"):
        return {"state": "enabled" if byte == "1" else "disabled", "efi": efi, "source": "efivars"}
    if not efi:
        # Legacy BIOS boot: Secure Boot cannot be on.
        return {"state": "unsupported", "efi": False, "source": None}
    return {"state": None, "efi": efi, "source": None}


def _reboot(sections: Sections) -> dict[str, Any]:
    lines = [line.strip() for line in sections.lines("reboot")]
    if "reboot-required" in lines:
        packages = [
            line for line in lines if line != "reboot-required" and not line.startswith("needs-")
        ]
        return {"required": True, "packages": sorted(set(packages)), "source": "reboot-required"}
    for line in lines:
        if line.startswith("needs-restarting "):
            if line.split()[1] == "1":
                return {"required": True, "packages": [], "source": "needs-restarting"}
    return {"required": False, "packages": [], "source": None}
