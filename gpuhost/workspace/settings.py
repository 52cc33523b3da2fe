"""Host data of the workspace stage: `workspaces:` and `workspace_users:`, checked before any host is touched.

    workspace_users:                      # usually in group_data/all.py: the same people everywhere
      alice: {uid: 1001, gid: 1001, ssh_keys: ["ssh-ed25519 AAAA... alice@laptop"]}
    workspaces:                           # per host (or group)
      - {user: alice, gpus: [0, 1], cpus: 16, memory: 128g}
      - {user: bob, gpus: ["GPU-5d3c..."], jupyter: false, ssh_port: 2223}

What can be checked without the host is checked here (unknown user, two workspaces claiming one
GPU, two claiming one port, an index beyond `target_gpus`); GPU indices and UUIDs are resolved
against the host's GPUs in `gpuhost.workspace.decide.resolve_gpus`, before any change.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpuhost import yamlfile
from gpuhost.errors import UsageError
from gpuhost.run import grammar

DATA_FILE = Path(__file__).resolve().parent / "data" / "workspace.yaml"
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
SIZE = re.compile(r"[0-9]+(\.[0-9]+)?[bkmg]?")
UUID = re.compile(r"(GPU|MIG)-[0-9A-Za-z-]+")
SSH_KEY = re.compile(r"[A-Za-z0-9@.-]+ +[A-Za-z0-9+/=.]+( +[^\x00-\x1f\x7f-\x9f]*)?")  # type, key, comment
VOLUME_ROOT = "/srv/workspaces"  # the default workspace_volume_root and where default volumes go
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-")


@lru_cache(maxsize=1)
def layer_data() -> dict:
    return yamlfile.load(DATA_FILE.read_text())


def _default(key: str):
    return layer_data()["defaults"][key]


class WorkspaceUser(BaseModel):
    """A person with workspaces: the uid/gid their container runs as and owns its volumes with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    uid: int = Field(ge=1, le=2**31 - 2, description="uid inside the container and of the volumes (not 0)")
    gid: int = Field(ge=1, le=2**31 - 2, description="gid inside the container and of the volumes (not 0)")
    ssh_keys: tuple[str, ...] = Field(default=(), description="public keys allowed to log in over SSH")

    @field_validator("ssh_keys")
    @classmethod
    def _public_keys(cls, keys):
        for key in keys:
            if not key.strip().startswith(KEY_TYPES) or not SSH_KEY.fullmatch(key.strip()):
                raise ValueError(f"{key[:30]!r}... is not an OpenSSH public key line (ssh-ed25519 AAAA...)")
        return tuple(key.strip() for key in keys)


class Workspace(BaseModel):
    """One user's container on one host: JupyterLab and/or SSH on the plan's image."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str = Field(description="a name from workspace_users")
    name: Optional[str] = Field(default=None, description="unit and container name; default: the user")
    gpus: tuple[Union[int, str], ...] = Field(default=(), description="GPU indices or UUIDs (GPU-...)")
    exclusive: bool = Field(default=True, description="no other workspace may be given these GPUs")
    jupyter: bool = Field(default=True, description="run JupyterLab")
    ssh: bool = Field(default=True, description="run an SSH server (key-only)")
    jupyter_port: int = Field(default_factory=lambda: _default("jupyter_port"), ge=1024, le=65535,
                              description="host port of JupyterLab (on 127.0.0.1 without TLS)")
    ssh_port: int = Field(default_factory=lambda: _default("ssh_port"), ge=1024, le=65535,
                          description="host port of the workspace's SSH server")
    jupyter_tls_cert: Optional[str] = Field(default=None, description="host path of a PEM certificate: "
                                            "with jupyter_tls_key, Jupyter listens on every address")
    jupyter_tls_key: Optional[str] = Field(default=None, description="host path of its private key")
    volumes: tuple[str, ...] = Field(default=(), description="HOST_DIR:CONTAINER_DIR[:ro]; default "
                                     "/srv/workspaces/<name>:/workspace")
    cpus: float = Field(default_factory=lambda: float(_default("cpus")), gt=0,
                        description="CPU limit (docker --cpus; the default as a CFS quota)")
    memory: str = Field(default_factory=lambda: _default("memory"),
                        description="memory limit, swap included (docker --memory), e.g. 64g")
    pids: int = Field(default_factory=lambda: _default("pids"), ge=64, description="docker --pids-limit")
    shm: str = Field(default_factory=lambda: _default("shm"), description="docker --shm-size")
    image: Optional[str] = Field(default=None, description="an image of your own instead of the plan's "
                                 "image + gpuhost's layer (it needs python3, jupyterlab and sshd)")
    apt_packages: tuple[str, ...] = Field(default=(), description="more Debian/Ubuntu packages in the layer")
    state: Literal["running", "stopped", "absent"] = Field(default="running", description="absent removes "
                                                           "the unit and container, never the volumes")
    restart: Literal["if-idle", "always"] = Field(default="if-idle", description="apply a change to a running "
                                                  "workspace only when no GPU process runs in it (if-idle)")
    health_interval_s: int = Field(default_factory=lambda: _default("health_interval_s"), ge=1, le=3600)

    @field_validator("name", "user")
    @classmethod
    def _name(cls, value):
        if value is not None and not NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a name: use lower-case letters, digits and '-' (a letter first)")
        return value

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, gpus):
        for gpu in gpus:
            if isinstance(gpu, bool) or (isinstance(gpu, int) and gpu < 0) or \
                    (isinstance(gpu, str) and not UUID.fullmatch(gpu)):
                raise ValueError(f"{gpu!r} is not a GPU: use an index (0, 1, ...) or a UUID (GPU-...)")
        if len(set(gpus)) != len(gpus):
            raise ValueError(f"{list(gpus)} names a GPU twice")
        return gpus

    @field_validator("memory", "shm")
    @classmethod
    def _size(cls, value):
        if value is not None and not SIZE.fullmatch(str(value).lower()):
            raise ValueError(f"{value!r} is not a size: use e.g. 512m or 64g")
        if value is not None and float(str(value).lower().rstrip("bkmg")) == 0:
            raise ValueError(f"{value!r} is no limit at all (docker reads 0 as unlimited): use e.g. 512m or 64g")
        return None if value is None else str(value).lower()

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, volumes):
        for volume in volumes:
            parts = volume.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")) or \
                    not all(grammar.ABSOLUTE_PATH.fullmatch(p) and "/../" not in f"{p}/" for p in parts[:2]):
                raise ValueError(f"{volume!r}: use HOST_DIR:CONTAINER_DIR or HOST_DIR:CONTAINER_DIR:ro, "
                                 "absolute paths of letters, digits and ._+@,=- (no space, quote, $, .. or "
                                 "control character)")
            if parts[0].rstrip("/") == "":
                raise ValueError(f"{volume!r}: the host's / cannot be a workspace volume: name a directory")
        return volumes

    @field_validator("jupyter_tls_cert", "jupyter_tls_key")
    @classmethod
    def _path(cls, value):
        return None if value is None else grammar.absolute_path(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value):
        return None if value is None else grammar.image_reference(value)

    @field_validator("apt_packages")
    @classmethod
    def _packages(cls, packages):
        return tuple(grammar.debian_package(p) for p in packages)

    @model_validator(mode="after")
    def _consistent(self):
        if not (self.jupyter or self.ssh):
            raise ValueError("neither jupyter nor ssh: turn one on")
        if bool(self.jupyter_tls_cert) != bool(self.jupyter_tls_key):
            raise ValueError("jupyter_tls_cert and jupyter_tls_key go together: set both or neither")
        if self.jupyter and self.ssh and self.jupyter_port == self.ssh_port:
            raise ValueError(f"port clash: jupyter_port and ssh_port are both {self.ssh_port}: give each its own")
        return self

    @property
    def id(self) -> str:
        return self.name or self.user

    @property
    def mounts(self) -> tuple[tuple[str, str, str], ...]:
        """(host dir, container dir, rw|ro) for each volume."""
        volumes = self.volumes or (f"{VOLUME_ROOT}/{self.id}:{_default('mount')}",)
        return tuple(tuple((v.split(":") + ["rw"])[:3]) for v in volumes)  # type: ignore[misc]


class WorkspaceSettings(BaseModel):
    """The host's workspaces and the people they belong to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    workspaces: tuple[Workspace, ...] = Field(default=(), description="this host's workspaces")
    workspace_users: dict[str, WorkspaceUser] = Field(default_factory=dict, description="name -> uid, gid, keys")
    workspace_pip_index: Optional[str] = Field(default=None, description="PyPI mirror for the layer's "
                                               "JupyterLab (pip --index-url)")
    workspace_wheels: Optional[str] = Field(default=None, description="host directory of wheels for the "
                                            "layer (air-gapped: pip --no-index --find-links)")
    workspace_volume_root: str = Field(default=VOLUME_ROOT, description="every workspace volume lies below "
                                       "this root-owned directory (gpuhost makes and chowns volumes)")

    @field_validator("workspace_pip_index")
    @classmethod
    def _index(cls, value):
        return None if value is None else grammar.http_url(value)

    @field_validator("workspace_wheels")
    @classmethod
    def _wheels(cls, value):
        return None if value is None else grammar.absolute_path(value)

    @field_validator("workspace_volume_root")
    @classmethod
    def _volume_root(cls, value):
        root = grammar.absolute_path(value).rstrip("/")
        if not root:
            raise ValueError("/ cannot be the volume root: name a directory such as /srv/workspaces")
        return root

    @model_validator(mode="after")
    def _together(self):
        seen: dict[str, int] = {}
        ports: dict[int, str] = {}
        claims: dict[object, tuple[str, bool]] = {}
        for index, ws in enumerate(self.workspaces):
            where = f"workspaces[{index}]"
            if ws.user not in self.workspace_users:
                known = ", ".join(sorted(self.workspace_users)) or "none"
                raise ValueError(f"{where}: unknown user {ws.user!r} (workspace_users has {known}): add them "
                                 "to workspace_users with uid, gid and ssh_keys")
            if ws.ssh and ws.state != "absent" and not self.workspace_users[ws.user].ssh_keys:
                raise ValueError(f"{where}: ssh is on but user {ws.user!r} has no ssh_keys: add a public key "
                                 "or set ssh: false")
            if ws.id in seen:
                raise ValueError(f"{where}: two workspaces named {ws.id!r}: give one a name")
            seen[ws.id] = index
            if ws.state == "absent":
                continue
            for source, _, _ in ws.mounts:
                if not source.rstrip("/").startswith(self.workspace_volume_root + "/"):
                    raise ValueError(f"{where}: volume {source} is not below workspace_volume_root "
                                     f"{self.workspace_volume_root}: put it there (e.g. "
                                     f"{self.workspace_volume_root}/{ws.id}) or set workspace_volume_root")
            for key, port, on in (("jupyter_port", ws.jupyter_port, ws.jupyter), ("ssh_port", ws.ssh_port, ws.ssh)):
                if on and port in ports:
                    raise ValueError(f"{where}: port clash: {key} {port} is already {ports[port]}: give each "
                                     "workspace its own ports")
                if on:
                    ports[port] = f"{key} of workspace {ws.id!r}"
            for gpu in ws.gpus:
                other = claims.get(gpu)
                if other and (other[1] or ws.exclusive):
                    raise ValueError(f"{where}: GPU {gpu!r} is claimed by workspaces {other[0]!r} and {ws.id!r}, "
                                     "exclusively: give each its own GPUs or set exclusive: false on both")
                claims[gpu] = (ws.id, ws.exclusive)
        return self

    @classmethod
    def from_host_data(cls, data) -> WorkspaceSettings:
        """Pick the workspace keys out of a host's data; UsageError (one line, key and fix) when bad."""
        picked = {key: data.get(key) for key in cls.model_fields if data.get(key) is not None}
        try:
            settings = cls.model_validate(picked)
        except ValidationError as exc:
            raise UsageError(one_line(exc)) from None
        declared = data.get("target_gpus")
        if settings.workspaces and isinstance(declared, (list, tuple)) and declared:
            for index, ws in enumerate(settings.workspaces):
                beyond = [g for g in ws.gpus if isinstance(g, int) and g >= len(declared)]
                if beyond:
                    raise UsageError(f"workspaces[{index}].gpus: GPU index {beyond[0]} is out of range: "
                                     f"target_gpus declares {len(declared)} GPU(s) (0-{len(declared) - 1})")
        return settings


def one_line(exc: ValidationError) -> str:
    """The first problem of a pydantic error as `key: what is wrong`, with the key as in host data."""
    error = exc.errors()[0]
    where = ""
    for part in error["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
        elif part not in ("int", "str"):  # the member of Union[int, str] pydantic tried
            where += f".{part}" if where else str(part)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key: see the workspace keys in docs/workspaces.md"
    elif error["type"] == "missing":
        message = "missing: it is required"
    return f"{where}: {message}" if where else message
