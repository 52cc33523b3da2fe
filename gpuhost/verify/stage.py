"""Stage: run the torch check inside the plan's image, classify a failure, write the verdict.

The check (gpuhost/verify/check/torch_check.py, stdlib + torch) travels inside the command (gzip +
base64, no upload) and is fed on stdin to `python -` in a container with least privilege:
--rm, no network, read-only root, no new privileges, every capability dropped, --gpus all, a
small /tmp tmpfs. Its exit code, JSON and stderr go through gpuhost.verify.causes.classify,
and the verdict, with what it was checked against (image digest, driver, GPUs, script), is
written to /var/lib/gpuhost/verify.json. A failed check fails the host with the cause and fix.

When (host data `verify`): auto (default) checks when this run changed something, or when the
last verdict is missing, failed, or was taken against another image, driver, GPU set or check
script; a host with no GPU attached (planned through target_gpus) is not checked. always:
every run. never: not in gpu_host.py. deploys/verify.py always checks.

A host whose GPU health (gpuhost.health) is not ok is never checked nor called verified: verify.json
says why (cause gpu_failed / gpu_degraded, the GPU and the cause as evidence) and the deploy fails
the host with that line at its end.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shlex
import time
from functools import cache

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.operations import server
from pyinfra.operations.util import any_changed

from gpuhost.verify.check import SCRIPT as CHECK_SCRIPT
from gpuhost.driver.safety import gpu_attached
from gpuhost.health.verdict import host_health
from gpuhost.run.summary import record_verdict
from gpuhost.verify.causes import classify
# The verdict as a Prometheus textfile, in node_exporter's textfile directory (gpuhost/monitoring).
from gpuhost.monitoring.metrics import VERIFY_METRICS_PATH as METRIC_PATH, atomic_write_command
from gpuhost.monitoring.metrics import verify_metrics as metric_text

VERDICT_PATH = "/var/lib/gpuhost/verify.json"
LEAST_PRIVILEGE = ("--rm -i --network none --read-only --security-opt no-new-privileges "
                   "--cap-drop ALL --gpus all --tmpfs /tmp:rw,size=512m")
INPUTS_MARK = "gpuhost-inputs "


@cache
def _shipped_script() -> str:
    """The check script as it travels inside the command: gzip, then base64 (once per process)."""
    return base64.b64encode(gzip.compress(CHECK_SCRIPT.read_bytes(), mtime=0)).decode()


@cache
def script_sha1() -> str:
    return hashlib.sha1(CHECK_SCRIPT.read_bytes()).hexdigest()


def check_command(image: str, expect_gpus: int | None = None) -> str:
    """The docker run line; always exits 0. On stderr: first the inputs line (image digest,
    loaded driver), last the check's own exit code."""
    extra = f" --expect-gpus {int(expect_gpus)}" if expect_gpus else ""
    script = _shipped_script()
    q = shlex.quote(image)
    return (f"echo \"{INPUTS_MARK}$(docker image inspect -f '{{{{index .RepoDigests 0}}}}' {q} 2>/dev/null"
            f" | sed 's/.*@//') $(cat /sys/module/nvidia/version 2>/dev/null)\" >&2; "
            f"echo {script} | base64 -d | gunzip | docker run {LEAST_PRIVILEGE} {q} python - --quick{extra}; "
            f"echo \"gpuhost-check-rc=$?\" >&2")


def split_inputs(stderr: str) -> tuple[dict, str]:
    """({digest, driver} read just before the check, stderr without that line)."""
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(INPUTS_MARK):
            words = line[len(INPUTS_MARK):].split() + ["", ""]
            values = {"digest": words[0] or None, "driver": words[1] or None}
            return values, "\n".join(lines[:index] + lines[index + 1:])
    return {"digest": None, "driver": None}, stderr


def split_rc(stderr: str) -> tuple[int, str]:
    """(exit code, stderr without the rc line) from check_command's stderr."""
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("gpuhost-check-rc="):
            return int(lines[index].split("=", 1)[1]), "\n".join(lines[:index] + lines[index + 1:])
    return 255, stderr


def verdict_record(image: str, rc: int, verdict, seconds: float, inputs: dict | None = None,
                   checked_at: float | None = None) -> dict:
    return {"image": image, "ok": verdict.ok, "exit_code": rc, "cause": verdict.cause, "checked_at": checked_at,
            "title": verdict.title, "fix": verdict.fix, "evidence": verdict.evidence,
            "seconds": round(seconds, 1), "inputs": inputs, "check": verdict.report}


def current_inputs(ctx) -> dict:
    """What a verdict is valid for, as the snapshot shows it now (compare with verdict["inputs"])."""
    image = ctx.host_plan.plan.image.tag
    return {"image": image, "digest": ctx.container_state.get("image_digests", {}).get(image),
            "driver": (ctx.gpu_state.get("driver") or {}).get("version"),
            "gpus": sorted(g.get("bus_id") or "" for g in ctx.gpu_state.get("gpus", [])),
            "script": script_sha1()}


def _write(host, files: dict[str, str]) -> None:
    """Write small files atomically, all in one shell command."""
    host.run_shell_command(StringCommand(atomic_write_command(files)))


def _run_and_classify(state, host, image, expect_gpus, gpus):
    host_ = host  # pyinfra passes state and host to callbacks whose parameters have these names
    started = time.monotonic()
    _, output = host_.run_shell_command(StringCommand(check_command(image, expect_gpus)))
    read, stderr = split_inputs(output.stderr)
    rc, stderr = split_rc(stderr)
    verdict = classify(rc, output.stdout, stderr)
    inputs = {"image": image, **read, "gpus": gpus, "script": script_sha1()}
    record = verdict_record(image, rc, verdict, time.monotonic() - started, inputs, round(time.time()))
    _write(host_, {VERDICT_PATH: json.dumps(record, indent=2) + "\n",
                   METRIC_PATH: metric_text(record, record["checked_at"])})
    record_verdict(host_.name, record)
    if verdict.ok:
        logger.info(f"[{host_.name}] torch check passed in {image}")
        return True
    logger.error(f"[{host_.name}] torch check failed: {verdict.cause}: {verdict.title} "
                 f"({verdict.evidence}). Fix: {verdict.fix}")
    return False


@operation(is_idempotent=False)
def torch_check(image: str, expect_gpus: int | None = None, gpus: list[str] | None = None):
    """
    Run the check in `image` and write /var/lib/gpuhost/verify.json; fails on a failed check.

    + image: the image to check (the plan's tag)
    + expect_gpus: fail unless exactly this many GPUs are visible
    + gpus: the GPUs' PCI bus ids, recorded with the verdict (a changed set means check again)

    **Example:**

    .. code:: python

        torch_check(name="torch check", image="pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", expect_gpus=8)
    """
    yield FunctionCommand(_run_and_classify, (image, expect_gpus, sorted(gpus or [])), {})


def check_due(ctx, mode: str) -> tuple[str, str]:
    """When to run the check: ("now" | "if-changed" | "no", why). Pure; see the module docstring."""
    if mode == "never":
        return "no", "verification off (verify: never)"
    if mode == "always":
        return "now", "verify: always"
    if not gpu_attached(ctx.gpu_state):
        return "no", "no GPU attached: not verified (run deploys/verify.py once it has one)"
    last = ctx.managed["verify"] or {}
    if not last:
        return "now", "never checked"
    if not last.get("ok"):
        return "now", f"the last check failed ({last.get('cause')})"
    if last.get("inputs") != current_inputs(ctx):
        return "now", "image, driver, GPUs or check script changed since the last check"
    return "if-changed", "torch check passed before with this image, driver and GPUs"


def health_refusal(ctx) -> str | None:
    """Why this host must not be called verified now, naming the GPU, the cause and the fix; None
    when its GPUs allow it. Pure. A verified host is one fit for any work: a failed GPU forbids it,
    and so does a degraded one (a pending row remap, a link at x8, a slowed clock) until it is fixed;
    a degraded GPU can still be given to a workspace, a failed one cannot."""
    health = host_health(ctx.health)
    if health.verdict == "ok":
        return None
    return f"not verified: {health.cause}; fix: {health.fix}"


def refusal_record(ctx) -> dict:
    """verify.json's record when a sick GPU forbids the check: not verified, with its cause and fix."""
    health = host_health(ctx.health)
    return {"image": ctx.host_plan.plan.image.tag, "ok": False, "exit_code": None, "cause": f"gpu_{health.verdict}",
            "checked_at": round(time.time()), "title": f"A GPU is {health.verdict} (gpuhost-health)", "fix": health.fix,
            "evidence": health.cause, "seconds": 0, "inputs": current_inputs(ctx), "check": None}


def verify_stage(ctx, after=(), always: bool = False) -> list:
    """Queue the check for a planned host when it is due (check_due); returns it.

    `after`: the operations this run queued before; when the last passing verdict still holds, the
    check runs only if one of them changed the host.
    """
    if ctx.host_plan.plan is None:
        return []
    mode = "always" if always else ctx.settings.verify.when
    refusal = health_refusal(ctx) if mode != "never" else None
    if refusal:  # record why instead of a check: an earlier passing verdict no longer holds
        logger.error(f"[{host.name}] {refusal}")
        ctx.refusals.append(refusal)
        record = refusal_record(ctx)
        last = ctx.managed["verify"] or {}
        if (last.get("cause"), last.get("evidence")) == (record["cause"], record["evidence"]):
            return []
        return [server.shell(name="verify.json: not verified (a GPU is not healthy)",
                             commands=[atomic_write_command({VERDICT_PATH: json.dumps(record, indent=2) + "\n",
                                                             METRIC_PATH: metric_text(record, record["checked_at"])})])]
    due, why = check_due(ctx, mode)
    if due == "no" or (due == "if-changed" and not after):
        logger.info(f"[{host.name}] {why}")
        return []
    check = dict(name="torch check in the plan's image", image=ctx.host_plan.plan.image.tag,
                 expect_gpus=len(ctx.host_plan.gpus) or None, gpus=current_inputs(ctx)["gpus"],
                 _timeout=ctx.settings.bounds.check_timeout)
    if due == "if-changed":
        return [torch_check(**check, _if=any_changed(*after))]
    return [torch_check(**check)]
