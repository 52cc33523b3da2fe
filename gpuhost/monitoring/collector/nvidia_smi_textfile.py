#!/usr/bin/env python3
"""gpuhost's nvidia-smi textfile collector: GPU metrics where DCGM does not run (GeForce cards).

Runs on the GPU host (stdlib only, Python 3.8+), from the gpuhost-gpu-metrics.timer unit: two
nvidia-smi queries, rendered as Prometheus text and written atomically (temp file + rename) into
node_exporter's textfile directory. The metric names and labels are dcgm-exporter's for the same
quantities (DCGM_FI_DEV_*, labels gpu, UUID, pci_bus_id, device, modelName), so one dashboard and
one rule set serve both; `exporter="gpuhost-nvidia-smi"` tells them apart. Fields nvidia-smi
reports as N/A or [Not Supported] are left out, never written as 0.

    nvidia_smi_textfile.py [--output /var/lib/prometheus/node-exporter/gpuhost_gpu.prom]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import secrets
import time

# nvidia-smi --query-gpu field -> (metric, help); order is the query's column order.
GPU_FIELDS = (
    ("index", None, None),
    ("uuid", None, None),
    ("name", None, None),
    ("pci.bus_id", None, None),
    ("temperature.gpu", "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    ("temperature.memory", "DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C)."),
    ("utilization.gpu", "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("utilization.memory", "DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."),
    ("memory.used", "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
    ("memory.free", "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
    ("memory.reserved", "DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB)."),
    ("power.draw", "DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
    ("clocks.sm", "DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."),
    ("clocks.mem", "DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."),
    ("clocks_event_reasons.active", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
     "Bitmask of active clock event (throttle) reasons; 0x1 alone is GPU idle."),
    ("ecc.errors.uncorrected.volatile.total", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
     "Total number of double-bit (uncorrected) volatile ECC errors."),
)
# nvidia-smi --query-remapped-rows field -> (metric, help).
REMAP_FIELDS = (
    ("gpu_bus_id", None, None),
    ("remapped_rows.correctable", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
     "Number of remapped rows for correctable errors."),
    ("remapped_rows.uncorrectable", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
     "Number of remapped rows for uncorrectable errors."),
    ("remapped_rows.pending", "gpuhost_gpu_row_remap_pending", "1 when a row remap waits for a GPU reset."),
    ("remapped_rows.failure", "DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed."),
)
DEFAULT_OUTPUT = "/var/lib/prometheus/node-exporter/gpuhost_gpu.prom"


def gpu_query() -> list[str]:
    return ["nvidia-smi", "--query-gpu=" + ",".join(f for f, _, _ in GPU_FIELDS), "--format=csv,noheader,nounits"]


def remap_query() -> list[str]:
    return ["nvidia-smi", "--query-remapped-rows=" + ",".join(f for f, _, _ in REMAP_FIELDS),
            "--format=csv,noheader,nounits"]


def number(text: str):
    """A float from an nvidia-smi cell, or None (N/A, [Not Supported], [N/A], empty)."""
    text = text.strip()
    if text.lower() in ("yes", "no"):
        return 1.0 if text.lower() == "yes" else 0.0
    try:
        return float(int(text, 16)) if text.startswith("0x") else float(text)
    except ValueError:
        return None


def rows(csv_text: str) -> list[list[str]]:
    return [[cell.strip() for cell in row] for row in csv.reader(csv_text.splitlines()) if row]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _bus_id(value: str) -> str:
    """DCGM's form of a PCI bus id (8-digit domain, upper case), e.g. 00000000:1A:00.0."""
    domain, _, rest = value.partition(":")
    return f"{domain[-8:].rjust(8, '0')}:{rest}".upper() if rest else value.upper()


def render(gpu_csv: str, remap_csv: str | None, ok: bool = True) -> str:
    """Prometheus text for every GPU in the two queries' CSV output (noheader, nounits)."""
    series: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    labels_by_bus: dict[str, str] = {}
    gpus = 0
    for row in rows(gpu_csv):
        if len(row) != len(GPU_FIELDS):
            continue
        gpus += 1
        index, uuid, name, bus = row[0], row[1], row[2], _bus_id(row[3])
        labels = (f'gpu="{_label(index)}",UUID="{_label(uuid)}",pci_bus_id="{_label(bus)}",'
                  f'device="nvidia{_label(index)}",modelName="{_label(name)}",exporter="gpuhost-nvidia-smi"')
        labels_by_bus[bus] = labels
        for (_, metric, help_text), cell in zip(GPU_FIELDS, row):
            value = number(cell) if metric else None
            if value is not None:
                helps[metric] = help_text
                series.setdefault(metric, []).append(f"{metric}{{{labels}}} {value:g}")
    for row in rows(remap_csv or ""):
        labels = labels_by_bus.get(_bus_id(row[0])) if len(row) == len(REMAP_FIELDS) else None
        if labels is None:
            continue
        for (_, metric, help_text), cell in zip(REMAP_FIELDS, row):
            value = number(cell) if metric else None
            if value is not None:
                helps[metric] = help_text
                series.setdefault(metric, []).append(f"{metric}{{{labels}}} {value:g}")
    out = []
    for metric, lines in series.items():
        out += [f"# HELP {metric} {helps[metric]}", f"# TYPE {metric} gauge", *lines]
    out += ["# HELP gpuhost_gpu_collector_ok 1 when nvidia-smi answered the last collection.",
            "# TYPE gpuhost_gpu_collector_ok gauge", f"gpuhost_gpu_collector_ok {1 if ok and gpus else 0}",
            "# HELP gpuhost_gpu_collector_timestamp_seconds When the last collection ran.",
            "# TYPE gpuhost_gpu_collector_timestamp_seconds gauge",
            f"gpuhost_gpu_collector_timestamp_seconds {time.time():.0f}"]
    return "\n".join(out) + "\n"


def _run(command: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"gpuhost-gpu-metrics: {' '.join(command[:2])}: {exc}", file=sys.stderr)
        return False, ""
    if proc.returncode != 0:
        print(f"gpuhost-gpu-metrics: {' '.join(command[:2])} exited {proc.returncode}: "
              f"{proc.stdout.strip() or proc.stderr.strip()}", file=sys.stderr)
    return proc.returncode == 0, proc.stdout


def write_atomically(path: str, text: str) -> None:
    """Temp file in the same directory, then rename: node_exporter never reads half a file. The
    directory is reached one component at a time, none followed if it is a link (O_NOFOLLOW): this
    runs as root, and the textfile directory belongs to prometheus, who could swap it for a link."""
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in [p for p in directory.split("/") if p]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        temp = f".gpuhost_gpu.{secrets.token_hex(8)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            os.fchmod(handle.fileno(), 0o644)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="the .prom file to write ('-': stdout)")
    args = parser.parse_args(argv)
    ok, gpu_csv = _run(gpu_query())
    _, remap_csv = _run(remap_query())  # older drivers and pre-Ampere GPUs: no remapped rows
    text = render(gpu_csv if ok else "", remap_csv, ok)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            write_atomically(args.output, text)
        except OSError as exc:  # ELOOP/ENOTDIR: a link on the way, refused
            print(f"gpuhost-gpu-metrics: cannot write {args.output}: {exc.strerror} (a symbolic link in its "
                  "path is refused): make it a plain directory again", file=sys.stderr)
            return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
