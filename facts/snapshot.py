"""All host readings (GPU, host, containers, what gpuhost manages) in ONE command: one round trip per host.

`HostSnapshot` runs the scripts of `GpuState`, `HostState`, `ContainerState` and
`ManagedState` one after the other in a single shell command and hands each part of the
output to that fact's parser. `gpuhost inspect` uses it, so a fleet inventory
costs one command per host; a deploy that needs a single reading can still
ask for one fact alone.

Shape: {"gpu": GpuState's dict, "host": HostState's dict, "container": ContainerState's dict,
"managed": ManagedState's dict, "workspace": WorkspaceState's dict, "health": facts/health.py's dict}.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase

from facts import container, gpu, health, host, managed, workspace
from facts.sections import Sections

PARTS = {
    "gpu": (gpu.COMMAND, gpu.process_gpu_sections),
    "host": (host.COMMAND, host.process_host_sections),
    "container": (container.COMMAND, container.process_container_sections),
    "managed": (managed.COMMAND, managed.process_managed_sections),
    "workspace": (workspace.COMMAND, workspace.process_workspace_sections),
    "health": (health.COMMAND, health.process_health_sections),
}
PART_MARK = "@@gpuhost "

# Each script runs in its own subshell (its variables and any early exit stay local), all of them
# at once, each into its own file; the files are then printed in order. The wall time is that of
# the slowest part, not the sum (measured on a lab host: 0.64 s in sequence).
COMMAND = (
    "t=$(mktemp -d 2>/dev/null) || t=/tmp/gpuhost-snapshot.$$; mkdir -p \"$t\"\n"
    + "\n".join(f"(\n{script}\n) > \"$t/{i}\" 2>/dev/null &" for i, (script, _) in enumerate(PARTS.values()))
    + "\nwait\ncat " + " ".join(f"\"$t/{i}\"" for i in range(len(PARTS))) + "\nrm -rf \"$t\"\ntrue"
)


class HostSnapshot(FactBase):
    """GpuState + HostState + ContainerState + ManagedState from one command."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return {name: parse(Sections([])) for name, (_, parse) in PARTS.items()}

    def process(self, output: list[str]) -> dict[str, Any]:
        return split_parts(output)


def split_parts(output: list[str]) -> dict[str, Any]:
    """Route each `@@gpuhost <part> 1` block of lines to that part's parser."""
    blocks: dict[str, list[str]] = {name: [] for name in PARTS}
    current: list[str] | None = None
    for line in output:
        if line.startswith(PART_MARK):
            name = line[len(PART_MARK) :].split()[0]
            current = blocks.get(name)
        if current is not None:
            current.append(line)
    return {name: parse(Sections(blocks[name])) for name, (_, parse) in PARTS.items()}
