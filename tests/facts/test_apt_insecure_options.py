"""apt reads trusted=/allow-insecure= with its own boolean parser (apt-pkg StringToBool): every
spelling of "true" it takes, in any case, makes a source insecure for gpuhost too."""

from __future__ import annotations

import pytest

from facts.managed import apt_source_entries

LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
SOURCES = "/etc/apt/sources.list.d/x.sources"
URI = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"


@pytest.mark.parametrize("value", ["yes", "true", "1", "on", "with", "enable", "YES", "On", "Enable", "2"])
def test_every_true_value_apt_takes_is_insecure(value):
    one_line = apt_source_entries([f"{LIST}\tdeb [trusted={value} signed-by=/k.gpg] {URI} /"])
    assert one_line[0]["insecure"] == [f"trusted={value}"]
    deb822 = apt_source_entries([f"{SOURCES}\tTypes: deb", f"{SOURCES}\tURIs: {URI}", f"{SOURCES}\tSuites: /",
                                 f"{SOURCES}\tAllow-Insecure: {value}", f"{SOURCES}\tSigned-By: /k.gpg"])
    assert deb822[0]["insecure"] == [f"allow-insecure={value}"]


@pytest.mark.parametrize("value", ["no", "false", "0", "off", "without", "disable", "No", "FALSE"])
def test_apts_false_values_are_not(value):
    assert apt_source_entries([f"{LIST}\tdeb [trusted={value} signed-by=/k.gpg] {URI} /"])[0]["insecure"] == []
