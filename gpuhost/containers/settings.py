"""Host data of the container stages (Docker, toolkit, pre-pull), checked before any host is touched."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from gpuhost import yamlfile

from gpuhost.errors import UsageError

REPOS_FILE = Path(__file__).resolve().parent / "data" / "container_repos.yaml"
CHOICES = {"docker_source": ("distro", "docker", "keep"), "toolkit_source": ("nvidia", "keep")}
FLAGS = ("docker_default_runtime", "docker_cdi", "docker_restart_with_gpu_containers",
         "prune_pulled_images")
TEXTS = ("registry_user", "registry_password_file", "registry_password_env")
URL_PREFIXES = ("https://", "http://", "file:/")


@lru_cache(maxsize=1)
def repos() -> dict:
    return yamlfile.load(REPOS_FILE.read_text())


@dataclass(frozen=True)
class ContainerSettings:
    docker_source: str = "distro"
    toolkit_source: str = "nvidia"
    toolkit_version: str = ""
    default_runtime: bool = False
    cdi: bool = False
    daemon_options: dict = field(default_factory=dict)
    restart_with_gpu_containers: bool = False
    registry_user: str | None = None  # pre-pull login; the password comes from a file or env var
    registry_password_file: str | None = None
    registry_password_env: str | None = None
    prune_pulled_images: bool = False  # remove images gpuhost pulled earlier (never others)
    # A mirror of NVIDIA's libnvidia-container apt repository (air-gapped fleets): its URL, and
    # for a mirror that serves or signs with its own key, the key's URL and pinned fingerprint.
    toolkit_repository: str | None = None
    toolkit_repository_key: str | None = None
    toolkit_repository_fingerprint: str | None = None  # 40 hex digits, upper case, no spaces


def container_settings(data) -> ContainerSettings:
    """The container stages' host data (this stage's and prepull's), checked; UsageError names
    the key and the fix. Meant to run for every host before any is touched (check_hosts)."""
    for key, allowed in CHOICES.items():
        value = data.get(key)
        if value is not None and value not in allowed:
            raise UsageError(f"{key} is {value!r}: use one of {', '.join(allowed)}")
    for key in FLAGS:
        if not isinstance(data.get(key, False), bool):
            raise UsageError(f"{key} is {data.get(key)!r}: use true or false")
    for key in TEXTS:
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise UsageError(f"{key} is {data.get(key)!r}: use a string")
    if data.get("registry_user") and not (data.get("registry_password_file")
                                          or data.get("registry_password_env")):
        raise UsageError("registry_user is set without registry_password_file or "
                         "registry_password_env: set one (the password is never put in host data)")
    options = data.get("docker_daemon_options") or {}
    if not isinstance(options, dict):
        raise UsageError(f"docker_daemon_options is {options!r}: use a mapping of daemon.json keys")
    version = data.get("toolkit_version") or repos()["nvidia_container_toolkit"]["default_version"]
    if not isinstance(version, str) or not version[:1].isdigit():
        raise UsageError(f"toolkit_version is {version!r}: quote a package version, e.g. '1.17.8-1'")
    mirror = _toolkit_mirror(data)
    return ContainerSettings(
        docker_source=data.get("docker_source") or "distro",
        toolkit_source=data.get("toolkit_source") or "nvidia",
        toolkit_version=version,
        default_runtime=data.get("docker_default_runtime", False),
        cdi=data.get("docker_cdi", False),
        daemon_options=options,
        restart_with_gpu_containers=data.get("docker_restart_with_gpu_containers", False),
        registry_user=data.get("registry_user"),
        registry_password_file=data.get("registry_password_file"),
        registry_password_env=data.get("registry_password_env"),
        prune_pulled_images=data.get("prune_pulled_images", False),
        **mirror,
    )


def _toolkit_mirror(data) -> dict:
    """toolkit_repository, _key, _fingerprint, checked. A key needs the mirror it signs; a
    fingerprint needs the key it pins (NVIDIA's own key is pinned in container_repos.yaml)."""
    values = {}
    for key in ("toolkit_repository", "toolkit_repository_key", "toolkit_repository_fingerprint"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str) or not value.strip()):
            raise UsageError(f"{key} is {value!r}: use a quoted string")
        values[key] = value.strip() if value is not None else None
    for key in ("toolkit_repository", "toolkit_repository_key"):
        if values[key] is not None and not values[key].startswith(URL_PREFIXES):
            raise UsageError(f"{key} is {values[key]!r}: use an http(s):// or file:/ URL")
    fingerprint = values["toolkit_repository_fingerprint"]
    if fingerprint is not None:
        fingerprint = fingerprint.replace(" ", "").upper()
        if len(fingerprint) != 40 or any(c not in "0123456789ABCDEF" for c in fingerprint):
            raise UsageError(f"toolkit_repository_fingerprint is {values['toolkit_repository_fingerprint']!r}: "
                             "use the key's 40-hex-digit fingerprint")
        values["toolkit_repository_fingerprint"] = fingerprint
    if values["toolkit_repository_key"] and not values["toolkit_repository"]:
        raise UsageError("toolkit_repository_key is set without toolkit_repository: set the mirror's URL "
                         "too (a mirror key signs the mirror, not NVIDIA's repository)")
    if fingerprint and not values["toolkit_repository_key"]:
        raise UsageError("toolkit_repository_fingerprint is set without toolkit_repository_key: set the URL "
                         "of the key it pins")
    return values
