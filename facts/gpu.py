"""GPU and NVIDIA driver state of a host, read in one command.

`GpuState` works on any Linux host: with no GPU, with a GPU and no driver
(only sysfs is read then; lspci is not needed), and with a driver. The
command always exits 0; what is missing shows up as None, [] or False.

Shape of the fact (all keys always present)::

    {
      "gpus": [                        # NVIDIA display/3D controllers, by bus address
        {"bus_id": "0000:00:06.0",     # PCI address (sysfs form); nvidia-smi's when no sysfs
         "pci_id": "10de:2330",        # vendor:device, None when only nvidia-smi saw it
         "subsystem_id": "10de:16c1" | None,
         "pci_class": "0x030200" | None,
         "pci_name": "GH100 [H100 SXM5 80GB]" | None,   # the host's pci.ids
         "subsystem_name": "H100 SXM5 80GB" | None,
         "model": "NVIDIA H100 80GB HBM3",   # nvidia-smi, else pci.ids, else gpuhost's matrix
         "architecture": "Hopper" | None,    # gpuhost.plan.gpus.identify_pci
         "compute_capability": "9.0" | None, # nvidia-smi, else the matrix
         "kernel_driver": "nvidia" | "nouveau" | "vfio-pci" | None,   # bound sysfs driver
         "numa_node": 0 | None,
         "smi": None | {"index": 0, "name": ..., "uuid": "GPU-...", "compute_capability": "9.0",
                        "memory_total_mib": 81559, "mig_mode": "enabled"|"disabled"|None,
                        "persistence_mode": True|False|None, "driver_version": "580.95.05"}}
      ],
      "mig_devices": [{"gpu_index": 0, "name": "MIG 1g.10gb", "uuid": "MIG-..."}],
      "nvswitches": [{"bus_id", "pci_id", "pci_name", "kernel_driver"}],  # class 0x0680
      "needs_fabric_manager": bool,    # NVSwitch present
      "fabric_manager": {"installed": bool, "state": "active"|"inactive"|...|None},
      "driver": {
        "loaded": bool,                # nvidia kernel module present
        "version": "580.95.05" | None, # what is running: kernel module, else nvidia-smi's
        "kernel_module_version": ... | None,   # /proc/driver/nvidia/version, /sys/module
        "flavour": "open" | "proprietary" | None,
        "library_version": ... | None, # user-space NVML (libnvidia-ml.so.X.Y[.Z])
        "smi_driver_version": ... | None,
        "mismatch": bool,              # kernel module and NVML library disagree
        "nvidia_smi": "/usr/bin/nvidia-smi" | None,
        "smi_error": "Failed to initialize NVML: ..." | None,
        "modules": ["nvidia", "nvidia_uvm", ...],
      },
      "nouveau": {"loaded": bool},   # gpuhost's own blacklist file is compared by the driver stage
      "processes": [{"pid": 1234, "process_name": "python", "gpu_uuid": "GPU-...",
                     "used_memory_mib": 1024}],
      "pci_ids_file": "/usr/share/misc/pci.ids" | None,
      "warnings": ["..."],             # things the reader should know (unknown GPU, ...)
    }
"""

from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase

from facts.readings import Part, command
from gpuhost.health.probe import SMI_FIELDS as HEALTH_SMI_FIELDS
from facts.sections import Sections, csv_row, int_or_none, key_values, not_available, part_sections

NVIDIA_VENDOR = "10de"
GPU_CLASSES = ("0x0300", "0x0302")  # VGA compatible, 3D controller
NVSWITCH_CLASS = "0x0680"  # "bridge: other" -- NVSwitch
# ONE --query-gpu for every GPU field (measured on an H100, docs/evidence/health-h100/timing:
# 37 ms, a third of `nvidia-smi -q -x`'s 116 ms). MIG mode comes first: a line that starts with
# "Enabled," says a GPU has MIG devices, whose UUIDs and profiles only `nvidia-smi -L` gives. To
# read another field, append it here and read it in _smi_row.
SMI_FIELDS = (
    "mig.mode.current,index,name,uuid,pci.bus_id,compute_cap,memory.total,"
    "persistence_mode,driver_version"
)
# Drivers older than ~510 do not know compute_cap: the script retries without it (and without the
# health fields, so that a driver refusing one of those still gives the GPU's identity).
SMI_FIELDS_OLD = SMI_FIELDS.replace("compute_cap,", "")
# The health part's fields (gpuhost/health/probe.py) ride on the same call; the output is printed
# into the health part's block too (SMI_FINISH), with `nvidia-smi nvlink -s` run beside it.
SMI_FIELDS += "," + ",".join(f for f in HEALTH_SMI_FIELDS.split(",") if f not in SMI_FIELDS.split(","))
APPS_FIELDS = "pid,process_name,gpu_uuid,used_memory"

# nvidia-smi starts first, in the background, with the compute processes alongside (no --query-gpu
# field has them): a GPU host's snapshot takes as long as its nvidia-smi. $bg is the temp dir for
# work in the background (facts/readings.py).
SMI_START = r"""
bg=; on_path nvidia-smi; smi=$w
if [ -z "$smi" ]; then
  for p in /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi /usr/local/bin/nvidia-smi /opt/nvidia/bin/nvidia-smi; do
    [ -x "$p" ] && { smi=$p; break; }
  done
fi
ST=; command -v timeout >/dev/null 2>&1 && ST='timeout 30'
if [ -n "$smi" ] && bg=$(mktemp -d 2>/dev/null); then
  { $ST "$smi" --query-gpu=__SMI_FIELDS__ --format=csv,noheader,nounits > "$bg/smi" 2>&1; echo $? > "$bg/smi_rc"; } &
  $ST "$smi" --query-compute-apps=__APPS_FIELDS__ --format=csv,noheader,nounits > "$bg/apps" 2>&1 &
  $ST "$smi" nvlink -s > "$bg/nvlink" 2>&1 &
fi
"""
SMI_FINISH = r"""
echo '@@gpuhost gpu 1'
echo "@@smi_path ${smi:--}"
if [ -n "$smi" ]; then
  q='__SMI_FIELDS__'
  if [ -n "$bg" ]; then wait; out=; while IFS= read -r l || [ -n "$l" ]; do out="$out${out:+$nl}$l"; done < "$bg/smi"; read -r rc < "$bg/smi_rc"
  else out=$($ST "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?; fi
  case "$out" in *'valid field'*|*'Invalid field'*)
    q='__SMI_FIELDS_OLD__'
    out=$($ST "$smi" --query-gpu=$q --format=csv,noheader,nounits 2>&1); rc=$?;;
  esac
  echo "@@smi $q"; printf '%s\n' "$out"; echo "@@smi_rc $rc"
  echo '@@gpuhost health 1'; echo "@@hsmi $q"; printf '%s\n' "$out"; echo "@@hsmi_rc $rc"
  echo '@@nvlink'; [ -n "$bg" ] && print_file "$bg/nvlink"
  echo '@@gpuhost gpu 1'
  if [ "$rc" = 0 ]; then
    case "$nl$out" in *"$nl"Enabled,*) echo '@@smi_list'; $ST "$smi" -L 2>&1;; esac
    echo '@@apps'
    if [ -n "$bg" ]; then print_file "$bg/apps"; else $ST "$smi" --query-compute-apps=__APPS_FIELDS__ --format=csv,noheader,nounits 2>&1; fi
  fi
fi
"""

# POSIX sh (dash on Debian/Ubuntu). Reads only; every step tolerates absence. sysfs and /proc are
# read with the shell's own `read` (no process per file).
SCRIPT = r"""
echo '@@gpuhost gpu 1'
r() { v=-; read -r v 2>/dev/null < "$1"; [ -n "$v" ] || v=-; }
ids=; subs=
echo '@@pci'
for d in /sys/bus/pci/devices/*; do
  r "$d/vendor"; [ "$v" = 0x10de ] || continue
  drv=-; [ -e "$d/driver" ] && drv=$(cd -P "$d/driver" 2>/dev/null && pwd) && drv=${drv##*/}
  r "$d/device"; dev=$v; r "$d/subsystem_vendor"; sv=$v; r "$d/subsystem_device"; sd=$v
  r "$d/class"; cls=$v; r "$d/revision"; rev=$v; r "$d/numa_node"; numa=$v
  echo "bus=${d##*/} device=$dev class=$cls subsystem=$sv:$sd revision=$rev driver=${drv:--} numa=$numa"
  ids="$ids ${dev#0x}"; subs="$subs ${dev#0x}:${sv#0x}:${sd#0x}"
done
if [ -n "$ids" ]; then
  for f in /usr/share/misc/pci.ids /usr/share/hwdata/pci.ids /usr/share/pci.ids /var/lib/pciutils/pci.ids; do
    [ -r "$f" ] || continue
    echo "@@pciids $f"
    awk -v ids="$ids " -v subs="$subs " '
      NR < 40 && /^#.*Version:/ { sub(/^#[ \t]*/, ""); print "version " $0; next }
      /^10de / { v = 1; next }
      /^[0-9a-fC]/ { if (v) exit; next }
      v && /^\t\t/ { if (m && index(subs, " " d ":" $1 ":" $2 " ")) { n = $0; sub(/^\t\t[0-9a-f]+ [0-9a-f]+[ \t]*/, "", n); print "sub " d ":" $1 ":" $2 " " n }; next }
      v && /^\t[0-9a-f]/ { d = $1; m = index(ids, " " d " "); if (m) { n = $0; sub(/^\t[0-9a-f]+[ \t]*/, "", n); print "dev " d " " n }; next }
    ' "$f"
    break
  done
fi
echo '@@proc_driver'; [ -r /proc/driver/nvidia/version ] && print_file /proc/driver/nvidia/version
v=; read -r v 2>/dev/null < /sys/module/nvidia/version; echo "@@sys_module $v"
echo '@@modules'; [ -r /proc/modules ] && while read -r l _; do case "$l" in nvidia*|nouveau*) echo "$l";; esac; done < /proc/modules
[ -d /sys/module/nouveau ] && echo 'sysfs nouveau'
echo '@@nvml'
# NVML's version matters next to a driver (its tools, or its module loaded): only then is the
# linker cache asked, and the libraries' real files come from one readlink (one per library where
# its answer does not line up: a listed path that is gone).
if [ -n "$smi" ] || [ -d /sys/module/nvidia ]; then
  nv=$({ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libnvidia-ml\.so')
  set --; [ -n "$nv" ] && while read -r lib abi arrow path; do set -- "$@" "$path"; done <<NVML
$nv
NVML
  rp=; [ $# -gt 0 ] && rp=$(readlink -f -- "$@" 2>/dev/null)
  c=0; [ -n "$rp" ] && while read -r x; do c=$((c+1)); done <<NVML
$rp
NVML
  [ "$c" = $# ] && rp="$rp
" || rp=
  [ -n "$nv" ] && while read -r lib abi arrow path; do
    if [ -n "$rp" ]; then path=${rp%%"$nl"*}; rp=${rp#*"$nl"}; else path=$(readlink -f "$path" 2>/dev/null || echo "$path"); fi
    echo "ldconfig $abi $path"
  done <<NVML
$nv
NVML
fi
for f in /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.* /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.* /usr/lib64/libnvidia-ml.so.* /usr/lib/libnvidia-ml.so.* /usr/local/nvidia/lib64/libnvidia-ml.so.*; do
  [ -f "$f" ] && [ ! -L "$f" ] && echo "file $f"
done
"""
PART = Part(
    "gpu", ("units",),
    SCRIPT,
    start=SMI_START.replace("__SMI_FIELDS__", SMI_FIELDS).replace("__APPS_FIELDS__", APPS_FIELDS),
    finish=SMI_FINISH.replace("__SMI_FIELDS_OLD__", SMI_FIELDS_OLD).replace("__SMI_FIELDS__", SMI_FIELDS)
    .replace("__APPS_FIELDS__", APPS_FIELDS),
)
COMMAND = command(PART)

MISMATCH_TEXT = "Driver/library version mismatch"
NVML_LIB_RE = re.compile(r"NVML library version:\s*([0-9][0-9.]*[0-9])")
LIB_FILE_RE = re.compile(r"libnvidia-ml\.so\.(\d+\.\d+(?:\.\d+)?)$")
PROC_VERSION_RE = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)")
MIG_RE = re.compile(r"^\s+(MIG\s.+?)\s+Device\s+\d+:\s+\(UUID:\s*(MIG-[^)]+)\)")
GPU_LIST_RE = re.compile(r"^GPU\s+(\d+):")


class GpuState(FactBase):
    """NVIDIA GPUs (PCI, before any driver), driver, flavour, NVML, MIG, NVSwitch, GPU processes."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_gpu_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_gpu_sections(part_sections(output, "gpu"))


def process_gpu_sections(sections: Sections) -> dict[str, Any]:
    """Turn the script's sections into the documented dict (module docstring)."""
    warnings: list[str] = []
    pci_devices = [_pci_device(line) for line in sections.lines("pci")]
    names, subsystem_names, pci_ids_file = _pci_names(sections)
    smi = _smi_rows(sections)
    driver = _driver(sections, smi)

    gpus: list[dict[str, Any]] = []
    nvswitches: list[dict[str, Any]] = []
    unmatched = list(smi["rows"])
    for device in sorted(pci_devices, key=lambda d: d["bus_id"]):
        dev_id = device["device_id"]
        pci_name = names.get(dev_id)
        if device["pci_class"].startswith(NVSWITCH_CLASS):
            nvswitches.append(
                {
                    "bus_id": device["bus_id"],
                    "pci_id": device["pci_id"],
                    "pci_name": pci_name,
                    "kernel_driver": device["kernel_driver"],
                }
            )
            continue
        if not device["pci_class"].startswith(GPU_CLASSES):
            continue  # audio, USB-C controllers of consumer cards
        row = next((r for r in unmatched if r["bus_id"] == device["bus_id"]), None)
        if row is not None:
            unmatched.remove(row)
        gpus.append(
            _gpu(
                device,
                pci_name,
                subsystem_names.get(f"{dev_id}:{device['subsystem']}"),
                row,
                warnings,
            )
        )
    for row in unmatched:  # seen by nvidia-smi but not in sysfs (containers, gVisor)
        gpus.append(_gpu(None, None, None, row, warnings))

    fabric = key_values(sections.header("fabricmanager") or "")
    modules = driver["modules"]
    nouveau_loaded = "nouveau" in modules or "sysfs nouveau" in sections.lines("modules")
    if nouveau_loaded:
        warnings.append("nouveau is loaded: blacklist it and rebuild the initramfs before the NVIDIA driver")
    for card in gpus:
        if card["kernel_driver"] == "vfio-pci":
            warnings.append(f"GPU {card['bus_id']} is bound to vfio-pci (passed through to a VM)")
    return {
        "gpus": gpus,
        "mig_devices": smi["mig_devices"],
        "nvswitches": nvswitches,
        "needs_fabric_manager": bool(nvswitches),
        "fabric_manager": _fabric_manager(fabric),
        "driver": driver,
        "nouveau": {"loaded": nouveau_loaded},
        "processes": smi["processes"],
        "pci_ids_file": pci_ids_file,
        "warnings": warnings + driver.pop("_warnings"),
    }


def _fabric_manager(values: dict[str, str]) -> dict[str, Any]:
    """nv-fabricmanager and its service state (systemd calls unknown units 'inactive' too)."""
    installed = not not_available(values.get("binary"))
    state = values.get("state")
    return {"installed": installed, "state": state if installed and not not_available(state) else None}


def _pci_device(line: str) -> dict[str, Any]:
    values = key_values(line)
    device_id = values.get("device", "-").lower().removeprefix("0x")
    subsystem = values.get("subsystem", "-").lower().replace("0x", "")
    return {
        "bus_id": values.get("bus", "").lower(),
        "device_id": device_id,
        "pci_id": f"{NVIDIA_VENDOR}:{device_id}",
        "subsystem": subsystem,
        "pci_class": values.get("class", "-").lower(),
        "kernel_driver": None if not_available(values.get("driver")) else values["driver"],
        "numa_node": _numa(values.get("numa")),
    }


def _numa(value: str | None) -> int | None:
    number = int_or_none(value)
    return number if number is not None and number >= 0 else None


def _pci_names(sections: Sections) -> tuple[dict[str, str], dict[str, str], str | None]:
    names: dict[str, str] = {}
    subsystem_names: dict[str, str] = {}
    for line in sections.lines("pciids"):
        kind, _, rest = line.partition(" ")
        key, _, name = rest.partition(" ")
        if kind == "dev":
            names[key] = name.strip()
        elif kind == "sub":
            subsystem_names[key] = name.strip()
    return names, subsystem_names, sections.header("pciids")


def _smi_rows(sections: Sections) -> dict[str, Any]:
    """nvidia-smi's GPU rows, MIG devices and compute processes.

    The exit status decides success when the script recorded it; output that
    does not parse as rows of the queried fields counts as an error either way.
    """
    result: dict[str, Any] = {"rows": [], "error": None, "error_text": "", "mig_devices": [],
                              "processes": []}
    header = sections.header("smi")
    if header is not None:
        fields = [field.strip() for field in header.split(",")]
        lines = sections.lines("smi")
        rows, other = [], []
        for line in lines:
            values = csv_row(line)
            if len(values) != len(fields):
                other.append(line)
            elif values != fields:  # skip a CSV header line
                rows.append(_smi_row(dict(zip(fields, values))))
        rc = sections.header("smi_rc")
        if (rc is not None and rc != "0") or (other and not rows):
            result["error"] = (other or lines or [f"nvidia-smi exited {rc}"])[0].strip()
            result["error_text"] = "\n".join(lines)
        else:
            result["rows"] = rows
    gpu_index = None
    for line in sections.lines("smi_list"):
        top = GPU_LIST_RE.match(line)
        if top:
            gpu_index = int(top.group(1))
            continue
        mig = MIG_RE.match(line)
        if mig:
            result["mig_devices"].append(
                {"gpu_index": gpu_index, "name": mig.group(1), "uuid": mig.group(2)}
            )
    for line in sections.lines("apps"):
        values = csv_row(line)
        if len(values) != 4 or not values[0].isdigit():
            continue  # "No running processes found" and the like
        result["processes"].append(
            {
                "pid": int(values[0]),
                "process_name": values[1],
                "gpu_uuid": values[2],
                "used_memory_mib": _mib(values[3]),
            }
        )
    return result


def _smi_row(values: dict[str, str]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = values.get(key)
        return None if not_available(value) else value

    mig = text("mig.mode.current")
    return {
        "index": int_or_none(values.get("index")),
        "name": text("name"),
        "uuid": text("uuid"),
        "bus_id": _bus_id(values.get("pci.bus_id", "")),
        "compute_capability": text("compute_cap"),
        "memory_total_mib": _mib(values.get("memory.total")),
        "mig_mode": mig.lower() if mig else None,
        "persistence_mode": _enabled(values.get("persistence_mode")),
        "driver_version": text("driver_version"),
    }


def _mib(value: str | None) -> int | None:
    """'81559' (nounits) or '81559 MiB' -> 81559."""
    if value is None:
        return None
    return int_or_none(value.strip().removesuffix("MiB").strip())


def _bus_id(value: str) -> str | None:
    """nvidia-smi's 00000000:00:06.0 -> sysfs's 0000:00:06.0."""
    value = value.strip().lower()
    domain, _, rest = value.partition(":")
    if not rest:
        return value or None
    return f"{domain[-4:].rjust(4, '0')}:{rest}"


def _enabled(value: str | None) -> bool | None:
    if not_available(value):
        return None
    return value.strip().lower() == "enabled"  # type: ignore[union-attr]


def _driver(sections: Sections, smi: dict[str, Any]) -> dict[str, Any]:
    warnings: list[str] = []
    proc = sections.text("proc_driver")
    kernel_version = None
    flavour = None
    if proc:
        match = PROC_VERSION_RE.search(proc)
        kernel_version = match.group(1) if match else None
        flavour = "open" if "Open Kernel Module" in proc else "proprietary"
    sys_version = sections.header("sys_module")
    kernel_version = kernel_version or sys_version

    library_version = _library_version(sections.lines("nvml"))
    error_text = smi["error_text"]
    reported = NVML_LIB_RE.search(error_text)
    if reported:
        library_version = library_version or reported.group(1)

    smi_versions = {row["driver_version"] for row in smi["rows"] if row["driver_version"]}
    smi_version = sorted(smi_versions)[0] if smi_versions else None
    mismatch = MISMATCH_TEXT in error_text or _differ(kernel_version, library_version)
    if mismatch:
        warnings.append(
            f"driver/library mismatch: kernel module {kernel_version or '?'}, "
            f"NVML library {library_version or '?'} (reboot or reload the nvidia modules)"
        )
    modules = [line.strip() for line in sections.lines("modules") if not line.startswith("sysfs ")]
    smi_path = sections.header("smi_path")
    if smi_path is None and (kernel_version or "nvidia" in modules):
        warnings.append("nvidia kernel module present but nvidia-smi not found")
    if smi["error"] and not mismatch:
        warnings.append(f"nvidia-smi failed: {smi['error']}")
    return {
        "loaded": bool(proc or sys_version or "nvidia" in modules),
        "version": kernel_version or smi_version,
        "kernel_module_version": kernel_version,
        "flavour": flavour,
        "library_version": library_version,
        "smi_driver_version": smi_version,
        "mismatch": mismatch,
        "nvidia_smi": smi_path,
        "smi_error": smi["error"],
        "modules": modules,
        "_warnings": warnings,
    }


def _library_version(lines: list[str]) -> str | None:
    """The NVML version from the library's real file name: what ldconfig resolves, 64-bit first."""
    versions: list[tuple[bool, bool, str]] = []
    for line in lines:
        match = LIB_FILE_RE.search(line.strip())
        if match:
            wide = any(tag in line for tag in ("x86-64", "AArch64", "lib64", "x86_64", "aarch64"))
            versions.append((not line.startswith("ldconfig"), not wide, match.group(1)))
    return sorted(versions)[0][2] if versions else None


def _differ(kernel: str | None, library: str | None) -> bool:
    """Versions disagree; a library reported as X.Y matches a module X.Y.Z."""
    if not kernel or not library:
        return False
    short, long_ = sorted((kernel, library), key=len)
    return not (long_ == short or long_.startswith(short + "."))


def _gpu(
    device: dict[str, Any] | None,
    pci_name: str | None,
    subsystem_name: str | None,
    row: dict[str, Any] | None,
    warnings: list[str],
) -> dict[str, Any]:
    identified = _identify(device, pci_name, row, warnings)
    smi_part = None
    if row is not None:
        smi_part = {key: value for key, value in row.items() if key != "bus_id"}
    model = (
        (row or {}).get("name")
        or _bracketed(pci_name)
        or (identified.name if identified else None)
        or (f"NVIDIA device {device['pci_id']}" if device else "NVIDIA GPU")
    )
    compute_capability = (row or {}).get("compute_capability") or (
        identified.compute_capability if identified else None
    )
    return {
        "bus_id": device["bus_id"] if device else row["bus_id"],  # type: ignore[index]
        "pci_id": device["pci_id"] if device else None,
        "subsystem_id": _subsystem_id(device),
        "pci_class": device["pci_class"] if device else None,
        "pci_name": pci_name,
        "subsystem_name": subsystem_name,
        "model": model,
        "architecture": identified.architecture if identified else None,
        "compute_capability": compute_capability,
        "kernel_driver": device["kernel_driver"] if device else None,
        "numa_node": device["numa_node"] if device else None,
        "smi": smi_part,
    }


def _subsystem_id(device: dict[str, Any] | None) -> str | None:
    if not device:
        return None
    parts = device["subsystem"].split(":")
    if len(parts) != 2 or "-" in parts:
        return None
    return f"{parts[0]}:{parts[1]}"


def _bracketed(pci_name: str | None) -> str | None:
    """'GH100 [H100 SXM5 80GB]' -> 'H100 SXM5 80GB'; no brackets -> the name."""
    if not pci_name:
        return None
    match = re.search(r"\[(.+)\]", pci_name)
    return match.group(1) if match else pci_name


def _identify(device, pci_name, row, warnings):
    """Architecture and compute capability from gpuhost's matrix; None when unknown."""
    from gpuhost.errors import GpuhostError
    from gpuhost.plan.gpus import identify, identify_detected, identify_pci

    try:
        if device is not None:
            return identify_pci(device["device_id"], pci_name=pci_name)
        if row and row.get("compute_capability"):
            return identify(row["compute_capability"])
        if row and row.get("name"):
            return identify_detected(row["name"])
    except GpuhostError as exc:
        label = device["pci_id"] if device else (row or {}).get("name")
        warnings.append(f"GPU {label} not in gpuhost's matrix: {exc}")
    return None
