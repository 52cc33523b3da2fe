"""What the snapshot costs a host: CPU (the host's cgroup) and wall time, whole, per part, per reading.

    .venv/bin/python bench/snapshot.py [--rounds 5] [--repeat 10] [--compare 0a0f100] [--update-figures]

Starts one lab host, provisions it once with the real deploy against the lab's stand-ins (as
bench/converge.py does), then runs inside the host (docker exec: the command's own cost, no SSH)
each of: `true` (the floor), the whole snapshot, each part alone (the fact of that name: the
readings it needs plus its own script), the snapshot built up step by step (each shared reading,
then each part's script, added in turn: the difference between two steps is what the added one
costs), and with --compare REF the snapshot and each part alone as the facts of that git ref
wrote them (e.g. 0a0f100, before issue 29). Each `--repeat` times in a row per round, rounds interleaved;
per run: the CPU-seconds the host's cgroup gained (less `true`'s) and the wall time; medians.

Results: bench/out/snapshot.json (git-ignored), or bench/results/snapshot.json with --update-figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from converge import REPO, _machine, _provision, phase, phase_line
from labcpu import HostsCpu

from facts.readings import READINGS, Part, command  # noqa: E402
from facts.snapshot import COMMAND, PARTS  # noqa: E402
from gpuhost.lab import HostSpec, Lab  # noqa: E402
from gpuhost.lab.stand_ins import StandIns  # noqa: E402




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10, help="runs in a row per measurement (default 10)")
    parser.add_argument("--compare", metavar="REF", help="also measure the snapshot of this git ref")
    parser.add_argument("--update-figures", action="store_true", help="write bench/results/snapshot.json")
    args = parser.parse_args()
    commands = {"true": "true", "snapshot": COMMAND}
    old = snapshot_of(args.compare) if args.compare else {}
    if old:
        commands[f"snapshot@{args.compare}"] = old["snapshot"]
    for name, (part, _) in PARTS.items():
        commands[f"part {name} alone"] = command(part)
        if name in old:  # a part the ref has
            commands[f"part {name} alone@{args.compare}"] = old[name]
    # The snapshot step by step: each shared reading, then each part's own script, added in turn
    # (the difference between two steps is what the added one costs).
    readings, parts = list(READINGS), list(PARTS)
    for i in range(len(readings)):
        commands[f"step + reading {readings[i]}"] = command(Part("readings", tuple(readings[:i + 1]), ""))
    for i in range(len(parts)):
        commands[f"step + part {parts[i]}"] = command(Part("readings", tuple(readings), ""),
                                                      *(PARTS[name][0] for name in parts[:i + 1]))

    with tempfile.TemporaryDirectory() as tmp:
        with phase("building the lab's stand-ins (signed fixture repositories)"):
            stand_ins = StandIns.build(Path(tmp))
        with Lab([HostSpec("s1", {**stand_ins.data, "apt_lock_timeout": 600})]) as lab:
            host = lab.hosts[0]
            with phase("serving the stand-ins to the host"):
                stand_ins.install(lab)
            with phase("provisioning the host once with the real deploy"):
                _provision(lab)
            for name, text in commands.items():
                host.exec(f"cat > /tmp/bench-{_file(name)}.sh", input=text, check=True)
            cpu = HostsCpu.of([host])
            profiles = {"converged lab host": _measure(host, cpu, commands, args)}
            sizes = {name: len(host.exec(f"sh /tmp/bench-{_file(name)}.sh").stdout.encode())
                     for name in commands if name.startswith("snapshot")}

    document = {"machine": _machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "load_average_1m": round(os.getloadavg()[0], 2), "rounds": args.rounds, "repeat": args.repeat,
                "output_bytes": sizes, "ms": profiles,
                "reproduce": "./dev setup && .venv/bin/python bench/snapshot.py"
                             + (f" --compare {args.compare}" if args.compare else "")
                             + f" --rounds {args.rounds} --repeat {args.repeat}"}
    out = REPO / "bench" / ("results" if args.update_figures else "out") / "snapshot.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(render(document))
    print(f"\nwritten: {out}")
    return 0


def snapshot_of(ref: str) -> dict[str, str]:
    """The snapshot's command and each part's, as the facts of `ref` write them."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "facts", "gpuhost"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return json.loads(subprocess.run(
            [sys.executable, "-c", "import importlib, importlib.util, json, sys; sys.path.insert(0, sys.argv[1]); "
             "names = ['snapshot', *sys.argv[2:]]; exists = lambda n: importlib.util.find_spec('facts.' + n); "
             "print(json.dumps({n: importlib.import_module('facts.' + n).COMMAND for n in names if exists(n)}))",
             tmp, *PARTS], capture_output=True, text=True, check=True).stdout)


def _file(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)


def _measure(host, cpu: HostsCpu, commands: dict, args) -> dict:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for number in range(1, args.rounds + 1):
        phase_line(f"measuring: round {number} of {args.rounds}")
        for name in commands:
            loop = f"i=0; while [ $i -lt {args.repeat} ]; do sh /tmp/bench-{_file(name)}.sh >/dev/null 2>&1; i=$((i+1)); done"
            started = time.perf_counter()
            with cpu:
                host.exec(loop, check=True)
            samples[name].append((cpu.seconds / args.repeat, (time.perf_counter() - started) / args.repeat))
    floor_cpu = statistics.median(c for c, _ in samples["true"])
    floor_wall = statistics.median(w for _, w in samples["true"])
    result = {}
    previous = None
    for name, values in samples.items():
        minus = (0.0, 0.0) if name == "true" else (floor_cpu, floor_wall)
        result[name] = {"cpu": round((statistics.median(c for c, _ in values) - minus[0]) * 1000, 1),
                        "wall": round((statistics.median(w for _, w in values) - minus[1]) * 1000, 1)}
        if name.startswith("step "):  # what this step adds to the one before
            base = result[previous]["cpu"] if previous else 0.0
            result[name]["added_cpu"] = round(result[name]["cpu"] - base, 1)
            previous = name
    return result


def render(doc: dict) -> str:
    lines = [f"one lab host, {doc['rounds']} rounds x {doc['repeat']} runs, load average {doc['load_average_1m']}, "
             f"ms per run (CPU of the host's cgroup and wall time, less `true`'s)"]
    for profile, rows in doc["ms"].items():
        lines += ["", profile, f"{'':36}{'CPU ms':>8}{'wall ms':>9}{'added CPU ms':>14}"]
        lines += [f"{name:36}{v['cpu']:>8.1f}{v['wall']:>9.1f}" + (f"{v['added_cpu']:>14.1f}" if "added_cpu" in v else "")
                  for name, v in rows.items()]
    lines += ["", f"output bytes: {doc['output_bytes']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
