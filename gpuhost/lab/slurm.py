"""A real Slurm cluster in the lab: Debian's slurmctld on one host, slurmd on the GPU hosts.

    specs = slurm_specs([HostSpec("n1", data), HostSpec("n2", data)])   # + the controller "slurmctl"
    with Lab(specs) as lab:
        slurm = SlurmCluster.start(lab, ["n1", "n2"])
        job = slurm.submit("n1", seconds=5)          # a real sbatch job that sleeps on n1
        slurm.states()                               # {"n1": ("allocated", "none"), ...} (sinfo)
        slurm.wait_for("n1", "idle")

Debian 12's packages (slurm-wlm 22.05.8, munge 0.5.15), installed once into a cached variant of the
host image (HostSpec.packages -> image.ensure_variant_image), so a lab start runs no apt. The
configuration (SLURM_CONF below) is the smallest that runs jobs in these containers:

- select/cons_tres with CPUs=1 per node: one job allocates a whole node, so a second one on the
  same node stays pending and "drained" means "no job left".
- proctrack/linuxproc, task/none, jobacct_gather/none: no cgroup plugin (the lab's containers
  share the machine's cgroup v1 tree; Slurm's cgroup plugins would need their own hierarchy).
- ReturnToService=2: a node that went DOWN only because its slurmd stopped answering (a reboot for
  a new driver) returns by itself when slurmd registers again; a DRAIN, set by gpuhost or by an
  operator, is never cleared by Slurm: only `scontrol update state=resume` ends it.
- One munge key per lab (random, 0400 munge:munge on every host), never the package's.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shlex
import time
from collections.abc import Iterable

from gpuhost.errors import GpuhostError
from gpuhost.lab.hosts import HostSpec

CONTROLLER = "slurmctl"
PACKAGES = ("slurmctld", "slurmd", "slurm-client")  # munge comes as their dependency
PARTITION = "gpu"
SINFO_FORMAT = "%N|%T|%E"

SLURM_CONF = """\
# gpuhost lab: the smallest Slurm 22.05 configuration that runs sbatch jobs in lab containers
ClusterName=gpuhost-lab
SlurmctldHost={controller}
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MessageTimeout=5
SlurmdTimeout=60
NodeName={nodes} CPUs=1 State=UNKNOWN
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def slurm_specs(nodes: Iterable[HostSpec], controller: str = CONTROLLER) -> list[HostSpec]:
    """The controller plus the compute nodes, all on the Slurm image variant."""
    with_slurm = [dataclasses.replace(spec, packages=PACKAGES) for spec in nodes]
    return [HostSpec(controller, {"no_gpu": "skip"}, packages=PACKAGES), *with_slurm]


class SlurmCluster:
    """slurmctld on the controller host, slurmd on each node; commands run on the controller."""

    def __init__(self, lab, nodes: list[str], controller: str = CONTROLLER):
        self.lab, self.nodes, self.controller = lab, list(nodes), controller

    @classmethod
    def start(cls, lab, nodes: list[str], controller: str = CONTROLLER, timeout: float = 60) -> SlurmCluster:
        cluster = cls(lab, nodes, controller)
        conf = SLURM_CONF.format(controller=controller, nodes=",".join(nodes), partition=PARTITION)
        key = base64.b64encode(os.urandom(1024)).decode()
        for name in [controller, *nodes]:
            host = lab.host(name)
            host.exec("umask 077; base64 -d > /etc/munge/munge.key && chown munge:munge /etc/munge/munge.key "
                      "&& chmod 0400 /etc/munge/munge.key && systemctl restart munge", input=key + "\n", check=True)
            host.exec("cat > /etc/slurm/slurm.conf && chmod 0644 /etc/slurm/slurm.conf "
                      "&& mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm "
                      "&& chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm", input=conf, check=True)
        lab.host(controller).exec("systemctl disable --now slurmd; systemctl enable --now slurmctld", check=True)
        for name in nodes:
            lab.host(name).exec("systemctl disable --now slurmctld; systemctl enable slurmd; "
                                "systemctl restart slurmd", check=True)
        for name in nodes:
            cluster.wait_for(name, "idle", timeout=timeout)
        return cluster

    # -- commands on the controller --------------------------------------------------------------

    def run(self, command: str, check: bool = True):
        proc = self.lab.host(self.controller).exec(command, timeout=60)
        if check and proc.returncode != 0:
            raise GpuhostError(f"slurm lab: {command!r} failed ({proc.returncode}): "
                               f"{(proc.stdout + proc.stderr).strip()[-300:]}")
        return proc

    def submit(self, node: str, seconds: float) -> str:
        """A real batch job that sleeps on this node; returns its job id."""
        out = self.run(f"sbatch --parsable -w {node} -o /dev/null -D /tmp --wrap 'sleep {seconds}'").stdout
        return out.strip().split(";")[0]

    def job_state(self, job: str) -> str:
        """PENDING, RUNNING, COMPLETED, ... (slurmctld keeps a finished job for MinJobAge, 300 s)."""
        out = self.run(f"scontrol -o show job {job}", check=False).stdout
        match = re.search(r"\bJobState=(\S+)", out)
        return match[1] if match else "GONE"

    def job_node(self, job: str) -> str | None:
        out = self.run(f"scontrol -o show job {job}", check=False).stdout
        match = re.search(r"\bNodeList=(\S+)", out)
        return None if not match or match[1] == "(null)" else match[1]

    def states(self) -> dict[str, tuple[str, str]]:
        """{node: (sinfo's long state, e.g. "drained", reason or "none")}."""
        out = self.run(f"sinfo -h -N -p {PARTITION} -o '{SINFO_FORMAT}'").stdout
        rows = {}
        for line in out.splitlines():
            name, state, reason = (line.split("|", 2) + ["", ""])[:3]
            rows[name.strip()] = (state.strip(), reason.strip())
        return rows

    def drain(self, node: str, reason: str) -> None:
        self.run(f"scontrol update nodename={node} state=drain reason={shlex.quote(reason)}")

    def resume(self, node: str) -> None:
        self.run(f"scontrol update nodename={node} state=resume")

    def wait_for(self, node: str, state: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.states().get(node, ("missing", ""))[0]
            if seen == state:
                return
            time.sleep(0.5)
        raise GpuhostError(f"slurm lab: node {node} is {seen}, not {state}, after {timeout:.0f}s")

