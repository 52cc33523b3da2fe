#!/usr/bin/env python3
"""gpuhost-health: is every NVIDIA GPU of this host fit for work? One line, and the exit status.

Runs on the GPU host itself (stdlib only, Python 3.8+, no SSH, no pyinfra), e.g. as Slurm's
HealthCheckProgram. The deploy installs it as /usr/local/sbin/gpuhost-health with its rules beside
it (/usr/local/lib/gpuhost/health-rules.json, rendered from gpuhost/health/data/health.yaml). The
same file is gpuhost's pure health core: its shell reading is the health part of gpuhost's one
snapshot (facts/health.py), and `parse` and `judge` are what `gpuhost inspect`, the verify,
workspace and monitoring stages use (gpuhost/health/verdict.py), so the scheduler and gpuhost agree.

    gpuhost-health [--rules FILE] [--json] [--quiet]

Exit status:
    0  every GPU ok (also: no NVIDIA GPU at all)
    1  degraded: usable, fix soon (one line on stdout: the GPU, the cause, the fix)
    2  failed: take the host out of service (one line: the GPU, the cause, the fix)
    3  the check itself could not run (rules file missing or broken; the line says which)

Readings, in one shell script run once: one `nvidia-smi --query-gpu` for ECC, retired pages, row
remapping, PCIe link and clock event reasons; `nvidia-smi nvlink -s` at the same time; the kernel
log's `NVRM: Xid` lines since boot (dmesg, else journalctl -k -b); the PCIe link of each NVIDIA
device from sysfs (also when nvidia-smi is gone); the fabric manager's state on NVSwitch hosts;
`dcgmi health -c` when DCGM is installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

# nvidia-smi --query-gpu fields: each one is in R535's and R580's --help-query-gpu. Fields a GPU
# lacks (row remapping before Ampere, retired pages after it) read "[N/A]" or "[Not Supported]".
SMI_FIELDS = (
    "index,pci.bus_id,uuid,name,utilization.gpu,ecc.mode.current,"
    "ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total,"
    "retired_pages.sbe,retired_pages.dbe,retired_pages.pending,"
    "remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure,"
    "pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,"
    "clocks_throttle_reasons.active"
)
# Drivers that do not know a field refuse the whole query: the script asks again with these only.
SMI_FIELDS_BASIC = "index,pci.bus_id,uuid,name,utilization.gpu,ecc.errors.uncorrected.volatile.total"
RULES_PATH = "/usr/local/lib/gpuhost/health-rules.json"

# POSIX sh, in pieces: the snapshot (facts/health.py) gets its nvidia-smi fields and NVLink status
# from the gpu part's one nvidia-smi call (facts/gpu.py) and adds READ_REST; the command runs
# READ_SMI + READ_REST itself. Reads only; every step tolerates absence; always exits 0. Variables
# start with h_ (the snapshot's other parts have their own). sysfs is read with the shell's `read`.
READ_SMI = r"""
echo '@@gpuhost health 1'
h_T=; command -v timeout >/dev/null 2>&1 && h_T='timeout 20'
h_smi=$(command -v nvidia-smi 2>/dev/null)
[ -z "$h_smi" ] && for h_p in /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi /opt/nvidia/bin/nvidia-smi; do
  [ -x "$h_p" ] && { h_smi=$h_p; break; }; done
if [ -n "$h_smi" ]; then
  h_t=$(mktemp -d 2>/dev/null) || h_t=
  [ -n "$h_t" ] && { $h_T "$h_smi" nvlink -s > "$h_t/nvlink" 2>&1 & }
  h_q='__FIELDS__'
  h_out=$($h_T "$h_smi" --query-gpu=$h_q --format=csv,noheader,nounits 2>&1); h_rc=$?
  case "$h_out" in *'valid field'*|*'Invalid field'*)
    h_q='__BASIC__'; h_out=$($h_T "$h_smi" --query-gpu=$h_q --format=csv,noheader,nounits 2>&1); h_rc=$?;;
  esac
  echo "@@hsmi $h_q"; printf '%s\n' "$h_out"; echo "@@hsmi_rc $h_rc"
  wait
  echo '@@nvlink'; [ -n "$h_t" ] && { cat "$h_t/nvlink"; rm -rf "$h_t"; }
fi
"""
READ_REST = r"""
echo '@@gpuhost health 1'
echo '@@xid'
# Xid lines are the NVIDIA kernel module's: the kernel log (a third of this part's cost) is read
# only where that module is loaded or nvidia-smi was found (the snapshot's gpu part sets $smi,
# this command's READ_SMI $h_smi: the same search).
if [ -d /sys/module/nvidia ] || [ -n "${smi:-}${h_smi:-}" ]; then
  { dmesg --time-format iso 2>/dev/null || journalctl -k -b -o short-iso --no-pager 2>/dev/null; } | grep 'NVRM: Xid' | tail -n 500
fi
echo '@@link'
h_nvs=0
for h_d in /sys/bus/pci/devices/*; do
  read -r h_v 2>/dev/null < "$h_d/vendor" || continue; [ "$h_v" = 0x10de ] || continue
  h_c=; read -r h_c 2>/dev/null < "$h_d/class"
  case "$h_c" in 0x0680*) h_nvs=$((h_nvs+1)); continue;; 0x0300*|0x0302*) ;; *) continue;; esac
  h_s=-; h_w=-; h_ms=-; h_mw=-
  read -r h_s _ 2>/dev/null < "$h_d/current_link_speed"; read -r h_w 2>/dev/null < "$h_d/current_link_width"
  read -r h_ms _ 2>/dev/null < "$h_d/max_link_speed"; read -r h_mw 2>/dev/null < "$h_d/max_link_width"
  echo "bus=${h_d##*/} speed=$h_s width=$h_w max_speed=$h_ms max_width=$h_mw"
done
h_fm=-; [ "$h_nvs" -gt 0 ] && command -v systemctl >/dev/null 2>&1 && h_fm=$(systemctl is-active nvidia-fabricmanager 2>/dev/null)
echo "@@fabric nvswitches=$h_nvs state=${h_fm:--}"
if command -v dcgmi >/dev/null 2>&1; then echo '@@dcgmi'; timeout 20 dcgmi health -c 2>&1 | head -n 60; fi
true
"""
COMMAND = (READ_SMI + READ_REST).strip().replace("__FIELDS__", SMI_FIELDS).replace("__BASIC__", SMI_FIELDS_BASIC)

NA = ("", "-", "[N/A]", "N/A", "[Not Supported]", "Not Supported", "<no value>", "[Unknown Error]")
XID_RE = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})[^)]*\): (\d+),\s*(.*)")
TIME_RES = (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"), re.compile(r"[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d"),
            re.compile(r"\[ *\d+\.\d+\]"))
LOST_RE = re.compile(r"Unable to determine the device handle for GPU ?([0-9a-fA-F:.]+): (.+)")
NVLINK_GPU_RE = re.compile(r"^GPU (\d+): .*")
NVLINK_LINK_RE = re.compile(r"^\s*Link (\d+): (.+)$")
SPEED_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}  # GT/s per lane -> PCIe generation
SEVERITY = {"ok": 0, "degraded": 1, "failed": 2}


# --- Parsing (pure): the script's output -> readings ---------------------------------------------


def sections(lines):
    """{name: (header, [lines])} of the `@@name header` blocks (first of each name)."""
    found, current = {}, None
    for line in lines:
        if line.startswith("@@") and len(line) > 2 and not line[2].isspace():
            name, _, header = line[2:].partition(" ")
            current = None if name in found else name
            if current:
                found[name] = (header.strip(), [])
        elif current:
            found[current][1].append(line)
    return found


def bus_id(value):
    """nvidia-smi's 00000000:2B:00.0 or sysfs's 0000:2b:00.0 -> 0000:2b:00.0."""
    value = (value or "").strip().lower()
    domain, _, rest = value.partition(":")
    return f"{domain[-4:].rjust(4, '0')}:{rest}" if rest else value


def _number(text):
    text = (text or "").strip()
    if text in NA:
        return None
    text = text.split()[0]  # "100 %", "698.76 W": a query made without nounits
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(float(text))
    except ValueError:
        return None


def _flag(text):
    text = (text or "").strip().lower()
    return {"yes": True, "no": False}.get(text)


def _smi_rows(header, lines):
    fields = [f.strip() for f in header.split(",")] if header else []
    at = fields.index("index") if "index" in fields else 0
    rows, other = [], []
    for line in lines:
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        (rows if len(cells) == len(fields) and _number(cells[at]) is not None else other).append(cells)
    return [dict(zip(fields, cells)) for cells in rows], [", ".join(c) for c in other]


# Another name nvidia-smi accepts for the same field (its --help-query-gpu gives both).
ALIASES = {"clocks_throttle_reasons.active": "clocks_event_reasons.active",
           "pcie.link.gen.current": "pcie.link.gen.gpucurrent",
           "retired_pages.sbe": "retired_pages.single_bit_ecc.count",
           "retired_pages.dbe": "retired_pages.double_bit.count"}


def _gpu_from_row(row):
    row = dict(row)
    for name, alias in ALIASES.items():
        if name not in row and alias in row:
            row[name] = row[alias]
    return {
        "index": _number(row.get("index")),
        "bus_id": bus_id(row.get("pci.bus_id")),
        "uuid": None if row.get("uuid", "") in NA else row.get("uuid"),
        "name": None if row.get("name", "") in NA else row.get("name"),
        "lost": False,
        "error": None,
        "utilization": _number(row.get("utilization.gpu")),
        "ecc_mode": None if row.get("ecc.mode.current", "") in NA else row.get("ecc.mode.current"),
        "ecc": {"volatile_uncorrected": _number(row.get("ecc.errors.uncorrected.volatile.total")),
                "aggregate_uncorrected": _number(row.get("ecc.errors.uncorrected.aggregate.total"))},
        "retired_pages": {"sbe": _number(row.get("retired_pages.sbe")), "dbe": _number(row.get("retired_pages.dbe")),
                          "pending": _flag(row.get("retired_pages.pending"))},
        "remapped_rows": {"correctable": _number(row.get("remapped_rows.correctable")),
                          "uncorrectable": _number(row.get("remapped_rows.uncorrectable")),
                          "pending": _flag(row.get("remapped_rows.pending")),
                          "failure": _flag(row.get("remapped_rows.failure"))},
        "pcie": {"gen": _number(row.get("pcie.link.gen.current")), "max_gen": _number(row.get("pcie.link.gen.max")),
                 "width": _number(row.get("pcie.link.width.current")),
                 "max_width": _number(row.get("pcie.link.width.max")), "source": "nvidia-smi"},
        "clocks_event_reasons": _number(row.get("clocks_throttle_reasons.active")),
        "nvlink": {"links": 0, "down": []},
        "xid": {},
    }


def _blank_gpu(bus, **extra):
    gpu = _gpu_from_row({"pci.bus_id": bus})
    gpu["pcie"]["source"] = None
    gpu.update(extra)
    return gpu


def _generation(speed):
    """sysfs's "32.0 GT/s PCIe" (the script keeps "32.0"; older kernels write "8 GT/s") -> 5."""
    match = re.match(r"([0-9.]+)", speed or "")
    return SPEED_GEN.get(float(match.group(1))) if match else None


def _link(line):
    values = dict(re.findall(r"(\w+)=(\S*)", line))
    gen, max_gen = _generation(values.get("speed")), _generation(values.get("max_speed"))
    return bus_id(values.get("bus")), {"gen": gen, "max_gen": max_gen, "width": _number(values.get("width")),
                                       "max_width": _number(values.get("max_width")), "source": "sysfs"}


def _xid_time(prefix):
    for pattern in TIME_RES:
        found = pattern.search(prefix)
        if found:
            return found.group(0)
    return None


def parse_xids(lines):
    """{bus prefix '0000:2b:00': {xid: {"count", "last", "text"}}} from kernel log lines."""
    found = {}
    for line in lines:
        match = XID_RE.search(line)
        if not match:
            continue
        bus = bus_id(match.group(1))
        entry = found.setdefault(bus, {}).setdefault(int(match.group(2)), {"count": 0, "last": None, "text": ""})
        entry["count"] += 1
        entry["last"] = _xid_time(line[: match.start()]) or entry["last"]
        entry["text"] = match.group(3).strip()[:200]
    return found


def parse_nvlink(lines):
    """{gpu index: {"links": n, "down": [link numbers]}} from `nvidia-smi nvlink -s`."""
    found, index = {}, None
    for line in lines:
        top = NVLINK_GPU_RE.match(line)
        if top:
            index = int(top.group(1))
            found[index] = {"links": 0, "down": []}
            continue
        link = NVLINK_LINK_RE.match(line)
        if link and index is not None:
            found[index]["links"] += 1
            if "inactive" in link.group(2).lower() or "down" in link.group(2).lower():
                found[index]["down"].append(int(link.group(1)))
    return found


def parse_dcgmi(lines):
    """`dcgmi health -c`: {"overall": "Healthy"|"Warning"|"Failure"|None, "lines": [...]} or None."""
    if not lines:
        return None
    overall = None
    for line in lines:
        match = re.search(r"Overall Health\s*\|?\s*(\w+)", line)
        if match:
            overall = match.group(1)
            break
    return {"overall": overall, "lines": [l.strip(" |") for l in lines if l.strip(" |+-=")][:20]}


def parse(output_lines):
    """COMMAND's output (or the snapshot's health block) -> the health readings (the shape documented in facts/health.py)."""
    parts = sections(output_lines)
    header, smi_lines = parts.get("hsmi", ("", []))
    rows, other = _smi_rows(header, smi_lines)
    rc = (parts.get("hsmi_rc") or ("",))[0]
    gpus = [_gpu_from_row(row) for row in rows]
    smi_error = None
    for line in other:
        lost = LOST_RE.search(line)
        if lost:
            gpus.append(_blank_gpu(lost.group(1).rstrip(":"), lost=True, error=lost.group(2).strip()))
        elif smi_error is None:
            smi_error = line.strip()
    if rc not in ("", "0") and not rows and smi_error is None and not any(g["lost"] for g in gpus):
        smi_error = f"nvidia-smi exited {rc}"
    smi_ran = "hsmi" in parts
    by_bus = {g["bus_id"]: g for g in gpus}
    for line in parts.get("link", ("", []))[1]:
        if not line.strip():
            continue
        bus, link = _link(line)
        gpu = by_bus.get(bus)
        if gpu is None:  # in sysfs, but nvidia-smi did not list it: lost when nvidia-smi answered for others
            gpu = _blank_gpu(bus, lost=bool(smi_ran and rows and not smi_error),
                             error="not listed by nvidia-smi" if smi_ran and rows else None)
            gpus.append(gpu)
            by_bus[bus] = gpu
        if gpu["pcie"]["width"] is None or gpu["pcie"]["max_width"] is None:
            gpu["pcie"] = link
    for index, links in parse_nvlink(parts.get("nvlink", ("", []))[1]).items():
        for gpu in gpus:
            if gpu["index"] == index:
                gpu["nvlink"] = links
    for bus, xids in parse_xids(parts.get("xid", ("", []))[1]).items():
        gpu = next((g for g in gpus if g["bus_id"].startswith(bus)), None)
        if gpu is None:
            gpu = _blank_gpu(bus + ".0", error="in the kernel log only")
            gpus.append(gpu)
        gpu["xid"] = {str(k): v for k, v in sorted(xids.items())}
    fabric = dict(re.findall(r"(\w+)=(\S*)", (parts.get("fabric") or ("",))[0]))
    nvswitches = _number(fabric.get("nvswitches")) or 0
    state = fabric.get("state")
    return {
        "gpus": sorted(gpus, key=lambda g: (g["index"] is None, g["index"] or 0, g["bus_id"])),
        "smi": {"ran": smi_ran, "error": smi_error},
        "fabric_manager": {"nvswitches": nvswitches, "state": None if state in (None, "-") else state},
        "dcgm": parse_dcgmi(parts.get("dcgmi", ("", []))[1]) if "dcgmi" in parts else None,
    }


# --- Judging (pure): readings + rules -> verdicts ------------------------------------------------


def _finding(rules, rule_id, cause, **fmt):
    rule = rules["counters"][rule_id]
    return {"verdict": rule["verdict"], "rule": rule_id, "cause": cause, "fix": rules["fixes"][rule["fix"]].format(**fmt)}


def xid_finding(rules, number, entry, gpu_label):
    """The verdict of one Xid seen on a GPU (NVIDIA's resolution bucket, via the rules)."""
    known = rules["xids"].get(str(number))
    bucket = known["bucket"] if known else "UNKNOWN"
    if known and known.get("recovery_action"):  # Xid 154: the driver names the action in its text
        named = (entry.get("text") or "").lower().rpartition(" to ")[2]  # "changed from A to B": B
        for text, action_bucket in rules["recovery_actions"].items():
            if text.lower() in named:
                bucket = action_bucket
                break
    action = rules["buckets"][bucket]
    name = known["name"] if known else "not in gpuhost's table"
    when = f", last {entry['last']}" if entry.get("last") else ""
    cause = f"Xid {number} ({name}) x{entry['count']}{when}"
    return {"verdict": action["verdict"], "rule": f"xid-{number}", "cause": cause,
            "fix": rules["fixes"][action["fix"]].format(gpu=gpu_label)}


def gpu_label(gpu):
    index = gpu.get("index")
    return f"GPU {index} ({gpu['bus_id']})" if index is not None else f"GPU {gpu['bus_id']}"


def judge_gpu(gpu, rules):
    """{"verdict", "cause", "fix", "findings": [...]} for one GPU's readings; the worst finding leads."""
    label = gpu_label(gpu)
    findings = []
    if gpu.get("lost"):
        findings.append(_finding(rules, "gpu_lost", f"nvidia-smi cannot reach it ({gpu.get('error')})", gpu=gpu["bus_id"]))
    for number, entry in (gpu.get("xid") or {}).items():
        findings.append(xid_finding(rules, int(number), entry, gpu["bus_id"]))
    ecc, rows, pages = gpu.get("ecc") or {}, gpu.get("remapped_rows") or {}, gpu.get("retired_pages") or {}
    if (ecc.get("volatile_uncorrected") or 0) > 0:
        findings.append(_finding(rules, "ecc_volatile_uncorrected",
                                 f"{ecc['volatile_uncorrected']} uncorrected ECC error(s) since the driver loaded",
                                 gpu=gpu["bus_id"]))
    if rows.get("failure"):
        findings.append(_finding(rules, "row_remap_failure", "row remapping failed (no spare rows left)", gpu=gpu["bus_id"]))
    if rows.get("pending"):
        findings.append(_finding(rules, "row_remap_pending",
                                 f"row remapping pending a GPU reset ({rows.get('uncorrectable')} uncorrectable, "
                                 f"{rows.get('correctable')} correctable rows remapped)", gpu=gpu["bus_id"]))
    if pages.get("pending"):
        findings.append(_finding(rules, "retired_pages_pending", "ECC page retirement pending", gpu=gpu["bus_id"]))
    pcie = gpu.get("pcie") or {}
    if pcie.get("width") and pcie.get("max_width") and pcie["width"] < pcie["max_width"]:
        findings.append(_finding(rules, "pcie_width_below_max",
                                 f"PCIe link trained at x{pcie['width']} of x{pcie['max_width']}", gpu=gpu["bus_id"]))
    busy = (gpu.get("utilization") or 0) >= rules["busy_utilization_percent"]
    if busy and pcie.get("gen") and pcie.get("max_gen") and pcie["gen"] < pcie["max_gen"]:
        findings.append(_finding(rules, "pcie_gen_below_max",
                                 f"PCIe link at Gen{pcie['gen']} of Gen{pcie['max_gen']} while busy", gpu=gpu["bus_id"]))
    reasons = gpu.get("clocks_event_reasons") or 0
    slow = [name for bit, name in rules["slowdown_reasons"].items() if reasons & int(bit, 16)]
    if slow:
        findings.append(_finding(rules, "clocks_slowdown", f"clocks slowed down: {', '.join(slow)}", gpu=gpu["bus_id"]))
    down = (gpu.get("nvlink") or {}).get("down") or []
    if down:
        findings.append(_finding(rules, "nvlink_down", f"NVLink link(s) {', '.join(map(str, down))} inactive",
                                 gpu=gpu["bus_id"]))
    findings.sort(key=lambda f: -SEVERITY[f["verdict"]])
    worst = [f for f in findings if f["verdict"] != "ok"]
    if not worst:
        return {"gpu": label, "bus_id": gpu["bus_id"], "uuid": gpu.get("uuid"), "index": gpu.get("index"),
                "verdict": "ok", "cause": "", "fix": "", "findings": findings}
    lead = worst[0]
    more = f" (+{len(worst) - 1} more)" if len(worst) > 1 else ""
    return {"gpu": label, "bus_id": gpu["bus_id"], "uuid": gpu.get("uuid"), "index": gpu.get("index"),
            "verdict": lead["verdict"], "cause": lead["cause"] + more, "fix": lead["fix"], "findings": findings}


def judge(readings, rules):
    """The host's verdict: {"verdict", "cause" (one line: the GPU and the cause), "fix", "gpus": [...]}."""
    gpus = [judge_gpu(gpu, rules) for gpu in readings.get("gpus") or []]
    host = []
    fabric = readings.get("fabric_manager") or {}
    if fabric.get("nvswitches") and fabric.get("state") != "active":
        host.append(_finding(rules, "fabric_manager_down",
                             f"{fabric['nvswitches']} NVSwitch(es) and nvidia-fabricmanager is "
                             f"{fabric.get('state') or 'not running'}", gpu="all"))
    dcgm = readings.get("dcgm") or {}
    if dcgm.get("overall") in rules["dcgm_overall"]:
        rule_id = rules["dcgm_overall"][dcgm["overall"]]
        detail = next((l for l in dcgm.get("lines", []) if "Overall" not in l and dcgm["overall"] in l), "")
        host.append(_finding(rules, rule_id, f"dcgmi health: {dcgm['overall']} {detail}".strip(), gpu="all"))
    smi = readings.get("smi") or {}
    if smi.get("error") and gpus:  # GPUs on the bus that nvidia-smi could not read ("No devices were found" on a
        # host without GPUs is no fault; a stand-in answering other fields neither)
        host.append(_finding(rules, "smi_failed", f"nvidia-smi failed: {smi['error']}", gpu="all"))
    candidates = [(SEVERITY[g["verdict"]], g["gpu"] + ": " + g["cause"], g["fix"]) for g in gpus if g["verdict"] != "ok"]
    candidates += [(SEVERITY[f["verdict"]], "host: " + f["cause"], f["fix"]) for f in host if f["verdict"] != "ok"]
    if not candidates:
        return {"verdict": "ok", "cause": "", "fix": "", "gpus": gpus, "host_findings": host}
    candidates.sort(key=lambda c: -c[0])
    severity, cause, fix = candidates[0]
    others = len(candidates) - 1
    verdict = next(v for v, s in SEVERITY.items() if s == severity)
    return {"verdict": verdict, "cause": cause + (f" (+{others} more)" if others else ""), "fix": fix,
            "gpus": gpus, "host_findings": host}


def line(verdict):
    """The one line a scheduler shows: verdict, GPU and cause, fix."""
    if verdict["verdict"] == "ok":
        return f"ok: {len(verdict['gpus'])} GPU(s) healthy"
    return f"{verdict['verdict']}: {verdict['cause']}; fix: {verdict['fix']}"


# --- The command ---------------------------------------------------------------------------------


def read_host():
    proc = subprocess.run(["sh", "-c", COMMAND], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          universal_newlines=True, timeout=60)
    return proc.stdout.splitlines()


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    rules_path = os.environ.get("GPUHOST_HEALTH_RULES", RULES_PATH)
    as_json = "--json" in args
    quiet = "--quiet" in args
    if "--rules" in args:
        position = args.index("--rules")
        if position + 1 >= len(args):
            print("gpuhost-health: --rules needs a file", file=sys.stderr)
            return 3
        rules_path = args[position + 1]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    try:
        with open(rules_path) as handle:
            rules = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"unknown: gpuhost-health cannot read its rules {rules_path}: {exc}; fix: rerun gpuhost's deploy")
        return 3
    try:
        readings = parse(read_host())
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"unknown: gpuhost-health could not read the host: {exc}; fix: check sh and nvidia-smi")
        return 3
    try:
        verdict = judge(readings, rules)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # rules of another shape: never exit 1
        print(f"unknown: gpuhost-health's rules {rules_path} do not fit it ({type(exc).__name__}: {exc}); "
              "fix: rerun gpuhost's deploy")
        return 3
    if as_json:
        print(json.dumps({"readings": readings, **verdict}, indent=2))
    elif not (quiet and verdict["verdict"] == "ok"):
        print(line(verdict))
    return SEVERITY[verdict["verdict"]]


if __name__ == "__main__":
    sys.exit(main())
