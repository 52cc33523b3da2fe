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
    packages: tuple[str, ...]
    replaces: tuple[str, ...]  # patterns of packages a branch/flavour change removes
    builds_modules: bool  # DKMS: needs headers, unsigned under Secure Boot
    repository: Repository | None
    persistenced: str | None
    fabric_manager: str | None
    module_stream: str | None = None
    flavour_package: str | None = None  # dnf: installed only with this flavour's stream
    install_recommends: bool = True  # apt: False installs with --no-install-recommends
    warnings: tuple[str, ...] = field(default=())

    def replaced(self, installed) -> list[str]:
        """Installed packages of this source's family that the wanted set does not keep."""
        wanted = set(self.packages)
        return sorted(p for p in installed if p not in wanted
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


def kernel_flavour(kernel: str) -> str:
    """'6.8.0-85-generic' -> 'generic'; Ubuntu's linux-modules-nvidia-* packages are per flavour."""
    parts = kernel.split("-")
    return parts[-1] if len(parts) >= 3 and not parts[-1].isdigit() else "generic"


def select_source(host_state: dict, branch: str, flavour: str, source: str | None = None,
                  repository_url: str | None = None, key_url: str | None = None,
                  fingerprint: str | None = None) -> DriverSource:
    """The driver source for this host. Raises UsageError with the reason and the fix."""
    data = load_sources()
    key = os_key(host_state)
    if key is None:
        raise UsageError("the host's /etc/os-release names no distribution: cannot choose a driver source")
    os_id = key.split("-")[0]
    name = source or data["defaults"].get(os_id)
    if name is None:
        raise UsageError(f"no driver source for {key}: supported are Ubuntu 22.04/24.04, Debian 12, RHEL/Rocky 8/9")
    entry = data["sources"].get(name)
    if entry is None:
        raise UsageError(f"driver_source is {name!r}: use one of {', '.join(SOURCE_NAMES)}")
    if key not in entry["distros"]:
        raise UsageError(f"driver source {name!r} does not serve {key} (it serves {', '.join(entry['distros'])}): "
                         f"set driver_source to one that does")
    if entry["branches"] != "any" and branch not in entry["branches"]:
        raise UsageError(f"driver source {name!r} has branch {'/'.join(entry['branches'])} only, the plan wants "
                         f"R{branch}: set driver_source: cuda, or driver_branch: {entry['branches'][-1]}")
    if flavour not in entry["packages"]:
        raise UsageError(f"driver source {name!r} has no {flavour} kernel modules: set driver_source: cuda")
    arch = (host_state or {}).get("arch") or "x86_64"
    kernel = (host_state or {}).get("kernel") or ""
    values = {
        "branch": branch,
        "kernel": kernel,
        "kernel_flavour": kernel_flavour(kernel),
        "codename": ((host_state or {}).get("os") or {}).get("codename") or "",
        "repo_distro": (entry.get("repo_distro") or {}).get(key, ""),
        "repo_arch": (entry.get("repo_arch") or {}).get(arch, arch),
    }
    if "repo_arch" in entry and arch not in entry["repo_arch"]:
        raise UsageError(f"driver source {name!r} has no packages for {arch}")
    stream = (entry.get("module_stream") or {}).get(flavour)
    return DriverSource(
        name=name,
        package_manager=entry["package_manager"],
        branch=branch,
        flavour=flavour,
        packages=tuple(p.format(**values) for p in entry["packages"][flavour]),
        replaces=tuple(entry.get("replaces") or ()),
        builds_modules=bool(entry["builds_modules"]),
        repository=_repository(entry.get("repository"), data["keys"], values, repository_url, key_url,
                               fingerprint),
        persistenced=entry.get("persistenced"),
        fabric_manager=entry["fabric_manager"].format(**values) if entry.get("fabric_manager") else None,
        module_stream=stream.format(**values) if stream else None,
        flavour_package=(entry.get("flavour_package") or {}).get(flavour),
        install_recommends=entry.get("install_recommends", True),
    )


def _repository(repo: dict | None, keys: dict, values: dict, override: str | None,
                key_url: str | None, fingerprint: str | None) -> Repository | None:
    """The repository with a site's overrides: a mirror URL; a re-signed mirror's key and fingerprint."""
    if repo is None:
        return None
    url = override or repo["url"].format(**values)
    key = keys[repo["key"]] if repo.get("key") else None
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
