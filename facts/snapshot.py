"""All host readings (GPU, host, containers, what gpuhost manages, workspaces) in ONE command.

`HostSnapshot` is what a deploy and `gpuhost inspect` read: one round trip per host. Its command
asks each tool once (facts/readings.py): one nvidia-smi --query-gpu for every GPU field (with the
compute processes beside it, in the background), one dpkg-query for every package, one systemctl
show for every unit, one Docker Engine API call for the daemon, its containers and its images;
sysfs and /proc are read by the shell itself. Each part's parser (facts/gpu.py, host.py,
container.py, managed.py, workspace.py) gets the block printed for it.

Shape: {"gpu": GpuState's dict, "host": HostState's dict, "container": ContainerState's dict,
"managed": ManagedState's dict, "workspace": WorkspaceState's dict, "health": HealthState's dict
(facts/health.py: its nvidia-smi fields and NVLink status come from the gpu part's one nvidia-smi
call)}; each part alone is the fact of the same name, with the same command minus the other parts.

How to add a reading (one small, local edit; bench/snapshot.py measures what it costs):
- a file, a sysfs or /proc value, or a tool that only one part needs: print it as a section in
  that part's SCRIPT (`echo '@@name header'`, then its lines) and read it in the part's
  process_*_sections with `sections.lines("name")` / `.header("name")`. Read files with the
  shell's `read` or one `awk`/`cat` for many files, not one process per file; a missing file or
  tool must leave the section empty, never fail the command.
- a GPU field: append it to SMI_FIELDS in facts/gpu.py (nvidia-smi --query-gpu names) and read
  it in gpu._smi_row: the same single nvidia-smi call answers it.
- a package, a unit, a Docker API answer: add the name to CONTAINER_PACKAGES / PACKAGE_FAMILIES /
  UNITS in facts/readings.py, or a URL to the Engine API's `q` list in DOCKER; the shared reading
  prints it into the blocks of the parts that use it.
- something slow that only waits (another nvidia-smi query, a daemon): start it in the gpu
  part's SMI_START into "$bg" (the temp dir for background work) and print it in SMI_FINISH, so
  it overlaps with everything else.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase

from facts import container, gpu, health, host, managed, workspace
from facts.readings import command
from facts.sections import Sections, part_blocks

PARTS = {
    "gpu": (gpu.PART, gpu.process_gpu_sections),
    "host": (host.PART, host.process_host_sections),
    "container": (container.PART, container.process_container_sections),
    "managed": (managed.PART, managed.process_managed_sections),
    "workspace": (workspace.PART, workspace.process_workspace_sections),
    "health": (health.PART, health.process_health_sections),
}
COMMAND = command(*(part for part, _ in PARTS.values()))


class HostSnapshot(FactBase):
    """GpuState + HostState + ContainerState + ManagedState + WorkspaceState from one command."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return {name: parse(Sections([])) for name, (_, parse) in PARTS.items()}

    def process(self, output: list[str]) -> dict[str, Any]:
        return split_parts(output)


def split_parts(output: list[str]) -> dict[str, Any]:
    """Route each `@@gpuhost <part> 1` block of lines to that part's parser."""
    blocks = part_blocks(output, PARTS)
    return {name: parse(Sections(blocks[name])) for name, (_, parse) in PARTS.items()}
