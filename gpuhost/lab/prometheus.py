"""Debian's Prometheus and promtool for the monitoring tests, without a running service.

`./dev setup`/`./dev test` unpack Debian's `prometheus` package into .venv/prometheus
(`apt-get download` + `dpkg -x`): installing it would start a Prometheus listening on every
address on machines with systemd. A system-wide install is used when present.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

UNPACKED = Path(__file__).resolve().parents[2] / ".venv" / "prometheus" / "usr" / "bin"


def prometheus_tool(name: str) -> str | None:
    """The path of `prometheus` or `promtool`, or None."""
    return shutil.which(name, path=f"{UNPACKED}{os.pathsep}{os.environ.get('PATH', '')}")
