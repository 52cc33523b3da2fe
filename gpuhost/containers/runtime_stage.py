"""Stage: Docker + NVIDIA container toolkit + the nvidia runtime in daemon.json.

Host data (all optional):
  docker_source: distro | docker | keep   distro = the OS's docker.io (default); docker =
                 Docker's apt repository (pinned key); keep = use the installed Docker as is
  toolkit_source: nvidia | keep           nvidia = NVIDIA's apt repository (pinned key), the four
                 packages pinned to toolkit_version; keep = use what is installed
  toolkit_version: "1.17.8-1"
  toolkit_repository: URL                 a mirror of NVIDIA's libnvidia-container apt repository
  toolkit_repository_key: URL             the key of a mirror that serves or signs with its own key
                                          (http:// and file:/ allowed: the fingerprint pins it)
  toolkit_repository_fingerprint: 40 hex  that key's fingerprint (default: NVIDIA's, pinned)
  docker_default_runtime: false           also make nvidia Docker's default runtime
  docker_cdi: false                       features.cdi + `nvidia-ctk cdi generate`
  docker_daemon_options: {}               extra daemon.json settings (the user's, applied last)
  docker_restart_with_gpu_containers: false
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.operations import apt, server, systemd

from gpuhost.containers import daemon_json as dj
from gpuhost.containers.settings import repos
from gpuhost.driver.operations import apt_get
from gpuhost.mirror.config import daemon_json_lists
from gpuhost.run.converged import file_current, installed, unit_ok
from gpuhost.run.keys import choose_source, keyring_trusted
from gpuhost.errors import GpuhostError
from gpuhost.containers import operations as docker_ops
from gpuhost.run.stop import stop_host


def install_problem(docker: dict, source: str) -> str | None:
    """Why the Docker found on the host cannot be managed as asked, with what to do. Pure."""
    kinds = docker["install"]
    if "snap" in kinds:
        return ("Docker from snap reads /var/snap/docker/current/config/daemon.json and cannot use "
                "the toolkit's runtime as packaged: `snap remove docker`, then rerun (docker_source: "
                "distro or docker)")
    if "rootless" in kinds:
        return ("rootless Docker found: the GPU runtime needs the root daemon (or the toolkit's "
                "no-cgroups mode, set by hand): disable the user's docker.service, then rerun")
    if source == "keep" and not docker["installed"]:
        return "docker_source is keep but Docker is not installed: install it or use docker_source: distro"
    if source != "keep" and "binary" in kinds:
        return ("Docker is installed from binaries, not packages: set docker_source: keep to use it, "
                "or remove it first")
    return None


def container_runtime_stage(ctx) -> list:
    """Queue this host's container-runtime operations; returns them."""
    settings = ctx.settings.container
    apt_lock = f"-o DPkg::Lock::Timeout={ctx.settings.driver.lock_timeout}"  # host data apt_lock_timeout
    # The snapshot read with the plan: one round trip for all readings.
    state = ctx.container_state
    docker = state["docker"]
    for warning in state["warnings"]:
        logger.warning(f"[{host.name}] {warning}")

    problem = install_problem(docker, settings.docker_source)
    if problem:
        stop_host(problem, name="Docker cannot be managed here")
        return []
    if settings.toolkit_source == "keep" and not state["toolkit"]["installed"]:
        logger.warning(f"[{host.name}] toolkit_source is keep but no NVIDIA container toolkit is "
                       "installed: containers will not see GPUs")
    pending = pending_parts(ctx)
    if not any(pending.values()):
        logger.info(f"[{host.name}] Docker, the NVIDIA runtime and daemon.json: in place")
        return []
    install_bound = {"_timeout": ctx.settings.bounds.install_timeout + ctx.settings.driver.lock_timeout}
    # Sources another tool wrote for the same repository (NVIDIA's cuda-keyring, Docker's docs):
    # adopted when their keyring holds exactly the pinned key, else set aside (backed up).
    repositories = {"docker": _docker_repo_args(ctx) if _docker_install(ctx) == "docker" else None,
                    "toolkit": _toolkit_repo_args(settings) if settings.toolkit_source == "nvidia" else None}
    for args in filter(None, repositories.values()):
        choice = _source_choice(ctx.managed, args)
        if choice.blocker:
            stop_host(choice.blocker, name="Conflicting apt source")
            return []
        if choice.line:
            logger.warning(f"[{host.name}] {choice.line}")
        args.update(adopt=choice.adopt, set_aside=choice.set_aside)
    legacy = state["toolkit"].get("legacy") or []
    if legacy and settings.toolkit_source == "nvidia":
        logger.warning(f"[{host.name}] replacing the deprecated {', '.join(legacy)} with nvidia-container-toolkit "
                       f"{settings.toolkit_version}: removed in the same apt run, not purged (conffiles such as "
                       "nvidia-docker2's /etc/docker/daemon.json stay)")
    elif legacy:
        logger.warning(f"[{host.name}] keeping the deprecated {', '.join(legacy)} (toolkit_source: keep)")

    # 1. Docker and 2. the NVIDIA container toolkit (four packages, one version): the repositories,
    # one `apt-get update` that waits for the apt locks, then the packages.
    ops = []
    install = _docker_install(ctx) if pending["docker"] else None
    if install == "docker":
        ops.append(docker_ops.signed_apt_repo(name="Docker's apt repository (pinned key)", **repositories["docker"]))
    elif settings.docker_source != "keep" and _docker_install(ctx) is None:
        logger.warning(f"[{host.name}] Docker already installed from another source "
                       f"({', '.join(sorted(docker['packages']))}): kept")
    if pending["toolkit"]:
        ops.append(docker_ops.signed_apt_repo(name="NVIDIA container toolkit repository (pinned key)",
                                              **repositories["toolkit"]))
    if install or pending["toolkit"]:
        ops.append(server.shell(name="apt-get update (waits for the apt lock)",
                                commands=[apt_get("update", ctx.settings.driver.lock_timeout)], **install_bound))
    if install:
        packages = ["docker.io"] if install == "docker.io" else repos()["docker"]["packages"]
        name = "Install Docker (Debian/Ubuntu docker.io)" if install == "docker.io" else "Install Docker CE"
        ops.append(apt.packages(name=name, packages=packages, extra_install_args=apt_lock, **install_bound))
    if pending["docker"] or pending["service"]:
        ops.append(systemd.service(name="Docker running and enabled", service="docker", running=True,
                                   enabled=True))
    if pending["toolkit"]:
        repo = repos()["nvidia_container_toolkit"]
        ops.append(apt.packages(name=f"Install NVIDIA container toolkit {settings.toolkit_version}",
                                # apt's "name-" removes a package in the same transaction
                                packages=[f"{p}={settings.toolkit_version}" for p in repo["packages"]]
                                + [f"{p}-" for p in legacy],
                                extra_install_args=apt_lock, **install_bound))

    # 3. daemon.json: merged, validated, backed up; Docker restarted only when safe.
    gpu_busy = bool(state["gpu_containers"]) and not docker["live_restore"]
    restart = not gpu_busy or settings.restart_with_gpu_containers
    if not restart:
        logger.warning(f"[{host.name}] {len(state['gpu_containers'])} GPU container(s) running and "
                       "live-restore is off: daemon.json is updated but Docker is not restarted "
                       "(docker_restart_with_gpu_containers: true to allow it)")
    path, wanted = _daemon_json_wanted(ctx)
    if pending["daemon.json"] or pending["toolkit"]:  # a new toolkit is checked against the file too
        ops.append(docker_ops.daemon_json(name=f"nvidia runtime in {path}", path=path, **wanted, restart=restart))

    # 4. CDI spec, regenerated when the driver changed; /dev/char symlinks (NVML after reload).
    driver = _cdi_driver(ctx)
    if driver:
        ops.append(server.shell(name=f"CDI spec for driver {driver}",
                                commands=["nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
                                          "nvidia-ctk system create-dev-char-symlinks --create-all"]))
    return ops


def container_pending(ctx) -> list[str]:
    """What the snapshot does not show in place yet ([]: the stage has nothing to do)."""
    return [item for items in pending_parts(ctx).values() for item in items]


def pending_parts(ctx) -> dict[str, list[str]]:
    """Per part of the stage (docker, service, toolkit, daemon.json, cdi), what is not in place yet:
    only those parts queue operations, so one broken part does not re-run the others every time."""
    settings, managed = ctx.settings.container, ctx.managed
    parts = {"docker": [], "service": [], "toolkit": [], "daemon.json": [], "cdi": []}
    install = _docker_install(ctx)
    if install == "docker.io" and not installed(managed, "docker.io"):
        parts["docker"].append("docker.io")
    elif install == "docker":
        args = _docker_repo_args(ctx)
        parts["docker"] += _repo_pending(managed, args)
        parts["docker"] += [p for p in repos()["docker"]["packages"] if not installed(managed, p)]
    if settings.docker_source != "keep" and not unit_ok(managed, "docker", running=True):
        parts["service"].append("docker service")
    if settings.toolkit_source == "nvidia":
        repo = repos()["nvidia_container_toolkit"]
        parts["toolkit"] += _repo_pending(managed, _toolkit_repo_args(settings))
        parts["toolkit"] += [p for p in repo["packages"] if not installed(managed, p, settings.toolkit_version)]
        parts["toolkit"] += ctx.container_state["toolkit"].get("legacy") or []
    path, wanted = _daemon_json_wanted(ctx)
    if not _daemon_json_current(ctx.container_state["docker"]["daemon_json"], wanted):
        parts["daemon.json"].append(path)
    if _cdi_driver(ctx):
        parts["cdi"].append("CDI spec")
    return parts


def _docker_install(ctx) -> str | None:
    """Which Docker to install: 'docker.io', 'docker' (Docker's repository) or None."""
    source = ctx.settings.container.docker_source
    installed_now = set(ctx.container_state["docker"]["packages"])
    if source == "distro" and not installed_now & {"docker-ce", "moby-engine"}:
        return "docker.io"
    if source == "docker" and "docker.io" not in installed_now:
        return "docker"
    return None


def _docker_repo_args(ctx) -> dict:
    os_info = (ctx.host_state or {}).get("os") or {}
    fill = {"os_id": os_info.get("id", "debian"), "codename": os_info.get("codename", "bookworm")}
    return _repo_args("docker", repos()["docker"], fill)


def _toolkit_repo_args(settings) -> dict:
    """NVIDIA's toolkit repository, or the mirror host data names (the same args for the
    operation and for container_pending). A mirror's own key gets its own keyring, named by
    its fingerprint: a keyring that holds another key is never reused; http is allowed for
    that key URL only, since the user configured it and its fingerprint is pinned."""
    args = _repo_args("nvidia-container-toolkit", repos()["nvidia_container_toolkit"], {})
    if settings.toolkit_repository:
        args["uri"] = settings.toolkit_repository
    if settings.toolkit_repository_key:
        args.update(key_url=settings.toolkit_repository_key, allow_http=True)
    fingerprint = settings.toolkit_repository_fingerprint
    if fingerprint and fingerprint != args["fingerprint"].replace(" ", "").upper():
        args.update(fingerprint=fingerprint,
                    keyring=f"/usr/share/keyrings/gpuhost-nvidia-container-toolkit-{fingerprint[-16:]}.gpg")
    return args


def _source_choice(managed: dict, args: dict):
    return choose_source(managed, args["uri"], args["fingerprint"].replace(" ", "").upper(),
                         f"/etc/apt/sources.list.d/{args['filename']}.sources", args["keyring"])


def _repo_pending(managed: dict, args: dict) -> list[str]:
    """The repository's keyring (exactly the pinned key) and source, or an adopted source of another tool."""
    choice = _source_choice(managed, args)
    if choice.adopt:
        return list(choice.set_aside)
    sources = f"/etc/apt/sources.list.d/{args['filename']}.sources"
    text = docker_ops.deb822(args["uri"], args["suite"], args["components"], args["keyring"])
    return list(choice.set_aside) \
        + ([args["keyring"]] if not keyring_trusted(managed, args["keyring"], args["fingerprint"]) else []) \
        + ([sources] if not file_current(managed, sources, text) else [])


def _daemon_json_wanted(ctx) -> tuple[str, dict]:
    """The daemon.json the running dockerd reads (the fact found it) and what it must gain."""
    settings = ctx.settings.container
    path = ctx.container_state["docker"]["daemon_json"]["path"] or "/etc/docker/daemon.json"
    return path, {"default_runtime": settings.default_runtime,
                  "features": {"cdi": True} if settings.cdi else None,
                  "options": settings.daemon_options,
                  "lists": daemon_json_lists(ctx.settings.mirror)}  # the mirror's, when one is set


def _daemon_json_current(reading: dict, wanted: dict) -> bool:
    """The file as read already holds everything wanted (a broken file is for the operation to report)."""
    if reading["error"]:
        return False
    try:
        return dj.merged(reading["content"], **wanted) == (reading["content"] or {})
    except GpuhostError:
        return False


def _cdi_driver(ctx) -> str | None:
    """The driver version whose CDI spec is missing (CDI on), else None."""
    driver = (ctx.gpu_state.get("driver") or {}).get("version")
    if ctx.settings.container.cdi and driver and driver not in ctx.container_state["cdi"]["driver_versions"]:
        return driver
    return None


def _repo_args(name: str, repo: dict, fill: dict) -> dict:
    return {"filename": name, "key_url": repo["key_url"].format(**fill),
            "fingerprint": repo["fingerprint"], "keyring": repo["keyring"],
            "uri": repo["uri"].format(**fill) if fill else repo["uri"],
            "suite": str(repo["suite"]).format(**fill) if fill else str(repo["suite"]),
            "components": repo["components"]}
