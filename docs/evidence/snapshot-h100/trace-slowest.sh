#!/bin/sh
# The snapshot's slowest commands on a GPU host: the snapshot traced by bash (PS4 with
# $EPOCHREALTIME, no fork per line), each traced line charged the time until the next one, summed
# over 10 runs (bash takes PS4 from the script, not the environment, as root); the 25 costliest lines. In the repository root on the GPU machine:
#   PYTHONPATH=/tmp/site:. sh docs/evidence/snapshot-h100/trace-slowest.sh > trace.txt
set -u
S=$(mktemp); T=$(mktemp)
python3 -c "import facts.snapshot as m; print(m.COMMAND)" > "$S"
for i in 1 2 3 4 5 6 7 8 9 10; do
  bash -c 'PS4="+ \$EPOCHREALTIME "; set -x; . "$1"' sh "$S" 2>&1 >/dev/null | grep '^+* [0-9]*\.[0-9]* ' >> "$T"
  echo '+ END' >> "$T"
done
awk '{ lvl = $1; t = $2; $1 = ""; $2 = ""; line = substr($0, 3, 90) }
     prev != "" && t != "" { cost[prev] += (t - pt) * 1000 }
     $1 == "" && $0 == "" { }
     /^\+ END/ { prev = ""; next }
     { prev = line; pt = t }
     END { for (l in cost) printf "%8.1f ms  %s\n", cost[l] / 10, l }' "$T" | sort -rn | head -25
rm -f "$S" "$T"
