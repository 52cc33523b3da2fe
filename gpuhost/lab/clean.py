"""`./dev clean`: remove what the demo and the tests left on this machine, and put back what the lab changed.

The lab records what it changes outside its state directory, the first time it changes it, in
<state dir>/changes.json:
- `sysctl`: the original value of a kernel setting before the lab raised it
  (fs.inotify.max_user_instances, for many hosts);
- `before_engine`: the machine's network as it was right before the lab first started its own
  dockerd (sysctl, links, iptables), since dockerd adds the docker0 bridge, its DOCKER chains,
  sets the FORWARD policy to DROP and turns IP forwarding on, and leaves all of it after it stops.

clean() removes the lab's containers, networks and images, stops the lab's own engine, reverts
Docker's iptables rules, chains and bridges that were not there before (only Docker's: DOCKER*
chains, docker0, br-<id>, a published port's hairpin NAT), the FORWARD policy and the recorded
sysctl values, then deletes the state directory. A Docker engine the lab did not start is never
stopped, and while any other dockerd runs in this network namespace, Docker's iptables, docker0
and IP forwarding are shared with it and left as they are. Packages are not removed (other
software may use them): the command to remove them is printed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from gpuhost.errors import GpuhostError
from gpuhost.lab import changes as lab_changes
from gpuhost.lab.changes import TABLES, machine_state, read_changes
from gpuhost.lab.state import progress, state_dir

DOCKER_LINK = re.compile(r"^(docker0|br-[0-9a-f]{12})$")
DOCKER_RULE = re.compile(r"(^-[ANP] DOCKER|-j DOCKER|\bdocker0\b|\bbr-[0-9a-f]{12}\b"
                         # the hairpin NAT of a published port, left when dockerd stops with it running
                         r"|^-A POSTROUTING -s (?P<addr>\S+)/32 -d (?P=addr)/32 -p (?P<proto>tcp|udp) -m (?P=proto) --dport \d+ "
                         r"-j MASQUERADE$)")


# --- Deciding (pure) --------------------------------------------------------------------------


def network_restore(before: dict, now: dict) -> list[list[str]]:
    """Commands that take Docker's network changes back to `before`: only rules, chains and links that
    are Docker's (DOCKER* chains, docker0, br-<id>) and were not there before; the built-in
    chains' policies as they were."""
    commands: list[list[str]] = []
    for table in TABLES:
        old = set((before.get("iptables") or {}).get(table) or [])
        lines = [line for line in (now.get("iptables") or {}).get(table) or [] if line not in old]
        for line in reversed([x for x in lines if x.startswith("-A ") and DOCKER_RULE.search(x)]):
            commands.append(["iptables", "-t", table, "-D", *shlex.split(line)[1:]])
        for line in lines:
            if line.startswith("-N ") and DOCKER_RULE.search(line):
                chain = line.split()[1]
                commands += [["iptables", "-t", table, "-F", chain], ["iptables", "-t", table, "-X", chain]]
        old_policies = {x.split()[1]: x.split()[2] for x in old if x.startswith("-P ")}
        for line in lines:
            if line.startswith("-P ") and line.split()[1] in old_policies:
                commands.append(["iptables", "-t", table, "-P", line.split()[1], old_policies[line.split()[1]]])
    for link in sorted(set(now.get("links") or []) - set(before.get("links") or [])):
        if DOCKER_LINK.match(link):
            commands.append(["ip", "link", "delete", link])
    return commands


def sysctl_restore(originals: dict[str, str | None], now: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """({name: value to write back}, notes). A setting that did not exist before (a kernel module
    loaded since, e.g. br_netfilter) cannot be written back: a note says so."""
    writes, notes = {}, []
    for name, original in sorted(originals.items()):
        current = now.get(name)
        if original is None and current is not None:
            notes.append(f"{name} appeared (its kernel module was loaded): it stays until reboot")
        elif original is not None and current is not None and current != original:
            writes[name] = original
    return writes, notes


def differences(before: dict, after: dict) -> list[str]:
    """What is not as it was: sysctl values, links (veth pairs aside), iptables lines. Pure."""
    found = []
    for name, value in sorted((before.get("sysctl") or {}).items()):
        if value is not None and (after.get("sysctl") or {}).get(name) != value:
            found.append(f"sysctl {name}: {value} before, {(after.get('sysctl') or {}).get(name)} now")
    def links(state):
        return {name for name in state.get("links") or [] if not name.startswith("veth")}
    for name in sorted(links(after) - links(before)):
        found.append(f"link {name}: new")
    for name in sorted(links(before) - links(after)):
        found.append(f"link {name}: gone")
    for table in TABLES:
        old = set((before.get("iptables") or {}).get(table) or [])
        new = set((after.get("iptables") or {}).get(table) or [])
        found += [f"iptables -t {table}: {line!r} new" for line in sorted(new - old)]
        found += [f"iptables -t {table}: {line!r} gone" for line in sorted(old - new)]
    return found


def originals_of(changes: dict) -> dict[str, str | None]:
    """Each recorded setting's value before the lab: the first record wins."""
    originals = dict((changes.get("before_engine") or {}).get("sysctl") or {})
    originals.update(changes.get("sysctl") or {})
    return originals


# --- Doing ------------------------------------------------------------------------------------


def clean(check: bool = False, dry_run: bool = False) -> int:
    """Remove the lab and revert its changes (dry_run: only say what would be done); with check,
    compare the machine afterwards with the record. Returns the exit status."""
    from gpuhost.lab.engine import SYSTEM_SOCKET, _pidfile_pid, answers, lab_socket, stop_engine

    def act(text: str, function=None) -> None:
        progress(("would: " if dry_run else "") + text)
        if function is not None and not dry_run:
            function()

    root = state_dir()
    changes = read_changes()
    ours = _pidfile_pid()
    engines = dict.fromkeys(h for h in (lab_socket(), os.environ.get("DOCKER_HOST"), f"unix://{SYSTEM_SOCKET}")
                            if h and answers(h))
    for where in engines:
        act(f"remove every lab container, network and gpuhost-lab/ image from the engine at {where}",
            lambda where=where: _remove_from_engine(where))
    if ours is not None:
        act(f"stop the lab's dockerd (pid {ours})", lambda: stop_engine() or _fail("the lab's dockerd did not stop"))
    before = changes.get("before_engine")
    others = [pid for pid in running_dockerds() if pid != ours]
    originals = dict(changes.get("sysctl") or {})
    if others:
        progress(f"another dockerd runs (pid {', '.join(map(str, others))}): Docker's iptables rules, docker0 "
                 "and IP forwarding are shared with it and left as they are")
    elif before is None:
        progress("no record of this machine's network before the lab's engine (none started here, or by an "
                 "older lab): iptables, links and IP forwarding left as they are")
    else:
        for command in network_restore(before, machine_state()):
            act(" ".join(command), lambda command=command: _run(command))
        originals = originals_of(changes)
    writes, notes = sysctl_restore(originals, machine_state()["sysctl"])
    for name, value in writes.items():
        act(f"sysctl {name}={value} (as before the lab)", lambda name=name, value=value: _write_sysctl(name, value))
    for note in notes:
        progress(note)
    packages = _installed_packages(root)
    act(f"remove {root} ({_size(root)}: the engine's data, the image cache, the SSH key)",
        lambda: subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False))
    if packages:
        progress("packages installed for the lab stay (other software may use them); to remove them: "
                 f"apt-get purge {' '.join(packages)} && apt-get autoremove")
    if not check:
        return 0
    if before is None:
        progress("check: no record of the machine before the lab's engine: nothing to compare")
        return 1
    found = differences(before, machine_state())
    for line in found:
        progress(f"check: not as before the lab: {line}")
    if not found:
        progress("check: sysctl, links and iptables are as they were before the lab")
    return 1 if found else 0


def running_dockerds() -> list[int]:
    """PIDs of the dockerds that share this machine's network (its iptables, docker0): those in this
    network namespace. A lab host's own dockerd (Docker installed in a host) has its own."""
    pids = []
    here = os.stat("/proc/self/ns/net").st_ino
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "dockerd" and os.stat(comm.parent / "ns" / "net").st_ino == here:
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return sorted(pids)


def _remove_from_engine(docker_host: str) -> None:
    from gpuhost.lab.engine import docker
    from gpuhost.lab.lab import cleanup

    os.environ["DOCKER_HOST"] = docker_host
    removed = cleanup(everything=True)
    images = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    lab_images = [tag for tag in images if tag.startswith("gpuhost-lab/")]
    if lab_images:
        docker("image", "rm", *lab_images, check=False)
    progress(f"{docker_host}: removed {len(removed)} lab container(s)/network(s), {len(lab_images)} image(s)")


def _write_sysctl(name: str, value: str) -> None:
    try:
        (lab_changes.PROC_SYS / name.replace(".", "/")).write_text(f"{value}\n")
    except OSError as exc:
        progress(f"sysctl {name}={value}: failed ({exc.strerror}): run ./dev clean as root")


def _fail(message: str):
    raise GpuhostError(message)


def _installed_packages(root: Path) -> list[str]:
    try:
        names = (root / "installed-packages").read_text().split()
    except OSError:
        return []
    return list(dict.fromkeys(names))


def _size(path: Path) -> str:
    proc = subprocess.run(["du", "-sh", "--one-file-system", str(path)], capture_output=True, text=True)
    return proc.stdout.split("\t")[0] if proc.returncode == 0 else "?"


def _run(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        progress(f"{' '.join(command)}: failed ({proc.stderr.strip()})")
