"""The README's first command (`./dev demo`): two lab hosts, the gpu_host deploy, twice.

Shows the real entry point end to end (`pyinfra <inventory> deploys/gpu_host.py -y` over SSH):
`gpu-01` is planned for an H100 and goes through every stage with the lab's stand-ins
(gpuhost/lab/stand_ins.py: the driver and the container toolkit from signed local repositories
of TEST FIXTURE packages, Docker from Debian, the nvidia runtime merged into daemon.json, the
plan's image pulled from the lab registry); `cpu-01` has no GPU and is skipped. Then the
report, and a second run that changes nothing; then the lab is removed. Exit status 0 only when
the first run succeeds and the second changes nothing.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import docker, ensure_engine
from gpuhost.lab.image import ensure_host_image
from gpuhost.lab.results import summary_rows
from gpuhost.lab.stand_ins import StandIns
from gpuhost.lab.state import LABEL

DEPLOY = "deploys/gpu_host.py"
REPORT = "/var/lib/gpuhost/report.json"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def timed(label: str, func):
    started = time.monotonic()
    value = func()
    print(f"    {label} ({time.monotonic() - started:.1f}s)", flush=True)
    return value


def runs(lab) -> bool:
    step(f"First run: pyinfra <lab inventory> {DEPLOY} -y")
    first = timed("first run done", lambda: lab.pyinfra(DEPLOY, "-y", echo=True))
    if first.returncode != 0:
        print("demo: the first run failed (see above)", file=sys.stderr)
        return False

    step(f"gpu-01's report ({REPORT}, read over SSH)")
    report = lab.host("gpu-01").ssh(f"cat {REPORT}")
    if report.returncode != 0:
        print(f"demo: no report on the host: {report.stderr.strip()}", file=sys.stderr)
        return False
    print("    " + json.dumps(json.loads(report.stdout), indent=2).replace("\n", "\n    "))

    step("Second run: the same deploy again should change nothing")
    second = timed("second run done", lambda: lab.pyinfra(DEPLOY, "-y"))
    rows = summary_rows(second.stdout)
    print(second.stdout[second.stdout.rfind("\nHOST ") + 1:].rstrip())
    if second.returncode != 0 or len(rows) != 2 or any(r["CHANGES"] != "0" for r in rows.values()):
        print(second.stdout[-3000:])
        print("demo: the second run was not clean (see above)", file=sys.stderr)
        return False
    if not rows["gpu-01"]["DRIVER"].endswith("in place"):
        print(f"demo: gpu-01's driver should show as in place, not {rows['gpu-01']['DRIVER']!r}", file=sys.stderr)
        return False
    print("    nothing changed: the deploy is idempotent (one command per host: the snapshot)")
    return True


def main() -> int:
    step("Docker engine")
    engine = timed("engine ready", ensure_engine)
    print(f"    {engine}: see the lab with DOCKER_HOST={engine} docker ps")
    step("Test-host image (Debian 12, systemd + sshd, built with debootstrap; cached)")
    image = timed("image ready", ensure_host_image)
    print(f"    {image}")

    step("Starting two lab hosts: gpu-01 (planned for an H100, with the lab's stand-ins), cpu-01")
    with tempfile.TemporaryDirectory() as tmp:
        stand_ins = StandIns.build(Path(tmp))
        with Lab([HostSpec("gpu-01", stand_ins.data), HostSpec("cpu-01")]) as lab:
            stand_ins.install(lab, hosts=[lab.host("gpu-01")])
            for host in lab.hosts:
                print(f"    {host.name}: systemd container, sshd on 127.0.0.1:{host.port}")
            print(f"    inventory: {lab.inventory_path}")
            if not runs(lab):
                return 1
            lab_id = lab.id

    step("Cleaned up")
    left = docker("ps", "-a", "--filter", f"label={LABEL}={lab_id}", "-q").stdout.split()
    print(f"    lab {lab_id}: {len(left)} container(s) left (docker ps -a --filter label={LABEL})")
    print("    the engine and its image cache stay for the next run; ./dev clean removes them and puts back "
          "what the lab changed (docs/test-lab.md: What stays on the machine)")
    return 1 if left else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the lab was removed", file=sys.stderr)
        sys.exit(130)
