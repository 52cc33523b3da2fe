"""Stand-ins that take a lab host through every stage of gpu_host.py, with no GPU and no NVIDIA network.

Used by the demo (`./dev demo`) and the benchmark (`bench/converge.py`):
- the driver and the container toolkit from signed local repositories of TEST FIXTURE packages
  (gpuhost/lab/fixture_repos.py), pinned by fingerprint through the mirror host-data keys;
- the plan's image tag in the lab registry, as a one-file stand-in image: without a GPU the torch
  check is not run (`verify: auto`), so nothing reads the image's content;
- /etc/docker/daemon.json on each host trusting that plain-HTTP registry (a user's setting the
  deploy must keep when it adds the nvidia runtime).

Docker itself is Debian's docker.io, installed by the deploy from Debian's mirror.

    stand_ins = StandIns.build(tmp_dir)            # before the Lab: its data goes into the inventory
    with Lab([HostSpec("gpu-01", stand_ins.data)]) as lab:
        stand_ins.install(lab)
        lab.pyinfra("deploys/gpu_host.py", "-y")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gpuhost.plan.gpus import identify
from gpuhost.lab.fixture_repos import (TOOLKIT_PACKAGES, TOOLKIT_VERSION, build_repository, repository_data,
                                     toolkit_repository_data)
from gpuhost.lab.image import one_file_image
from gpuhost.lab.lab import Lab
from gpuhost.lab.engine import docker
from gpuhost.plan.resolver import Policy, resolve

REGISTRY = "registry:5000"
USER_DAEMON_JSON = {"insecure-registries": [REGISTRY]}


@dataclass
class StandIns:
    root: Path
    data: dict  # host data for a host planned for an H100, pointed at the stand-ins

    @classmethod
    def build(cls, root: Path) -> StandIns:
        """Both fixture repositories, each with its own signing key, under root."""
        driver = build_repository(root / "driver")
        toolkit = build_repository(root / "toolkit", packages=TOOLKIT_PACKAGES, versions=(TOOLKIT_VERSION,))
        data = {**repository_data(driver, url="http://driver-repo:8080/"),
                **toolkit_repository_data(toolkit, url="http://toolkit-repo:8080/"),
                "registry": REGISTRY}
        return cls(root, data)

    def install(self, lab: Lab, hosts=None) -> None:
        """Serve the repositories, push the stand-in image, trust the registry on the hosts."""
        lab.serve_directory(self.root / "driver" / "repo", name="driver-repo")
        lab.serve_directory(self.root / "toolkit" / "repo", name="toolkit-repo")
        registry = lab.registry()
        tag = resolve([identify("H100")], current_driver=None, policy=Policy(registry=REGISTRY)).image.tag
        local = f"{registry.local_address}/{tag.split('/', 1)[1]}"
        one_file_image(local, "STAND-IN", "gpuhost lab stand-in for the plan's image: no torch here\n")
        docker("push", local, timeout=300)
        docker("image", "rm", local)
        for host in hosts if hosts is not None else lab.hosts:
            host.exec("mkdir -p /etc/docker && cat > /etc/docker/daemon.json",
                      input=json.dumps(USER_DAEMON_JSON, indent=2) + "\n", check=True)
