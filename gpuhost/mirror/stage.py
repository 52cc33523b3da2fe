"""Stages of the registry mirror: a mirror host's pull-through caches, and a GPU host's pull through them.

Mirror hosts (deploys/registry_mirror.py, the hosts of group `mirror_group`): Debian's
docker-registry, one `gpuhost-mirror@<upstream>` process per upstream with its own 0600 config
and cache folder, the package's own unconfigured registry stopped, a health check after a change.

GPU hosts (the pre-pull stage, when `mirror_host` is set): the first host of each mirror that
needs the image pulls it alone (it warms the cache: each blob crosses the WAN once); pyinfra runs
an operation on every host before the next one starts, so the other hosts pull after it, at most
`mirror_pull_parallel` at a time, by the digest the first host got (or `image_digest`).
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.operations import apt, files, python, systemd

from gpuhost.errors import UsageError
from gpuhost.mirror import config as mc
from gpuhost.mirror import operations as mirror_ops
from gpuhost.run.converged import file_current, installed, unit_ok
from gpuhost.run.host_data import secret_file_problem
from gpuhost.run.stop import stop_host

REGISTRY_USER = "docker-registry"  # the package's system user


def mirror_files(settings, htpasswd: dict[str, str] | None = None) -> dict[str, str]:
    """path -> content of every file the mirror host must hold (credentials read here, locally);
    `htpasswd`: the host's htpasswd files, kept where the password still verifies."""
    wanted = {mc.UNIT_PATH: mc.UNIT_TEXT}
    password = client_password(settings)
    for upstream in settings.mirror_upstreams:
        if upstream.authenticated and password:
            path = mc.htpasswd_path(upstream)
            wanted[path] = mc.htpasswd(password, (htpasswd or {}).get(path))
        credentials = None
        if upstream.credentials_file:
            line = secret_file_problem("credentials_file", upstream.credentials_file)
            if line:
                raise UsageError(f"mirror_upstreams {upstream.registry}: {line}")
            try:
                credentials = mc.read_credentials(upstream.credentials_file)
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise UsageError(f"mirror_upstreams {upstream.registry}: credentials_file "
                                 f"{upstream.credentials_file}: {why}") from None
        wanted[mc.config_path(upstream)] = mc.registry_config(settings, upstream, credentials)
    return wanted


def client_password(settings) -> str | None:
    """The password of the mirror's user (mirror_password_file, read here); UsageError when unreadable."""
    if not settings.mirror_password_file:
        return None
    line = secret_file_problem("mirror_password_file", settings.mirror_password_file)
    try:
        if line:
            raise ValueError(line)
        return mc.read_password(settings.mirror_password_file)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise UsageError(why if line else f"mirror_password_file {settings.mirror_password_file}: {why}") from None


def mirror_problem(settings, managed: dict) -> str | None:
    """Why this host cannot become a mirror as its data says (before anything is changed), else None."""
    if not settings.tls and not settings.mirror_insecure:
        return ("a mirror needs TLS (mirror_tls_certificate and mirror_tls_key, paths on the mirror) or the "
                "explicit choice mirror_insecure: true (GPU hosts then list it in insecure-registries)")
    return mc.ttl_problem(settings, managed["packages"].get(mc.PACKAGE) or [])


def mirror_pending(settings, managed: dict, wanted: dict[str, str]) -> list[str]:
    """What the snapshot does not show in place ([]: nothing to do)."""
    pending = [] if installed(managed, mc.PACKAGE) else [mc.PACKAGE]
    package_unit = managed["units"].get(mc.PACKAGE_UNIT) or {}
    if package_unit.get("active") == "active" or package_unit.get("enabled") == "enabled":
        pending.append(f"{mc.PACKAGE_UNIT} (the package's own registry) running")
    pending += [path for path, text in wanted.items() if not file_current(managed, path, text)]
    pending += [mc.unit_name(u) for u in settings.mirror_upstreams
                if not unit_ok(managed, mc.unit_name(u), running=True)]
    return pending + [f"{path} (an upstream no longer listed)" for path in stale_configs(managed, wanted)]


def stale_configs(managed: dict, wanted: dict[str, str]) -> list[str]:
    """Configs of upstreams the data no longer names: their units are stopped and the files removed
    (their cache folders are left for the admin to delete)."""
    return sorted(path for path in managed["files"]
                  if path.startswith(mc.CONFIG_DIR + "/") and path.endswith((".yml", ".htpasswd"))
                  and path not in wanted)


def mirror_stage(ctx) -> list:
    """Queue this mirror host's operations; returns them."""
    settings, managed = ctx.settings.mirror, ctx.managed
    problem = mirror_problem(settings, managed)
    if problem:
        stop_host(problem, name="This host cannot be a registry mirror")
        return []
    try:
        wanted = mirror_files(settings, managed.get("htpasswd"))
    except UsageError as exc:
        stop_host(str(exc), name="This host cannot be a registry mirror")
        return []
    pending = mirror_pending(settings, managed, wanted)
    if not pending:
        logger.info(f"[{host.name}] registry mirror for "
                    f"{', '.join(u.registry for u in settings.mirror_upstreams)}: in place")
        return []
    apt_lock = f"-o DPkg::Lock::Timeout={ctx.settings.driver.lock_timeout}"
    unit_changed = not file_current(managed, mc.UNIT_PATH, mc.UNIT_TEXT)
    ops = [apt.packages(name="Install the registry (Debian's docker-registry, CNCF distribution)",
                        packages=[mc.PACKAGE], update=True, cache_time=3600, extra_install_args=apt_lock),
           # Its own unit serves an unconfigured registry on :5000 (htpasswd pointing at a folder).
           systemd.service(name="Stop the package's own registry", service=mc.PACKAGE_UNIT,
                           running=False, enabled=False),
           files.directory(name="Mirror config folder (root and the registry only)", path=mc.CONFIG_DIR,
                           user="root", group=REGISTRY_USER, mode="750"),
           files.put(name="systemd unit gpuhost-mirror@.service", src=StringIO(mc.UNIT_TEXT),
                     dest=mc.UNIT_PATH, mode="644")]
    for upstream in settings.mirror_upstreams:
        unit, path = mc.unit_name(upstream), mc.config_path(upstream)
        ops += [files.directory(name=f"Cache of {upstream.registry}", path=mc.storage_path(settings, upstream),
                                user=REGISTRY_USER, group=REGISTRY_USER, mode="750"),
                mirror_ops.private_file(name=f"Registry config for {upstream.registry} (0600)", dest=path,
                                        content=wanted[path], user=REGISTRY_USER, group=REGISTRY_USER),
                *([mirror_ops.private_file(name=f"Client password (htpasswd, bcrypt) for {upstream.registry}",
                                           dest=mc.htpasswd_path(upstream), content=wanted[mc.htpasswd_path(upstream)],
                                           user=REGISTRY_USER, group=REGISTRY_USER)]
                  if upstream.authenticated else []),
                systemd.service(name=f"{unit} running and enabled", service=unit, running=True, enabled=True,
                                daemon_reload=unit_changed,
                                restarted=unit_changed or any(not file_current(managed, p, wanted[p])
                                                              for p in (path, mc.htpasswd_path(upstream))
                                                              if p in wanted)),
                mirror_ops.registry_healthy(name=f"{unit} healthy", unit=unit, health_url=(
                    f"http://{mc.debug_address(upstream)}/debug/health"))]
    for path in stale_configs(managed, wanted):
        if path.endswith(".yml"):
            unit = f"gpuhost-mirror@{path.rsplit('/', 1)[1].removesuffix('.yml')}"
            ops.append(systemd.service(name=f"Stop {unit} (no longer listed)", service=unit, running=False,
                                       enabled=False))
        ops.append(files.file(name=f"Remove {path}", path=path, present=False))
    return ops


# --- GPU hosts: the pre-pull through the mirror -----------------------------------------------------

_first_pulls: dict[tuple[str, str], object] = {}  # (mirror, image) -> the first host's pull, this run


def mirror_pull(ctx) -> list:
    """Queue the pull of the plan's image through the mirror (the first host alone, then the rest),
    and a line in pyinfra's output saying where it came from (a fallback is a warning)."""
    settings, image = ctx.settings.mirror, ctx.host_plan.plan.image
    upstream = settings.upstream_for(mc.split_reference(image.origin)[0])
    if upstream and upstream.seeded and not settings.image_digest:
        stop_host(f"the plan's image {image.origin} comes from seeded registry {upstream.registry}, whose tags "
                  "anyone who can push there may replace: set image_digest (sha256:..., the digest you seeded; "
                  f"docker image inspect -f '{{{{index .RepoDigests 0}}}}' {image.tag})",
                  name="Pre-pull through the mirror")
        return []
    try:
        password = client_password(settings) if upstream and upstream.authenticated else None
    except UsageError as exc:
        stop_host(str(exc), name="Pre-pull through the mirror")
        return []
    args = {"image": image.tag, "origin": image.origin, "mirror": settings.mirror_host,
            "digest": settings.image_digest, "fallback": settings.mirror_fallback,
            "remove_previous": ctx.settings.container.prune_pulled_images, "password": password}
    key = (settings.mirror_host, image.tag)
    if key not in _first_pulls:
        pull = _first_pulls[key] = mirror_ops.image_pulled_via_mirror(
            name=f"Pre-pull {image.tag} on the first host (warms mirror {settings.mirror_host})", **args)
    else:
        first = _first_pulls[key]
        pull = mirror_ops.image_pulled_via_mirror(
            name=f"Pre-pull {image.tag} through mirror {settings.mirror_host}, "
                 f"{settings.mirror_pull_parallel} at a time",
            **args, digest_from=lambda: mirror_ops.pulled_digest(first), _parallel=settings.mirror_pull_parallel)
    return [pull, python.call(name="Where the image came from", function=_say_source, pull=pull)]


def _say_source(pull) -> None:
    """pyinfra shows no output of a command that succeeded: repeat the pull's own lines (a fallback
    to the upstream as a warning), so no host takes its image from elsewhere without a word."""
    for line in pull.stdout_lines if pull.did_change() else []:
        if line.startswith("gpuhost: WARNING"):
            logger.warning(f"[{host.name}] {line}")
        elif line.startswith("gpuhost: pulled"):
            logger.info(f"[{host.name}] {line}")
