"""Host data of the registry mirror (the mirror hosts' and the GPU hosts' side), checked before any
host is touched. Every key is optional; a GPU host uses a mirror only when `mirror_host` is set."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator,
                      model_validator)

from gpuhost import yamlfile
from gpuhost.errors import UsageError
from gpuhost.run import grammar

UPSTREAMS_FILE = Path(__file__).resolve().parent / "data" / "upstreams.yaml"
PREFIX = "mirror_"
OTHER_KEYS = ("image_digest",)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
GO_DURATION = re.compile(r"([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+")
REGISTRY_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?")
GROUP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)
HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


@lru_cache(maxsize=1)
def known_upstreams() -> dict[str, dict]:
    """registry name -> {url, port, source} from data/upstreams.yaml."""
    entries = yamlfile.load(UPSTREAMS_FILE.read_text())["upstreams"]
    return {entry["registry"]: entry for entry in entries}


class Upstream(BaseModel):
    """One upstream registry a mirror caches, as a `mirror_upstreams` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: str = Field(description="the name image references use, e.g. docker.io, nvcr.io, registry:5000")
    url: Optional[str] = Field(None, description="the remote the proxy fetches from (default: data/upstreams.yaml)")
    port: Optional[StrictInt] = Field(None, ge=1, le=65535, description="this upstream's port on the mirror host")
    seeded: StrictBool = Field(
        False, description="air-gapped: no upstream; a plain registry on this port that you push (seed) the "
                           "upstream's images into, which the GPU hosts pull from as from a cache")
    credentials_file: Optional[str] = Field(
        None, description="file on the machine running pyinfra holding `user:password` for the upstream; "
                          "read at deploy time, written only into the mirror's 0600 config, never printed")
    readonly: StrictBool = Field(
        False, description="seeded only: refuse every push and delete (distribution's "
                           "storage.maintenance.readonly), once it is seeded")

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        if not REGISTRY_NAME.fullmatch(value):
            raise ValueError(f"registry {value!r} is not a registry name such as nvcr.io or registry.lab:5000")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?", value):
            raise ValueError(f"url {value!r}: use the registry's root, http(s)://host[:port]")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _known_or_complete(self) -> Upstream:
        if self.seeded and (self.url or self.credentials_file):
            raise ValueError(f"upstream {self.registry} is seeded (no upstream): drop its url and credentials_file")
        if self.readonly and not self.seeded:
            raise ValueError(f"upstream {self.registry}: readonly is for a seeded registry (a cache takes no "
                             "pushes): drop it")
        if self.registry not in known_upstreams() and (self.port is None or not (self.url or self.seeded)):
            raise ValueError(f"upstream {self.registry} is not in gpuhost/mirror/data/upstreams.yaml: "
                             + ("give its port" if self.seeded else "give its url and port"))
        return self

    @property
    def name(self) -> str:
        """The systemd instance and file name: docker.io -> docker.io, registry:5000 -> registry-5000."""
        return self.registry.replace(":", "-")

    @property
    def authenticated(self) -> bool:
        """Its clients log in (htpasswd): a seeded registry takes pushes, and a proxy with upstream
        credentials would otherwise serve that account's private images to anyone."""
        return self.seeded or bool(self.credentials_file)

    @property
    def remote_url(self) -> str | None:
        """The remote it caches; None for a seeded (air-gapped) registry."""
        return None if self.seeded else self.url or known_upstreams()[self.registry]["url"]

    @property
    def listen_port(self) -> int:
        return self.port or known_upstreams()[self.registry]["port"]


class MirrorSettings(BaseModel):
    """Host data keys of the registry mirror (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mirror_host: Optional[str] = Field(
        None, description="GPU hosts: the mirror host to pull through, as the GPU hosts reach it (name or IP); "
                          "unset: no mirror")
    mirror_upstreams: tuple[Upstream, ...] = Field(
        (Upstream(registry="docker.io"),),
        description="the upstream registries each mirror caches, one registry process and port per upstream")
    mirror_storage: str = Field("/var/lib/gpuhost-mirror",
                                description="mirror hosts: where the cache lives, one folder per upstream")
    mirror_ttl: str = Field("168h", description="how long cached content is kept after its last use "
                                                "(docker-registry 2.8: fixed at 168h; other values need 3.x)")
    mirror_tls_certificate: Optional[str] = Field(None, description="mirror hosts: PEM certificate path on the mirror")
    mirror_tls_key: Optional[str] = Field(None, description="mirror hosts: its private key's path on the mirror")
    mirror_insecure: StrictBool = Field(False, description="plain HTTP instead of TLS: the explicit choice, which the GPU "
                                                     "hosts then trust through daemon.json insecure-registries")
    mirror_insecure_auth: StrictBool = Field(False, description="UNSAFE, labs only: with mirror_insecure, let clients "
                                                          "log in to seeded or credentialed upstreams over plain "
                                                          "HTTP (their password crosses the network in the clear)")
    mirror_fallback: StrictBool = Field(False, description="GPU hosts: pull from the upstream when the mirror fails "
                                                     "(default: fail loudly)")
    mirror_pull_parallel: StrictInt = Field(4, ge=1, le=1000, description="GPU hosts: how many pull at once after the "
                                                                    "first host of each mirror warmed its cache")
    mirror_password_file: Optional[str] = Field(
        None, description="file on the machine running pyinfra holding the password of the mirror's user "
                          "`gpuhost` (0600): needed when an upstream is seeded or has credentials_file; GPU "
                          "hosts log in with it (docker login --password-stdin), never printed")
    mirror_group: str = Field("mirrors", description="the inventory group whose hosts deploys/registry_mirror.py "
                                                     "turns into mirrors")
    image_digest: Optional[str] = Field(None, description="the plan's image pinned by digest (sha256:...); unset: "
                                                          "the first host's pull pins it for the rest of the run")

    @field_validator("mirror_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not HOST_NAME.fullmatch(value):
            raise ValueError(f"mirror_host {value!r}: use a host name or IP address, without port or scheme "
                             "(each upstream has its own port)")
        return value

    @field_validator("mirror_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not GROUP.fullmatch(value):
            raise ValueError(f"mirror_group {value!r}: use an inventory group name (letters, digits, _ . -)")
        return value

    @field_validator("mirror_storage", "mirror_tls_certificate", "mirror_tls_key")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else grammar.absolute_path(value)

    @field_validator("mirror_ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        if not GO_DURATION.fullmatch(value):
            raise ValueError(f"mirror_ttl {value!r}: use a duration such as 168h or 72h")
        return value

    @field_validator("image_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not DIGEST.fullmatch(value):
            raise ValueError(f"image_digest {value!r}: use sha256: and 64 hex digits")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MirrorSettings:
        if bool(self.mirror_tls_certificate) != bool(self.mirror_tls_key):
            raise ValueError("mirror_tls_certificate and mirror_tls_key go together: set both, or neither "
                             "with mirror_insecure: true")
        if self.mirror_tls_certificate and self.mirror_insecure:
            raise ValueError("mirror_insecure is true but TLS is configured: drop one of them")
        locked = [u.registry for u in self.mirror_upstreams if u.authenticated]
        if locked and not self.mirror_password_file:
            raise ValueError(f"mirror_upstreams {locked[0]} is seeded or holds upstream credentials, so its "
                             "clients must log in: set mirror_password_file (a 0600 file holding a password "
                             "for the mirror's user gpuhost)")
        if locked and self.mirror_insecure and not self.mirror_insecure_auth:
            raise ValueError(f"mirror_upstreams {locked[0]} is seeded or holds upstream credentials, so its clients "
                             "log in, and mirror_insecure would send that password over plain HTTP: configure "
                             "mirror_tls_certificate and mirror_tls_key (or, in a lab only, set "
                             "mirror_insecure_auth: true)")
        seen: dict = {}
        for upstream in self.mirror_upstreams:
            for kind, value in (("registry", upstream.registry), ("port", upstream.listen_port)):
                if (kind, value) in seen:
                    raise ValueError(f"mirror_upstreams: two upstreams share {kind} {value}: give each its own")
                seen[(kind, value)] = True
        return self

    @property
    def scheme(self) -> str:
        return "http" if self.mirror_insecure else "https"

    @property
    def tls(self) -> bool:
        return bool(self.mirror_tls_certificate)

    def upstream_for(self, registry: str) -> Upstream | None:
        return next((u for u in self.mirror_upstreams if u.registry == registry), None)

    def endpoint(self, upstream: Upstream) -> str:
        """host:port of an upstream's registry process on the mirror, as GPU hosts reach it."""
        return f"{self.mirror_host}:{upstream.listen_port}"

    @classmethod
    def from_host_data(cls, data) -> MirrorSettings:
        """Pick the mirror keys out of a host's data; UsageError with one line naming the key and the fix."""
        picked = {key: data.get(key) for key in list(data.keys())
                  if (key.startswith(PREFIX) or key in OTHER_KEYS) and data.get(key) is not None}
        try:
            return cls(**picked)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "mirror settings"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                model = Upstream if error["loc"][0] == "mirror_upstreams" else cls
                known = ", ".join(sorted(model.model_fields))
                raise UsageError(f"{where} is not a gpuhost setting: use one of {known}") from None
            raise UsageError(f"{where}: {message}") from None
