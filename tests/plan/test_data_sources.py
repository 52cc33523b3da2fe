"""Every vendor fact in the data files names its source: a citation with what was read, when,
and whether it was confirmed there (`verified`), or why not (`reason`). And the facts the
December 2026 audit (shared/reference/vendor-audit-2026-12.md) found wrong or missing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
import yaml

from gpuhost.plan.matrix import DATA_FILES, source_ids

ROOT = Path(__file__).resolve().parents[2] / "gpuhost"
MATRIX = ROOT / "plan" / "data"
DRIVER = ROOT / "driver" / "data" / "driver_sources.yaml"
CONTAINERS = ROOT / "containers" / "data" / "container_repos.yaml"
# data file -> its schema (the matrix files share one, validated merged by gpuhost.plan.matrix)
SCHEMAS = {DRIVER: DRIVER.with_name("driver_sources.schema.json"),
           CONTAINERS: CONTAINERS.with_name("container_repos.schema.json")}
FACT_FILES = [MATRIX / name for name in DATA_FILES] + list(SCHEMAS)


def citations_everywhere() -> dict:
    merged = {}
    for path in FACT_FILES:
        merged.update(yaml.safe_load(path.read_text()).get("citations") or {})
    return merged


def fact_entries(node, where=""):
    """Every mapping that states a vendor fact: list entries of the matrix sections, and the
    keys, driver sources and repositories of the other files (not their nested details)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("citations", "notes", "defaults"):
                continue
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
                    and key not in ("fabric_manager",):
                for i, entry in enumerate(value):
                    yield f"{where}{key}[{i}]", entry
            elif isinstance(value, dict) and key in ("keys", "sources"):
                for name, entry in value.items():
                    yield f"{where}{key}.{name}", entry
            elif isinstance(value, dict) and "fingerprint" in value:
                yield f"{where}{key}", value


@pytest.mark.parametrize("path", FACT_FILES, ids=lambda p: p.name)
def test_every_fact_names_a_known_citation(path):
    citations = citations_everywhere()
    entries = list(fact_entries(yaml.safe_load(path.read_text())))
    assert entries, path
    for where, entry in entries:
        assert "source" in entry, f"{path.name}: {where} has no source"
        for ref in source_ids(entry["source"]):
            assert ref in citations, f"{path.name}: {where} cites {ref!r}, which no file's citations hold"


def test_every_citation_has_a_date_and_a_verified_state_with_the_reason_when_false():
    for name, cite in citations_everywhere().items():
        assert len(cite["cite"]) > 20, name
        assert date.fromisoformat(cite["read"]) <= date.today(), name
        assert isinstance(cite["verified"], bool), name
        if not cite["verified"]:
            assert len(cite.get("reason", "")) > 20, f"{name}: verified: false needs the reason"


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: p.name)
def test_data_files_match_their_schema(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMAS[path].read_text()))


def test_a_fact_without_a_source_fails_the_schema():
    data = yaml.safe_load(DRIVER.read_text())
    del data["keys"]["nvidia-cuda-rhel"]["source"]
    with pytest.raises(jsonschema.ValidationError, match="'source' is a required property"):
        jsonschema.validate(data, json.loads(SCHEMAS[DRIVER].read_text()))
    data = yaml.safe_load(CONTAINERS.read_text())
    data["citations"]["docker-docs"]["verified"] = False
    with pytest.raises(jsonschema.ValidationError, match="'reason' is a required property"):
        jsonschema.validate(data, json.loads(SCHEMAS[CONTAINERS].read_text()))


# --- The audit's findings (each fails on 90aa2a7) -----------------------------------------------

def test_rhel_cuda_key_is_the_fingerprint_signatures_md_gives():
    keys = yaml.safe_load(DRIVER.read_text())["keys"]
    assert keys["nvidia-cuda-rhel"]["fingerprint"] == "610C7B14E068A878070DA4E99CD0A493D42D0685"
    assert keys["nvidia-cuda-rhel"]["fingerprint"][-16:].lower() == "9cd0a493d42d0685"  # rpm's long key id


def test_toolkit_default_is_1_20_0():
    assert yaml.safe_load(CONTAINERS.read_text())["nvidia_container_toolkit"]["default_version"] == "1.20.0-1"


def test_data_status_reports_stale_citations_and_ended_branches_by_the_datas_dates():
    from gpuhost.commands.data import status
    now = status(date(2026, 12, 1), max_age=120)
    assert not now["stale"] and {b["branch"] for b in now["ended"]} == {470, 535, 610}
    later = status(date(2027, 6, 1), max_age=120)
    assert len(later["stale"]) == len(later["citations"]) and 595 in {b["branch"] for b in later["ended_lts"]}
