"""Where a host's NVIDIA driver comes from: the source for its distro, branch and flavour. Pure.

The facts live in `gpuhost/driver/data/driver_sources.yaml` (URLs, keyrings, pinned key fingerprints
and their provenance, package names); this module only fills in the placeholders for one host
and says, in one line, why a source cannot serve it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from packaging.specifiers import SpecifierSet

from gpuhost import yamlfile
from gpuhost.errors import UsageError

SOURCE_NAMES = ("ubuntu", "cuda", "debian", "cuda-rhel")


@dataclass(frozen=True)
class Repository:
    url: str
    keyring: str
    sources_file: str
    suites: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    key_url: str | None = None  # None: the distro's own keyring, already trusted
    fingerprint: str | None = None


@dataclass(frozen=True)
class DriverSource:
    name: str
    package_manager: str  # apt | dnf
    branch: str
    flavour: str  # open | proprietary
    packages: tuple[str, ...]  # all installed and held; the pinning package first
    replaces: tuple[str, ...]  # patterns of packages a branch/flavour change removes
    builds_modules: bool  # DKMS: needs headers, unsigned under Secure Boot
    repository: Repository | None
    persistenced: str | None
    fabric_manager: tuple[str, ...] = ()  # installed at the driver's exact version (NVSwitch hosts)
    pin_package: str | None = None  # apt: installed alone, before the driver packages
    module_stream: str | None = None
    flavour_package: str | None = None  # dnf: installed only with this flavour's stream
    install_recommends: bool = True  # apt: False installs with --no-install-recommends
    modules: tuple[str, str] | None = None  # Ubuntu: (prebuilt modules' name prefix, DKMS fallback)
    nvlink5: tuple[str, ...] = ()  # NVLink5 hosts: NVIDIA's subnet manager and its tools (own versions)
    imex: tuple[str, ...] = ()  # NVL72 (Grace + NVLink5): IMEX, at the driver's exact version
    warnings: tuple[str, ...] = field(default=())

    @property
    def driver_package(self) -> str:
        """The package whose version is the driver's (not the pinning package: its version is '580-5')."""
        return next(p for p in self.packages if p != self.pin_package)

    def replaced(self, installed, keep=()) -> list[str]:
        """Installed packages of this source's family that the wanted set (and `keep`) does not keep."""
        wanted = set(self.packages) | set(keep)
        family = self.modules[0] if self.modules else None  # the kept modules' ABI-specific packages
        return sorted(p for p in installed if p not in wanted
                      and not (family and p.startswith(family) and p[len(family):][:1].isdigit())
                      and any(fnmatch.fnmatchcase(p, pattern) for pattern in self.replaces))


@lru_cache(maxsize=1)
def load_sources() -> dict:
    text = resources.files("gpuhost.driver").joinpath("data/driver_sources.yaml").read_text()
    return yamlfile.load(text)


def os_key(host_state: dict) -> str | None:
    """'ubuntu-24.04', 'debian-12', 'rhel-9' from the HostState os block (RHEL by major)."""
    info = (host_state or {}).get("os") or {}
    os_id, version = info.get("id"), str(info.get("version_id") or "")
    if not os_id or not version:
        return None
    if os_id in ("rhel", "rocky", "almalinux", "centos"):
        version = version.split(".")[0]
    return f"{os_id}-{version}"


def select_source(host_state: dict, branch: str, flavour: str, source: str | None = None,
                  repository_url: str | None = None, key_url: str | None = None,
                  fingerprint: str | None = None, nvswitch: bool = False) -> DriverSource:
    """The driver source for this host (nvswitch: it needs fabric manager). Raises UsageError
    with the reason and the fix."""
    data = load_sources()
    key = os_key(host_state)
    if key is None:
        raise UsageError("the host's /etc/os-release names no distribution: cannot choose a driver source")
    name = source or _default_source(data, key)
    if name is None:
        raise UsageError(f"no driver source for {key}: supported are {supported_distros(data)}")
    entry = data["sources"].get(name)
    if entry is None:
        raise UsageError(f"driver_source is {name!r}: use one of {', '.join(SOURCE_NAMES)}")
    if key in (entry.get("refused") or {}):
        raise UsageError(f"driver source {name!r} on {key}: {entry['refused'][key]}")
    if key not in entry["distros"]:
        raise UsageError(f"driver source {name!r} does not serve {key} (it serves {', '.join(entry['distros'])}): "
                         f"set driver_source to one that does")
    if branch in (entry.get("transitional") or {}):
        target = entry["transitional"][branch]
        raise UsageError(f"driver source {name!r}: R{branch}'s packages are transitional there (they install "
                         f"R{target}, and fabric manager would no longer match): set driver_branch: {target}")
    branches = _branches(entry, key)
    if branches != "any" and branch not in branches:
        missing = (entry.get("missing") or {}).get(key, {}).get(branch)
        if missing:
            raise UsageError(f"driver source {name!r} on {key} offers R{'/R'.join(branches)}, not R{branch}: {missing}")
        raise UsageError(f"driver source {name!r} has branch {'/'.join(branches)} only on {key}, the plan wants "
                         f"R{branch}: set driver_branch: {branches[-1]}" + ("" if name == "cuda" else
                                                                            ", or driver_source: cuda"))
    if flavour not in entry["packages"]:
        raise UsageError(f"driver source {name!r} has no {flavour} kernel modules: set driver_source: cuda")
    arch = (host_state or {}).get("arch") or "x86_64"
    kernel = (host_state or {}).get("kernel") or ""
    values = {
        "branch": branch,
        "kernel": kernel,
        "codename": ((host_state or {}).get("os") or {}).get("codename") or "",
        "repo_distro": (entry.get("repo_distro") or {}).get(key, ""),
        "repo_arch": (entry.get("repo_arch") or {}).get(arch, arch),
    }
    if "repo_arch" in entry and arch not in entry["repo_arch"]:
        raise UsageError(f"driver source {name!r} has no packages for {arch}")
    stream = (entry.get("module_stream") or {}).get(flavour)
    pin = entry["pin_package"].format(**values) if entry.get("pin_package") else None
    repo = entry.get("repository")
    modules = (entry.get("kernel_modules") or {}).get(flavour)
    multiverse = entry.get("multiverse")
    if repo is None and multiverse and (nvswitch and multiverse["fabric_manager"]
                                        or branch in (multiverse.get("branches") or {}).get(key, ())):
        repo = {**multiverse["repository"], "url": multiverse["repository"]["url"].get(arch, "")}
    return DriverSource(
        name=name,
        package_manager=entry["package_manager"],
        branch=branch,
        flavour=flavour,
        packages=tuple(([pin] if pin else []) + [p.format(**values) for p in entry["packages"][flavour]]),
        replaces=tuple(entry.get("replaces") or ()),
        builds_modules=bool(entry["builds_modules"]),
        repository=_repository(repo, data["keys"], values, repository_url, key_url, fingerprint, key),
        persistenced=entry.get("persistenced"),
        fabric_manager=_fabric_manager(entry.get("fabric_manager") or [], values),
        pin_package=pin,
        module_stream=stream.format(**values) if stream else None,
        flavour_package=(entry.get("flavour_package") or {}).get(flavour),
        install_recommends=entry.get("install_recommends", True),
        modules=(modules["prefix"].format(**values), modules["dkms"].format(**values)) if modules else None,
        nvlink5=tuple(entry.get("nvlink5") or ()),
        imex=tuple(p.format(**values) for p in entry.get("imex") or ()),
    )


def served_branches(host_state: dict, source: str | None = None) -> frozenset[int] | None:
    """The branches the host's driver source can install (None: any, or no source for this host),
    so that the resolver's lts/production policy picks one the host can really get."""
    data = load_sources()
    key = os_key(host_state)
    if key is None:
        return None
    entry = data["sources"].get(source or _default_source(data, key))
    if entry is None or key not in entry["distros"]:
        return None
    branches = _branches(entry, key)
    return None if branches == "any" else frozenset(int(b) for b in branches)


def _default_source(data: dict, distro: str) -> str | None:
    """The default source of 'ubuntu-26.04' (its own entry) or else of 'ubuntu'."""
    return data["defaults"].get(distro) or data["defaults"].get(distro.split("-")[0])


def _branches(entry: dict, distro: str):
    """'any', or the branches a source serves on this distribution (per distribution where they differ)."""
    branches = entry["branches"]
    return branches.get(distro, []) if isinstance(branches, dict) else branches


def supported_distros(data: dict | None = None) -> str:
    """'debian-12, debian-13, ...': every distribution some source serves."""
    data = data or load_sources()
    return ", ".join(sorted({d for entry in data["sources"].values() for d in entry["distros"]}))


def _fabric_manager(rules: list[dict], values: dict) -> tuple[str, ...]:
    """The fabric manager packages for this branch: the first rule whose branch range holds it."""
    for rule in rules:
        if SpecifierSet(rule["branches"]).contains(values["branch"]):
            return tuple(p.format(**values) for p in rule["packages"])
    return ()


def _repository(repo: dict | None, keys: dict, values: dict, override: str | None,
                key_url: str | None, fingerprint: str | None, distro: str) -> Repository | None:
    """The repository with a site's overrides: a mirror URL; a re-signed mirror's key and fingerprint."""
    if repo is None:
        return None
    url = override or repo["url"].format(**values)
    key_name = (repo.get("key_by_distro") or {}).get(distro) or repo.get("key")
    key = keys[key_name] if key_name else None
    if key and (key_url or fingerprint):
        key = {"file": key["file"], **({"url": key_url} if key_url else {}),
               "fingerprint": (fingerprint or key["fingerprint"]).replace(" ", "").upper()}
    keyid = key["fingerprint"][-16:] if key else ""
    return Repository(
        url=url,
        keyring=repo["keyring"].format(keyid=keyid),
        sources_file=repo["sources_file"],
        suites=tuple(s.format(**values) for s in repo.get("suites") or ()),
        components=tuple(repo.get("components") or ()),
        key_url=(key.get("url") or url.rstrip("/") + "/" + key["file"]) if key else None,
        fingerprint=key["fingerprint"] if key else None,
    )
