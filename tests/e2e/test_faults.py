"""e2e: hosts that fail mid-run, for real: frozen, killed, dpkg killed or really running, apt locks held.

Lab hosts (Debian 12, systemd, sshd) over real SSH with pyinfra's CLI. The driver stage installs the
TEST FIXTURE driver packages of gpuhost/lab/fixture_repos.py from a signed local repository (NVIDIA's
is not reachable here); everything that goes wrong is real: `docker pause` freezes a host's every
process while its TCP connection stays open (as a kernel stuck on a GPU fault does), `docker kill`
takes a host away, `kill -9` stops a real dpkg in a package's configure step, real fcntl locks hold
apt's lists lock. Small bounds (host data) keep the tests fast.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import docker
from gpuhost.lab.fixture_repos import (TOOLKIT_PACKAGES, TOOLKIT_VERSION, build_repository, planned_branch, repository_data,
                                       toolkit_repository_data)
from gpuhost.lab.results import summary_rows

pytestmark = pytest.mark.e2e
DEPLOY = "deploys/driver.py"
BOUNDS = {"keepalive_interval": 1, "keepalive_count": 3, "command_timeout": 60, "install_timeout": 120,
          "apt_lock_timeout": 120}
LOST_AFTER = 3  # keepalive_interval x keepalive_count
CONVERGE = ("a1", "a2", "a3")
# A process that holds dpkg's frontend lock, so the host's `apt-get install` waits on it (a
# frozen or killed host is then caught mid-step, at a known point of the driver stage).
HOLD_DPKG_LOCK = ("nohup python3 -c \"import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
                  "fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(600)\" >/dev/null 2>&1 &")
# apt-daily's `apt-get update` holding the lists lock for a few seconds.
HOLD_LISTS_LOCK = ("nohup python3 -c \"import fcntl, time; f = open('/var/lib/apt/lists/lock', 'w'); "
                   "fcntl.lockf(f, fcntl.LOCK_EX); open('/run/lists-held', 'w').close(); time.sleep({seconds})\" "
                   ">/dev/null 2>&1 &")
# TEST FIXTURE: a package whose configure step (postinst) waits for /run/slow-go the first time,
# so a real dpkg is caught mid-install: killed there, or left running as unattended-upgrades is.
SLOW_PACKAGE = r"""set -e
mkdir -p /tmp/slow/DEBIAN
cat > /tmp/slow/DEBIAN/control <<'EOF'
Package: gpuhost-fixture-slow
Version: 1.0
Architecture: all
Maintainer: gpuhost e2e <fixture@gpuhost.invalid>
Description: TEST FIXTURE: a package whose configure step takes long
EOF
cat > /tmp/slow/DEBIAN/postinst <<'EOF'
#!/bin/sh
[ -e /var/lib/gpuhost-fixture-slow.done ] && exit 0
touch /run/slow-configuring
while [ ! -e /run/slow-go ]; do sleep 0.2; done
touch /var/lib/gpuhost-fixture-slow.done
EOF
chmod 755 /tmp/slow/DEBIAN/postinst
dpkg-deb --build /tmp/slow /tmp/gpuhost-fixture-slow.deb >/dev/null
nohup apt-get install -y /tmp/gpuhost-fixture-slow.deb >/tmp/slow.log 2>&1 &
"""


@pytest.fixture(scope="module")
def faults_lab(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults-repo")
    common = {**repository_data(build_repository(root)), **BOUNDS}
    toolkit = toolkit_repository_data(build_repository(root / "toolkit", packages=TOOLKIT_PACKAGES,
                                                       versions=(TOOLKIT_VERSION,)), url="http://toolkit-repo:8080/")
    names = [*CONVERGE, "frozen", "killed", "dpkgkill", "dpkgrun", "listlock", "ctrlc"]
    specs = [HostSpec(name, dict(common)) for name in names] + [HostSpec("userjson", {**toolkit, **BOUNDS})]
    with Lab(specs) as lab:
        lab.serve_directory(root / "repo", name="apt")
        lab.serve_directory(root / "toolkit" / "repo", name="toolkit-repo")
        yield lab


def _wait_for(check, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _installing(host) -> bool:
    """The deploy's `apt-get ... install` runs on the host (waiting for dpkg's lock)."""
    return host.exec("pgrep -f 'apt-get .*Lock::Timeout=[0-9]+ install'").returncode == 0


def _converged(lab, name) -> None:
    remote = lab.host(name)
    assert remote.exec("dpkg-query -W -f='${Status}' nvidia-open").stdout.endswith(" ok installed"), name
    assert "nvidia-open" in remote.exec("apt-mark showhold").stdout.split(), name


def test_frozen_and_killed_hosts_fail_with_their_cause_and_the_fleet_goes_on(faults_lab):
    frozen, killed = faults_lab.host("frozen"), faults_lab.host("killed")
    for host in (frozen, killed):
        host.exec(HOLD_DPKG_LOCK, check=True)

    times = {}

    def break_them():
        # Caught waiting in their install while the other three have installed theirs (and wait for them).
        _wait_for(lambda: _installing(frozen) and _installing(killed) and all(
            faults_lab.host(n).exec("dpkg-query -W -f='${Status}' nvidia-open").stdout.endswith(" ok installed")
            for n in CONVERGE), timeout=240, what="the driver install")
        docker("pause", frozen.container)
        docker("kill", killed.container)
        times["broken"] = time.monotonic()
        # The fleet's next step (the nouveau blacklist) starts once the broken hosts are given up.
        _wait_for(lambda: faults_lab.host("a1").exec("test -e /etc/modprobe.d/blacklist-nouveau.conf").returncode
                  == 0, timeout=300, what="the fleet's next step")
        times["moved_on"] = time.monotonic()

    breaker = threading.Thread(target=break_them, daemon=True)
    breaker.start()
    limit = [arg for name in (*CONVERGE, "frozen", "killed") for arg in ("--limit", name)]
    run = faults_lab.pyinfra(DEPLOY, "-y", *limit, timeout=600)
    ended = time.monotonic()
    breaker.join(5)
    out = run.stdout
    try:
        assert run.returncode == 1, out[-4000:]
        rows = summary_rows(out)
        for name in CONVERGE:
            assert rows[name]["RESULT"] == "ok", out[-4000:]
            _converged(faults_lab, name)
        step = f"Driver packages R{planned_branch()} open (installed and held)"
        assert rows["frozen"]["RESULT"] == "failed"
        assert rows["frozen"]["CAUSE"] == f"no answer for {LOST_AFTER} s during {step}", out[-4000:]
        assert rows["killed"]["RESULT"] == "failed"
        assert re.fullmatch(rf"(connection lost|no answer for {LOST_AFTER} s) during {re.escape(step)}",
                            rows["killed"]["CAUSE"]), out[-4000:]
        assert "Traceback" not in out
        # The frozen host cost its keepalive bound, not the step's (install_timeout + apt_lock_timeout = 240 s):
        # the fleet moved on within that bound plus a margin, and the run ended soon after.
        assert times["moved_on"] - times["broken"] < LOST_AFTER + 20, times
        assert ended - times["broken"] < LOST_AFTER + 60, f"the run ended {ended - times['broken']:.0f}s after"

        # inspect, while it is frozen: its row says why, the others are read, exit status 1.
        started = time.monotonic()
        seen = subprocess.run([str(Path(sys.executable).parent / "gpuhost"), "inspect", str(faults_lab.inventory_path),
                               "--limit", "frozen", "--limit", "a1", "--json"], capture_output=True, text=True,
                              timeout=120)
        took = time.monotonic() - started
        hosts = {h["host"]: h for h in json.loads(seen.stdout)["hosts"]}
        assert seen.returncode == 1, seen.stderr
        assert hosts["a1"]["reachable"] and not hosts["frozen"]["reachable"]
        assert hosts["frozen"]["error"].startswith("timeout: no SSH answer from 127.0.0.1:"), hosts["frozen"]
        assert took < 10 + 20, f"inspect took {took:.0f}s"  # the default connect_timeout, plus a margin
    finally:
        docker("unpause", frozen.container, check=False)

    # Unfrozen, the host finishes: the lock holder and the first run's apt-get go, the re-run converges.
    # The killed host, still in the run, is unreachable from the start: it gets its row too.
    frozen.exec("pkill -f lock-frontend; true")
    _wait_for(lambda: frozen.exec("pgrep -x apt-get").returncode != 0, what="the first run's apt-get to end")
    again = faults_lab.pyinfra(DEPLOY, "-y", "--limit", "frozen", "--limit", "killed")
    rows = summary_rows(again.stdout)
    assert again.returncode == 1, again.stdout[-4000:]
    assert rows["frozen"]["RESULT"] == "ok", again.stdout[-4000:]
    assert rows["killed"]["RESULT"] == "failed"
    assert rows["killed"]["CAUSE"].startswith("unreachable: connection refused"), again.stdout[-4000:]
    _converged(faults_lab, "frozen")


def test_a_killed_dpkg_is_repaired_first_then_the_host_converges(faults_lab):
    host = faults_lab.host("dpkgkill")
    host.exec(SLOW_PACKAGE, check=True)
    _wait_for(lambda: host.exec("test -e /run/slow-configuring").returncode == 0, what="dpkg's configure step")
    host.exec("pkill -9 -x apt-get; pkill -9 -x dpkg; pkill -9 -f postinst; true")
    _wait_for(lambda: host.exec("pgrep -x dpkg").returncode != 0, what="dpkg to die")
    assert host.exec("dpkg --audit").stdout.strip(), "dpkg must be left half done"
    host.exec("touch /run/slow-go")

    run = faults_lab.pyinfra(DEPLOY, "-y", "--limit", "dpkgkill")
    assert run.returncode == 0, run.stdout[-4000:]
    assert "dpkg was interrupted (1 package(s) left half done: gpuhost-fixture-slow): repairing it first" \
        in run.stdout, run.stdout[-4000:]
    assert host.exec("dpkg --audit").stdout.strip() == ""
    assert host.exec("dpkg-query -W -f='${Status}' gpuhost-fixture-slow").stdout == "install ok installed"
    _converged(faults_lab, "dpkgkill")
    second = faults_lab.pyinfra(DEPLOY, "-y", "--limit", "dpkgkill")
    assert second.returncode == 0 and "repairing it first" not in second.stdout, second.stdout[-4000:]
    assert summary_rows(second.stdout)["dpkgkill"]["CHANGES"] == "0"


def test_a_dpkg_that_really_runs_is_waited_for_not_repaired(faults_lab):
    """unattended-upgrades mid-upgrade: dpkg runs (its lock held, its journal and a half-configured
    package on disk). 90aa2a7 said "dpkg was interrupted: run dpkg --configure -a" at once."""
    host = faults_lab.host("dpkgrun")
    host.exec(SLOW_PACKAGE, check=True)
    _wait_for(lambda: host.exec("test -e /run/slow-configuring").returncode == 0, what="dpkg's configure step")
    releaser = threading.Timer(8, lambda: host.exec("touch /run/slow-go"))
    releaser.start()
    started = time.monotonic()
    run = faults_lab.pyinfra(DEPLOY, "-y", "--limit", "dpkgrun")
    took = time.monotonic() - started
    releaser.join()
    assert run.returncode == 0, run.stdout[-4000:]
    assert "configure -a" not in run.stdout, run.stdout[-4000:]
    assert "dpkg is busy: the apt/dpkg lock is held by" in run.stdout
    line = next(line for line in run.stdout.splitlines() if "the apt/dpkg lock is held by" in line)
    holders = line.split("is held by ", 1)[1].split(": waiting")[0].split(", ")
    assert len(holders) == len(set(holders)), line  # dpkg holds two lock files: named once (issue 28)
    assert took >= 8  # it waited for the running dpkg
    assert host.exec("dpkg-query -W -f='${Status}' gpuhost-fixture-slow").stdout == "install ok installed"
    _converged(faults_lab, "dpkgrun")


def test_the_apt_lists_lock_is_waited_for_as_long_as_it_says(faults_lab):
    """apt-daily's update holds /var/lib/apt/lists/lock: 90aa2a7 failed at once, saying it had waited."""
    host = faults_lab.host("listlock")
    # Held longer than apt_lock_timeout: fails after that time, and says that time.
    host.exec(HOLD_LISTS_LOCK.format(seconds=120), check=True)
    _wait_for(lambda: host.exec("test -e /run/lists-held").returncode == 0, what="the lists lock")
    started = time.monotonic()
    late = faults_lab.pyinfra(DEPLOY, "-y", "--limit", "listlock", "--data", "apt_lock_timeout=4")
    took = time.monotonic() - started
    host.exec("pkill -f lists/lock; rm -f /run/lists-held; true")
    assert late.returncode == 1, late.stdout[-4000:]
    assert "gpuhost: the apt/dpkg lock was still held after 4s" in late.stdout, late.stdout[-4000:]
    assert took >= 4

    # Held for a few seconds, within apt_lock_timeout: waited for, then the host converges.
    host.exec(HOLD_LISTS_LOCK.format(seconds=6), check=True)
    _wait_for(lambda: host.exec("test -e /run/lists-held").returncode == 0, what="the lists lock")
    started = time.monotonic()
    run = faults_lab.pyinfra(DEPLOY, "-y", "--limit", "listlock")
    took = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:]
    assert took >= 5, f"took {took:.1f}s: the lock was not waited for"
    _converged(faults_lab, "listlock")


def test_a_daemon_json_broken_by_its_user_fails_the_host_in_the_table_and_nothing_repeats(faults_lab):
    """90aa2a7: the run exited 1 with a traceback above a table that said `ok`, and every re-run
    reported `Install NVIDIA container toolkit` as a change."""
    host = faults_lab.host("userjson")
    first = faults_lab.pyinfra("deploys/container_runtime.py", "-y", "--limit", "userjson", timeout=900)
    assert first.returncode == 0, first.stdout[-4000:]
    host.exec("printf '{\"log-driver\": \"json-file\",}\\n' > /etc/docker/daemon.json", check=True)
    for _ in range(2):
        run = faults_lab.pyinfra("deploys/container_runtime.py", "-y", "--limit", "userjson")
        assert run.returncode == 1, run.stdout[-4000:]
        assert "Traceback" not in run.stdout, run.stdout[-4000:]
        assert "Install NVIDIA container toolkit" not in run.stdout, run.stdout[-4000:]
        assert "gpuhost: /etc/docker/daemon.json: daemon.json is not valid JSON" in run.stdout
        row = summary_rows(run.stdout)["userjson"]
        assert (row["RESULT"], row["CAUSE"], row["CHANGES"]) == (
            "failed", "at: nvidia runtime in /etc/docker/daemon.json", "0"), row
    assert host.exec("cat /etc/docker/daemon.json").stdout == '{"log-driver": "json-file",}\n'  # never overwritten


def test_a_wrong_user_is_said_as_an_authentication_failure(faults_lab, tmp_path):
    """A lab host's real sshd refuses a user it does not know: one line naming the cause."""
    host = faults_lab.host("listlock")
    inventory = tmp_path / "inventory.py"
    inventory.write_text(repr([("wronguser", {"ssh_hostname": "127.0.0.1", "ssh_port": host.port, "ssh_user": "nobody",
                                              "ssh_key": str(host.key_path), "ssh_look_for_keys": False,
                                              "ssh_allow_agent": False,
                                              "ssh_known_hosts_file": str(tmp_path / "known_hosts")})]).join(
        ["hosts = ", "\n"]))
    seen = subprocess.run([str(Path(sys.executable).parent / "gpuhost"), "inspect", str(inventory), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert seen.returncode == 1, seen.stderr
    error = json.loads(seen.stdout)["hosts"][0]["error"]
    assert error.startswith("authentication failed (username=nobody, key="), error
    assert error.endswith("check ssh_user and ssh_key") and "Traceback" not in seen.stderr


def test_ctrl_c_mid_step_stops_with_exit_130_and_the_table_says_where(faults_lab):
    host = faults_lab.host("ctrlc")
    host.exec(HOLD_DPKG_LOCK, check=True)
    cmd = [str(Path(sys.executable).parent / "pyinfra"), str(faults_lab.inventory_path), DEPLOY, "-y",
           "--limit", "ctrlc"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: _installing(host), timeout=240, what="the driver install")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        host.exec("pkill -f lock-frontend; true")
    assert proc.returncode == 130, out[-4000:]
    assert "gpuhost: interrupted (Ctrl-C)" in out and "Traceback" not in out, out[-4000:]
    row = summary_rows(out)["ctrlc"]
    assert (row["RESULT"], row["CAUSE"]) == (
        "failed", f"interrupted (Ctrl-C) during Driver packages R{planned_branch()} open (installed and held)"), out[-4000:]
