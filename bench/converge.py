"""What a re-run of the gpu_host deploy costs on a converged fleet of 1 to 100 hosts, next to the floors.

    ./dev bench [--hosts 1,10,30,100] [--rounds 3]      # from a fresh clone: setup, lab, this script
    ./dev bench --hosts 1,10,30,100 --update-figures     # write the committed figures, bench/results/

The results go to bench/out/converge-N.json (git ignores it), so a run never edits the repository;
--update-figures writes bench/results/converge-N.json, the figures the docs quote, instead. Each
phase says when it starts and how long it took.

How the fleet is made: ONE lab host (Debian 12, systemd, sshd; gpuhost.lab) goes from bare to done
with the real deploy against the lab's stand-ins (the first converge: its time, and the commands
it ran, counted by its sshd), is committed as an image, and the fleet's hosts start from that
image: each already converged (the same packages, files, Docker with the nvidia runtime and the
pulled tag). One deploy run over the fleet then writes each host's own report (it names the
host); after that every re-run must change nothing, which is checked on every re-run measured.
That is what differs from the e2e tests' hosts, which each converge from bare.

Then, for each fleet size (the first N hosts), each figure `--rounds` times, rounds and sizes
interleaved (median, min, max), each with the CPU-seconds spent in the hosts (their containers'
cgroups: sshd, the commands, systemd and dockerd answering) and on the control node (the
command's rusage; the bench's own threads for the paramiko figures) and the 1-minute load average:

  ssh floor      one SSH connection + `true` per host, all hosts at once (paramiko, one thread
                 per host): the network-and-sshd cost that no tool can avoid
  ssh snapshot   the same with the snapshot command instead of `true`: what the one reading
                 costs the hosts
  pyinfra floor  `pyinfra INVENTORY exec -y -- true`: the same plus pyinfra's start-up and its
                 own connection handling; the fair floor for a pyinfra deploy
  re-run         `pyinfra INVENTORY deploys/gpu_host.py -y` on the converged hosts (checked:
                 every host 0 changes in the fleet table)
  inspect        `gpuhost inspect INVENTORY --json`

and the commands each host executed during one re-run, counted by the host's own sshd
(LogLevel DEBUG1: one "Starting session: command" line per command). At the largest size it also
records what the run needed on this machine: the hosts' memory (their cgroups), pyinfra's peak
RSS and open file descriptors, the fd limit and fs.inotify.max_user_instances.

What the hosts are: each is planned for an H100 (`target_gpus`, the lab has no GPU) and goes
through every stage with the lab's stand-ins (gpuhost/lab/stand_ins.py): the driver and the
container toolkit from signed local repositories of TEST FIXTURE packages named like NVIDIA's,
Debian's docker.io from Debian's mirror, the nvidia runtime merged into daemon.json, and the
plan's image tag pre-pulled from the lab registry. That image is a one-file stand-in: the
re-run only checks that the tag is present with its digest, and without a GPU the torch check
is not run (`verify: auto`), so its content does not enter the figures. The lab is torn down
at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paramiko

REPO = Path(__file__).resolve().parents[1]
# pyinfra's runs measured: unbuffered, and with Python's bytecode cache (a machine that sets
# PYTHONDONTWRITEBYTECODE would have every run compile gpuhost's sources again: about 80 ms of
# control-node CPU per run that an installed gpuhost, byte-compiled by pip, never pays).
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONUNBUFFERED": "1"}
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from labcpu import HostsCpu, cgroup_usage_file, children_cpu, memory_bytes, self_cpu  # noqa: E402

from facts.snapshot import COMMAND as SNAPSHOT  # noqa: E402
from gpuhost.lab import HostSpec, Lab  # noqa: E402
from gpuhost.lab.engine import docker  # noqa: E402
from gpuhost.lab.hosts import start_host, wait_ready  # noqa: E402
from gpuhost.lab.inventory import write_inventory  # noqa: E402
from gpuhost.lab.keys import ensure_key  # noqa: E402
from gpuhost.lab.lab import _room_for_hosts, pyinfra_bin  # noqa: E402
from gpuhost.lab.results import summary_rows  # noqa: E402
from gpuhost.lab.stand_ins import StandIns  # noqa: E402

# sshd's "Starting session: command" lines between two markers that the bench logs through the
# same syslog socket (/dev/log) as sshd, just before and just after the re-run: the socket keeps
# their order, so a line that a loaded host's journald takes in late (it stamps lines as it takes
# them in) still falls on the right side. By sshd's syslog identifier: once a login's session is
# open, journald files sshd's lines under the session's scope, not ssh.service.
MARK = "logger -t gpuhost-bench {mark}"
COUNT = ("journalctl --sync 2>/dev/null; journalctl -t sshd -t gpuhost-bench --since @{since} --no-pager -o cat "
         "| awk '$0 == \"{start}\" {{ on = 1; n = 0; next }} $0 == \"{end}\" {{ on = 0 }} "
         "on && /Starting session: command/ {{ n++ }} END {{ print n + 0 }}'")
_START = time.monotonic()
FIGURES = ("ssh_floor", "ssh_snapshot", "pyinfra_floor", "rerun", "inspect")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10", help="fleet sizes, comma separated (default 10; the figures: 1,10,30,100)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each figure (default 3)")
    parser.add_argument("--json", type=Path, metavar="DIR",
                        help="write the results into this directory (default bench/out/, git-ignored)")
    parser.add_argument("--update-figures", action="store_true",
                        help="write bench/results/converge-N.json, the committed figures the docs quote")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="also profile the control node (cProfile) in one re-run of the first N hosts: "
                             "rerun-profile-N.txt beside the figures")
    parser.add_argument("--monitoring", action="store_true",
                        help="with the monitoring stage on (node_exporter, gpuhost's metrics): converge-N-monitoring.json")
    args = parser.parse_args()
    try:
        sizes = sorted({int(n) for n in args.hosts.split(",")})
    except ValueError:
        parser.error(f"--hosts takes sizes like 1,10,30,100, not {args.hosts!r}")
    if not sizes or sizes[0] < 1 or sizes[-1] > 200 or args.rounds < 1:
        parser.error("--hosts sizes are 1..200 and --rounds at least 1")
    if args.json and args.update_figures:
        parser.error("--json and --update-figures both name the output: give one")
    suffix = "-monitoring" if args.monitoring else ""
    # No GPU in the lab, so no GPU exporter: node_exporter and gpuhost's textfiles.
    monitoring = {"monitoring": True, "dcgm_exporter": "fallback"} if args.monitoring else {}

    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "gpuhost", "facts", "deploys", "config.py"],
                   cwd=REPO, env=ENV, check=True, stdout=subprocess.DEVNULL)  # as pip compiles an install
    with tempfile.TemporaryDirectory() as tmp:
        with phase("building the lab's stand-ins (signed fixture repositories)"):
            stand_ins = StandIns.build(Path(tmp))
        data = {**stand_ins.data, "apt_lock_timeout": 600, **monitoring}
        phase_line("starting the template host ...")
        # The image goes after the lab: a tag in use by the fleet's containers would only be untagged.
        with _committed_image_removed() as images, Lab([HostSpec("t00", data)]) as lab:
            template = lab.hosts[0]
            with phase("serving the stand-ins to the hosts (registry, apt repositories)"):
                stand_ins.install(lab)
                template.log_commands()  # sshd logs every command: counted below
            with phase("first converge: the template host from bare to done with the real deploy"):
                first = _first_converge(lab, template)
            with phase(f"starting {sizes[-1]} converged host(s) from the template's image"):
                fleet = _clone(lab, template, data, sizes[-1], images)
            with phase(f"one deploy run over the fleet: each host's report names it ({sizes[-1]} hosts)"):
                _pyinfra_ok(_inventory(lab, fleet), "deploys/gpu_host.py", "-y")
            with phase("letting the machine settle (until the load average is below the CPU count, 1 min at most: the machine is shared)"):
                _settle()
            files = [cgroup_usage_file(i) for i in _container_ids(fleet)]
            results = _rounds(args.rounds, lab, fleet, files, sizes)
            with phase("counting each host's commands in one re-run per size (its sshd's log)"):
                commands = {n: _commands_per_host(_inventory(lab, fleet[:n]), fleet[:n]) for n in sizes}
            needs = _needs(lab, fleet)
            if args.profile:
                with phase(f"profiling the control node in one re-run of {args.profile} host(s) (cProfile)"):
                    profile = _profile(_inventory(lab, fleet[:args.profile]), args.profile)
            phase_line("removing the lab")
        total = time.monotonic() - started

    out_dir = args.json or results_path(sizes[-1], args.update_figures).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        (out_dir / f"rerun-profile-{args.profile}.txt").write_text(profile)
    for n in sizes:
        r = results[n]
        floor = r["pyinfra_floor"]["seconds"]["median"]
        document = {
            "machine": _machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "hosts": n, "rounds": args.rounds, "monitoring": args.monitoring,
            "first_converge": first, "total_seconds": round(total, 1),
            "figures": r,
            "ratio_to_pyinfra_floor": round(r["rerun"]["seconds"]["median"] / floor, 2),
            "ratio_to_ssh_floor": round(r["rerun"]["seconds"]["median"] / r["ssh_floor"]["seconds"]["median"], 2),
            "inspect_ratio_to_pyinfra_floor": round(r["inspect"]["seconds"]["median"] / floor, 2),
            "commands_per_host": commands[n],
            "needs": needs if n == sizes[-1] else None,
            "reproduce": f"./dev bench --hosts {args.hosts} --rounds {args.rounds}" + (" --monitoring" if args.monitoring else ""),
        }
        (out_dir / f"converge-{n}{suffix}.json").write_text(json.dumps(document, indent=2) + "\n")
        print(render(document) + "\n")
    print(f"written: {', '.join(str(out_dir / f'converge-{n}{suffix}.json') for n in sizes)}"
          + ("" if args.update_figures or args.json else " (git-ignored; --update-figures writes the committed figures)"))
    return 0


def results_path(hosts: int, update_figures: bool, suffix: str = "") -> Path:
    """bench/results/ holds the committed figures; bench/out/ (git-ignored) everything else."""
    return REPO / "bench" / ("results" if update_figures else "out") / f"converge-{hosts}{suffix}.json"


def phase_line(text: str) -> None:
    print(f"bench [{time.monotonic() - _START:6.1f}s] {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def phase(text: str, every: float = 30):
    """A phase of the run: a line when it starts, one every 30 s while it runs, one with its duration."""
    name = text.split(" (")[0]
    phase_line(f"{text} ...")
    started, done = time.monotonic(), threading.Event()

    def heartbeat():
        while not done.wait(every):
            phase_line(f"{name}: still running ({time.monotonic() - started:.0f}s)")
    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        yield
    finally:
        done.set()
    phase_line(f"{name}: {time.monotonic() - started:.1f}s")


# --- the lab --------------------------------------------------------------------------------------


def _provision(lab: Lab) -> float:
    started = time.monotonic()
    proc = lab.pyinfra("deploys/gpu_host.py", "-y", timeout=3600)
    rows = summary_rows(proc.stdout)
    bad = {name: row["RESULT"] for name, row in rows.items() if row["RESULT"] != "ok"}
    if proc.returncode != 0 or bad or len(rows) != len(lab.hosts):
        raise SystemExit(f"provisioning failed ({bad or proc.returncode}):\n{proc.stdout[-4000:]}")
    return time.monotonic() - started


def _settle(limit: float = 60) -> None:
    """Wait (bounded) for the provisioning's load to pass: 1-minute load average below the CPUs."""
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] > (os.cpu_count() or 1) and time.monotonic() < deadline:
        time.sleep(5)


def _first_converge(lab: Lab, host) -> dict:
    """Bare host to done, once: the deploy's wall time and the commands the host's sshd ran."""
    since = int(host.exec("date +%s", check=True).stdout.strip()) - 5
    host.exec(MARK.format(mark="first-start"), check=True)
    seconds = _provision(lab)
    host.exec(MARK.format(mark="first-end"), check=True)
    return {"seconds": round(seconds, 1),
            "commands": int(host.exec(COUNT.format(since=since, start="first-start", end="first-end"),
                                      check=True).stdout.strip() or 0),
            "what": "one lab host, bare Debian 12 to converged (driver and toolkit from the stand-in "
                    "repositories, docker.io from Debian's mirror, the image tag pulled from the lab registry)"}


@contextlib.contextmanager
def _committed_image_removed():
    images: list[str] = []
    try:
        yield images
    finally:
        for image in images:
            docker("rmi", "-f", image, check=False)


def _clone(lab: Lab, template, data: dict, count: int, images: list[str]) -> list:
    """`count` hosts started from an image of the converged template, on the lab's network."""
    image = f"gpuhost-lab/bench-converged:{lab.id}"
    # dockerd renames /var/lib/docker/runtimes at start: on the image's lower layer that is a
    # cross-device rename (overlayfs), so it is left out (dockerd writes it again).
    template.exec("systemctl stop docker docker.socket containerd && rm -rf /var/lib/docker/runtimes /var/lib/docker/tmp "
                  "&& sync", check=True)
    docker("commit", template.container, image)
    images.append(image)
    template.exec("systemctl start docker", check=False)
    _room_for_hosts(count + 1)
    key_path, public_key = ensure_key()
    specs = [HostSpec(f"b{i:03d}", data) for i in range(1, count + 1)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # docker run, 8 at a time
        fleet = list(pool.map(lambda spec: start_host(spec, image=image, network=lab.network, prefix=lab.prefix,
                                                      labels=lab.labels, public_key=public_key, key_path=key_path),
                              specs))
        lab.hosts.extend(fleet)
        list(pool.map(lambda host: wait_ready(host, timeout=600), fleet))
    return fleet


def _inventory(lab: Lab, hosts: list) -> Path:
    return write_inventory(lab.run_dir / f"inventory-{len(hosts)}.py", hosts, lab.id)


def _pyinfra(inventory: Path, *args: str, sample: dict | None = None) -> subprocess.CompletedProcess:
    """pyinfra's CLI on an inventory; `sample` collects its peak open fds (polled) when given."""
    proc = subprocess.Popen([pyinfra_bin(), str(inventory), *args], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV)
    done = threading.Event()

    def poll():
        while not done.wait(0.1):
            with contextlib.suppress(OSError):
                sample["fds"] = max(sample.get("fds", 0), len(os.listdir(f"/proc/{proc.pid}/fd")))
    if sample is not None:
        threading.Thread(target=poll, daemon=True).start()
    try:
        out, _ = proc.communicate(timeout=3600)
    finally:
        done.set()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _pyinfra_ok(inventory: Path, *args: str) -> subprocess.CompletedProcess:
    proc = _pyinfra(inventory, *args)
    rows = summary_rows(proc.stdout)
    bad = {name: row["RESULT"] for name, row in rows.items() if row["RESULT"] != "ok"}
    if proc.returncode != 0 or bad:
        raise SystemExit(f"pyinfra {' '.join(args)} failed ({bad or proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


def _rerun(inventory: Path, count: int, sample: dict | None = None) -> None:
    proc = _pyinfra(inventory, "deploys/gpu_host.py", "-y", sample=sample)
    rows = summary_rows(proc.stdout)
    changed = {name: row["CHANGES"] for name, row in rows.items() if row["CHANGES"] != "0"}
    if proc.returncode != 0 or changed or len(rows) != count:
        raise SystemExit(f"the re-run was not a no-op ({changed or proc.returncode}):\n{proc.stdout[-4000:]}")


def _commands_per_host(inventory: Path, hosts: list) -> dict:
    """Commands each host ran during one re-run, from its own sshd log, between two markers."""
    nonce = f"{os.getpid()}-{time.monotonic_ns()}"
    start, end = f"count-start-{nonce}", f"count-end-{nonce}"
    since = {}

    def mark_start(host):
        since[host.name] = int(host.exec("date +%s", check=True).stdout.strip()) - 5
        host.exec(MARK.format(mark=start), check=True)
    _each(hosts, mark_start)
    _rerun(inventory, len(hosts))
    _each(hosts, lambda host: host.exec(MARK.format(mark=end), check=True))
    counts: dict[str, int] = {}

    def count(host):
        counts[host.name] = int(host.exec(COUNT.format(since=since[host.name], start=start, end=end),
                                          check=True).stdout.strip() or 0)
    _each(hosts, count)
    values = sorted(counts.values())
    return {"min": values[0], "median": statistics.median(values), "max": values[-1]}


def _profile(inventory: Path, count: int) -> str:
    """cProfile of pyinfra in one no-op re-run: the top functions by cumulative and by own time."""
    import pstats  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        stats_file = Path(tmp) / "rerun.prof"
        argv = [sys.executable, "-m", "cProfile", "-o", str(stats_file), pyinfra_bin(), str(inventory),
                "deploys/gpu_host.py", "-y"]
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
        rows = summary_rows(proc.stdout)  # the fleet table (pyinfra logs to stderr)
        if len(rows) != count or any(row["CHANGES"] != "0" for row in rows.values()) or not stats_file.exists():
            return (f"# the profiled re-run was not a no-op (exit status {proc.returncode}):\n"
                    + (proc.stdout + proc.stderr)[-3000:])
        text = io.StringIO()
        stats = pstats.Stats(str(stats_file), stream=text)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
    command = (f"python -m cProfile -o rerun.prof {Path(pyinfra_bin()).name} <inventory of {count} converged lab "
               f"host(s)> deploys/gpu_host.py -y   (exit status {proc.returncode})")
    return (f"# cProfile of the control node in one no-op re-run of {count} converged lab host(s), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, wall {wall:.2f} s under the profiler,\n"
            f"# load average {os.getloadavg()[0]:.2f}. Made by bench/converge.py --profile {count}:\n#   {command}\n\n"
            + text.getvalue())


def _ssh_floor(hosts: list, command: str = "true") -> None:
    def one(host):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=host.port, username="root", key_filename=str(host.key_path),
                       look_for_keys=False, allow_agent=False, timeout=60)
        try:
            _, stdout, _ = client.exec_command(command)
            stdout.read()
            if stdout.channel.recv_exit_status() != 0:
                raise RuntimeError(f"{host.name}: {command[:20]} failed")
        finally:
            client.close()
    _each(hosts, one)


def _container_ids(hosts: list) -> list[str]:
    return docker("inspect", "-f", "{{.Id}}", *(h.container for h in hosts)).stdout.split()


def _needs(lab: Lab, fleet: list) -> dict:
    """What the largest fleet needed on this machine: memory, file descriptors, inotify instances."""
    sample: dict = {}
    _rerun(_inventory(lab, fleet), len(fleet), sample=sample)
    memory = [memory_bytes(i) for i in _container_ids(fleet)]
    return {
        "hosts": len(fleet),
        "hosts_memory_gib": round(sum(m["usage"] for m in memory) / 2**30, 2),
        "host_memory_mib_median": round(statistics.median(m["usage"] for m in memory) / 2**20, 1),
        "host_anonymous_mib_median": round(statistics.median(m["rss"] for m in memory) / 2**20, 1),
        "pyinfra_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "pyinfra_peak_open_fds": sample.get("fds"),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "inotify_max_user_instances": int(Path("/proc/sys/fs/inotify/max_user_instances").read_text()),
    }


# --- measuring ------------------------------------------------------------------------------------


def _each(items, function) -> None:
    """Run function(item) for every item at once, in threads; re-raise the first error."""
    errors = []

    def guarded(item):
        try:
            function(item)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
    threads = [threading.Thread(target=guarded, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def _figures(lab: Lab, hosts: list) -> dict:
    inventory = _inventory(lab, hosts)
    return {
        "ssh_floor": lambda: _ssh_floor(hosts),
        "ssh_snapshot": lambda: _ssh_floor(hosts, SNAPSHOT),
        "pyinfra_floor": lambda: _run([pyinfra_bin(), str(inventory), "exec", "-y", "--", "true"]),
        "rerun": lambda: _rerun(inventory, len(hosts)),
        "inspect": lambda: _run([_gpuhost_bin(), "inspect", str(inventory), "--json"]),
    }


def _rounds(rounds: int, lab: Lab, fleet: list, files: list, sizes: list[int]) -> dict:
    """Each figure at each size `rounds` times, interleaved (one of each per round, sizes in turn),
    so that a slow spell of the shared machine weighs on every figure alike: for each, the wall
    seconds, the hosts' and the control node's CPU-seconds and the load average; median, min, max."""
    figures = {n: _figures(lab, fleet[:n]) for n in sizes}
    samples = {n: {name: [] for name in FIGURES} for n in sizes}
    for number in range(1, rounds + 1):
        phase_line(f"measuring: round {number} of {rounds} (sizes {', '.join(map(str, sizes))}; {', '.join(FIGURES)})")
        for n in sizes:
            cpu = HostsCpu(files[:n])
            for name in FIGURES:
                load = os.getloadavg()[0]
                control = children_cpu() + self_cpu()
                start = time.perf_counter()
                with cpu:
                    figures[n][name]()
                samples[n][name].append((time.perf_counter() - start, cpu.seconds,
                                         children_cpu() + self_cpu() - control, load))
    return {n: {name: _stats(values) for name, values in by_name.items()} for n, by_name in samples.items()}


def _stats(values: list[tuple]) -> dict:
    def summary(column: int, digits: int = 3) -> dict:
        xs = [v[column] for v in values]
        return {"median": round(statistics.median(xs), digits), "min": round(min(xs), digits),
                "max": round(max(xs), digits), "all": [round(x, digits) for x in xs]}
    return {"seconds": summary(0), "host_cpu_seconds": summary(1), "control_cpu_seconds": summary(2),
            "load_average_1m": summary(3, 2)}


def _gpuhost_bin() -> str:
    return str(Path(sys.executable).with_name("gpuhost"))


def _machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), None)
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gib": memory, "kernel": platform.release(),
            "python": platform.python_version()}


def render(doc: dict) -> str:
    f = doc["figures"]
    floor = f["pyinfra_floor"]["seconds"]["median"]
    first = doc["first_converge"]
    lines = [f"{doc['hosts']} lab host(s), {doc['rounds']} rounds, on {doc['machine']['cpus']} x {doc['machine']['cpu']} "
             f"(first converge of one host: {first['seconds']} s, {first['commands']} commands)", "",
             f"{'figure':<16}{'median s':>10}{'min':>8}{'max':>8}{'x floor':>9}{'host CPU s':>12}{'control CPU s':>15}{'load':>7}"]
    for key, label in (("ssh_floor", "ssh floor"), ("ssh_snapshot", "ssh snapshot"), ("pyinfra_floor", "pyinfra floor"),
                       ("rerun", "no-op re-run"), ("inspect", "gpuhost inspect")):
        v = f[key]
        lines.append(f"{label:<16}{v['seconds']['median']:>10.2f}{v['seconds']['min']:>8.2f}{v['seconds']['max']:>8.2f}"
                     f"{v['seconds']['median'] / floor:>9.2f}{v['host_cpu_seconds']['median']:>12.2f}"
                     f"{v['control_cpu_seconds']['median']:>15.2f}{v['load_average_1m']['median']:>7.1f}")
    c = doc["commands_per_host"]
    lines += ["", f"commands per host in a re-run: median {c['median']}, min {c['min']}, max {c['max']}"]
    if doc.get("needs"):
        lines.append(f"needed: {doc['needs']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
