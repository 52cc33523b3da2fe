"""The generated docs pages (host-data keys, the CLI) and the inventory's comments agree with the models
and the CLI."""

import ast
import re
from pathlib import Path

import pytest

from gpuhost import yamlfile
from gpuhost.commands.keys import markdown, pages
from gpuhost.run.host_data import model_keys
from gpuhost.compose.settings import CAPABILITIES, gpuhost_keys, host_problems

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", list(pages()))
def test_generated_docs_page_is_current(path):
    assert (REPO / path).read_text() == pages()[path], \
        f"{path} differs from what it is generated from: run `gpuhost reference-pages`"


def test_generated_pages_are_in_the_site_nav():
    nav = (REPO / "mkdocs.yml").read_text()
    for path in pages():
        assert path.removeprefix("docs/") in nav, f"{path} is not in mkdocs.yml's nav"


def test_every_registered_key_is_in_the_page_once():
    block = markdown()
    for key in gpuhost_keys():
        assert block.count(f"| `{key}` |") == 1, key


def test_keys_are_declared_once_across_capabilities():
    seen = {}
    for capability, model in CAPABILITIES.items():
        for key in model_keys(model):
            assert key not in seen, f"{key} declared by {seen.get(key)} and {capability}"
            seen[key] = capability


def _lab_yaml_comment_settings():
    """`#   key: value   what` lines of lab.yaml's 'Settings' comment."""
    text = (REPO / "inventories" / "lab.yaml").read_text()
    section = text[text.index("# Settings (all optional):"):]
    out = []
    for line in section.splitlines()[1:]:
        if not line.startswith("#"):
            break
        if m := re.match(r"#\s+([a-z_]+): (\[[^]]*\]|\S+)", line):
            out.append((m.group(1), yamlfile.load(m.group(2))))
    return out


def _group_data_settings(name):
    """Assignments in group_data/<name>.py, commented-out ones too (the file's documentation)."""
    out = []
    for line in (REPO / "inventories" / "group_data" / name).read_text().splitlines():
        if m := re.match(r"#? ?([a-z_]+) = (.+?)(  #.*)?$", line):
            out.append((m.group(1), ast.literal_eval(m.group(2))))
    return out


@pytest.mark.parametrize("source", ["lab.yaml", "all.py", "canary.py"])
def test_inventory_comments_name_declared_keys_with_good_values(source):
    pairs = _lab_yaml_comment_settings() if source == "lab.yaml" else _group_data_settings(source)
    assert len(pairs) >= (1 if source == "canary.py" else 9)
    for key, value in pairs:
        assert key in gpuhost_keys(), f"{source} documents {key}, which no capability declares"
        data = {key: value, **({"driver_repository": "https://m/"} if key == "driver_repository_key" else {}),
                **({"toolkit_repository": "https://m/", "toolkit_repository_key": "https://m/k"}
                   if key == "toolkit_repository_fingerprint" else {}),
                **({"toolkit_repository": "https://m/"} if key == "toolkit_repository_key" else {})}
        assert host_problems(data, local=False) == [], (source, key, value)


def test_the_example_inventory_passes_its_own_check():
    from gpuhost.fleet.inventory_file import group_data_dirs, load_inventory

    loaded = load_inventory(REPO / "inventories" / "lab.yaml", group_data_dirs(REPO / "inventories" / "lab.py", None),
                            file_group="lab")
    assert [name for name, _ in loaded.hosts] == ["gpu-01.example.com", "gpu-02.example.com"]
