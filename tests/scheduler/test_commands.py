"""The Slurm shells of `gpuhost upgrade --scheduler slurm` and `gpuhost health-sync`: bad input is one
line before any host is touched; the preflight's line from real scontrol answers (tests/fixtures/slurm-lab)."""

import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost.commands import upgrade_slurm
from gpuhost.errors import UsageError
from gpuhost.scheduler.slurm import parse_reading

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-lab"
GPUHOST = str(Path(sys.executable).with_name("gpuhost"))


def reading(name):
    return parse_reading((FIXTURES / f"{name}.txt").read_text().splitlines())


@pytest.mark.parametrize("args, line", [
    (["upgrade", "a,b", "--scheduler", "pbs"],
     "gpuhost: error: --scheduler 'pbs' is unknown: use slurm, or --drain-command/--undrain-command for another "
     "scheduler"),
    (["upgrade", "a,b", "--scheduler", "slurm", "--drain-command", "kubectl cordon {host}"],
     "gpuhost: error: --scheduler slurm drains and resumes hosts itself: leave out --drain-command and "
     "--undrain-command"),
    (["health-sync", "a,b", "--scheduler", "kubernetes"],
     "gpuhost: error: --scheduler 'kubernetes' is unknown: use slurm"),
])
def test_bad_flags_are_one_line_before_any_host(args, line):
    proc = subprocess.run([GPUHOST, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == line, proc.stderr


def test_preflight_names_the_controller_first_then_unknown_nodes(monkeypatch):
    answers = {"n1": reading("n1-no-controller"), "n2": reading("n1-no-controller"),
               "slurmctl": reading("slurmctl-unknown-node"), "n3": reading("n1-idle")}
    monkeypatch.setattr(upgrade_slurm, "slurm_read", lambda inventory, names: {n: answers[n] for n in names})
    with pytest.raises(UsageError) as error:
        upgrade_slurm.preflight("inv", ["n1", "n2", "slurmctl", "n3"], {"hosts": {}})
    assert str(error.value) == (
        "--scheduler slurm: host n1, n2: the Slurm controller does not answer (scontrol show node: slurm_load_node "
        "error: Unable to contact slurm controller (connect failure)): start slurmctld or fix SlurmctldHost in "
        "slurm.conf (no host was changed)")
    with pytest.raises(UsageError) as error:
        upgrade_slurm.preflight("inv", ["slurmctl", "n3"], {"hosts": {}})
    assert "host slurmctl: Slurm has no node slurmctl" in str(error.value)
    answers["ctl2"] = reading("slurmctl-unknown-node")  # two unknown nodes: one line naming both hosts
    with pytest.raises(UsageError) as error:
        upgrade_slurm.preflight("inv", ["slurmctl", "n3", "ctl2"], {"hosts": {}})
    assert str(error.value).startswith("--scheduler slurm: host slurmctl, ctl2: Slurm has no node")
    upgrade_slurm.preflight("inv", ["n3"], {"hosts": {}})  # a known node: no error
    # hosts already done in the record are not asked again
    upgrade_slurm.preflight("inv", ["slurmctl", "n3"], {"hosts": {"slurmctl": {"result": "upgraded"}}})
