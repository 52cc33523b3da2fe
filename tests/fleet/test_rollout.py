"""The rollout's pure core (gpuhost/fleet/rollout.py), and `gpuhost upgrade`'s refusals of bad flags.

Facts are real snapshots (tests/fixtures/README.md says where each came from): the H100 device
(driver 580.159.04, open module), its capture while PyTorch held the GPU, and a Debian 12 lab
host without a GPU. Where a test needs a state no capture has (a driver left unloaded, a hold
missing), it changes one named key of a real snapshot. PYINFRA_RUN below is pyinfra 3.10's real
output, captured from `pyinfra <lab inventory> deploys/driver.py -y --limit a1 --limit bad --limit
busy` on three lab hosts (bad: a malformed apt source; busy: the fake nvidia-smi of
tests/e2e/driver_fixture.py), trimmed to the operation run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from facts.gpu import GpuState
from facts.snapshot import HostSnapshot
from gpuhost.fleet import rollout
from gpuhost.commands.inspect import HostReading, assess
from gpuhost.errors import UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GPUHOST = shutil.which("gpuhost") or str(Path(sys.executable).parent / "gpuhost")
TODAY = date(2026, 11, 23)
NOW = "2026-11-23T12:00:00Z"


def snapshot(name: str) -> dict:
    return HostSnapshot().process((FIXTURES / name).read_text().splitlines())


def h100() -> dict:
    return snapshot("device-h100/facts/snapshot.out")


def h100_busy() -> dict:
    facts = h100()
    facts["gpu"] = GpuState().process((FIXTURES / "device-h100/facts/gpu-with-process.out").read_text().splitlines())
    return facts


def lab_host() -> dict:
    return snapshot("debian12-lab-host/snapshot-docker.out")


def plan_for(facts: dict, data: dict | None = None) -> dict:
    return assess(HostReading("h", data or {}, facts), today=TODAY).plan


# --- Flags --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,hosts_of_10", [("1", 1), ("3", 3), ("25%", 3), ("10%", 1), ("1%", 1), ("100%", 10)])
def test_batch_sizes(text, hosts_of_10):
    assert rollout.parse_batch(text).hosts(10) == hosts_of_10


@pytest.mark.parametrize("text,says", [("0", "no host per batch"), ("150%", "from 1% to 100%"),
                                       ("0%", "from 1% to 100%"), ("-1", "not a host count"),
                                       ("2.5", "not a host count"), ("half", "not a host count"), ("", "not a host")])
def test_bad_batch_sizes_are_one_line(text, says):
    with pytest.raises(UsageError, match=says) as err:
        rollout.parse_batch(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kw,says", [
    ({"canary": -1}, "--canary -1 is negative"),
    ({"max_failed": -2}, "--max-failed -2 is negative"),
    ({"drain_timeout": -1}, "--drain-timeout -1"),
    ({"drain_command": "kubectl drain"}, "has no {host}"),
    ({"drain_command": "  "}, "--drain-command is empty"),
])
def test_bad_options(kw, says):
    args = {"canary": 1, "batch": "2", "max_failed": 0, "drain_command": None, "drain_timeout": 60, **kw}
    with pytest.raises(UsageError, match=says):
        rollout.check_options(**args)


def test_drain_command_quotes_the_host_name():
    assert rollout.host_command("kubectl drain {host} --ignore-daemonsets", "gpu-01") == \
        "kubectl drain gpu-01 --ignore-daemonsets"
    assert rollout.host_command("ssh ctl scontrol show node={host}", "10.0.0.7") == "ssh ctl scontrol show node=10.0.0.7"
    assert rollout.host_command("echo {host}", "gpu_07") == "echo gpu_07"


@pytest.mark.parametrize("name", ["a b;rm", "gpu-07$(touch${IFS}PWNED)", "gpu-07`touch PWNED`", "gpu\n07", "x'y",
                                  "-oProxyCommand=x", "gpu-07\u00e9"])
def test_a_host_name_that_is_no_plain_name_never_reaches_the_shell(name, tmp_path):
    """Inside the template's own quotes ("nodename={host}") shell quoting cannot protect it."""
    import subprocess
    command = rollout.host_command('echo "scontrol update nodename={host} state=drain"', name)
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "is not a plain host name or IP address" in done.stderr
    assert not (tmp_path / "PWNED").exists() and "scontrol" not in done.stdout


# --- Batches ------------------------------------------------------------------------------------


def test_canary_then_batches_in_inventory_order():
    hosts = ["h1", "h2", "h3", "h4", "h5"]
    batches = rollout.plan_batches(hosts, 5, 1, rollout.parse_batch("2"))
    assert [(b.label, b.hosts) for b in batches] == [
        ("canary", ("h1",)), ("batch 1", ("h2", "h3")), ("batch 2", ("h4", "h5"))]
    assert batches[0].canary and not batches[1].canary


def test_percent_is_of_all_hosts_of_the_rollout_even_when_resuming():
    # 8 hosts, 25% -> 2 per batch; resuming with 3 left keeps 2 per batch, no second canary.
    batches = rollout.plan_batches(["h6", "h7", "h8"], 8, 0, rollout.parse_batch("25%"))
    assert [b.hosts for b in batches] == [("h6", "h7"), ("h8",)]


def test_no_canary_and_a_canary_larger_than_the_fleet():
    assert [b.label for b in rollout.plan_batches(["a", "b"], 2, 0, rollout.parse_batch("1"))] == ["batch 1", "batch 2"]
    assert [(b.label, b.hosts) for b in rollout.plan_batches(["a", "b"], 2, 5, rollout.parse_batch("1"))] == \
        [("canary", ("a", "b"))]
    assert rollout.plan_batches([], 4, 1, rollout.parse_batch("1")) == []


# --- Before the deploy --------------------------------------------------------------------------


def test_converged_h100_is_current_and_not_deployed():
    facts = h100()
    check = rollout.precheck(facts, None, plan_for(facts), force=False)
    assert check.action == "current"
    assert check.driver_before == "580.159.04" and check.target == "R580 open"


def test_busy_h100_is_current_when_its_driver_is_kept():
    # Its GPU work does not matter: nothing would be changed.
    facts = h100_busy()
    assert rollout.precheck(facts, None, plan_for(facts), force=False).action == "current"


def test_host_to_upgrade_with_a_gpu_process_is_busy_unless_forced():
    facts = h100_busy()
    facts["gpu"]["driver"]["version"] = "535.104.05"  # an R535 host: the plan moves it to R580
    plan = plan_for(facts)
    assert plan["plan"]["driver"]["action"] == "upgrade"
    busy = rollout.precheck(facts, None, plan, force=False)
    assert busy.action == "busy"
    assert busy.reason.startswith("GPU work running: python")
    forced = rollout.precheck(facts, None, plan, force=True)
    assert forced.action == "apply" and forced.notes[0].startswith("forced despite GPU work")


def test_gpu_containers_count_as_gpu_work():
    facts = lab_host()
    facts["container"]["gpu_containers"] = [{"id": "3f2a", "name": "train", "runtime": "nvidia"}]
    plan = plan_for(facts, {"target_gpus": ["H100"]})
    assert rollout.gpu_work(facts) == ["container train"]
    assert rollout.precheck(facts, None, plan, force=False).action == "busy"


def test_declared_gpu_host_is_applied_and_gpu_less_host_is_no_gpu():
    facts = lab_host()
    assert rollout.precheck(facts, None, plan_for(facts, {"target_gpus": ["H100"]}), False).action == "apply"
    assert rollout.precheck(facts, None, plan_for(facts), False).action == "no-gpu"
    failing = plan_for(facts, {"no_gpu": "fail"})
    check = rollout.precheck(facts, None, failing, False)
    assert check.action == "failed" and "no NVIDIA GPU" in check.reason


def test_unreachable_host_fails_with_the_error():
    check = rollout.precheck(None, "Could not connect (timed out)", None, False)
    assert (check.action, check.reason) == ("failed", "unreachable: Could not connect (timed out)")


# --- pyinfra's output ---------------------------------------------------------------------------

PYINFRA_RUN = """\
--> Beginning operation run...
--> Starting operation: gpuhost cannot go on with this host 
    [bad]  Skipped
    [a1]   Skipped
    [busy] gpuhost: GPU processes are running (python3 (pid 4242)): refusing to upgrade the driver or reboot; stop them, or set host data force: true to go ahead anyway
    [busy] Error: executed 0 commands

--> Starting operation: Driver repository (cuda) 
    [a1]   Success
    [bad]  Success

--> Starting operation: Driver packages R580 open (installed and held) 
    [bad]  E: Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list (Suite)
    [bad]  E: The list of sources could not be read.
    [bad]  Error: executed 0 commands
    [a1]   Success

--> Starting operation: Blacklist nouveau (initramfs rebuilt when changed) 
    [a1]   Success
"""
# Same deploy, later gpuhost (converged hosts queue nothing): a1 converged, bad as above.
PYINFRA_CONVERGED_BESIDE_FAILED = """\
--> Preparing operation files...
    Loading: /work/main/deploys/driver.py
    [bad] Ready: /work/main/deploys/driver.py
    [a1] driver R580 open from cuda: in place
    [a1]  Ready: /work/main/deploys/driver.py

--> Skipping change detection
--> Beginning operation run...
--> Starting operation: Driver repository (cuda) 
    [a1]  Skipped
    [bad] Success

--> Starting operation: Driver packages R580 open (installed and held) 
    [a1]  Skipped
    [bad] E: Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list (Suite)
    [bad] E: The list of sources could not be read.
    [bad] Error: executed 0 commands
"""
# pyinfra 3.10 on a host whose sshd is gone (port 1 on 127.0.0.1), same deploy.
PYINFRA_NO_CONNECT = """\
--> Connecting to hosts...
    [gone] Could not connect ([Errno None] Unable to connect to port 1 on 127.0.0.1)

--> Disconnecting from hosts...
--> pyinfra error: No hosts remaining!
"""


def test_output_gives_each_hosts_statuses_and_the_failing_operation():
    runs = rollout.parse_deploy_output(PYINFRA_RUN)
    assert runs["a1"].statuses["Success"] == 3 and runs["a1"].error is None
    assert rollout.deploy_failure(runs["a1"], 1, PYINFRA_RUN) is None  # rc is 1: another host failed
    reason = rollout.deploy_failure(runs["bad"], 1, PYINFRA_RUN)
    assert reason == ("Driver packages R580 open (installed and held): E: Malformed entry 1 in list file "
                      "/etc/apt/sources.list.d/broken.list (Suite); E: The list of sources could not be read.")
    busy = rollout.deploy_failure(runs["busy"], 1, PYINFRA_RUN)
    assert busy.startswith("gpuhost cannot go on with this host: gpuhost: GPU processes are running")
    assert rollout.is_busy_refusal(busy) and not rollout.is_busy_refusal(reason)


def test_converged_host_beside_a_failing_one_is_not_failed():
    runs = rollout.parse_deploy_output(PYINFRA_CONVERGED_BESIDE_FAILED)
    assert rollout.deploy_failure(runs["a1"], 1, PYINFRA_CONVERGED_BESIDE_FAILED) is None
    assert runs["a1"].statuses["Success"] == 0  # -> "current" once verified
    assert "Malformed entry" in rollout.deploy_failure(runs["bad"], 1, PYINFRA_CONVERGED_BESIDE_FAILED)
    # Prepared, with no operation at all (a host the deploy leaves alone), is not a failure either.
    only_ready = "--> Preparing operation files...\n    [c] Ready: deploys/driver.py\n--> pyinfra error: x\n"
    assert rollout.deploy_failure(rollout.parse_deploy_output(only_ready)["c"], 1, only_ready) is None


def test_colours_are_ignored():
    coloured = "--> Starting operation: X\n    [\x1b[1mh1\x1b[0m] \x1b[31mError\x1b[0m: executed 0 commands\n"
    assert rollout.parse_deploy_output(coloured)["h1"].statuses["Error"] == 1


def test_host_pyinfra_never_ran_on():
    runs = rollout.parse_deploy_output(PYINFRA_NO_CONNECT)
    assert rollout.deploy_failure(runs.get("gone"), 1, PYINFRA_NO_CONNECT) == \
        "pyinfra did not run on it: Could not connect ([Errno None] Unable to connect to port 1 on 127.0.0.1)"
    assert rollout.deploy_failure(None, 1, PYINFRA_NO_CONNECT) == \
        "pyinfra exited 1 before running on it: --> pyinfra error: No hosts remaining!"


# --- After the deploy ---------------------------------------------------------------------------


def test_gpu_less_host_verifies_when_the_packages_are_held():
    facts = lab_host()
    facts["host"]["held_packages"] = ["nvidia-driver-pinning-580", "nvidia-open"]
    verdict = rollout.verify_host(facts, None, "580", "open", ["nvidia-driver-pinning-580", "nvidia-open"], "never")
    assert verdict.ok and "no GPU attached" in verdict.notes[0]
    facts["host"]["held_packages"] = ["nvidia-open"]
    verdict = rollout.verify_host(facts, None, "580", "open", ["nvidia-driver-pinning-580", "nvidia-open"], "never")
    assert not verdict.ok and verdict.reason.endswith("held after the deploy: nvidia-driver-pinning-580")


def test_loaded_planned_driver_verifies():
    verdict = rollout.verify_host(h100(), None, "580", "open", None, "auto")
    assert verdict.ok and verdict.notes == ["driver 580.159.04 loaded"] and verdict.driver_after == "580.159.04"


def test_old_driver_still_loaded_is_pending_with_reboot_never_and_a_failure_with_auto():
    facts = h100()  # loaded 580: the plan below wants another branch
    pending = rollout.verify_host(facts, None, "595", "open", None, "never")
    assert pending.ok and pending.reboot_required and "reboot to load it" in pending.notes[0]
    failed = rollout.verify_host(facts, None, "595", "open", None, "auto")
    assert not failed.ok and "loaded driver is 580.159.04 open, not R595 open" in failed.reason


def test_unreachable_or_interrupted_dpkg_fails_verification():
    assert "unreachable after the deploy" in rollout.verify_host(None, "EOF", "580", "open", None, "never").reason
    facts = h100()
    facts["host"]["package_lock"]["dpkg_interrupted"] = True
    assert "dpkg --configure -a" in rollout.verify_host(facts, None, "580", "open", None, "never").reason


# --- The record, the threshold and resuming -----------------------------------------------------


def start(hosts, record=None):
    record = record or rollout.new_record("inv.py", NOW)
    run = rollout.open_run(record, hosts, {}, NOW)
    return record, run


def put(record, run, batch, **results):
    for name, result in results.items():
        rollout.record_result(record, name, batch, run, NOW, result=result,
                              reason="why" if result == "failed" else None, attempted=True)


def test_failed_canary_stops_everything_and_a_passed_one_is_remembered():
    record, run = start(["a", "b", "c"])
    canary = rollout.Batch(0, ("a",))
    put(record, run, canary, a="failed")
    assert rollout.stop_reason(record, canary, run, max_failed=5) == "canary a failed: fix it and run again"
    assert not record["canary_passed"]
    put(record, run, canary, a="upgraded")
    assert rollout.stop_reason(record, canary, run, max_failed=0) is None and record["canary_passed"]


def test_canary_that_proved_nothing_stops():
    record, run = start(["a", "b"])
    canary = rollout.Batch(0, ("a",))
    put(record, run, canary, a="skipped-busy")
    assert "no canary host was upgraded" in rollout.stop_reason(record, canary, run, max_failed=0)


def test_threshold_counts_failures_of_this_run():
    record, run = start(["a", "b", "c", "d"])
    first, second = rollout.Batch(1, ("a", "b")), rollout.Batch(2, ("c", "d"))
    put(record, run, first, a="upgraded", b="failed")
    assert rollout.stop_reason(record, first, run, max_failed=1) is None
    put(record, run, second, c="failed", d="skipped-busy")  # skipped hosts are not failures
    assert rollout.stop_reason(record, second, run, max_failed=1) == "2 failed host(s), more than --max-failed 1"
    assert rollout.close_run(record, ["a", "b", "c", "d"], run, "x", NOW) == "stopped"
    # The next run starts at zero failures and retries b, c and d; a is done.
    run2 = rollout.open_run(record, ["a", "b", "c", "d"], {}, NOW)
    assert rollout.todo(record, ["a", "b", "c", "d"]) == ["b", "c", "d"]
    assert rollout.stop_reason(record, rollout.Batch(1, ("b",)), run2, max_failed=0) is None


def test_run_status():
    record, run = start(["a", "b"])
    put(record, run, rollout.Batch(1, ("a", "b")), a="upgraded", b="current")
    assert rollout.close_run(record, ["a", "b"], run, None, NOW) == "complete"
    record, run = start(["a", "b"])
    put(record, run, rollout.Batch(1, ("a", "b")), a="upgraded", b="skipped-busy")
    assert rollout.close_run(record, ["a", "b"], run, None, NOW) == "incomplete"
    assert rollout.close_run(record, ["a", "b"], run, None, NOW, interrupted=True) == "interrupted"
    assert record["runs"][-1]["status"] == "interrupted"


def test_record_survives_json_and_refuses_another_inventory():
    record, run = start(["a"])
    put(record, run, rollout.Batch(0, ("a",)), a="upgraded")
    again = json.loads(json.dumps(record))
    assert rollout.check_record(again, "inv.py", "s.json")["hosts"]["a"]["attempts"] == 1
    with pytest.raises(UsageError, match="records a rollout of inv.py, not other.py"):
        rollout.check_record(again, "other.py", "s.json")
    with pytest.raises(UsageError, match="not a gpuhost upgrade record"):
        rollout.check_record({"hosts": []}, "inv.py", "s.json")
    again["hosts"]["a"]["result"] = "done?"
    with pytest.raises(UsageError, match="host a has no valid result"):
        rollout.check_record(again, "inv.py", "s.json")


def test_summary_table():
    record, run = start(["a", "b", "c"])
    put(record, run, rollout.Batch(0, ("a",)), a="upgraded")
    rollout.record_result(record, "b", rollout.Batch(1, ("b", "c")), run, NOW, result="failed",
                          reason="Driver packages: E: Malformed entry", target="R580 open")
    rollout.close_run(record, ["a", "b", "c"], run, "1 failed host(s), more than --max-failed 0", NOW)
    text = rollout.render_summary(record, ["a", "b", "c"], "/tmp/s.json")
    lines = text.splitlines()
    assert lines[0].split() == ["HOST", "RUN", "BATCH", "RESULT", "DRIVER", "NOTES"]
    assert lines[2].split()[:4] == ["b", "1", "batch", "1"] and "E: Malformed entry" in lines[2]
    assert lines[3].split()[:4] == ["c", "-", "-", "pending"]
    assert lines[-2] == "1 pending, 1 upgraded, 1 failed"
    assert lines[-1] == ("rollout stopped: 1 failed host(s), more than --max-failed 0. Run the same command "
                         "again to resume (state: /tmp/s.json)")


# --- The command refuses bad flags before touching anything -------------------------------------


@pytest.mark.parametrize("args,says", [
    (["--batch", "0"], "--batch 0 would upgrade no host per batch"),
    (["--batch", "150%"], "--batch 150% is out of range"),
    (["--canary", "-1"], "--canary -1 is negative"),
    (["--limit", "gpu-09"], "--limit gpu-09: not in inventory"),
    (["--deploy", "deploys/nope.py"], "--deploy deploys/nope.py: not a deploy file"),
    (["--reboot", "now"], "--reboot 'now': use auto or never"),
    (["--drain-command", "scontrol update state=drain"], "--drain-command has no {host}"),
])
def test_bad_flags_are_one_line_and_nothing_is_written(tmp_path, args, says):
    state = tmp_path / "state.json"
    proc = subprocess.run([GPUHOST, "upgrade", "gpu-01,gpu-02", "--state", str(state), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not state.exists()


def test_bad_inventory_data_is_refused_before_any_host(tmp_path):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text("hosts:\n  - name: gpu-01.invalid\n    reboot: now\n")
    proc = subprocess.run([GPUHOST, "upgrade", str(inventory), "--state", str(tmp_path / "s.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "reboot is 'now'" in proc.stderr, proc.stderr
    assert not (tmp_path / "s.json").exists()
