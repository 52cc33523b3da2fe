"""Real error outputs are classified into the right named cause, the proving line as evidence."""

from pathlib import Path

import pytest
import yaml

from gpuhost.verify.causes import (
    CausesError,
    FALLBACK,
    classify,
    load_causes,
    parse_report,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "errors"
CASES = yaml.safe_load((FIXTURES / "cases.yaml").read_text())["cases"]
DATA = Path(__file__).parents[2] / "gpuhost" / "verify" / "data" / "failure_causes.yaml"


def run_output(case):
    text = (FIXTURES / case["file"]).read_text()
    return (text, "") if case["stream"] == "stdout" else ("", text)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_fixture_is_classified_into_its_cause(case):
    stdout, stderr = run_output(case)
    # Where the source recorded no exit status, the text alone must decide.
    exit_codes = [case["exit_code"]] if case["exit_code"] is not None else [1, 2, 125]
    for exit_code in exit_codes:
        verdict = classify(exit_code, stdout, stderr)
        assert not verdict.ok
        assert verdict.cause == case["cause"], (exit_code, verdict.evidence)
        assert verdict.fix and "\n" not in verdict.fix
        # the evidence is a real line of the output (long lines clipped), not a paraphrase
        evidence = verdict.evidence.removesuffix("...")
        assert evidence and evidence in " ".join((stdout + stderr).split())
        assert verdict.source


def test_every_cause_seen_in_the_wild_has_a_fixture():
    covered = {case["cause"] for case in CASES}
    for cause in load_causes():
        from_the_wild = [p for p in cause.patterns if not p.source.startswith("torch_check.py")]
        if from_the_wild:
            assert cause.id in covered, f"{cause.id} has no real output under {FIXTURES}"


def test_fixture_files_and_cases_match_one_to_one():
    files = {p.name for p in FIXTURES.iterdir() if p.suffix in (".stdout", ".stderr")}
    assert files == {case["file"] for case in CASES}
    readme = (FIXTURES / "README.md").read_text()
    for name in files:
        assert f"| {name} |" in readme, f"{name} has no source in README.md"


def test_root_cause_beats_the_symptom_it_produces():
    # A CUDA build on a too-old driver: the check reports "no GPU visible" on stdout while torch's
    # warning on stderr names the reason. The reason wins.
    stdout = (FIXTURES / "check_cpu_torch.stdout").read_text()
    stderr = (FIXTURES / "driver_too_old_cu130.stderr").read_text()
    verdict = classify(2, stdout, stderr)
    assert verdict.cause == "driver_too_old"
    assert "found version 12080" in verdict.evidence


def test_no_gpu_evidence_comes_from_the_check_json():
    verdict = classify(2, (FIXTURES / "check_cpu_torch.stdout").read_text(), "")
    assert verdict.cause == "no_gpu_visible"
    assert verdict.evidence.startswith("no GPU visible to PyTorch")
    assert verdict.report["torch"] == "2.13.0+cpu"


def test_passing_run_has_no_cause():
    report = parse_report((FIXTURES / "check_cpu_torch.stdout").read_text())
    report.update(ok=True, exit_code=0, error=None)
    import json

    verdict = classify(0, "some banner\n" + json.dumps(report) + "\n", "a warning on stderr")
    assert verdict.ok and verdict.cause is None and verdict.evidence is None


def test_exit_zero_without_a_report_is_not_a_pass():
    verdict = classify(0, "", "")
    assert not verdict.ok
    assert verdict.cause == FALLBACK
    assert verdict.evidence == "exit code 0, no output"


@pytest.mark.parametrize("exit_code, cause", [
    (137, "check_killed"), (124, "check_killed"), (127, "check_not_runnable"),
    (126, "check_not_runnable"), (125, "docker_run_failed"), (3, FALLBACK)])
def test_exit_status_decides_when_no_line_matches(exit_code, cause):
    verdict = classify(exit_code, "", "something nobody has seen before\nlast line\n")
    assert verdict.cause == cause
    assert verdict.evidence == "last line"


def test_unmatched_check_error_is_unclassified_with_its_message():
    report = parse_report((FIXTURES / "check_no_torch.stdout").read_text())
    report["error"] = {"stage": "gpu", "type": "RuntimeError", "message": "brand new failure"}
    import json

    verdict = classify(1, json.dumps(report), "")
    assert verdict.cause == FALLBACK
    assert verdict.evidence == "RuntimeError: brand new failure"


def test_default_causes_are_read_once():
    assert load_causes() is load_causes()
    ids = [c.id for c in load_causes()]
    assert len(ids) == len(set(ids)) and ids[-1] == FALLBACK


def broken_copy(tmp_path, change):
    data = yaml.safe_load(DATA.read_text())
    change(data)
    path = tmp_path / "failure_causes.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cause(data, cause_id):
    return next(c for c in data["causes"] if c["id"] == cause_id)


@pytest.mark.parametrize("change, message", [
    (lambda d: cause(d, "out_of_memory")["patterns"].append(
        {"regex": "CUDA (out", "source": "x"}), "cause 'out_of_memory': bad regex 'CUDA (out'"),
    (lambda d: cause(d, "runtime_missing").pop("fix"), "causes/2: 'fix' is a required property"),
    (lambda d: cause(d, "runtime_missing")["patterns"][0].pop("source"),
     "causes/2/patterns/0: 'source' is a required property"),
    (lambda d: d["causes"].append(dict(cause(d, "no_gpu_visible"))),
     "cause 'no_gpu_visible' is defined twice"),
    (lambda d: d["causes"].remove(cause(d, FALLBACK)), "'unclassified' cause"),
    (lambda d: cause(d, "check_killed").pop("source"), "'source' is a required property"),
])
def test_broken_data_file_fails_with_one_line_naming_file_and_entry(tmp_path, change, message):
    path = broken_copy(tmp_path, change)
    with pytest.raises(CausesError) as err:
        load_causes(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    assert message in text


def test_unreadable_data_file_is_one_line(tmp_path):
    path = tmp_path / "failure_causes.yaml"
    path.write_text("causes: [unclosed\n")
    with pytest.raises(CausesError) as err:
        load_causes(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
