"""Stage: Docker + NVIDIA container toolkit + the nvidia runtime in daemon.json.

Host data (all optional):
  docker_source: distro | docker | keep   distro = the OS's docker.io (default); docker =
                 Docker's apt repository (pinned key); keep = use the installed Docker as is
  toolkit_source: nvidia | keep           nvidia = NVIDIA's apt repository (pinned key), the four
                 packages pinned to toolkit_version; keep = use what is installed
  toolkit_version: "1.17.8-1"
  docker_default_runtime: false           also make nvidia Docker's default runtime
  docker_cdi: false                       features.cdi + `nvidia-ctk cdi generate`
  docker_daemon_options: {}               extra daemon.json settings (the user's, applied last)
  docker_restart_with_gpu_containers: false
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.operations import apt, server, systemd

from gpuhost.container_settings import repos
from gpuhost.operations import docker as docker_ops
from gpuhost.stages.stop import stop_host

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


def container_runtime_stage(ctx) -> dict:
    """Queue this host's container-runtime operations; returns the ContainerState read first."""
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
        return state
    # --config-file: the daemon reads another file; that is the one we merge (the fact found it).
    path = docker["daemon_json"]["path"] or "/etc/docker/daemon.json"

    # 1. Docker.
    installed = set(docker["packages"])
    if settings.docker_source == "distro" and not installed & {"docker-ce", "moby-engine"}:
        apt.packages(name="Install Docker (Debian/Ubuntu docker.io)", packages=["docker.io"],
                     update=True, cache_time=3600, extra_install_args=apt_lock)
    elif settings.docker_source == "docker" and "docker.io" not in installed:
        repo = repos()["docker"]
        os_info = (ctx.host_state or {}).get("os") or {}
        fill = {"os_id": os_info.get("id", "debian"), "codename": os_info.get("codename", "bookworm")}
        docker_ops.signed_apt_repo(
            name="Docker's apt repository (pinned key)", **_repo_args("docker", repo, fill))
        apt.packages(name="Install Docker CE", packages=repo["packages"], update=True,
                     extra_install_args=apt_lock)
    elif settings.docker_source != "keep":
        logger.warning(f"[{host.name}] Docker already installed from another source "
                       f"({', '.join(sorted(installed))}): kept")
    if settings.docker_source != "keep":
        systemd.service(name="Docker running and enabled", service="docker", running=True,
                        enabled=True)

    # 2. NVIDIA container toolkit: four packages, one version.
    if settings.toolkit_source == "nvidia":
        repo = repos()["nvidia_container_toolkit"]
        docker_ops.signed_apt_repo(name="NVIDIA container toolkit repository (pinned key)",
                                   **_repo_args("nvidia-container-toolkit", repo, {}))
        apt.packages(name=f"Install NVIDIA container toolkit {settings.toolkit_version}",
                     packages=[f"{p}={settings.toolkit_version}" for p in repo["packages"]],
                     update=True, extra_install_args=apt_lock)
    elif not state["toolkit"]["installed"]:
        logger.warning(f"[{host.name}] toolkit_source is keep but no NVIDIA container toolkit is "
                       "installed: containers will not see GPUs")

    # 3. daemon.json: merged, validated, backed up; Docker restarted only when safe.
    gpu_busy = bool(state["gpu_containers"]) and not docker["live_restore"]
    restart = not gpu_busy or settings.restart_with_gpu_containers
    if not restart:
        logger.warning(f"[{host.name}] {len(state['gpu_containers'])} GPU container(s) running and "
                       "live-restore is off: daemon.json is updated but Docker is not restarted "
                       "(docker_restart_with_gpu_containers: true to allow it)")
    docker_ops.daemon_json(name=f"nvidia runtime in {path}", path=path,
                           default_runtime=settings.default_runtime,
                           features={"cdi": True} if settings.cdi else None,
                           options=settings.daemon_options, restart=restart)

    # 4. CDI spec, regenerated when the driver changed; /dev/char symlinks (NVML after reload).
    driver = (ctx.gpu_state.get("driver") or {}).get("version")
    if settings.cdi and driver and driver not in state["cdi"]["driver_versions"]:
        server.shell(name=f"CDI spec for driver {driver}",
                     commands=["nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
                               "nvidia-ctk system create-dev-char-symlinks --create-all"])
    return state


def _repo_args(name: str, repo: dict, fill: dict) -> dict:
    return {"filename": name, "key_url": repo["key_url"].format(**fill),
            "fingerprint": repo["fingerprint"], "keyring": repo["keyring"],
            "uri": repo["uri"].format(**fill) if fill else repo["uri"],
            "suite": str(repo["suite"]).format(**fill) if fill else str(repo["suite"]),
            "components": repo["components"]}
