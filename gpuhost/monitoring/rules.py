"""gpuhost's alerting rules (data/alert_rules.yaml), optionally with one `for:` for every rule."""

from __future__ import annotations

import re

import yaml

from gpuhost import yamlfile
from gpuhost.errors import UsageError
from gpuhost.monitoring.settings import DATA_DIR

RULES_PATH = DATA_DIR / "alert_rules.yaml"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def rules_text(for_duration: str | None = None) -> str:
    """The rules file; with `for_duration` (e.g. "5s", for tests and labs) every rule waits that long."""
    text = RULES_PATH.read_text()
    if for_duration is None:
        return text
    if not DURATION.match(for_duration):
        raise UsageError(f"--for {for_duration!r}: use a Prometheus duration such as 30s, 5m or 1h")
    document = yamlfile.load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = for_duration
    return yaml.safe_dump(document, sort_keys=False, width=120)


def alert_names() -> list[str]:
    return [rule["alert"] for group in yamlfile.load(RULES_PATH.read_text())["groups"] for rule in group["rules"]]
