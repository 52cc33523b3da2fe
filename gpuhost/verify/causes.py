"""Name why the containerized torch check failed, with a one-line fix.

The check (gpuhost/verify/check/torch_check.py, run with `docker run`) leaves an exit code, stdout with one
JSON object when the container started, and stderr with Docker's, the NVIDIA hook's and Python's
errors. `classify` turns those into a `Verdict`: cause id, title, fix and the line that proves it.
The causes, their patterns and the sources where each message was seen live in
gpuhost/verify/data/failure_causes.yaml; this module only reads that file (once) and matches.

    >>> verdict = classify(125, "", "docker: Error response from daemon: unknown or invalid "
    ...                              "runtime name: nvidia.")
    >>> verdict.cause
    'runtime_missing'
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gpuhost import yamlfile

from gpuhost.errors import GpuhostError

CAUSES_FILE = Path(__file__).parent / "data" / "failure_causes.yaml"
FALLBACK = "unclassified"
_EVIDENCE_MAX = 400

_SCHEMA = {
    "type": "object",
    "required": ["causes"],
    "additionalProperties": False,
    "properties": {
        "causes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "title", "fix", "source", "patterns"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "title": {"type": "string", "minLength": 1},
                    "fix": {"type": "string", "minLength": 1, "pattern": "^[^\\n]*$"},
                    "source": {"type": "string", "minLength": 1},
                    "exit_codes": {"type": "array", "items": {"type": "integer"}},
                    "patterns": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["regex", "source"],
                            "additionalProperties": False,
                            "properties": {
                                "regex": {"type": "string", "minLength": 1},
                                "source": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                },
            },
        }
    },
}


class CausesError(GpuhostError):
    """The failure-causes data file is broken (names the file and the entry)."""


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern
    source: str


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    fix: str
    patterns: tuple = ()
    exit_codes: tuple = ()
    source: str = ""


@dataclass(frozen=True)
class Verdict:
    """One check run's outcome. ok: it ran and passed; otherwise `cause` names why not."""

    ok: bool
    cause: str | None
    title: str
    fix: str | None
    evidence: str | None
    source: str | None = None
    report: dict | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "cause": self.cause, "title": self.title, "fix": self.fix,
                "evidence": self.evidence, "source": self.source}


def load_causes(path: Path | str | None = None) -> tuple[Cause, ...]:
    """The causes in priority order; the default file is read and checked once."""
    if path is None:
        return _default_causes()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_causes() -> tuple[Cause, ...]:
    return _load(CAUSES_FILE)


def _load(path: Path) -> tuple[Cause, ...]:
    import jsonschema  # noqa: PLC0415 (heavy: only when a verdict is classified)

    try:
        data = yamlfile.load(path.read_text())
    except (OSError, yamlfile.YAMLError) as exc:
        raise CausesError(f"{path}: cannot read failure causes: {_one_line(exc)}") from None
    try:
        jsonschema.validate(data, _SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise CausesError(f"{path}: {where}: {_one_line(exc.message)}") from None
    causes, seen = [], set()
    for entry in data["causes"]:
        if entry["id"] in seen:
            raise CausesError(f"{path}: cause {entry['id']!r} is defined twice")
        seen.add(entry["id"])
        patterns = []
        for item in entry["patterns"]:
            try:
                patterns.append(Pattern(re.compile(item["regex"]), item["source"]))
            except re.error as exc:
                raise CausesError(f"{path}: cause {entry['id']!r}: bad regex "
                                  f"{item['regex']!r}: {exc}") from None
        causes.append(Cause(entry["id"], entry["title"], entry["fix"], tuple(patterns),
                            tuple(entry.get("exit_codes", ())), entry["source"]))
    if FALLBACK not in seen:
        raise CausesError(f"{path}: the {FALLBACK!r} cause (used when nothing matches) is missing")
    return tuple(causes)


def parse_report(stdout: str) -> dict | None:
    """The check's JSON object: the last stdout line that parses as one, or None."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def report_messages(report: dict) -> list[str]:
    """The texts inside the check's JSON worth matching: errors first, then warnings."""
    found = []

    def add_error(error):
        if isinstance(error, dict) and error.get("message"):
            found.append(str(error["message"]))

    add_error(report.get("error"))
    for gpu in report.get("gpus") or []:
        add_error(gpu.get("error"))
        arch = gpu.get("arch") or {}
        if arch.get("message"):
            found.append(str(arch["message"]))
        for check in (gpu.get("checks") or {}).values():
            add_error(check.get("error"))
    allreduce = report.get("allreduce") or {}
    add_error(allreduce.get("error"))
    for rank in allreduce.get("ranks") or []:
        add_error(rank.get("error"))
    driver = report.get("driver") or {}
    if driver.get("nvml_error"):
        found.append(str(driver["nvml_error"]))
    found.extend(str(w) for w in report.get("warnings") or [])
    return found


def classify(exit_code: int, stdout: str, stderr: str, causes=None) -> Verdict:
    """Why the check failed (or that it passed), from what `docker run` left behind."""
    causes = load_causes() if causes is None else causes
    report = parse_report(stdout or "")
    if exit_code == 0 and report is not None and report.get("ok") is True:
        return Verdict(True, None, "check passed", None, None, report=report)

    lines = []
    if report is not None:
        for message in report_messages(report):
            lines.extend(message.splitlines())
    lines.extend((stderr or "").splitlines())
    lines.extend(line for line in (stdout or "").splitlines() if not line.lstrip().startswith("{"))
    lines = [line.strip() for line in lines if line.strip()]

    for cause in causes:
        for pattern in cause.patterns:
            for line in lines:
                if pattern.regex.search(line):
                    return _verdict(cause, _clip(line), pattern.source, report)
    for cause in causes:
        if exit_code in cause.exit_codes:
            return _verdict(cause, _fallback_evidence(exit_code, report, stderr), cause.source,
                            report)
    fallback = next(c for c in causes if c.id == FALLBACK)
    return _verdict(fallback, _fallback_evidence(exit_code, report, stderr), None, report)


def _verdict(cause: Cause, evidence: str, source, report) -> Verdict:
    return Verdict(False, cause.id, cause.title, cause.fix, evidence, source, report)


def _fallback_evidence(exit_code: int, report, stderr: str) -> str:
    if report is not None and isinstance(report.get("error"), dict):
        error = report["error"]
        return _clip(f"{error.get('type', 'error')}: {error.get('message', '')}")
    tail = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    if tail:
        return _clip(tail[-1])
    return f"exit code {exit_code}, no output"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EVIDENCE_MAX else text[: _EVIDENCE_MAX - 3] + "..."


def _one_line(exc) -> str:
    return " ".join(str(exc).split())
