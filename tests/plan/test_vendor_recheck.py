"""The data fixes of the 2026-12-06 vendor re-check (shared/reference/vendor-recheck-2026-12-06.md),
each against its primary source: pci.ids 2026.08.22, pytorch/pytorch PRs, NVIDIA's pages."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from gpuhost.errors import Unresolvable
from gpuhost.plan.gpus import identify, identify_pci
from gpuhost.plan.matrix import load_matrix
from gpuhost.plan.resolver import Policy, resolve

DATA = Path(__file__).resolve().parents[2] / "gpuhost" / "plan" / "data"
FIXTURES = Path(__file__).parent.parent / "fixtures"
MATRIX = load_matrix()
TODAY = date(2026, 12, 6)
# pciutils/pciids pci.ids 2026.08.22: "\t2e12  GB20B [GB10]"
PCI_IDS = [re.match(r"\t([0-9a-f]{4})  (.+)$", line).groups()
           for line in (FIXTURES / "public" / "pci-ids-2026.08.22-blackwell.txt").read_text().splitlines()]


def chip_rule_cc(pci_name: str) -> str:
    chip = pci_name.split()[0]
    return next(r.compute_capability for r in MATRIX.chip_rules if r.pattern.search(chip))


@pytest.mark.parametrize(("device", "pci_name"), PCI_IDS, ids=[d for d, _ in PCI_IDS])
def test_chip_rules_agree_with_the_listed_models(device, pci_name):
    """An unlisted device of the same chip gets the compute capability of the listed one: GB10's
    chip GB20B is 12.1, not GB20x's 12.0."""
    assert chip_rule_cc(pci_name) == identify_pci(device).compute_capability, pci_name


def test_gb20b_is_12_1():
    assert dict(PCI_IDS)["2e12"] == "GB20B [GB10]"
    assert chip_rule_cc("GB20B [GB10]") == "12.1" and chip_rule_cc("GB202 [GeForce RTX 5090]") == "12.0"


@pytest.mark.parametrize(("device", "name"), [("2bb4", "RTX PRO 6000 Blackwell Max-Q"),
                                              ("2bb3", "RTX PRO 5000 Blackwell")])
def test_new_rtx_pro_models_are_known_without_pci_ids(device, name):
    gpu = identify(f"10de:{device}")  # no pci.ids name: gpus.yaml alone must know them
    assert (gpu.name, gpu.compute_capability, gpu.architecture) == (name, "12.0", "Blackwell")
    assert dict(PCI_IDS)[device].startswith("GB202GL [")


@pytest.mark.parametrize("gpu", ["B300", "GB300", "GB10"])
def test_cc_10_3_and_12_1_need_r575(gpu):
    blackwell = MATRIX.architectures["Blackwell"]
    cc = identify(gpu).compute_capability
    assert not blackwell.supported_by(570, cc) and blackwell.supported_by(575, cc)
    assert blackwell.supported_by(570, "10.0") and blackwell.supported_by(570, "12.0")
    with pytest.raises(Unresolvable, match=r"driver 570\.124\.06 does not support"):
        resolve([identify(gpu)], current_driver="570.124.06", today=TODAY,
                policy=Policy(allow_driver_change=False, torch="2.8"))


def test_b200_on_r570_is_still_kept():
    plan = resolve([identify("B200")], current_driver="570.124.06", today=TODAY,
                   policy=Policy(allow_driver_change=False, torch="2.8"))
    assert (plan.driver.action, plan.driver.branch) == ("keep", "570")


def test_cuda_13_1_update_2_is_590_48_01():
    toolkits = yaml.safe_load((DATA / "cuda.yaml").read_text())["toolkits"]
    assert next(t for t in toolkits if t["cuda"] == "13.1")["updates"]["U2"] == "590.48.01"


def test_r580_end_of_life_keeps_the_earlier_of_two_readings():
    r580 = MATRIX.branch(580)
    assert (r580.end_of_life, r580.end_of_life_conflict) == ("2028-06-30", "2028-08-04")
    assert r580.end_of_life < r580.end_of_life_conflict  # the conservative one is used
    raw = next(b for b in yaml.safe_load((DATA / "drivers.yaml").read_text())["branches"] if b["branch"] == 580)
    assert "earlier date is kept" in raw["end_of_life_conflict"]["why"]


def test_k80_reason_does_not_call_r470_an_lts_branch():
    plan = resolve([identify("K80")], today=TODAY, policy=Policy(torch="2.5"))
    driver_reason = next(r for r in plan.reasons if r.startswith("driver:"))
    assert driver_reason == "driver: install R470 (legacy), the newest branch that supports Tesla K80 (cc 3.7)"
    assert any("no lts branch supports Tesla K80" in w for w in plan.warnings)
