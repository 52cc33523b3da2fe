"""What the lab records before it changes this machine (for `./dev clean`, gpuhost/lab/clean.py),
and how it reads the machine: <state dir>/changes.json holds
- `sysctl`: the original value of a kernel setting before the lab raised it;
- `before_engine`: the machine's network right before the lab first started its own dockerd.
The engine and the lab record here; clean.py reads it back (so clean.py can use both without a cycle).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from gpuhost.lab.state import locked, state_dir

SYSCTLS = ("fs.inotify.max_user_instances", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
           "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
TABLES = ("filter", "nat")
PROC_SYS = Path("/proc/sys")


# --- Recording (the lab calls these before it changes something) ------------------------------


def changes_path() -> Path:
    return state_dir() / "changes.json"


def read_changes(path: Path | None = None) -> dict:
    try:
        return json.loads((path or changes_path()).read_text())
    except (OSError, ValueError):
        return {}


def _update_changes(update) -> None:
    with locked("changes"):
        changes = read_changes()
        if update(changes):
            changes_path().write_text(json.dumps(changes, indent=2, sort_keys=True) + "\n")


def record_sysctl(name: str, original: str) -> None:
    """Remember a kernel setting's value before the lab first changes it (later calls keep the first)."""
    def update(changes):
        recorded = changes.setdefault("sysctl", {})
        if name in recorded:
            return False
        recorded[name] = original
        return True
    _update_changes(update)


def record_before_engine() -> None:
    """Remember the machine's network before the lab's first dockerd (later calls keep the first)."""
    def update(changes):
        if "before_engine" in changes:
            return False
        changes["before_engine"] = machine_state()
        return True
    _update_changes(update)


def record_packages(packages: list[str]) -> None:
    """Packages the lab installed (./dev appends its own to the same file)."""
    with open(state_dir() / "installed-packages", "a") as handle:
        handle.writelines(f"{name}\n" for name in packages)


# --- Reading the machine ----------------------------------------------------------------------


def read_sysctl(name: str) -> str | None:
    try:
        return (PROC_SYS / name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def machine_state() -> dict:
    """What the lab's engine can change: sysctl values, network links, iptables (filter, nat)."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL).stdout if shutil.which("ip") else ""
    iptables = None
    if shutil.which("iptables"):
        iptables = {table: subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True,
                                          stdin=subprocess.DEVNULL).stdout.splitlines() for table in TABLES}
    return {"sysctl": {name: read_sysctl(name) for name in SYSCTLS}, "links": link_names(links),
            "iptables": iptables}


def link_names(ip_link_output: str) -> list[str]:
    """Interface names from `ip -o link show` ("5: br-447eefabb225: <...>", "7: veth56f4e1f@if51: ...")."""
    names = []
    for line in ip_link_output.splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            names.append(parts[1].split("@", 1)[0])
    return sorted(names)
