"""A small "PyTorch image" for the lab: Debian 12 + python3 + a real CPU build of torch.

Docker Hub is not reachable, so the e2e tests push this image into the lab registry under
the plan's tag (e.g. registry:5000/pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime) and the
deploy pre-pulls it and runs the real check script in it. torch comes from the CPU wheel
kept on these machines (GPUHOST_TORCH_WHEEL, default /opt/wheels/...); its dependencies are
downloaded from PyPI by this machine's pip (which knows this machine's proxy CA, the build
container does not) into a wheelhouse, copied in and installed with --no-index.
`python` is python3, as in the pytorch/pytorch images.

    python -m gpuhost.lab.torch_image      # build (once; cached by tag) and print the tag
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

from gpuhost.errors import GpuhostError
from gpuhost.lab.engine import docker, ensure_engine
from gpuhost.lab.image import _drop_other_tags, ensure_host_image, image_exists
from gpuhost.lab.state import LABEL, locked, state_dir, step

TORCH_REPO = "gpuhost-lab/torch-cpu"
DEFAULT_WHEEL = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
SCRIPT = (
    "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
    "apt-get install -y -q --no-install-recommends python3-pip python-is-python3; "
    "pip install --no-cache-dir --break-system-packages --no-index --find-links /tmp/wheels "
    "/tmp/wheels/{wheel}; rm -rf /tmp/wheels; apt-get clean; rm -rf /var/lib/apt/lists/*; "
    "python -c 'import torch; print(torch.__version__)'"
)


def wheel_path() -> Path:
    path = Path(os.environ.get("GPUHOST_TORCH_WHEEL", DEFAULT_WHEEL))
    if not path.is_file():
        raise GpuhostError(f"torch CPU wheel {path} is missing: set GPUHOST_TORCH_WHEEL to one "
                           "for this Python (cp311)")
    return path


def wheelhouse(wheel: Path) -> Path:
    """torch and its dependencies as wheels, downloaded once by this machine's pip."""
    house = state_dir() / "torch-wheels"
    if not (house / wheel.name).exists():
        house.mkdir(parents=True, exist_ok=True)
        with step(f"pip download {wheel.name}'s dependencies into {house} (once)"):
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(house),
                                   str(wheel)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise GpuhostError(f"pip download for the torch image failed: {proc.stderr[-300:]}")
    return house


def ensure_torch_image() -> str:
    """Return the tag of the lab's torch CPU image, building it if missing (a few minutes)."""
    base = ensure_host_image()
    wheel = wheel_path()
    digest = hashlib.sha256(f"{base} {wheel.name} {wheel.stat().st_size} {SCRIPT}".encode())
    tag = f"{TORCH_REPO}:{digest.hexdigest()[:12]}"
    if image_exists(tag):
        return tag
    with locked("image"):
        if image_exists(tag):
            return tag
        with step(f"building {tag} (torch {wheel.name} + its PyPI dependencies, a few minutes, once)"):
            name = f"gpuhost-lab-build-{uuid.uuid4().hex[:8]}"
            try:
                docker("create", "--name", name, "--label", f"{LABEL}=build",
                       "--label", f"{LABEL}.pid={os.getpid()}", base,
                       "/bin/sh", "-c", SCRIPT.format(wheel=wheel.name))
                docker("cp", str(wheelhouse(wheel)), f"{name}:/tmp/wheels")
                proc = docker("start", "-a", name, check=False, timeout=1800)
                if proc.returncode != 0:
                    raise GpuhostError(f"building {tag} failed: {(proc.stdout + proc.stderr)[-400:]}")
                docker("commit", "-c", 'CMD ["python"]', "-c", "ENTRYPOINT []", name, tag)
            finally:
                docker("rm", "-f", name, check=False)
        _drop_other_tags(TORCH_REPO, tag)
    return tag


if __name__ == "__main__":
    ensure_engine()
    print(ensure_torch_image())
    sys.exit(0)
