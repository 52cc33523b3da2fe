"""The README's first command (`./dev demo`): one lab host, the gpu_host deploy, twice.

Shows the real entry point end to end (`pyinfra <inventory> deploys/gpu_host.py -y` over
SSH), the host's report, and that a second run changes nothing; then removes the lab.
Exit status 0 only when the first run succeeds and the second changes nothing.
"""

from __future__ import annotations

import json
import sys
import time

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import docker, ensure_engine
from gpuhost.lab.image import ensure_host_image
from gpuhost.lab.results import changed, summary
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


def main() -> int:
    step("Docker engine")
    timed(f"engine at {ensure_engine()}", lambda: None)
    step("Test-host image (Debian 12, systemd + sshd, built with debootstrap; cached)")
    image = timed("image ready", ensure_host_image)
    print(f"    {image}")

    step("Starting one lab host")
    with Lab([HostSpec("demo-host")]) as lab:
        host = lab.hosts[0]
        print(f"    demo-host: systemd container, sshd on 127.0.0.1:{host.port}, key {host.key_path}")
        print(f"    inventory: {lab.inventory_path}")

        step(f"First run: pyinfra <lab inventory> {DEPLOY} -y")
        first = lab.pyinfra(DEPLOY, "-y", echo=True)
        print(f"\n    first run: exit {first.returncode}; {summary(first.stdout)}")
        if first.returncode != 0:
            print("demo: the first run failed (see above)", file=sys.stderr)
            return 1

        step(f"The host's report ({REPORT}, read over SSH)")
        report = host.ssh(f"cat {REPORT}")
        if report.returncode != 0:
            print(f"demo: no report on the host: {report.stderr.strip()}", file=sys.stderr)
            return 1
        print("    " + json.dumps(json.loads(report.stdout), indent=2).replace("\n", "\n    "))

        step("Second run: the same deploy again should change nothing")
        second = lab.pyinfra(DEPLOY, "-y")
        print(f"    second run: exit {second.returncode}; {summary(second.stdout)}")
        if second.returncode != 0 or changed(second.stdout):
            print(second.stdout[-3000:])
            print("demo: the second run was not clean (see above)", file=sys.stderr)
            return 1
        print("    nothing changed: the deploy is idempotent")
        lab_id = lab.id

    step("Cleaned up")
    left = docker("ps", "-a", "--filter", f"label={LABEL}={lab_id}", "-q").stdout.split()
    print(f"    lab {lab_id}: {len(left)} container(s) left (docker ps -a --filter label={LABEL})")
    return 1 if left else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the lab was removed", file=sys.stderr)
        sys.exit(130)
