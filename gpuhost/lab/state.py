"""Where the lab keeps what outlives one run: the engine, the image cache, the SSH key.

One directory per machine (not per checkout), so every clone and every engineer on a
machine shares one Docker engine and one cached image. Override with GPUHOST_LAB_DIR.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LABEL = "gpuhost.lab"  # every container and network the lab creates carries it
REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = Path(__file__).parent / "recipe"


def state_dir() -> Path:
    """The lab's state directory, created on first use."""
    if os.environ.get("GPUHOST_LAB_DIR"):
        path = Path(os.environ["GPUHOST_LAB_DIR"])
    elif os.geteuid() == 0:
        path = Path("/var/lib/gpuhost-lab")
    else:
        path = Path.home() / ".cache" / "gpuhost-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialise engine start and image builds between labs running at the same time."""
    path = state_dir() / f"{name}.lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def progress(message: str) -> None:
    """One progress line on stderr: the lab's slow steps should never look stuck."""
    if not os.environ.get("GPUHOST_LAB_QUIET"):
        print(f"lab: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """A slow step: a progress line when it starts and one with its duration when it ends."""
    progress(message)
    started = time.monotonic()
    yield
    progress(f"{message.split(' (')[0]}: done in {time.monotonic() - started:.1f}s")
