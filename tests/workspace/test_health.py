"""The workspace health check's own logic, run here with Python's stdlib (it runs in the image).

torch/version.py texts: the CPU wheel's, as in /opt/wheels/torch-2.13.0+cpu-...whl, and the same
line as a CUDA build writes it (`cuda: Optional[str] = '13.0'`, pytorch's tools/generate_torch_version.py).
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import pytest

HEALTH = Path(__file__).resolve().parents[2] / "gpuhost" / "workspace" / "data" / "health.py"


@pytest.fixture
def health(monkeypatch):
    spec = importlib.util.spec_from_file_location("workspace_health", HEALTH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "STREAK", "/dev/null")
    return module


@pytest.mark.parametrize("line, cuda", [("cuda: Optional[str] = None", False), ("cuda: Optional[str] = '13.0'", True)])
def test_cuda_build_is_read_without_importing_torch(health, tmp_path, monkeypatch, line, cuda):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise RuntimeError('not imported')\n")
    (tmp_path / "torch" / "version.py").write_text(f"from typing import Optional\n__version__ = '2.13.0'\n{line}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert health.cuda_build() is cuda


def test_a_dead_service_is_a_problem(health, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setenv("GPUHOST_SSH", "1")
    monkeypatch.setenv("GPUHOST_SSH_PORT", str(free))
    monkeypatch.setenv("GPUHOST_JUPYTER", "1")
    monkeypatch.setenv("GPUHOST_JUPYTER_PORT", str(free))
    found = health.problems()
    assert found[0].startswith("sshd does not answer") and found[1].startswith("Jupyter does not answer on /api")
