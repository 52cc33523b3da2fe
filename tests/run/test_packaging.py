"""The wheel carries every module and data file: cloud-init first boot installs gpuhost from it,
so a folder without __init__.py or a data file outside package-data breaks only installed hosts."""

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gpuhost"
DATA_FOLDERS = {"data", "recipe"}  # files shipped as package data, not imported as modules


def test_every_code_folder_is_a_package():
    folders = {p.parent for p in PACKAGE.rglob("*.py")
               if not DATA_FOLDERS & set(p.relative_to(PACKAGE).parts[:-1]) and "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").exists())
    assert missing == [], f"add __init__.py to: {missing}"


def test_every_data_file_is_package_data():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gpuhost"]
    files = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
             if p.is_file() and DATA_FOLDERS & set(p.relative_to(PACKAGE).parts[:-1]) and "__pycache__" not in p.parts]
    assert files, "no data files found"
    left_out = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert left_out == [], f"not in [tool.setuptools.package-data]: {left_out}"
