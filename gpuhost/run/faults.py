"""Faults: every host bounded, its connection watched, and what went wrong said in one line.

pyinfra runs each operation on all hosts at once and waits for all of them before the next one,
so one host that stops answering (a kernel stuck on a GPU fault, a hung NFS mount: its TCP
connection stays open, nothing answers) used to hold the whole fleet. `FaultWatch`, a pyinfra
state callback handler, bounds every host instead:
- before connecting, the host's `connect_timeout` goes to paramiko (TCP connect, SSH banner,
  authentication); a failed connection gets its cause in words: refused, timeout, not SSH,
  authentication (`connect_cause`), one line, no paramiko traceback;
- once connected, a keepalive greenlet asks the host's sshd for an answer every
  `keepalive_interval` s and closes the connection when none comes within interval x count:
  every wait on that host ends at once, whatever the step;
- each operation without a bound of its own gets `command_timeout` (pyinfra's `_timeout`, per
  command); when an operation fails, its cause: "no answer for N s during <step>" or
  "connection lost during <step>".
`causes` keeps each host's cause for the fleet table (gpuhost.run.summary) and inspect.

`install()` adds the handler once per pyinfra state: config.py (which pyinfra's CLI loads from
the current directory before it connects) calls it, and so does host_context(), for runs that
do not load config.py (keepalives and bounds then start with the deploy file).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time

from pyinfra.api.state import BaseStateCallback

from gpuhost.errors import UsageError
from gpuhost.run.bounds import Bounds

INTERRUPTED = 130  # exit status after Ctrl-C, as a shell reports a process killed by SIGINT
READER_WAKE_S = 2.0  # how often paramiko's reader of an idle connection wakes (watch())
causes: dict[str, str] = {}  # host name -> what happened to it, in words
attempted: list[str] = []  # hosts pyinfra tried to connect to, in order
steps: dict[str, str] = {}  # host name -> the step it runs (or ran last)
interrupted = False  # Ctrl-C: the run was stopped by the user
_lost: dict[str, int] = {}  # host name -> seconds without an answer, when its keepalive closed it
_started: dict[str, float] = {}  # host name -> when its connection or its current step started
_watched: set[int] = set()  # the SSH transports whose keepalives run
_read_on_connect = None  # read_on_connect()'s `ready`: None, no reading starts before the deploy asks
_readings: dict[str, object] = {}  # host name -> the greenlet reading its snapshot since it connected
_read_early: set[str] = set()  # hosts whose snapshot started at their first connection (not again after a reboot)


def bounds_of(host) -> Bounds:
    """The host's bounds; the defaults when its data is bad (check_hosts then refuses it)."""
    try:
        return Bounds.from_host_data(host.data.dict())
    except UsageError:
        return Bounds()


def step_name(state, op_hash) -> str:
    return ", ".join(sorted(state.get_op_meta(op_hash).names)) or "an operation"


def address(host) -> str:
    data = getattr(host.connector, "data", None) or {}
    return f"{data.get('ssh_hostname') or host.name}:{data.get('ssh_port') or 22}"


def connect_cause(error: BaseException, seconds: float, bound: int, where: str) -> str:
    """Why a connection failed, in words, from paramiko's exception chain and the time it took. Pure.

    A silent port (accepts TCP, never sends a banner) fails only when the bound runs out, which
    paramiko reports as "Error reading SSH protocol banner" or "No existing session"; a port that
    answers with something else than SSH fails with the same words, but early."""
    chain, seen = [], error
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = {base.__name__ for e in chain for base in type(e).__mro__}
    text = " ".join(str(e) for e in chain)
    if "AuthenticationException" in names or "Authentication error" in text:
        detail = text.split("Authentication error", 1)[-1].split(")")[0].strip(" (")
        return f"authentication failed ({detail}): check ssh_user and ssh_key" if detail else \
            "authentication failed: check ssh_user and ssh_key"
    if "BadHostKeyException" in names or "host key" in text.lower():
        return f"the host key of {where} changed: if that is expected, remove the old key (ssh-keygen -R)"
    if "gaierror" in names or "Could not resolve" in text:
        return f"cannot resolve {where.rsplit(':', 1)[0]}: check ssh_hostname"
    if "NoValidConnectionsError" in names or "ConnectionRefusedError" in names:
        return f"connection refused: nothing listens on {where}"
    if seconds >= bound - 0.5 or "timed out" in text or "TimeoutError" in names:
        return f"timeout: no SSH answer from {where} in {bound} s"
    if "protocol banner" in text or "Indecipherable" in text or "No existing session" in text \
            or "EOFError" in names:
        return f"not SSH: {where} answered, but not with an SSH banner (wrong port or protocol?)"
    return f"cannot connect to {where}: {' '.join(str(error).split())}"


class FaultWatch(BaseStateCallback):
    """pyinfra calls these around every connection and operation (see the module docstring)."""

    @staticmethod
    def host_before_connect(state, host):
        bounds = bounds_of(host)
        if host.name not in attempted:
            attempted.append(host.name)
        _started[host.name] = time.monotonic()
        data = getattr(host.connector, "data", None)
        if isinstance(data, dict) and "ssh_paramiko_connect_kwargs" in data:  # the SSH connector
            wait = bounds.connect_timeout
            data["ssh_paramiko_connect_kwargs"] = {"timeout": wait, "banner_timeout": wait, "auth_timeout": wait,
                                                   **(data.get("ssh_paramiko_connect_kwargs") or {})}

    @staticmethod
    def host_connect_error(state, host, error):
        seconds = time.monotonic() - _started.get(host.name, time.monotonic())
        causes[host.name] = "unreachable: " + connect_cause(error, seconds, bounds_of(host).connect_timeout,
                                                            address(host))
        logging.getLogger("pyinfra").error(f"[{host.name}] {causes[host.name]}")

    @staticmethod
    def host_connect(state, host):
        bounds = bounds_of(host)
        watch(host, bounds)
        if _read_on_connect is not None and host.name not in _read_early and _ready():
            import gevent

            _read_early.add(host.name)
            _readings[host.name] = gevent.spawn(read_fact, host, bounds)

    @staticmethod
    def operation_host_start(state, host, op_hash):
        op_data = state.ops.get(host, {}).get(op_hash)
        if op_data is None:
            return
        if not op_data.global_arguments.get("_timeout"):  # bounded unless the step has its own bound
            op_data.global_arguments["_timeout"] = bounds_of(host).command_timeout
        steps[host.name] = step_name(state, op_hash)
        _started[host.name] = time.monotonic()

    @staticmethod
    def operation_host_error(state, host, op_hash, retry_attempt=0, max_retries=0):
        op_data = state.ops.get(host, {}).get(op_hash)
        bound = (op_data.global_arguments.get("_timeout") if op_data else None) or 0
        seconds = time.monotonic() - _started.get(host.name, time.monotonic())
        cause = lost_cause(host, step_name(state, op_hash), seconds, bound)
        if cause and host.name not in causes:
            causes[host.name] = cause


def lost_cause(host, step: str, seconds: float, bound: int) -> str | None:
    """Why a step failed when the host, not the step, was the problem; None otherwise."""
    if host.name in _lost:
        return f"no answer for {_lost[host.name]} s during {step}"
    if not connected(host):
        return f"connection lost during {step}"
    if bound and seconds >= bound - 0.5:
        return f"no answer for {bound} s during {step}"
    return None


def connected(host) -> bool:
    client = getattr(host.connector, "client", None)
    if client is None:
        return True  # not an SSH host (@local, @docker): nothing to lose
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def watch(host, bounds: Bounds) -> None:
    """Keepalives for an SSH host: close its connection when sshd stops answering them."""
    import gevent

    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None or id(transport) in _watched:
        return
    _watched.add(id(transport))
    _lost.pop(host.name, None)  # a new connection (after a reboot): answering again
    _tcp_keepalive(transport.sock, bounds)
    # paramiko's reader wakes every 0.1 s (its socket's timeout) only to see whether the
    # connection was closed; closing it closes the socket, which wakes the reader at once. Under
    # pyinfra's gevent each wake costs: 100 idle connections took 0.73 CPU-s of the control node in
    # 10 s (0.14 at a 2 s timeout), for every host connected for the whole run.
    transport.sock.settimeout(READER_WAKE_S)

    def keepalive():
        while transport.is_active():
            gevent.sleep(bounds.keepalive_interval)
            ping = gevent.spawn(transport.global_request, "keepalive@openssh.com", wait=True)
            ping.join(timeout=bounds.lost_after)
            if not ping.ready() and transport.is_active():
                _lost[host.name] = bounds.lost_after
                ping.kill(block=False)
                transport.close()
                return

    gevent.spawn(keepalive)


def _tcp_keepalive(sock, bounds: Bounds) -> None:
    """The kernel's part: unacknowledged data and dead peers end the TCP connection within the bound."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", bounds.keepalive_interval), ("TCP_KEEPINTVL", bounds.keepalive_interval),
                        ("TCP_KEEPCNT", bounds.keepalive_count), ("TCP_USER_TIMEOUT", bounds.lost_after * 1000)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except (OSError, AttributeError):
            return


def read_on_connect(ready) -> None:
    """Start each host's snapshot as soon as it connects, when `ready()` holds (the fleet's data is
    checked): the hosts read while pyinfra connects the others and loads the deploy file, and
    read_snapshot() takes that reading. It is the same one command."""
    global _read_on_connect
    _read_on_connect = ready


def _ready() -> bool:
    """read_on_connect's `ready`; False when it fails (the deploy's own check then says why)."""
    try:
        return bool(_read_on_connect())
    except Exception:  # noqa: BLE001 (a connection must never fail on it)
        return False


def read_snapshot(host, bounds: Bounds):
    """The snapshot (facts.snapshot.HostSnapshot) in one bounded command: (facts, None) or (None, cause)."""
    from facts.snapshot import HostSnapshot

    started = _readings.pop(host.name, None)
    if started is not None:
        return started.get()
    return read_fact(host, bounds, HostSnapshot)


def read_fact(host, bounds: Bounds, fact=None, kwargs=None):
    """A fact (default: the snapshot) in one bounded command: (its reading, None) or (None, cause)."""
    from paramiko.ssh_exception import SSHException
    from pyinfra.api import StringCommand
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments

    from facts.snapshot import HostSnapshot

    fact = fact or HostSnapshot
    step = "the snapshot" if fact is HostSnapshot else f"reading {fact.__name__}"
    steps[host.name] = step
    # As pyinfra runs a fact: the host's own _sudo/_su_user/... arguments, and the bound.
    arguments, _ = pop_global_arguments(host.state, host, {"_timeout": bounds.command_timeout})
    started = time.monotonic()
    try:
        ok, output = host.run_shell_command(StringCommand(fact().command(**(kwargs or {}))),
                                            **{k: v for k, v in arguments.items() if k in CONNECTOR_ARGUMENT_KEYS})
    except (TimeoutError, OSError, SSHException, EOFError):
        ok, output = False, None
    if ok:
        lines = output.stdout_lines
        return (fact().process(lines) if lines else fact.default()), None
    cause = lost_cause(host, step, time.monotonic() - started, bounds.command_timeout)
    if cause is None:
        said = " ".join(output.stderr_lines[-1:]) if output is not None else ""
        cause = f"{step} failed{': ' + said if said else ''}"
    causes[host.name] = cause
    return None, cause


def close(host) -> None:
    """End the host's SSH connection (pyinfra's disconnect leaves it open) and so its keepalives."""
    client = getattr(host.connector, "client", None)
    if client is not None:
        client.close()


def install(state, interrupt: bool = True) -> None:
    """Watch this pyinfra state's hosts (once); quiet paramiko's tracebacks; Ctrl-C exits 130
    (interrupt=False leaves Ctrl-C to the caller).

    pyinfra makes the state's callback list in State.init, after config.py ran: called before
    that, the handler is added as init ends, before any host is contacted."""
    handlers = getattr(state, "callback_handlers", None)
    if handlers is None:
        init = state.init

        def init_then_install(*args, **kwargs):
            init(*args, **kwargs)
            install(state, interrupt)

        state.init = init_then_install
        return
    if any(isinstance(handler, FaultWatch) for handler in handlers):
        return
    state.add_callback_handler(FaultWatch())
    # paramiko logs every failed connection with a traceback; the cause is said in one line instead.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    logging.getLogger("pyinfra").addFilter(_ConnectErrorFilter())
    if interrupt:
        signal.signal(signal.SIGINT, _interrupt)


class _ConnectErrorFilter(logging.Filter):
    """pyinfra's own line for a failed connection ("SSH error (No existing session)") is replaced
    by the one with its cause (FaultWatch.host_connect_error)."""

    WORDS = ("Could not connect (", "SSH error (", "Authentication error (", "EOF error (",
             "Could not resolve hostname (", "SSH host key error (")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(word in message for word in self.WORDS)


def _interrupt(signum, frame) -> None:
    global interrupted
    interrupted = True
    print(f"\ngpuhost: interrupted (Ctrl-C): stopping; exit status {INTERRUPTED}", file=sys.stderr, flush=True)
    sys.exit(INTERRUPTED)
