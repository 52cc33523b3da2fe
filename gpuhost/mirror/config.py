"""Pure decisions of the mirror: each upstream's registry config, the GPU hosts' daemon.json
additions, and image references rewritten to go through the mirror.

A registry in proxy mode caches one remote (distribution docs/content/recipes/mirror.md), so a
mirror host runs one registry process per upstream, each on its own port, and an image of
upstream U is pulled as <mirror>:<U's port>/<repository>. Docker's `registry-mirrors` only
mirrors Docker Hub and silently falls back to Hub when the mirror fails
(https://github.com/moby/moby/pull/13651), so gpuhost's own pulls always name the mirror's
endpoint; `registry-mirrors` serves what users pull by hand.
"""

from __future__ import annotations

from pathlib import Path

import bcrypt
import yaml

from gpuhost.mirror.settings import MirrorSettings, Upstream

CONFIG_DIR = "/etc/gpuhost/mirror"
UNIT_TEMPLATE = "gpuhost-mirror@.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_TEMPLATE}"
UNIT_TEXT = (Path(__file__).resolve().parent / "data" / UNIT_TEMPLATE).read_text()
PACKAGE = "docker-registry"
PACKAGE_UNIT = "docker-registry"  # the package's own registry on :5000 (htpasswd dir: refuses all)
DEBUG_PORT_OFFSET = 10000  # each process's debug server (/debug/vars, health) on 127.0.0.1:port+10000
CLIENT_USER = "gpuhost"  # the one htpasswd user of a registry whose clients log in
FIXED_TTL = "168h"  # distribution 2.8's proxy keeps content 7 days (repositoryTTL); `ttl` came in 3.0


def unit_name(upstream: Upstream) -> str:
    return f"gpuhost-mirror@{upstream.name}"


def config_path(upstream: Upstream) -> str:
    return f"{CONFIG_DIR}/{upstream.name}.yml"


def htpasswd_path(upstream: Upstream) -> str:
    return f"{CONFIG_DIR}/{upstream.name}.htpasswd"


def storage_path(settings: MirrorSettings, upstream: Upstream) -> str:
    return f"{settings.mirror_storage.rstrip('/')}/{upstream.name}"


def debug_address(upstream: Upstream) -> str:
    return f"127.0.0.1:{upstream.listen_port + DEBUG_PORT_OFFSET}"


def registry_config(settings: MirrorSettings, upstream: Upstream,
                    credentials: tuple[str, str] | None = None, ttl_supported: bool = False) -> str:
    """The registry's config.yml for one upstream (distribution 2.8 configuration.md).

        >>> print(registry_config(MirrorSettings(mirror_insecure=True), Upstream(registry="docker.io")))
        ... # doctest: +ELLIPSIS
        version: 0.1
        ...
        proxy:
          remoteurl: https://registry-1.docker.io
        ...
    """
    http: dict = {"addr": f":{upstream.listen_port}", "headers": {"X-Content-Type-Options": ["nosniff"]},
                  "debug": {"addr": debug_address(upstream)}}
    if settings.tls:
        http["tls"] = {"certificate": settings.mirror_tls_certificate, "key": settings.mirror_tls_key}
    proxy: dict = {"remoteurl": upstream.remote_url}
    if credentials:
        proxy["username"], proxy["password"] = credentials
    if ttl_supported:
        proxy["ttl"] = settings.mirror_ttl
    seeded = upstream.remote_url is None  # air-gapped: a plain registry, filled by pushes
    storage: dict = {"filesystem": {"rootdirectory": storage_path(settings, upstream)},
                     # a seeded registry keeps every manifest it was given (a digest stays pullable);
                     # a cache evicts what it fetched (the proxy's scheduler deletes)
                     "delete": {"enabled": not seeded}, "cache": {"blobdescriptor": "inmemory"}}
    if upstream.readonly:
        storage["maintenance"] = {"readonly": {"enabled": True}}
    config = {
        "version": 0.1,
        # info: the access log (client, request, status, bytes) is the mirror's record of what it served.
        "log": {"level": "info", "accesslog": {"disabled": False},
                "fields": {"service": "gpuhost-mirror", "upstream": upstream.registry}},
        "storage": storage,
        # Clients log in where the registry takes pushes or holds an account's credentials
        # (distribution 2.8 docs/configuration.md, "htpasswd": bcrypt only, every request).
        **({"auth": {"htpasswd": {"realm": f"gpuhost-mirror {upstream.registry}", "path": htpasswd_path(upstream)}}}
           if upstream.authenticated else {}),
        "http": http,
        **({} if seeded else {"proxy": proxy}),
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    header = (f"# gpuhost registry mirror for {upstream.registry}{' (seeded: no upstream)' if seeded else ''} "
              "(written by deploys/registry_mirror.py;\n"
              "# edits are replaced on the next run). Mode 0600: it may hold the upstream's credentials.\n")
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def htpasswd(password: str, current: str | None = None) -> str:
    """The htpasswd file of an authenticated registry: CLIENT_USER with a bcrypt hash of a random
    salt. `current` (the host's file) is kept while the password still verifies against it, so a
    converged mirror is left alone; never a salt derived from the password (that would let a reader
    of the file test guesses without bcrypt's cost)."""
    user, _, hashed = (current or "").strip().partition(":")
    if user == CLIENT_USER and hashed.startswith("$2") and "\n" not in hashed:
        try:
            if bcrypt.checkpw(password.encode(), hashed.encode()):
                return current  # type: ignore[return-value]
        except ValueError:  # not a bcrypt hash after all: write a new one
            pass
    return f"{CLIENT_USER}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(10, prefix=b'2b')).decode()}\n"


def read_password(path: str) -> str:
    """The first line of a local password file (raises OSError / ValueError)."""
    first = Path(path).expanduser().read_text().splitlines()[:1]
    if not first or not first[0]:
        raise ValueError("its first line must be the password")
    return first[0]


def read_credentials(path: str) -> tuple[str, str]:
    """`user:password` from the first line of a local file (raises OSError / ValueError)."""
    first = Path(path).expanduser().read_text().splitlines()[:1]
    user, sep, password = (first[0] if first else "").partition(":")
    if not sep or not user or not password:
        raise ValueError("its first line must be user:password")
    return user, password


def ttl_problem(settings: MirrorSettings, package_versions: list[str]) -> str | None:
    """Why mirror_ttl cannot be honoured by the installed (or to-be-installed) registry, else None."""
    if settings.mirror_ttl == FIXED_TTL:
        return None
    major = next((v.split(".")[0].split(":")[-1] for v in package_versions), "2")
    if major.isdigit() and int(major) >= 3:
        return None
    return (f"mirror_ttl is {settings.mirror_ttl} but docker-registry 2.x keeps cached content a fixed "
            f"{FIXED_TTL}: set mirror_ttl: {FIXED_TTL}, or install distribution 3.x")


def daemon_json_lists(settings: MirrorSettings) -> dict[str, list[str]]:
    """What a GPU host's daemon.json must list (merged into the user's lists, never replacing them)."""
    if not settings.mirror_host:
        return {}
    lists: dict[str, list[str]] = {}
    hub = settings.upstream_for("docker.io")
    if hub:
        lists["registry-mirrors"] = [f"{settings.scheme}://{settings.endpoint(hub)}"]
    if settings.mirror_insecure:
        lists["insecure-registries"] = [settings.endpoint(u) for u in settings.mirror_upstreams]
    return lists


def split_reference(reference: str) -> tuple[str, str]:
    """(registry, repository:tag) as Docker reads a reference: docker.io and library/ when implied.

        >>> split_reference("ubuntu:22.04")
        ('docker.io', 'library/ubuntu:22.04')
        >>> split_reference("nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3")
        ('nvcr.io', 'nvidia/k8s/dcgm-exporter:4.2.3')
    """
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", reference
    if registry in ("docker.io", "index.docker.io"):
        registry = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    return registry, path


def through_mirror(reference: str, settings: MirrorSettings) -> str | None:
    """The reference rewritten to the mirror's endpoint for its upstream; None when the host uses no
    mirror or the mirror does not cache that registry.

        >>> s = MirrorSettings(mirror_host="mirror-01", mirror_insecure=True)
        >>> through_mirror("pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", s)
        'mirror-01:5000/pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime'
    """
    if not settings.mirror_host:
        return None
    registry, path = split_reference(reference)
    upstream = settings.upstream_for(registry)
    return f"{settings.endpoint(upstream)}/{path}" if upstream else None


def pinned(reference: str, digest: str | None) -> str:
    """repository@digest (the tag dropped) when a digest is known, else the reference itself."""
    if not digest:
        return reference
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return f"{name}@{digest}"


def image_source(tag: str, images: list[str], image_digests: dict[str, str],
                 settings: MirrorSettings | None = None, origin: str | None = None) -> str | None:
    """Where a host's image came from, as Docker's own record says; None when it is not there.

    Docker keeps a registry digest per repository it pulled from (RepoDigests, read by the
    container fact as {tag: digest}): a tag pulled through the mirror's endpoint has one under
    the mirror's name; one that came from the upstream (a fallback) has it under the upstream's.
    """
    registry = split_reference(tag)[0]
    if tag in image_digests:
        if settings and settings.mirror_host:
            for upstream in settings.mirror_upstreams:
                if settings.endpoint(upstream) == registry:
                    return f"mirror {registry} (cache of {upstream.registry})"
        return f"registry {registry}"
    if origin and origin in image_digests:
        return f"upstream {split_reference(origin)[0]} (not through the mirror)"
    if tag in images:
        return "no registry digest (tagged locally, or pulled from the upstream under another name)"
    return None
