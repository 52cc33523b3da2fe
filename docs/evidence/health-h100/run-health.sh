#!/bin/sh
# Issue 26, on the real GPU machine: the on-host health command and the snapshot after the change.
# Usage (repo root of branch h26-health, or main after the merge; wheels in .whl/ as before):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   OUT=/some/dir TAG=h100 sh docs/evidence/health-h100/run-health.sh
# Writes $OUT/health-run-$TAG.tgz and prints the log and the timings.
set -u
TAG=${TAG:-gpu}
C=/tmp/health-run-$TAG
rm -rf "$C"; mkdir -p "$C"
REPO=$(pwd)
export PYTHONPATH=/tmp/site:$REPO
date -u +%Y-%m-%dT%H:%M:%SZ > "$C/date.txt"
git -C "$REPO" rev-parse HEAD > "$C/commit.txt" 2>/dev/null
log() { echo "$*" >> "$C/log.txt"; }
# 1. The command as the deploy installs it: the script and its rules (JSON) beside each other.
python3 -c 'from gpuhost.health.verdict import rules_json; print(rules_json(), end="")' > "$C/health-rules.json"; log "rules rc=$?"
cp gpuhost/health/probe.py "$C/gpuhost-health"; chmod 755 "$C/gpuhost-health"
python3 -c 'from facts.health import COMMAND; print(COMMAND)' > "$C/health-part.sh"
python3 -c 'from facts.snapshot import COMMAND; print(COMMAND)' > "$C/snapshot.sh"
# 2. Idle: its one line, exit status, JSON; the raw health part (a real fixture for the tests).
env -u PYTHONPATH "$C/gpuhost-health" --rules "$C/health-rules.json" > "$C/health-idle.txt" 2>&1; log "health idle rc=$?"
env -u PYTHONPATH "$C/gpuhost-health" --rules "$C/health-rules.json" --json > "$C/health-idle.json" 2>&1; log "health idle json rc=$?"
sh "$C/health-part.sh" > "$C/health-part-idle.out" 2>&1; log "health part rc=$?"
sh "$C/snapshot.sh" > "$C/snapshot.out" 2>&1; log "snapshot rc=$?"
python3 -m pyinfra @local fact facts.snapshot.HostSnapshot --json > "$C/snapshot.json" 2> "$C/snapshot.log"; log "pyinfra fact rc=$?"
python3 -c 'from gpuhost.cli import main; main()' inspect @local > "$C/inspect.txt" 2>&1; log "inspect rc=$?"
python3 -c 'from gpuhost.cli import main; main()' inspect @local --json > "$C/inspect.json" 2>&1; log "inspect json rc=$?"
# 3. Under load (a bf16 matmul loop): the command still reads ok (software power cap is no fault).
if env -u PYTHONPATH python3 -c 'import torch' 2>/dev/null; then
  env -u PYTHONPATH python3 -c '
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
end = time.time() + 15
while time.time() < end:
    for _ in range(50): c = a @ b
    torch.cuda.synchronize()
' > "$C/load-torch.log" 2>&1 &
  busy=$!
  sleep 7
  env -u PYTHONPATH "$C/gpuhost-health" --rules "$C/health-rules.json" > "$C/health-load.txt" 2>&1; log "health load rc=$?"
  sh "$C/health-part.sh" > "$C/health-part-load.out" 2>&1; log "health part load rc=$?"
  wait $busy; log "load rc=$?"
fi
# 4. Timings, idle: 10 runs each, wall and CPU medians (the command, the health part, the snapshot).
python3 - "$C" > "$C/timings.txt" 2>&1 <<'PY'
import os, subprocess, sys, time, statistics
C = sys.argv[1]
env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
cmds = {"gpuhost-health (the command)": [f"{C}/gpuhost-health", "--rules", f"{C}/health-rules.json"],
        "health reading alone (the command's shell script, facts.health.COMMAND)": ["sh", f"{C}/health-part.sh"],
        "snapshot (with the health part)": ["sh", f"{C}/snapshot.sh"]}
before = "docs/evidence/snapshot-h100/snapshot-0a0f100.sh"  # issue 29's copy of main's snapshot at 0a0f100
if os.path.exists(before):
    cmds["snapshot before (main at 0a0f100, same run)"] = ["sh", before]
print("command | runs | wall median ms | wall min ms | wall max ms | cpu median ms (user+sys, children)")
for name, argv in cmds.items():
    walls, cpus = [], []
    for _ in range(10):
        t0 = time.perf_counter(); r0 = os.times()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        t1 = time.perf_counter(); r1 = os.times()
        walls.append((t1 - t0) * 1000)
        cpus.append(((r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)) * 1000)
    print(f"{name} | 10 | {statistics.median(walls):.1f} | {min(walls):.1f} | {max(walls):.1f} | {statistics.median(cpus):.1f}")
PY
tar -C /tmp -czf "$OUT/health-run-$TAG.tgz" "health-run-$TAG"
cat "$C/log.txt"; cat "$C/health-idle.txt" "$C/health-load.txt" 2>/dev/null; cat "$C/timings.txt"
