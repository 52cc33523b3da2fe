"""Stage: each workspace of the host data as a systemd unit wrapping its container.

Per workspace, in order: its GPUs resolved to UUIDs (a bad index or UUID stops the whole run
before any host is changed), the volumes owned by its user, its config files, the Jupyter token,
the layer image, the unit; then the unit enabled and started, or restarted when something it
runs from changed. A running workspace with GPU processes on its GPUs is not restarted unless
its `restart: always`. A converged workspace queues nothing.
"""

from __future__ import annotations

from importlib import resources
from io import StringIO

from pyinfra import host, logger
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from facts.workspace import WorkspaceState
from gpuhost.errors import UsageError
from gpuhost.health.verdict import host_health
from gpuhost.run.stop import stop_host
from gpuhost.workspace import decide
from gpuhost.workspace import operations as ws_ops
from gpuhost.workspace.settings import Workspace, WorkspaceSettings

SCRIPTS = {"entrypoint.sh": "755", "health.py": "644"}


def scripts() -> dict[str, str]:
    data = resources.files("gpuhost.workspace") / "data"
    return {name: (data / name).read_text() for name in SCRIPTS}


def wanted_state(ws: Workspace, settings: WorkspaceSettings, uuids: tuple[str, ...], base: str) -> dict:
    """Everything the stage compares and writes for one workspace (pure)."""
    user = settings.workspace_users[ws.user]
    image, dockerfile = decide.workspace_image(ws, settings, base)
    files_ = decide.config_files(ws, user)
    args = decide.docker_run_args(ws, user, uuids, image)
    spec = decide.spec_of(args, files_)
    files_ = {**files_, "workspace.json": decide.record(ws, user, uuids, image)}
    return {"ws": ws, "uid": user.uid, "gid": user.gid, "image": image, "dockerfile": dockerfile, "base": base,
            "files": files_, "scripts": scripts(), "unit": decide.unit_text(ws, args, spec), "spec": spec}


def workspace_stage(ctx) -> list:
    """Queue what each workspace needs; returns the operations queued."""
    settings: WorkspaceSettings = ctx.settings.workspace
    if not settings.workspaces or ctx.host_plan.plan is None:
        return []
    try:
        resolved = decide.resolve_all(settings, ctx.gpu_state)
    except UsageError as exc:  # before any operation of any host has run
        raise DeployError(f"bad inventory data: host {host.name}: {exc}") from None
    facts = ctx.workspace or WorkspaceState.default()
    declared = {ws.id for ws in settings.workspaces}
    for orphan in sorted(set(facts.get("records", {})) - declared):
        logger.warning(f"[{host.name}] workspace {orphan} is on the host but not in its data: left as it is "
                       "(list it with state: absent to remove it)")
    refused, named = decide.on_failed_gpus(settings, resolved, host_health(ctx.health), facts.get("records", {}))
    for line in named.values():  # already there: named, never stopped (its user's work)
        logger.warning(f"[{host.name}] {line}")
    for line in refused.values():  # gpuhost-health: no work is given to a failed GPU
        logger.error(f"[{host.name}] {line}")
        ctx.refusals.append(line)
    ops = []
    for ws in settings.workspaces:
        if ws.id in refused or ws.id in named:
            continue
        wanted = wanted_state(ws, settings, resolved.get(ws.id, ()), ctx.host_plan.plan.image.tag)
        todo = decide.pending(wanted, facts, ctx.container_state)
        if not todo:
            logger.info(f"[{host.name}] workspace {ws.id}: in place")
            continue
        logger.info(f"[{host.name}] workspace {ws.id}: {', '.join(todo)}")
        if ws.state == "absent":
            ops.append(ws_ops.workspace_removed(name=f"Remove workspace {ws.id} (its volumes stay)",
                                                unit=decide.unit_name(ws), container=decide.container_name(ws),
                                                config_dir=decide.config_dir(ws), network=decide.network_name(ws)))
            continue
        busy = _gpu_processes(ctx.gpu_state, resolved.get(ws.id, ()))
        restarts = ws.state == "running" and (facts.get("containers", {}).get(decide.container_name(ws)) or {}
                                              ).get("state") == "running"
        if busy and restarts and ws.restart == "if-idle":
            stop_host(f"workspace {ws.id} has GPU processes running ({busy}) and its definition changed "
                      f"({', '.join(todo)}): not restarting it; stop them, or set restart: always on it")
            continue
        ops += _queue(ws, wanted, settings, todo, restarts)
    return ops


def _gpu_processes(gpu_state: dict, uuids: tuple[str, ...]) -> str:
    found = [f"{p.get('process_name')} (pid {p.get('pid')})" for p in gpu_state.get("processes") or []
             if p.get("gpu_uuid") in uuids]
    return ", ".join(found[:5])


def _queue(ws: Workspace, wanted: dict, settings: WorkspaceSettings, todo: list[str], was_running: bool) -> list:
    """The operations of one workspace that is not in place. `todo`: what `decide.pending` found;
    `was_running`: its container ran before this run, so a change restarts it."""
    uid, gid, conf = wanted["uid"], wanted["gid"], decide.config_dir(ws)
    ops = [files.directory(name=f"workspace {ws.id}: config directory", path=conf, mode="755", user="root",
                           group="root")]
    for source, _, _ in ws.mounts:
        ops.append(ws_ops.owned_directory(name=f"workspace {ws.id}: volume {source}", path=source, uid=uid,
                                          gid=gid, user=ws.user))
    changed = []  # what the container runs from: a change restarts it
    for name, mode in SCRIPTS.items():
        changed.append(files.put(name=f"workspace script {name}", src=StringIO(wanted["scripts"][name]),
                                 dest=f"{decide.BIN}/{name}", mode=mode, create_remote_dir=True))
    for name, text in wanted["files"].items():
        op = files.put(name=f"workspace {ws.id}: {name}", src=StringIO(text), dest=f"{conf}/{name}", mode="644",
                       user="root", group="root")
        (ops if name == "workspace.json" else changed).append(op)
    if ws.ssh:
        ops.append(ws_ops.owned_directory(name=f"workspace {ws.id}: SSH host keys (kept across restarts)",
                                          path=f"{conf}/ssh-host-keys", uid=uid, gid=gid, mode="700", adopt=True))
    if ws.jupyter and "token" in todo:
        ops.append(ws_ops.jupyter_token(name=f"workspace {ws.id}: Jupyter token (0600, not shown)",
                                        path=decide.token_path(ws), uid=uid, gid=gid))
    if "layer" in todo:
        changed.append(ws_ops.layer_image(
            name=f"workspace layer {wanted['image']} (JupyterLab, sshd) on {wanted['base']}", tag=wanted["image"],
            base=wanted["base"], dockerfile=wanted["dockerfile"], wheels=settings.workspace_wheels))
    unit = files.put(name=f"workspace {ws.id}: unit {decide.unit_name(ws)}", src=StringIO(wanted["unit"]),
                     dest=decide.unit_path(ws), mode="644", user="root", group="root")
    changed.append(unit)
    ops += changed
    # Only when the unit changed: a daemon-reload can cost running GPU containers their GPUs (NVML
    # "Unknown Error", NVIDIA/nvidia-container-toolkit#48); the health check catches that.
    ops.append(systemd.daemon_reload(name="systemd daemon-reload (a workspace unit changed)", _if=unit.did_change))
    running = ws.state == "running"
    ops.append(systemd.service(name=f"workspace {ws.id}: {'enabled and running' if running else 'stopped, disabled'}",
                               service=f"{decide.unit_name(ws)}.service", running=running, enabled=running))
    if running and was_running:
        restart = dict(name=f"workspace {ws.id}: restarted with its new definition",
                       service=f"{decide.unit_name(ws)}.service", restarted=True)
        ops.append(systemd.service(**restart) if "container" in todo else
                   systemd.service(**restart, _if=any_changed(*changed)))
    return ops
