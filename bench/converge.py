"""What a re-run of the gpu_host deploy costs on a converged fleet, next to the SSH floor.

    ./dev bench [--hosts 10] [--rounds 5]        # from a fresh clone: setup, lab, this script
    ./dev bench --hosts 30 --update-figures      # write the committed figures, bench/results/

The results go to bench/out/converge-N.json (git ignores it), so a run never edits the repository;
--update-figures writes bench/results/converge-N.json, the figures the README quotes, instead.
Each phase says when it starts and how long it took.

Starts N lab hosts (Debian 12, systemd, sshd; gpuhost.lab), provisions them once with the real
deploy, then measures each figure `--rounds` times, interleaved (median, min, max):

  ssh floor      one SSH connection + `true` per host, all hosts at once (paramiko, one thread
                 per host): the network-and-sshd cost that no tool can avoid
  ssh snapshot   the same with the snapshot command instead of `true`: what the one reading
                 costs the hosts (diagnostic: the lab's hosts share this machine's CPUs)
  pyinfra floor  `pyinfra INVENTORY exec -y -- true`: the same plus pyinfra's start-up and its
                 own connection handling; the fair floor for a pyinfra deploy
  re-run         `pyinfra INVENTORY deploys/gpu_host.py -y` on the converged hosts (checked:
                 every host 0 changes in the fleet table)
  inspect        `gpuhost inspect INVENTORY --json`

and the commands each host executed during one re-run, counted by the host's own sshd
(LogLevel DEBUG1: one "Starting session: command" line per command).

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
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paramiko

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facts.snapshot import COMMAND as SNAPSHOT  # noqa: E402
from gpuhost.lab import HostSpec, Lab  # noqa: E402
from gpuhost.lab.lab import pyinfra_bin  # noqa: E402
from gpuhost.lab.results import summary_rows  # noqa: E402
from gpuhost.lab.stand_ins import StandIns  # noqa: E402

# sshd's "Starting session: command" lines since a time: counted from the host's own journal
# since just before the re-run (a total count can stand still once the journal reaches its size cap).
COUNT = ("journalctl --sync 2>/dev/null; journalctl -u ssh --since @{since} --no-pager -o cat "
         "| grep -c 'Starting session: command' || true")
_START = time.monotonic()
COUNTING = "echo 'LogLevel DEBUG1' > /etc/ssh/sshd_config.d/zz-count.conf && systemctl reload ssh"  # sshd logs commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10, help="lab hosts (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="measurements of each figure (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write the results here (default bench/out/converge-N.json, git-ignored)")
    parser.add_argument("--update-figures", action="store_true",
                        help="write bench/results/converge-N.json, the committed figures the README quotes")
    parser.add_argument("--monitoring", action="store_true",
                        help="with the monitoring stage on (node_exporter, gpuhost's metrics): converge-N-monitoring.json")
    args = parser.parse_args()
    if not 1 <= args.hosts <= 60 or args.rounds < 1:
        parser.error("--hosts is 1..60 and --rounds at least 1")
    if args.json and args.update_figures:
        parser.error("--json and --update-figures both name the output: give one")
    out = args.json or results_path(args.hosts, args.update_figures, "-monitoring" if args.monitoring else "")
    # No GPU in the lab, so no GPU exporter: node_exporter and gpuhost's textfiles.
    monitoring = {"monitoring": True, "dcgm_exporter": "fallback"} if args.monitoring else {}

    with tempfile.TemporaryDirectory() as tmp:
        with phase("building the lab's stand-ins (signed fixture repositories)"):
            stand_ins = StandIns.build(Path(tmp))
        specs = [HostSpec(f"b{i:02d}", {**stand_ins.data, "apt_lock_timeout": 600, **monitoring})
                 for i in range(1, args.hosts + 1)]
        started = time.monotonic()
        phase_line(f"starting {args.hosts} lab host(s) (the lab says when they are ready) ...")
        with Lab(specs) as lab:
            with phase("serving the stand-ins to the hosts (registry, apt repositories)"):
                stand_ins.install(lab)
                _each(lab.hosts, lambda host: host.exec(COUNTING, check=True))
            with phase(f"provisioning {args.hosts} host(s) once with the real deploy (minutes)"):
                provision = _provision(lab)
            with phase("letting the machine settle (until the load average is below the CPU count, 5 min at most)"):
                _settle()
            inventory = str(lab.inventory_path)
            load_before = os.getloadavg()
            results = _rounds(args.rounds, {
                "ssh_floor": lambda: _ssh_floor(lab),
                "ssh_snapshot": lambda: _ssh_floor(lab, SNAPSHOT),
                "pyinfra_floor": lambda: _run([pyinfra_bin(), inventory, "exec", "-y", "--", "true"]),
                "rerun": lambda: _rerun(lab),
                "inspect": lambda: _run([_gpuhost_bin(), "inspect", inventory, "--json"]),
            })
            with phase("counting each host's commands in one re-run (its sshd's log)"):
                commands = _commands_per_host(lab)
            load_after = os.getloadavg()
            phase_line("removing the lab")
        total = time.monotonic() - started

    document = {
        "machine": _machine(), "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        "hosts": args.hosts, "rounds": args.rounds, "monitoring": args.monitoring,
        "provision_seconds": round(provision, 1), "total_seconds": round(total, 1),
        "seconds": results,
        "ratio_to_pyinfra_floor": round(results["rerun"]["median"] / results["pyinfra_floor"]["median"], 2),
        "ratio_to_ssh_floor": round(results["rerun"]["median"] / results["ssh_floor"]["median"], 2),
        "inspect_ratio_to_pyinfra_floor": round(results["inspect"]["median"] / results["pyinfra_floor"]["median"], 2),
        "commands_per_host": commands,
        "reproduce": f"./dev bench --hosts {args.hosts} --rounds {args.rounds}" + (" --monitoring" if args.monitoring else ""),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(render(document))
    print(f"\nwritten: {out}" + ("" if args.update_figures or args.json else
                                  " (git-ignored; --update-figures writes the committed figures)"))
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


def _settle(limit: float = 300) -> None:
    """Wait (bounded) for the provisioning's load to pass: 1-minute load average below the CPUs."""
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] > (os.cpu_count() or 1) and time.monotonic() < deadline:
        time.sleep(5)


def _rerun(lab: Lab) -> None:
    proc = lab.pyinfra("deploys/gpu_host.py", "-y")
    rows = summary_rows(proc.stdout)
    changed = {name: row["CHANGES"] for name, row in rows.items() if row["CHANGES"] != "0"}
    if proc.returncode != 0 or changed or len(rows) != len(lab.hosts):
        raise SystemExit(f"the re-run was not a no-op ({changed or proc.returncode}):\n{proc.stdout[-4000:]}")


def _commands_per_host(lab: Lab) -> dict:
    """Commands each host ran during one re-run, from its own sshd log."""
    since = {h.name: int(h.exec("date +%s").stdout.strip()) + 1 for h in lab.hosts}
    time.sleep(2)
    _rerun(lab)
    counts = sorted(int(h.exec(COUNT.format(since=since[h.name])).stdout.strip() or 0) for h in lab.hosts)
    return {"min": counts[0], "median": statistics.median(counts), "max": counts[-1]}


def _ssh_floor(lab: Lab, command: str = "true") -> None:
    def one(host):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=host.port, username="root", key_filename=str(host.key_path),
                       look_for_keys=False, allow_agent=False, timeout=30)
        try:
            _, stdout, _ = client.exec_command(command)
            stdout.read()
            if stdout.channel.recv_exit_status() != 0:
                raise RuntimeError(f"{host.name}: {command[:20]} failed")
        finally:
            client.close()
    _each(lab.hosts, one)


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
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def _rounds(rounds: int, figures: dict) -> dict:
    """Each figure `rounds` times, interleaved (one of each per round), so that a slow spell of the
    machine weighs on every figure alike; median, min, max and every sample."""
    seconds: dict[str, list[float]] = {name: [] for name in figures}
    for number in range(1, rounds + 1):
        phase_line(f"measuring: round {number} of {rounds} ({', '.join(figures)})")
        for name, function in figures.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return {name: {"median": round(statistics.median(s), 3), "min": round(min(s), 3),
                   "max": round(max(s), 3), "all": [round(x, 3) for x in s]} for name, s in seconds.items()}


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
    s = doc["seconds"]
    floor = s["pyinfra_floor"]["median"]
    lines = [f"{doc['hosts']} lab hosts, {doc['rounds']} rounds, on {doc['machine']['cpus']} x "
             f"{doc['machine']['cpu']} (provisioned once in {doc['provision_seconds']} s; load average "
             f"{doc['load_average_1m'][0]} before, {doc['load_average_1m'][1]} after)", "",
             f"{'figure':<16}{'median s':>10}{'min':>8}{'max':>8}{'x pyinfra floor':>17}"]
    for key, label in (("ssh_floor", "ssh floor"), ("ssh_snapshot", "ssh snapshot"), ("pyinfra_floor", "pyinfra floor"),
                       ("rerun", "no-op re-run"), ("inspect", "gpuhost inspect")):
        v = s[key]
        lines.append(f"{label:<16}{v['median']:>10.2f}{v['min']:>8.2f}{v['max']:>8.2f}{v['median'] / floor:>17.2f}")
    c = doc["commands_per_host"]
    lines += ["", f"commands per host in a re-run: median {c['median']}, min {c['min']}, max {c['max']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
