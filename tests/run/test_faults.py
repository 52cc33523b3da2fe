"""Connection failures said in one line per host, exit statuses, Ctrl-C (gpuhost.run.faults, .bounds).

The CLI tests run the real commands (pyinfra's CLI with deploys/gpu_host.py, `gpuhost inspect`,
`gpuhost upgrade`) against test listeners on 127.0.0.1: a closed port, a silent port (accepts TCP,
never says a word, as a frozen host's sshd does) and a port that answers like a web server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paramiko.ssh_exception import AuthenticationException, NoValidConnectionsError, SSHException
from pyinfra.api.exceptions import ConnectError

from gpuhost.errors import UsageError
from gpuhost.run.bounds import Bounds
from gpuhost.run import faults
from gpuhost.run.faults import connect_cause
from gpuhost.run.summary import outcome

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BOUND = 3  # connect_timeout in these tests
FACTS = {"status": "planned", "reason": None, "gpu_attached": True, "last_check_ok": True}


# --- Pure -----------------------------------------------------------------------------------------


def _raised_as_pyinfra_does(error: Exception, message: str) -> ConnectError:
    """pyinfra's SSH connector re-raises paramiko's error as ConnectError inside its except block."""
    try:
        try:
            raise error
        except Exception:
            raise ConnectError(message)
    except ConnectError as connect_error:
        return connect_error


@pytest.mark.parametrize("error, seconds, words", [
    (NoValidConnectionsError({("127.0.0.1", 2222): ConnectionRefusedError(111, "refused")}), 0.0,
     "connection refused: nothing listens on 127.0.0.1:2222"),
    (SSHException("Error reading SSH protocol banner"), 3.0, "timeout: no SSH answer from 127.0.0.1:2222 in 3 s"),
    (SSHException("No existing session"), 3.1, "timeout: no SSH answer from 127.0.0.1:2222 in 3 s"),
    (SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer"), 0.2,
     "not SSH: 127.0.0.1:2222 answered, but not with an SSH banner"),
    (AuthenticationException("Authentication failed."), 0.3, "authentication failed"),
    (socket.gaierror(-2, "Name or service not known"), 0.0, "cannot resolve 127.0.0.1: check ssh_hostname"),
])
def test_connect_cause_names_what_happened(error, seconds, words):
    wrapped = _raised_as_pyinfra_does(error, f"SSH error ({error})")
    assert connect_cause(wrapped, seconds, BOUND, "127.0.0.1:2222").startswith(words)


def test_bounds_defaults_and_refusals():
    bounds = Bounds.from_host_data({})
    assert (bounds.connect_timeout, bounds.command_timeout, bounds.lost_after) == (10, 300, 15)
    assert Bounds.from_host_data({"keepalive_interval": 2, "keepalive_count": 4}).lost_after == 8
    for data, words in [({"command_timeout": "60"}, "command_timeout is '60': use whole seconds from 1 to 86400"),
                        ({"pull_timeout": 0}, "pull_timeout is the number 0: use whole seconds from 1 to 86400"),
                        ({"keepalive_count": True}, "keepalive_count is true: use whole seconds from 1 to 100")]:
        with pytest.raises(UsageError, match=words):
            Bounds.from_host_data(data)


def test_bad_bounds_are_refused_before_any_host_is_contacted():
    from gpuhost.compose.settings import check_hosts

    assert check_hosts([("gpu-01", {"command_timeout": "5m"}), ("gpu-02", {"connect_timeout": 5})]) == [
        "host gpu-01: command_timeout is '5m': use whole seconds from 1 to 86400"]


def test_a_host_fault_or_an_unfinished_run_is_never_ok():
    assert outcome(FACTS, True, "Driver packages", None, fault="no answer for 15 s during Driver packages") == (
        "failed", "no answer for 15 s during Driver packages")
    assert outcome(FACTS, False, None, None, unfinished="the run stopped before nvidia runtime in daemon.json") == (
        "failed", "the run stopped before nvidia runtime in daemon.json")
    assert outcome(FACTS, False, None, None) == ("ok", "last check passed")


# --- The commands, against test listeners ---------------------------------------------------------


def _serve(handle) -> int:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def loop():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1]


def _silent(conn):
    time.sleep(120)
    conn.close()


def _web(conn):
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    conn.close()


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    ports = {"closed": closed_port, "silent": _serve(_silent), "web": _serve(_web)}
    path = tmp_path_factory.mktemp("listeners") / "inventory.py"
    hosts = [(name, {"ssh_hostname": "127.0.0.1", "ssh_port": port, "ssh_user": "root", "connect_timeout": BOUND,
                     "ssh_known_hosts_file": str(path.parent / "known_hosts")}) for name, port in ports.items()]
    path.write_text(f"hosts = {hosts!r}\n")
    return path, ports


def _expected(ports) -> dict[str, str]:
    return {"closed": f"unreachable: connection refused: nothing listens on 127.0.0.1:{ports['closed']}",
            "silent": f"unreachable: timeout: no SSH answer from 127.0.0.1:{ports['silent']} in {BOUND} s",
            "web": f"unreachable: not SSH: 127.0.0.1:{ports['web']} answered, but not with an SSH banner"}


def _run(args, timeout=90) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_deploy_says_each_connection_failure_in_one_line_and_exits_1(inventory):
    path, ports = inventory
    started = time.monotonic()
    proc = _run([str(BIN / "pyinfra"), str(path), "deploys/gpu_host.py", "-y"])
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "No existing session" not in out, out
    from gpuhost.lab.results import summary_rows

    rows = summary_rows(out)
    for name, cause in _expected(ports).items():
        assert sum(f"[{name}] unreachable:" in line for line in out.splitlines()) == 1, out
        assert f"[{name}] {cause}" in out, out
        assert rows[name]["RESULT"] == "failed" and rows[name]["CAUSE"].startswith(cause), out
    assert took < BOUND + 15, f"{took:.1f}s"


def test_inspect_exits_1_when_hosts_are_unreachable_and_names_why(inventory):
    path, ports = inventory
    proc = _run([str(BIN / "gpuhost"), "inspect", str(path), "--json"])
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = {h["host"]: h["error"] for h in json.loads(proc.stdout)["hosts"]}
    assert set(errors) == set(ports)
    for name, cause in _expected(ports).items():
        assert ("unreachable: " + errors[name]).startswith(cause), errors
    assert "3 of 3 host(s) not read" in proc.stderr


def test_upgrade_fails_the_unreachable_hosts_with_their_cause(inventory, tmp_path):
    path, ports = inventory
    proc = _run([str(BIN / "gpuhost"), "upgrade", str(path), "--canary", "0", "--batch", "100%",
                 "--state", str(tmp_path / "state.json")])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    for name, cause in _expected(ports).items():
        assert f"{name}: failed ({cause}" in out, out


@pytest.mark.parametrize("command", ["deploy", "inspect", "upgrade"])
def test_ctrl_c_stops_with_its_own_exit_status(inventory, command, tmp_path):
    path, ports = inventory
    slow = tmp_path / "slow.py"
    slow.write_text(f"hosts = [('silent', {{'ssh_hostname': '127.0.0.1', 'ssh_port': {ports['silent']}, "
                    f"'connect_timeout': 60}})]\n")
    args = {"deploy": [str(BIN / "pyinfra"), str(slow), "deploys/gpu_host.py", "-y"],
            "inspect": [str(BIN / "gpuhost"), "inspect", str(slow)],
            "upgrade": [str(BIN / "gpuhost"), "upgrade", str(slow), "--state", str(tmp_path / "state.json")]}
    proc = subprocess.Popen(args[command], cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "gpuhost: interrupted (Ctrl-C)" in out
    assert "Traceback" not in out


def test_each_host_reads_its_snapshot_once_as_it_connects(monkeypatch):
    """read_on_connect: the snapshot starts when the host connects (once the fleet's data is checked),
    read_snapshot() takes that reading, and a reconnection (after a reboot) starts none."""
    import types

    reads = []
    monkeypatch.setattr(faults, "watch", lambda host, bounds: None)
    monkeypatch.setattr(faults, "read_fact", lambda host, bounds, fact=None, kwargs=None: reads.append(host.name)
                        or ({"read": len(reads)}, None))
    monkeypatch.setattr(faults, "_readings", {})
    monkeypatch.setattr(faults, "_read_early", set())
    monkeypatch.setattr(faults, "_read_on_connect", None)
    host = types.SimpleNamespace(name="gpu-01", data=types.SimpleNamespace(dict=dict))

    faults.FaultWatch.host_connect(None, host)  # no deploy asked for it (exec, fact): nothing is read
    faults.read_on_connect(lambda: 1 / 0)  # the check itself fails: the deploy's own check says why
    faults.FaultWatch.host_connect(None, host)
    faults.read_on_connect(lambda: False)  # bad data somewhere in the fleet: no host is read
    faults.FaultWatch.host_connect(None, host)
    assert reads == [] and faults._readings == {}

    faults.read_on_connect(lambda: True)
    faults.FaultWatch.host_connect(None, host)
    assert faults.read_snapshot(host, Bounds()) == ({"read": 1}, None)
    faults.FaultWatch.host_connect(None, host)  # reconnected after a reboot: no second early reading
    assert faults._readings == {} and reads == ["gpu-01"]
    assert faults.read_snapshot(host, Bounds()) == ({"read": 2}, None)  # asked again: read again


def test_a_watched_connections_reader_wakes_every_few_seconds_not_ten_times_a_second():
    """paramiko's reader polls its socket every 0.1 s only to see whether the connection was closed:
    under gevent, 100 idle connections cost the control node 0.73 CPU-s in 10 s
    (docs/performance.md). watch() sets the real transport's socket to READER_WAKE_S."""
    import types

    import paramiko

    ours, theirs = socket.socketpair()
    transport = paramiko.Transport(ours)
    try:
        assert ours.gettimeout() == 0.1  # paramiko's own
        host = types.SimpleNamespace(name="gpu-01", connector=types.SimpleNamespace(
            client=types.SimpleNamespace(get_transport=lambda: transport)))
        faults.watch(host, Bounds())
        assert ours.gettimeout() == faults.READER_WAKE_S == 2.0
    finally:
        transport.close()
        theirs.close()
