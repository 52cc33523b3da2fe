#!/bin/sh
# gpuhost first boot: written by `gpuhost cloud-init render`, run once by cloud-init (runcmd).
#
# 1. a venv with this host's python3 (python3-venv from apt when missing),
# 2. the pinned gpuhost from $ETC/requirements.txt (pip options and the package spec),
# 3. the deploy against this host: pyinfra $ETC/inventory.py (@local) <installed deploys>/gpu_host.py,
# 4. $MARKER: JSON with status, the failed stage, exit code, the deploy's report and verify.json.
# Everything goes to $LOG. Running it again by hand (as root) repeats the run and rewrites the marker.
set -u
ETC=${GPUHOST_ETC:-/etc/gpuhost}
VENV=${GPUHOST_VENV:-/opt/gpuhost/venv}
STATE=${GPUHOST_STATE:-/var/lib/gpuhost}
LOG=${GPUHOST_LOG:-/var/log/gpuhost-cloud-init.log}
MARKER=$STATE/cloud-init.done
APT_LOCK_TIMEOUT=300
DEPLOY=gpu_host
. "$ETC/first-boot.env"

mkdir -p "$STATE" "$(dirname "$LOG")" || exit 1
exec 3>&1 >>"$LOG" 2>&1  # fd 3: cloud-init's output (/var/log/cloud-init-output.log) for the last line
rm -f "$MARKER"
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) gpuhost first boot: $*"; }

# finish STATUS FAILED_STAGE EXIT_CODE: write the marker (atomically) and exit with EXIT_CODE.
finish() {
    version=$("$VENV/bin/python" -I -c 'import importlib.metadata as m; print(m.version("gpuhost"))' 2>/dev/null)
    python3 - "$MARKER" "$STATE" "$LOG" "$STARTED" "$1" "$2" "$3" "$version" <<'PY'
import json, os, sys, time
marker, state, log, started, status, stage, code, version = sys.argv[1:]

def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

report_path = os.path.join(state, "report.json")
report = read_json(report_path)
result = {
    "status": status,                        # ok | failed
    "failed_stage": None if stage == "-" else stage,  # venv | install | deploy
    "exit_code": int(code),
    "host_status": (report or {}).get("status"),      # the deploy's verdict: planned | skipped | failed
    "reason": (report or {}).get("reason"),
    "verify": read_json(os.path.join(state, "verify.json")),
    "report": report_path if report is not None else None,
    "reboot_required": os.path.exists("/var/run/reboot-required"),
    "gpuhost_version": version or None,
    "log": log,
    "started_at": started,
    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
tmp = marker + ".tmp"
with open(tmp, "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)
    f.write("\n")
os.replace(tmp, marker)
PY
    line="$1 (failed stage: $2, exit code $3); marker $MARKER, log $LOG"
    say "$line"
    say "$line" >&3
    exit "$3"
}

say "start: gpuhost from $ETC/requirements.txt into $VENV"

# 1. The venv. Debian and Ubuntu ship venv's ensurepip in python3-venv.
if [ ! -x "$VENV/bin/pip" ]; then
    if ! python3 -m venv --clear "$VENV"; then
        command -v apt-get >/dev/null || finish failed venv 1
        say "installing python3-venv (apt/dpkg lock wait up to ${APT_LOCK_TIMEOUT}s)"
        apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" "$@"; }
        apt_get install python3-venv || { apt_get update && apt_get install python3-venv; } || finish failed venv $?
        python3 -m venv --clear "$VENV" || finish failed venv $?
    fi
fi

# 2. The pinned toolkit (a wheel URL is checked against its sha256 before anything is installed).
"$VENV/bin/pip" install --disable-pip-version-check --no-input --progress-bar off \
    -r "$ETC/requirements.txt" || finish failed install $?

# 3. The deploy, from the installed package, against this host.
deploy_file=$("$VENV/bin/python" -I -c \
    'import os, sys, deploys; print(os.path.join(list(deploys.__path__)[0], sys.argv[1] + ".py"))' \
    "$DEPLOY") || finish failed install $?
say "pyinfra $ETC/inventory.py $deploy_file"
cd / && "$VENV/bin/pyinfra" -y "$ETC/inventory.py" "$deploy_file"
code=$?
[ "$code" -eq 0 ] && finish ok - 0
finish failed deploy "$code"
