"""What the evidence scripts in this folder share: interleaved timing rounds, and the snapshot with a
clock reading between its steps. Run on the GPU machine from the repository root, with pyinfra's
wheels on the path (docs/evidence/README.md)."""

import os
import statistics
import subprocess
import time


def timings(cmds: dict[str, list[str]], rounds: int) -> str:
    """Each command once per round, rounds interleaved (a slow spell weighs on every command
    alike): a table of wall medians and minimums and the children's CPU medians, in ms."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(rounds):
        for name, argv in cmds.items():
            t0 = time.perf_counter(); r0 = os.times()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t1 = time.perf_counter(); r1 = os.times()
            samples[name].append(((t1 - t0) * 1000, ((r1.children_user - r0.children_user)
                                                      + (r1.children_system - r0.children_system)) * 1000))
    lines = ["command | runs | wall median ms | wall min ms | cpu median ms (user+sys, children)"]
    for name, values in samples.items():
        walls = [w for w, _ in values]
        lines.append(f"{name} | {len(values)} | {statistics.median(walls):.1f} | {min(walls):.1f} | "
                     f"{statistics.median(c for _, c in values):.1f}")
    return "\n".join(lines)


def marked_snapshot() -> str:
    """The snapshot's steps (facts.readings.command: the parts' start steps, the shared
    readings, each part's script, the finishing steps) with `date +%s%N` after each (a fork each,
    about 1 ms), printed as `@@T <step> <ns>`."""
    from facts import readings  # noqa: PLC0415 (needs the repository on the path)
    from facts.snapshot import PARTS  # noqa: PLC0415

    parts = [part for part, _ in PARTS.values()]
    wanted: set[str] = set()
    for part in parts:
        for name in part.reads:
            wanted |= {name, *readings.NEEDS.get(name, ())}
    steps = [("start", "bg=\n" + readings.ON_PATH + "\n".join(p.start for p in parts))]
    steps += [(f"reading {name}", readings.READINGS[name]) for name in readings.READINGS if name in wanted]
    steps += [(f"part {p.name}", p.script) for p in parts]
    steps += [(f"finish {p.name}", p.finish) for p in parts if p.finish.strip()]
    body = ['echo "@@T begin $(date +%s%N)"']
    for label, script in steps:
        body += [script.strip(), f'echo "@@T {label} $(date +%s%N)"']
    body.append('[ -n "$bg" ] && rm -rf "$bg"\ntrue')
    return readings._fill("\n".join(body))


def timeline(title: str, script: str, runs: int = 15) -> str:
    """When each marked step ends, median and minimum ms from the start over `runs` runs."""
    ends = []
    for _ in range(runs):
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
        marks = [line.split() for line in out.splitlines() if line.startswith("@@T ")]
        t0 = int(marks[0][-1])
        ends.append({" ".join(m[1:-1]): (int(m[-1]) - t0) / 1e6 for m in marks[1:]})
    lines = [f"# {title}", "step | ends at, median ms from the start | min ms"]
    for label in ends[0]:
        values = [e[label] for e in ends if label in e]
        lines.append(f"{label} | {statistics.median(values):.1f} | {min(values):.1f}")
    return "\n".join(lines)
