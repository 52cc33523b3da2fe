"""gpuhost.scheduler.slurm: scontrol's answers (real, from the lab: tests/fixtures/slurm-lab/) and the
decisions taken on them."""

from pathlib import Path

import pytest

from gpuhost.scheduler.slurm import (REASON_LIMIT, Action, SlurmNode, clean_reason, health_action, next_action,
                                     parse_reading, update_command)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-lab"


def reading(name: str):
    return parse_reading((FIXTURES / f"{name}.txt").read_text().splitlines())


def node(name: str) -> SlurmNode:
    got = reading(name)
    assert got.problem is None, got.problem
    return got.node


@pytest.mark.parametrize("name, state, flags, reason, shown", [
    ("n1-idle", "IDLE", (), None, "idle"),
    ("n1-allocated", "ALLOCATED", (), None, "allocated"),
    ("n1-allocated-drain-ours", "ALLOCATED", ("DRAIN",), "gpuhost upgrade: driver R620 open", "draining"),
    ("n1-idle-drain-ours", "IDLE", ("DRAIN",), "gpuhost upgrade: driver R620 open", "drained"),
    ("n2-allocated-drain-operator", "ALLOCATED", ("DRAIN",), "operator: fan check", "draining"),
    ("n2-drain-update-reason", "IDLE", ("DRAIN",), "gpuhost upgrade failed: driver stage: E: Malformed entry 1",
     "drained"),
    ("n3-idle-drain-health", "IDLE", ("DRAIN",),
     "gpuhost health: GPU 0 (00000000:00:06.0): Xid 79 fell off the bus", "drained"),
    ("n3-down-operator", "DOWN", ("DRAIN",), "operator: PSU", "drained"),
    ("n1-resume", "IDLE", (), None, "idle"),
])
def test_scontrol_show_node_is_read(name, state, flags, reason, shown):
    got = node(name)
    assert (got.state, got.flags, got.reason, got.shown) == (state, flags, reason, shown)
    assert got.name == name.split("-")[0]


def test_the_sinfo_states_agree_with_sinfo_itself():
    rows = dict(line.split("|")[:2] for line in (FIXTURES / "sinfo-draining.txt").read_text().splitlines()[1:])
    assert rows == {"n1": node("n1-allocated-drain-ours").shown, "n2": node("n2-allocated-drain-operator").shown,
                    "n3": node("n3-idle-drain-health").shown}


@pytest.mark.parametrize("name, words", [
    ("slurmctl-unknown-node", "Slurm has no node slurmctl (scontrol show node: Node slurmctl not found): the "
                              "host's short hostname must be its NodeName in slurm.conf"),
    ("n1-no-controller", "the Slurm controller does not answer (scontrol show node: slurm_load_node error: Unable "
                         "to contact slurm controller (connect failure)): start slurmctld or fix SlurmctldHost in "
                         "slurm.conf"),
    ("n1-resume-no-controller", "the Slurm controller does not answer (scontrol update: slurm_update error: Unable "
                                "to contact slurm controller (connect failure))"),
    ("no-scontrol", "scontrol not found on the host: install Slurm's client (Debian: slurm-client) or leave out "
                    "--scheduler slurm"),
])
def test_problems_are_one_line_with_the_fix(name, words):
    got = reading(name)
    assert got.node is None and got.problem.startswith(words), got.problem
    assert "\n" not in got.problem


def test_no_header_is_a_problem_not_a_crash():
    assert parse_reading([]).problem and parse_reading(["NodeName=n1 State=IDLE"]).problem


# --- the rollout's decisions, from the captured states ---------------------------------------------

def test_before_a_node_in_service_is_drained_with_a_reason_naming_gpuhost_and_the_target():
    for name in ("n1-idle", "n1-allocated"):
        assert next_action(node(name), "before", target="R620 open") == Action(
            "drain", reason="gpuhost upgrade: driver R620 open")


def test_before_a_node_drained_by_an_earlier_gpuhost_run_is_continued():
    for name in ("n1-allocated-drain-ours", "n1-idle-drain-ours", "n2-drain-update-reason"):
        assert next_action(node(name), "before", target="R620 open").name == "continue"


def test_before_a_node_drained_or_down_by_someone_else_is_left_so():
    action = next_action(node("n2-allocated-drain-operator"), "before", target="R620 open")
    assert action == Action("leave", "drained before the rollout by someone else (operator: fan check): left drained")
    assert next_action(node("n3-down-operator"), "before").name == "leave"
    assert next_action(node("n3-idle-drain-health"), "before").name == "leave"  # health's drain is not the rollout's


def test_draining_waits_for_jobs_then_is_ready():
    assert next_action(node("n1-allocated-drain-ours"), "draining").name == "wait"
    assert next_action(node("n2-allocated-drain-operator"), "draining").name == "wait"
    assert next_action(node("n1-idle-drain-ours"), "draining").name == "ready"
    assert next_action(node("n3-down-operator"), "draining").name == "ready"
    assert next_action(node("n1-allocated"), "draining").name == "lost"  # someone resumed it meanwhile


def test_after_only_gpuhosts_drain_is_resumed_and_only_when_the_check_passed():
    assert next_action(node("n1-idle-drain-ours"), "after", passed=True).name == "resume"
    assert next_action(node("n2-drain-update-reason"), "after", passed=True).name == "resume"  # fixed on a re-run
    failed = next_action(node("n1-idle-drain-ours"), "after", passed=False, cause="verification: dpkg\nbroken")
    assert failed == Action("mark-failed", "left drained in Slurm with the cause as its reason",
                            "gpuhost upgrade failed: verification: dpkg broken")
    assert next_action(node("n1-allocated-drain-ours"), "after", passed=None) == Action(
        "keep", "left draining in Slurm for the next run")  # --drain-timeout: no "failed" reason
    assert next_action(node("n2-allocated-drain-operator"), "after", passed=True).name == "leave"
    assert next_action(node("n3-idle-drain-health"), "after", passed=True).name == "leave"
    assert next_action(node("n1-idle"), "after", passed=True).name == "nothing"


# --- health ---------------------------------------------------------------------------------------

def test_a_failed_host_is_drained_with_the_cause_unless_someone_else_drained_it():
    cause = "GPU 0 (00000000:00:06.0): Xid 79 fell off the bus"
    assert health_action(node("n1-idle"), "failed", cause) == Action("drain", "drained for health",
                                                                      f"gpuhost health: {cause}")
    assert health_action(node("n3-idle-drain-health"), "failed", cause).name == "nothing"  # already, same cause
    assert health_action(node("n3-idle-drain-health"), "failed", "another").name == "drain"  # the reason follows
    assert health_action(node("n2-allocated-drain-operator"), "failed", cause).name == "leave"
    assert health_action(node("n1-idle-drain-ours"), "failed", cause).name == "leave"  # the rollout holds it


def test_only_a_health_drain_is_resumed_when_healthy_again():
    assert health_action(node("n3-idle-drain-health"), "ok", None).name == "resume"
    assert health_action(node("n3-idle-drain-health"), "degraded", "ECC count rising").name == "resume"
    for name in ("n2-allocated-drain-operator", "n1-idle-drain-ours", "n1-idle"):
        assert health_action(node(name), "ok", None).name in ("nothing",)


# --- commands -------------------------------------------------------------------------------------

def test_every_value_reaching_the_shell_is_quoted_and_one_line():
    command = update_command("drain", "x'; touch /tmp/pwned; echo '\n\x1b[31mred")
    assert "State=DRAIN Reason='x'\"'\"'; touch /tmp/pwned; echo '\"'\"' [31mred'" in command
    assert 'NodeName="$node"' in command and "\n" not in command and "\x1b" not in command
    with pytest.raises(ValueError):
        update_command("drain")
    with pytest.raises(ValueError):
        update_command("reboot")


def test_reasons_are_bounded():
    assert len(clean_reason("y" * 1000)) == REASON_LIMIT
