"""CPU-seconds spent inside lab hosts, from their cgroups (the lab's containers), and by a
command on the control node (its children's rusage).

A lab host is a container of the lab's Docker engine: everything it runs (sshd for each command,
the snapshot's processes, its systemd, its dockerd answering the snapshot) is charged to the
container's cgroup. cgroup v1 (cpuacct.usage, nanoseconds) and v2 (cpu.stat usage_usec) are read.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cgroup_usage_file(container_id: str) -> Path:
    """The file that holds the container's CPU usage, for the engine's cgroupfs or systemd driver."""
    candidates = [
        CGROUP / "cpuacct" / "docker" / container_id / "cpuacct.usage",
        CGROUP / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage",
        CGROUP / "docker" / container_id / "cpu.stat",
        CGROUP / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat",
    ]
    for path in candidates:
        if path.exists():
            return path
    raise SystemExit(f"no cgroup CPU accounting found for container {container_id[:12]} under {CGROUP}")


def usage_seconds(path: Path) -> float:
    text = path.read_text()
    if path.name == "cpuacct.usage":
        return int(text) / 1e9
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise SystemExit(f"{path}: no usage_usec")


class HostsCpu:
    """Summed CPU-seconds of some lab hosts' containers: `with HostsCpu(ids) as cpu: ...; cpu.seconds`."""

    def __init__(self, files: list[Path]):
        self.files = files
        self.seconds = 0.0

    @classmethod
    def of(cls, hosts) -> HostsCpu:
        ids = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", *(h.container for h in hosts)],
                             capture_output=True, text=True, check=True).stdout.split()
        return cls([cgroup_usage_file(i) for i in ids])

    def read(self) -> float:
        return sum(usage_seconds(f) for f in self.files)

    def __enter__(self) -> HostsCpu:
        self._start = self.read()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = self.read() - self._start


def children_cpu() -> float:
    """User + system CPU-seconds of this process's finished children (the control node's commands)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_bytes(container_id: str) -> dict:
    """A container's memory from its cgroup: `usage` (with page cache) and `rss` (anonymous)."""
    v1 = CGROUP / "memory" / "docker" / container_id
    if v1.exists():
        stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
        return {"usage": int((v1 / "memory.usage_in_bytes").read_text()), "rss": int(stat.get("total_rss", 0))}
    for v2 in (CGROUP / "docker" / container_id, CGROUP / "system.slice" / f"docker-{container_id}.scope"):
        if v2.exists():
            stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
            return {"usage": int((v2 / "memory.current").read_text()), "rss": int(stat.get("anon", 0))}
    raise SystemExit(f"no cgroup memory accounting found for container {container_id[:12]}")
