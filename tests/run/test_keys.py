"""Sources other tools wrote for a repository gpuhost relies on: adopted or replaced, on purpose
(gpuhost.run.keys). The reading is real: a lab host set up per Docker's install docs (docker.list
+ docker.asc, Docker's real key) beside gpuhost's Debian non-free source
(tests/fixtures/debian12-brownfield/managed-docker-docs-debian535-held.out)."""

from __future__ import annotations

import copy
from pathlib import Path

from facts import managed
from facts.sections import Sections
from gpuhost.run.keys import choose_source, keyring_trusted

MANAGED = managed.process_managed_sections(Sections(
    (Path(__file__).resolve().parents[1] / "fixtures" / "debian12-brownfield" /
     "managed-docker-docs-debian535-held.out").read_text().splitlines()))
DOCKER = "https://download.docker.com/linux/debian"
DOCKER_KEY = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"  # gpuhost/containers/data/container_repos.yaml
OWN = ("/etc/apt/sources.list.d/docker.sources", "/etc/apt/keyrings/docker.gpg")


def test_docker_docs_source_with_dockers_key_is_adopted():
    choice = choose_source(MANAGED, DOCKER, DOCKER_KEY, *OWN)
    assert choice.adopt == "/etc/apt/sources.list.d/docker.list"
    assert choice.keyring == "/etc/apt/keyrings/docker.asc" and choice.set_aside == () and choice.blocker is None
    assert choice.line.startswith("adopting /etc/apt/sources.list.d/docker.list for https://download.docker.com")


def test_a_source_whose_keyring_is_not_the_pinned_key_is_replaced():
    choice = choose_source(MANAGED, DOCKER, "0" * 40, *OWN)
    assert choice.adopt is None and choice.keyring == OWN[1]
    assert choice.set_aside == ("/etc/apt/sources.list.d/docker.list",)
    assert "does not hold exactly the pinned key" in choice.line and "kept in /var/lib/gpuhost/backup" in choice.line


def test_a_keyring_with_more_keys_than_the_pinned_one_is_not_trusted():
    debian = "/usr/share/keyrings/debian-archive-keyring.gpg"
    held = MANAGED["keyring_fingerprints"][debian]
    assert len(held) > 1 and not keyring_trusted(MANAGED, debian, held[0])
    assert keyring_trusted(MANAGED, "/etc/apt/keyrings/docker.asc", DOCKER_KEY)
    assert not keyring_trusted({"keyring_fingerprints": None}, "/etc/apt/keyrings/docker.asc", DOCKER_KEY)


def test_a_shared_file_naming_the_repository_is_not_edited():
    shared = copy.deepcopy(MANAGED)  # the docs' line appended to /etc/apt/sources.list instead
    for entry in shared["apt_sources"]:
        if entry["uri"] == DOCKER:
            entry["file"] = "/etc/apt/sources.list"
    choice = choose_source(shared, DOCKER, "0" * 40, *OWN)
    assert choice.blocker.startswith("/etc/apt/sources.list also holds other entries")
    assert choose_source(shared, DOCKER, DOCKER_KEY, *OWN).blocker is None  # adopting edits nothing


def test_no_other_source_means_gpuhosts_own():
    choice = choose_source(MANAGED, "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)", "C" * 40,
                           "/etc/apt/sources.list.d/nvidia-container-toolkit.sources", "/k.gpg")
    assert (choice.adopt, choice.set_aside, choice.line, choice.keyring) == (None, (), None, "/k.gpg")


def _with_docker_line(options: str) -> dict:
    """The real brownfield reading with Docker's docs line given other options (one-line form)."""
    text = (Path(__file__).resolve().parents[1] / "fixtures" / "debian12-brownfield" /
            "managed-docker-docs-debian535-held.out").read_text()
    text = text.replace("deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc]", f"deb [{options}]")
    return managed.process_managed_sections(Sections(text.splitlines()))


def test_a_source_that_skips_the_signature_check_is_set_aside_even_with_the_pinned_key():
    for options in ("arch=amd64 trusted=yes signed-by=/etc/apt/keyrings/docker.asc",
                    "allow-insecure=yes signed-by=/etc/apt/keyrings/docker.asc",
                    "Allow-Weak=yes signed-by=/etc/apt/keyrings/docker.asc", "trusted=yes"):
        choice = choose_source(_with_docker_line(options), DOCKER, DOCKER_KEY, *OWN)
        assert choice.adopt is None and choice.keyring == OWN[1], options
        assert choice.set_aside == ("/etc/apt/sources.list.d/docker.list",), options
        assert "skips or weakens apt's signature check" in choice.line, options
    assert choose_source(_with_docker_line("trusted=no signed-by=/etc/apt/keyrings/docker.asc"), DOCKER, DOCKER_KEY,
                         *OWN).adopt == "/etc/apt/sources.list.d/docker.list"


def test_deb822_trusted_yes_is_read():
    entries = managed.apt_source_entries([
        "/etc/apt/sources.list.d/x.sources\tTypes: deb", "/etc/apt/sources.list.d/x.sources\tURIs: https://r/x",
        "/etc/apt/sources.list.d/x.sources\tSuites: stable", "/etc/apt/sources.list.d/x.sources\tTrusted: yes",
        "/etc/apt/sources.list.d/x.sources\tSigned-By: /k.gpg"])
    assert entries[0]["insecure"] == ["trusted=yes"] and entries[0]["signed_by"] == "/k.gpg"
