"""The gpuhost test lab: real Debian 12 hosts (systemd + sshd containers) for e2e tests,
the demo and benchmarks, on a Docker engine the lab finds or starts itself.

    from gpuhost.lab import Lab, HostSpec
    with Lab([HostSpec("h1", data={"target_gpus": ["H100"]})]) as lab:
        proc = lab.pyinfra("deploys/gpu_host.py", "-y")
"""

from gpuhost.lab.hosts import HostSpec, LabHost
from gpuhost.lab.lab import Lab, cleanup
from gpuhost.lab.services import Service

__all__ = ["HostSpec", "Lab", "LabHost", "Service", "cleanup"]
