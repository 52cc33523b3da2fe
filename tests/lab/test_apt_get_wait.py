"""gpuhost/lab/recipe/apt-get-wait: apt-get that waits for apt's locks, bounded, saying for what.

Real apt-get (Debian 12's apt 2.6) on a lists directory of the test's own, whose lock another
process holds the way apt does (fcntl), so the machine's own apt locks are never touched.
apt 2.6 does not wait for that lock by itself, even with -o DPkg::Lock::Timeout (seen here on
2026-12-01: "E: Could not get lock .../lists/lock. It is held by process N (python3)" at once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuhost.lab.state import RECIPE

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"),
                                reason="needs root and apt-get (Debian/Ubuntu)")
HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); " \
       "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(float(sys.argv[2]))"


def update(tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    (tmp_path / "empty.list").write_text("")
    return subprocess.run([str(RECIPE / "apt-get-wait"), str(timeout), "update",
                           "-o", f"Dir::State::Lists={tmp_path / 'lists'}",
                           "-o", f"Dir::Etc::sourcelist={tmp_path / 'empty.list'}",
                           "-o", "Dir::Etc::sourceparts=/nonexistent"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "APT_GET_WAIT_POLL": "1"})


def hold_lock(tmp_path: Path, seconds: float) -> subprocess.Popen:
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "lists" / "lock"), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_lists_lock_is_waited_for_and_named(tmp_path):
    holder = hold_lock(tmp_path, 2)
    started = time.monotonic()
    proc = update(tmp_path, 30)
    holder.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started >= 1.5  # it waited for the holder to let go
    assert "waiting up to 30s for another apt run to finish: Could not get lock" in proc.stderr
    assert f"held by process {holder.pid} (python" in proc.stderr  # apt names the holder


def test_the_wait_is_bounded_and_says_so(tmp_path):
    holder = hold_lock(tmp_path, 30)
    try:
        started = time.monotonic()
        proc = update(tmp_path, 2)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode != 0
    assert time.monotonic() - started < 20
    assert "apt-get-wait: still locked after 2s: Could not get lock" in proc.stderr
    assert "GPUHOST_APT_LOCK_TIMEOUT" in proc.stderr
