"""The health rules (gpuhost/health/data/health.yaml): schema, citations, names that exist."""

from __future__ import annotations

import copy
import json
from datetime import date

import jsonschema
import pytest

from gpuhost.errors import GpuhostError
from gpuhost.health.verdict import RULES_FILE, SCHEMA_FILE, check_rules, load_rules, rules_json
from gpuhost import yamlfile

RAW = yamlfile.load(RULES_FILE.read_text())
SCHEMA = json.loads(SCHEMA_FILE.read_text())


def test_rules_match_their_schema_and_every_name_they_use_exists():
    jsonschema.validate(json.loads(rules_json()), SCHEMA)
    assert check_rules(RAW) == []


def test_every_citation_has_a_date_and_a_reason_when_not_verified():
    for name, cite in RAW["citations"].items():
        assert date.fromisoformat(cite["read"]) <= date.today(), name
        if not cite["verified"]:
            assert len(cite["reason"]) > 20, name


def test_unknown_keys_and_unverified_citations_without_reason_fail_the_schema():
    broken = copy.deepcopy(json.loads(rules_json()))
    broken["xids"]["79"]["action"] = "reboot"
    with pytest.raises(jsonschema.ValidationError, match="'action' was unexpected"):
        jsonschema.validate(broken, SCHEMA)
    broken = copy.deepcopy(json.loads(rules_json()))
    del broken["citations"]["nvsentinel-xid"]["reason"]
    with pytest.raises(jsonschema.ValidationError, match="'reason' is a required property"):
        jsonschema.validate(broken, SCHEMA)


def test_a_wrong_name_is_one_line_naming_it(tmp_path):
    broken = copy.deepcopy(RAW)
    broken["xids"]["79"]["bucket"] = "REBOOT_NOW"
    assert check_rules(broken) == ["xids.79: bucket 'REBOOT_NOW' is not in buckets"]
    path = tmp_path / "health.yaml"
    path.write_text(RULES_FILE.read_text().replace("source: xid-catalog}", "source: nowhere}", 1))
    with pytest.raises(GpuhostError, match="cites 'nowhere', which is not in citations"):
        load_rules(path)


def test_the_catalogue_buckets_of_the_acceptance_cases():
    """Xid 79: reboot (RESTART_BM); 48 and 95: reset (RESET_GPU); 13, 31, 94: the application's."""
    buckets = {n: RAW["buckets"][RAW["xids"][n]["bucket"]]["verdict"] for n in ("79", "48", "95", "13", "31", "94")}
    assert buckets == {"79": "failed", "48": "failed", "95": "failed", "13": "ok", "31": "ok", "94": "ok"}
