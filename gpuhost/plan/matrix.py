"""The compatibility matrix: the YAML files in gpuhost/plan/data, validated and indexed once per process.

Everything the resolver knows about drivers, CUDA, architectures, GPUs and PyTorch comes from
these files, each entry with its source. A broken file fails loudly, naming the file and entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from packaging.version import Version

from gpuhost import yamlfile
from gpuhost.errors import MatrixError

DATA_FILES = ("cuda.yaml", "drivers.yaml", "architectures.yaml", "gpus.yaml", "pytorch.yaml")
PLATFORMS = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}
MERGED_KEYS = ("notes", "citations")  # keys that several files may carry


class DriverVersion(str):
    """A driver version that prints as NVIDIA writes it (580.65.06) and compares as numbers."""

    @property
    def major(self) -> int:
        return int(self.split(".")[0])

    def _key(self) -> Version:
        return Version(self)

    def __lt__(self, other):
        return self._key() < Version(other)

    def __le__(self, other):
        return self._key() <= Version(other)

    def __gt__(self, other):
        return self._key() > Version(other)

    def __ge__(self, other):
        return self._key() >= Version(other)

    __hash__ = str.__hash__


def cc_key(cc: str) -> tuple[int, int]:
    """'9.0' -> (9, 0), so compute capabilities compare as numbers ('10.0' > '9.0')."""
    major, minor = cc.split(".")
    return int(major), int(minor)


@dataclass(frozen=True)
class Architecture:
    name: str
    compute_capabilities: tuple[str, ...]
    first_branch: int
    last_branch: int | None
    kernel_modules: tuple[str, ...]
    source: str
    first_branch_by_cc: dict[str, int] = field(default_factory=dict)  # later compute capabilities (10.3: 575)

    def first_branch_for(self, cc: str | None = None) -> int:
        return self.first_branch_by_cc.get(cc, self.first_branch)

    def supported_by(self, branch: int, cc: str | None = None) -> bool:
        """Whether the branch drives this architecture (a GPU of compute capability `cc`, when given)."""
        return branch >= self.first_branch_for(cc) and (self.last_branch is None or branch <= self.last_branch)


@dataclass(frozen=True)
class GpuModel:
    names: tuple[str, ...]
    compute_capability: str
    pci_ids: tuple[str, ...]
    kernel_modules: tuple[str, ...] | None
    source: str


@dataclass(frozen=True)
class ChipRule:
    pattern: re.Pattern
    architecture: str
    compute_capability: str


@dataclass(frozen=True)
class Branch:
    branch: int
    kind: str
    end_of_life: str | None  # None: no date published
    first_version: DriverVersion  # "<branch>.0" when the first release is not known
    newest_cuda: str
    source: str
    end_of_life_conflict: str | None = None  # a later date another source gives (end_of_life is the earlier)


@dataclass(frozen=True)
class Variant:
    cuda: str
    arch_list: tuple[str, ...]
    arch_list_aarch64: tuple[str, ...] | None = None  # None: the same as x86_64's, or not published

    def arch_list_for(self, platform: str = "linux/amd64") -> tuple[str, ...]:
        return self.arch_list_aarch64 if platform == "linux/arm64" and self.arch_list_aarch64 else self.arch_list

    def covers(self, cc: str, platform: str = "linux/amd64") -> bool:
        """An arch entry X.z covers compute capability X.y when z <= y (same major only)."""
        major, minor = cc_key(cc)
        return any(cc_key(a)[0] == major and cc_key(a)[1] <= minor for a in self.arch_list_for(platform))


@dataclass(frozen=True)
class Release:
    torch: str
    patches: tuple[str, ...]
    cudnn: str
    variants: tuple[Variant, ...]

    @property
    def newest_patch(self) -> str:
        return max(self.patches, key=Version)


@dataclass(frozen=True)
class ImageFamily:
    family: str
    repository: str
    tag: str
    driver_rule: str
    source: str
    platforms: tuple[str, ...] = ("linux/amd64",)  # the OCI platforms it publishes manifests for


@dataclass(frozen=True)
class NgcRelease:
    """One NGC PyTorch container release (nvcr.io/nvidia/pytorch:YY.MM-py3)."""

    release: str  # "26.09"
    torch: str  # the upstream minor NVIDIA's build is based on: "2.14"
    cuda: str
    source: str


@dataclass(frozen=True)
class Matrix:
    toolkit_drivers: dict[str, DriverVersion]  # CUDA "M.m" -> GA driver
    minor_version_floors: dict[int, DriverVersion]  # CUDA major -> driver
    branches: tuple[Branch, ...]
    architectures: dict[str, Architecture]
    chip_rules: tuple[ChipRule, ...]
    gpus: tuple[GpuModel, ...]
    releases: dict[str, Release]  # "2.9" -> Release
    images: dict[str, ImageFamily]
    supported_os: dict[str, tuple[str, ...]]  # "ubuntu" -> ("22.04", "24.04")
    ngc_releases: tuple[NgcRelease, ...] = ()  # oldest first

    def architecture_of(self, cc: str) -> Architecture | None:
        for arch in self.architectures.values():
            if cc in arch.compute_capabilities:
                return arch
        return None

    def branch(self, number: int) -> Branch | None:
        return next((b for b in self.branches if b.branch == number), None)

    def newest_torch(self) -> str:
        return max(self.releases, key=Version)


def source_ids(source) -> list[str]:
    """An entry's `source`: one id of the `citations` catalogue, or a list of them."""
    return list(source) if isinstance(source, list) else [source]


def _source_text(source, catalogue: dict) -> str:
    return "; ".join(catalogue[i]["cite"] for i in source_ids(source))


def _check_sources(merged: dict, origin: dict[str, str]) -> None:
    """Every entry's source names an entry of some file's `citations` catalogue."""
    catalogue = merged.get("citations") or {}
    for section, entries in merged.items():
        if section in MERGED_KEYS or not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            nested = [v["source"] for v in entry.values() if isinstance(v, dict) and "source" in v]
            for ref in [r for s in [entry.get("source", []), *nested] for r in source_ids(s)]:
                if ref not in catalogue:
                    raise MatrixError(f"matrix file {origin.get(section, 'matrix')}: entry {section}[{i}]: "
                                      f"source '{ref}' is not in any file's citations")


def _read_files(data_dir) -> tuple[dict, dict[str, str]]:
    merged: dict = {}
    origin: dict[str, str] = {}
    for name in DATA_FILES:
        path = data_dir / name
        try:
            content = yamlfile.load(path.read_text())
        except (OSError, yamlfile.YAMLError) as exc:
            raise MatrixError(f"matrix file {name} cannot be read: {str(exc).splitlines()[0]}") from None
        if not isinstance(content, dict):
            raise MatrixError(f"matrix file {name} must be a mapping of sections")
        for key, value in content.items():
            if key in MERGED_KEYS:
                if isinstance(value, list):
                    merged.setdefault(key, []).extend(value)
                else:
                    merged.setdefault(key, {}).update(value)
                continue
            if key in merged:
                raise MatrixError(f"matrix section '{key}' appears in both {origin[key]} and {name}")
            merged[key] = value
            origin[key] = name
    return merged, origin


def _validate(merged: dict, origin: dict[str, str], schema: dict) -> None:
    import jsonschema  # noqa: PLC0415 (about 90 ms to import: only when the files are new to us)

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(merged))
    if error is None:
        return
    path = list(error.absolute_path)
    where = origin.get(path[0], "matrix") if path else "matrix"
    entry = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    raise MatrixError(f"matrix file {where}: entry {entry or '(top)'}: {error.message}")


def _build(raw: dict) -> Matrix:
    catalogue = raw["citations"]
    architectures = {
        a["name"]: Architecture(
            a["name"], tuple(a["compute_capabilities"]), a["first_branch"], a["last_branch"],
            tuple(a["kernel_modules"]), _source_text(a["source"], catalogue),
            dict(a.get("first_branch_by_cc") or {}),
        )
        for a in raw["architectures"]
    }
    known_cc = {cc for a in architectures.values() for cc in a.compute_capabilities}
    branches = tuple(sorted(
        (Branch(b["branch"], b["kind"], b["end_of_life"], DriverVersion(b["first_version"] or f"{b['branch']}.0"),
                b["newest_cuda"], _source_text(b["source"], catalogue),
                (b.get("end_of_life_conflict") or {}).get("date")) for b in raw["branches"]),
        key=lambda b: b.branch))
    first_of = {b.branch: b.first_version for b in branches}
    toolkit_drivers = {}
    for i, t in enumerate(raw["toolkits"]):
        if "updates" in t:
            toolkit_drivers[t["cuda"]] = DriverVersion(t["updates"]["GA"])
        elif t["driver_branch"] in first_of:
            toolkit_drivers[t["cuda"]] = first_of[t["driver_branch"]]
        else:
            raise MatrixError(f"matrix file cuda.yaml: entry toolkits[{i}] (CUDA {t['cuda']}): driver branch "
                              f"{t['driver_branch']} is not in drivers.yaml")

    gpus = []
    for i, g in enumerate(raw["gpus"]):
        if g["compute_capability"] not in known_cc:
            raise MatrixError(f"matrix file gpus.yaml: entry gpus[{i}] ({g['names'][0]}): compute capability "
                              f"{g['compute_capability']} belongs to no architecture in architectures.yaml")
        gpus.append(GpuModel(tuple(g["names"]), g["compute_capability"], tuple(g["pci_ids"]),
                             tuple(g["kernel_modules"]) if "kernel_modules" in g else None,
                             _source_text(g["source"], catalogue)))
    chip_rules = []
    for i, r in enumerate(raw["chip_rules"]):
        if r["architecture"] not in architectures:
            raise MatrixError(f"matrix file architectures.yaml: entry chip_rules[{i}]: unknown architecture "
                              f"'{r['architecture']}'")
        chip_rules.append(ChipRule(re.compile(r["pattern"]), r["architecture"], r["compute_capability"]))

    releases = {}
    for i, r in enumerate(raw["releases"]):
        for v in r["variants"]:
            if v["cuda"] not in toolkit_drivers:
                raise MatrixError(f"matrix file pytorch.yaml: entry releases[{i}] (torch {r['torch']}): CUDA "
                                  f"{v['cuda']} has no toolkit entry in cuda.yaml")
        for p in r["patches"]:
            if not p.startswith(r["torch"] + "."):
                raise MatrixError(f"matrix file pytorch.yaml: entry releases[{i}]: patch {p} is not a "
                                  f"release of torch {r['torch']}")
        releases[r["torch"]] = Release(
            r["torch"], tuple(r["patches"]), r["cudnn"],
            tuple(Variant(v["cuda"], tuple(v["arch_list"]),
                          tuple(v["arch_list_aarch64"]) if "arch_list_aarch64" in v else None)
                  for v in r["variants"]),
        )
    ngc_releases = []
    for i, n in enumerate(raw["ngc_releases"]):
        if n["cuda"] not in toolkit_drivers:
            raise MatrixError(f"matrix file pytorch.yaml: entry ngc_releases[{i}] (NGC {n['release']}): CUDA "
                              f"{n['cuda']} has no toolkit entry in cuda.yaml")
        ngc_releases.append(NgcRelease(n["release"], n["torch"], n["cuda"], _source_text(n["source"], catalogue)))
    return Matrix(
        toolkit_drivers=toolkit_drivers,
        minor_version_floors={f["cuda_major"]: DriverVersion(f["driver"]) for f in raw["minor_version_floors"]},
        branches=branches,
        architectures=architectures,
        chip_rules=tuple(chip_rules),
        gpus=tuple(gpus),
        releases=releases,
        images={i["family"]: ImageFamily(i["family"], i["repository"], i["tag"], i["driver_rule"],
                                         _source_text(i["source"], catalogue), tuple(i["platforms"]))
                for i in raw["images"]},
        ngc_releases=tuple(sorted(ngc_releases, key=lambda n: Version(n.release))),
        supported_os={o["id"]: tuple(o["versions"]) for o in raw["supported_os"]},
    )


def load_matrix_from(data_dir: Path) -> Matrix:
    """Read, validate and index the data files in data_dir (tests point this at broken copies)."""
    merged, origin = _read_files(Path(data_dir))
    schema_text = (Path(data_dir) / "matrix.schema.json").read_text()
    stamp = _validated_stamp(merged, schema_text)
    if stamp is None or not stamp.exists():
        _validate(merged, origin, json.loads(schema_text))
        _check_sources(merged, origin)
        _touch(stamp)
    return _build(merged)


def _validated_stamp(merged: dict, schema_text: str) -> Path | None:
    """A file whose presence says: exactly this data passed exactly this schema before.

    Validation is the slow part of loading (jsonschema's import), and the data rarely changes, so
    every deploy and CLI run would pay it for nothing. The name is a hash of data and schema, so
    any edit is validated again. Without a cache directory, validation simply always runs."""
    root = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache" if Path.home().is_dir() else None)
    if root is None:
        return None
    digest = hashlib.sha256((json.dumps(merged, sort_keys=True, default=str) + schema_text).encode()).hexdigest()
    return Path(root) / "gpuhost" / f"matrix-valid-{digest[:32]}"


def _touch(stamp: Path | None) -> None:
    if stamp is None:
        return
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:
        pass  # a read-only home: validate again next time


@cache
def load_matrix() -> Matrix:
    """The packaged matrix, loaded once per process."""
    return load_matrix_from(Path(str(resources.files("gpuhost.plan") / "data")))
