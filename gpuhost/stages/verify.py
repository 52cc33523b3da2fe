"""Stage: run the torch check inside the plan's image, classify a failure, write the verdict.

The check (gpuhost/check/torch_check.py, stdlib + torch) is fed on stdin to `python -` in a
container with least privilege: --rm, no network, read-only root, no new privileges, every
capability dropped, --gpus all, a small /tmp tmpfs. Its exit code, JSON and stderr go through
gpuhost.verify_causes.classify (the check engineer's), and the verdict is written to
/var/lib/gpuhost/verify.json. A failed check fails the host with the cause and its fix.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from pathlib import Path

from pyinfra import logger
from pyinfra.api import FunctionCommand, StringCommand, operation

from gpuhost.verify_causes import classify

CHECK_SCRIPT = Path(__file__).resolve().parents[1] / "check" / "torch_check.py"
CHECK_ON_HOST = "/var/lib/gpuhost/torch_check.py"
VERDICT_PATH = "/var/lib/gpuhost/verify.json"
# Prometheus textfile: point node_exporter's --collector.textfile.directory here (or symlink).
METRIC_PATH = "/var/lib/gpuhost/metrics/gpuhost_verify.prom"
LEAST_PRIVILEGE = ("--rm -i --network none --read-only --security-opt no-new-privileges "
                   "--cap-drop ALL --gpus all --tmpfs /tmp:rw,size=512m")


def check_command(image: str, expect_gpus: int | None = None) -> str:
    """The docker run line; always exits 0, the check's own exit code on stderr's last line."""
    extra = f" --expect-gpus {int(expect_gpus)}" if expect_gpus else ""
    return (f"docker run {LEAST_PRIVILEGE} {shlex.quote(image)} python - --quick{extra} "
            f"< {CHECK_ON_HOST}; echo \"gpuhost-check-rc=$?\" >&2")


def split_rc(stderr: str) -> tuple[int, str]:
    """(exit code, stderr without the rc line) from check_command's stderr."""
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("gpuhost-check-rc="):
            return int(lines[index].split("=", 1)[1]), "\n".join(lines[:index] + lines[index + 1:])
    return 255, stderr


def verdict_record(image: str, rc: int, verdict, seconds: float) -> dict:
    return {"image": image, "ok": verdict.ok, "exit_code": rc, "cause": verdict.cause,
            "title": verdict.title, "fix": verdict.fix, "evidence": verdict.evidence,
            "seconds": round(seconds, 1), "check": verdict.report}


def metric_text(record: dict, now: float) -> str:
    """The verdict as Prometheus text exposition: a gauge per result, with image and cause."""
    def label(value) -> str:
        return str(value or "").replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    labels = f'image="{label(record["image"])}",cause="{label(record["cause"] or "none")}"'
    return (
        "# HELP gpuhost_verify_ok 1 when the torch check passed in the plan's image.\n"
        "# TYPE gpuhost_verify_ok gauge\n"
        f"gpuhost_verify_ok{{{labels}}} {1 if record['ok'] else 0}\n"
        "# HELP gpuhost_verify_timestamp_seconds When the check last ran.\n"
        "# TYPE gpuhost_verify_timestamp_seconds gauge\n"
        f"gpuhost_verify_timestamp_seconds {now:.0f}\n"
        "# HELP gpuhost_verify_duration_seconds How long the containerized check took.\n"
        "# TYPE gpuhost_verify_duration_seconds gauge\n"
        f"gpuhost_verify_duration_seconds {record['seconds']}\n"
    )


def _write(host, path: str, text: str) -> None:
    """Write a small file atomically through one shell command (content base64-encoded)."""
    data = base64.b64encode(text.encode()).decode()
    host.run_shell_command(StringCommand(
        f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])} && echo {data} | base64 -d > {path}.tmp "
        f"&& chmod 644 {path}.tmp && mv -f {path}.tmp {path}"))


def _run_and_classify(state, host, image, expect_gpus):
    host_ = host  # pyinfra passes state and host to callbacks whose parameters have these names
    started = time.monotonic()
    _, output = host_.run_shell_command(StringCommand(check_command(image, expect_gpus)))
    rc, stderr = split_rc(output.stderr)
    verdict = classify(rc, output.stdout, stderr)
    record = verdict_record(image, rc, verdict, time.monotonic() - started)
    _write(host_, VERDICT_PATH, json.dumps(record, indent=2) + "\n")
    _write(host_, METRIC_PATH, metric_text(record, time.time()))
    if verdict.ok:
        logger.info(f"[{host_.name}] torch check passed in {image}")
        return True
    logger.error(f"[{host_.name}] torch check failed: {verdict.cause}: {verdict.title} "
                 f"({verdict.evidence}). Fix: {verdict.fix}")
    return False


@operation(is_idempotent=False)
def torch_check(image: str, expect_gpus: int | None = None):
    """Run the check in `image` and write /var/lib/gpuhost/verify.json; fails on a failed check.

    + image: the image to check (the plan's tag)
    + expect_gpus: fail unless exactly this many GPUs are visible
    """
    yield from _put_script()
    yield FunctionCommand(_run_and_classify, (image, expect_gpus), {})


def _put_script():
    from io import StringIO

    from pyinfra.operations import files

    yield from files.directory._inner(path="/var/lib/gpuhost", mode="755")
    yield from files.put._inner(src=StringIO(CHECK_SCRIPT.read_text()), dest=CHECK_ON_HOST, mode="644")


def verify_stage(ctx, always: bool = True) -> None:
    """Queue the check for a planned host (deploys/verify.py always; gpu_host when asked)."""
    if ctx.host_plan.plan is None or not always:
        return
    torch_check(name="torch check in the plan's image", image=ctx.host_plan.plan.image.tag,
                expect_gpus=len(ctx.host_plan.gpus) or None)
