"""The Slurm stage: put the HealthCheckProgram wrapper on the node (deploys/slurm_healthcheck.py)."""

from __future__ import annotations

from pathlib import Path

from pyinfra.operations import files

WRAPPER_SOURCE = Path(__file__).resolve().parent / "data" / "gpuhost-slurm-healthcheck"
WRAPPER_PATH = "/usr/local/sbin/gpuhost-slurm-healthcheck"


def slurm_healthcheck_stage() -> list:
    """files.put compares checksums first: a node that has it queues nothing."""
    return [files.put(name="gpuhost-slurm-healthcheck (Slurm HealthCheckProgram)", src=str(WRAPPER_SOURCE),
                      dest=WRAPPER_PATH, user="root", group="root", mode="755")]
