"""Host data of the container stages (Docker, toolkit, pre-pull), checked before any host is touched."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from gpuhost import yamlfile
from gpuhost.run import grammar
from gpuhost.run.host_data import (HostDataModel, Problem, env_problem, fingerprint, not_blank, secret_file_problem,
                                   url)

REPOS_FILE = Path(__file__).resolve().parent / "data" / "container_repos.yaml"


@lru_cache(maxsize=1)
def repos() -> dict:
    return yamlfile.load(REPOS_FILE.read_text())


def _package_version(value: str) -> str:
    if not value[:1].isdigit():
        raise ValueError("quote a package version, e.g. '1.17.8-1'")
    if not DEBIAN_VERSION.fullmatch(value):
        raise ValueError("use a package version as apt-cache policy shows it, quoted, e.g. '1.17.8-1' "
                         "(digits, letters and .+~:- only, no spaces)")
    return value


def _variable_name(value: str) -> str:
    if not VARIABLE.fullmatch(value):
        raise ValueError("use the name of an environment variable, e.g. REGISTRY_PASSWORD")
    return value


# Debian Policy 5.6.12 (the RPM versions of container_repos.yaml fit too); a shell variable's name.
DEBIAN_VERSION = re.compile(r"[0-9][A-Za-z0-9.+~:-]*", re.ASCII)
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
Url = Annotated[str, AfterValidator(not_blank), AfterValidator(url), AfterValidator(grammar.printable)]
NonBlank = Annotated[str, AfterValidator(not_blank)]
URL_VALUES = {"values": "an http(s):// or file:/ URL"}


class ContainerSettings(HostDataModel):
    """Host-data keys of Docker, the NVIDIA container toolkit and the pre-pull (all optional)."""

    docker_source: Literal["distro", "docker", "keep"] = Field(
        "distro", description="the OS's docker.io, Docker's apt repository, or leave Docker as it is")
    toolkit_source: Literal["nvidia", "keep"] = Field(
        "nvidia", description="NVIDIA's toolkit repository, or leave the toolkit as it is")
    toolkit_version: Annotated[str, AfterValidator(_package_version)] = Field(
        default_factory=lambda: repos()["nvidia_container_toolkit"]["default_version"],
        description="the toolkit packages' version, pinned",
        json_schema_extra={"values": 'a package version, quoted, e.g. `"1.17.8-1"`',
                           "default_text": "in `containers/data/container_repos.yaml`"})
    default_runtime: bool = Field(False, alias="docker_default_runtime",
                                  description="make nvidia Docker's default runtime")
    cdi: bool = Field(False, alias="docker_cdi", description="CDI: `features.cdi` and `/etc/cdi/nvidia.yaml`")
    daemon_options: dict = Field(default_factory=dict, alias="docker_daemon_options",
                                 description="extra daemon.json settings (yours, applied last)",
                                 json_schema_extra={"values": "a mapping of daemon.json keys",
                                                    "fix": "use a mapping of daemon.json keys"})
    restart_with_gpu_containers: bool = Field(
        False, alias="docker_restart_with_gpu_containers",
        description="restart Docker for a daemon.json change even while GPU containers run")
    registry_user: Annotated[str, AfterValidator(not_blank), AfterValidator(grammar.printable)] | None = Field(
        None, description="pre-pull login user (with a password file or variable)")
    registry_password_file: NonBlank | None = Field(
        None, description="file on the machine running pyinfra holding the password (mode 0600)",
        json_schema_extra={"values": "a path"})
    registry_password_env: Annotated[str, AfterValidator(not_blank), AfterValidator(_variable_name)] | None = Field(
        None, description="environment variable there holding the password",
        json_schema_extra={"values": "a variable name"})
    prune_pulled_images: bool = Field(False, description="remove images gpuhost pulled earlier (never others)")
    # A mirror of NVIDIA's libnvidia-container apt repository (air-gapped fleets): its URL, and
    # for a mirror that serves or signs with its own key, the key's URL and pinned fingerprint.
    toolkit_repository: Url | None = Field(None, description="a mirror of NVIDIA's libnvidia-container "
                                                             "repository (`$(ARCH)` allowed)",
                                           json_schema_extra=URL_VALUES)
    toolkit_repository_key: Url | None = Field(None, description="the key URL of a mirror that serves its own key",
                                               json_schema_extra=URL_VALUES)
    toolkit_repository_fingerprint: Annotated[str, AfterValidator(fingerprint)] | None = Field(
        None, description="that key's pinned fingerprint", json_schema_extra={"values": "40 hex digits, spaces allowed"})

    @model_validator(mode="after")
    def _pairs(self):
        """A login needs a password source; a mirror key needs its mirror; a fingerprint the key it pins."""
        if self.registry_user and not (self.registry_password_file or self.registry_password_env):
            raise ValueError("registry_user is set without registry_password_file or registry_password_env: "
                             "set one (the password is never put in host data)")
        if self.toolkit_repository_key and not self.toolkit_repository:
            raise ValueError("toolkit_repository_key is set without toolkit_repository: set the mirror's URL "
                             "too (a mirror key signs the mirror, not NVIDIA's repository)")
        if self.toolkit_repository_fingerprint and not self.toolkit_repository_key:
            raise ValueError("toolkit_repository_fingerprint is set without toolkit_repository_key: set the URL "
                             "of the key it pins")
        return self

    def missing_locally(self) -> list[Problem]:
        """The pre-pull reads the password here, where pyinfra runs: the file or variable must be there."""
        problems = []
        if self.registry_password_file:
            line = secret_file_problem("registry_password_file", self.registry_password_file)
            problems += [Problem(("registry_password_file",), line)] if line else []
        if self.registry_password_env:
            line = env_problem("registry_password_env", self.registry_password_env)
            problems += [Problem(("registry_password_env",), line)] if line else []
        return problems
