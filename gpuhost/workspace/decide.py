"""What a workspace is on its host, decided from its settings and the host's snapshot. Pure.

- `resolve_gpus`: indices and UUIDs -> the host's GPU UUIDs (nvidia-smi's, from the GPU facts);
- `layer_dockerfile` / `layer_tag`: the thin layer on the plan's image (JupyterLab, sshd);
- `config_files`: passwd/group (the user's uid/gid), sshd_config (key-only), authorized_keys;
- `docker_run_args` / `unit_text`: the container and the systemd unit that wraps it;
- `pending`: what the snapshot does not show in place ([]: nothing to do);
- `connect`: how its user reaches it.
"""

from __future__ import annotations

import hashlib
import json
import shlex

from gpuhost.errors import UsageError
from gpuhost.run.grammar import systemd_command, systemd_quote  # noqa: F401 (systemd_quote: tests, callers)
from gpuhost.workspace.settings import Workspace, WorkspaceSettings, WorkspaceUser, layer_data

ROOT = "/var/lib/gpuhost/workspaces"  # per workspace: <id>/ (its config), bin/ (shared scripts)
BIN = f"{ROOT}/bin"
LAYER_REPO = "gpuhost-workspace"
CONF = "/etc/gpuhost"  # inside the container
LABEL = "gpuhost.workspace"


def unit_name(ws: Workspace) -> str:
    return f"gpuhost-workspace-{ws.id}"


def container_name(ws: Workspace) -> str:
    return f"gpuhost-workspace-{ws.id}"


def network_name(ws: Workspace) -> str:
    """Each workspace's own Docker bridge: Docker isolates bridges from each other, and with
    inter-container traffic off not even a second container on it reaches the workspace."""
    return f"gpuhost-ws-{ws.id}"


def network_create_args(ws: Workspace) -> list[str]:
    return ["network", "create", "--driver", "bridge", "-o", "com.docker.network.bridge.enable_icc=false",
            "--label", f"{LABEL}={ws.id}", network_name(ws)]


def config_dir(ws: Workspace) -> str:
    return f"{ROOT}/{ws.id}"


def token_path(ws: Workspace) -> str:
    return f"{config_dir(ws)}/jupyter_token"


def unit_path(ws: Workspace) -> str:
    return f"/etc/systemd/system/{unit_name(ws)}.service"


def sha(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# --- GPUs -----------------------------------------------------------------------------------------


def host_gpus(gpu_state: dict) -> list[tuple[int, str]]:
    """(index, UUID) of each GPU nvidia-smi reports, by index (its order when it gave no index)."""
    smi = [g.get("smi") or {} for g in gpu_state.get("gpus") or []]
    found = [(row["index"] if row.get("index") is not None else n, row.get("uuid")) for n, row in enumerate(smi)]
    return sorted((i, u) for i, u in found if u)


def resolve_gpus(ws: Workspace, gpu_state: dict) -> tuple[str, ...]:
    """The workspace's GPUs as UUIDs; UsageError naming the workspace and the fix when one is not there."""
    if not ws.gpus:
        return ()
    gpus = host_gpus(gpu_state)
    by_index = dict(gpus)
    uuids = {u for _, u in gpus}
    resolved = []
    for gpu in ws.gpus:
        if isinstance(gpu, int):
            if gpu not in by_index:
                span = f"{len(gpus)} GPU(s) (0-{len(gpus) - 1})" if gpus else "no GPU that nvidia-smi reports"
                raise UsageError(f"workspace {ws.id!r}: GPU index {gpu} is out of range: this host has {span}")
            resolved.append(by_index[gpu])
        elif gpu not in uuids:
            raise UsageError(f"workspace {ws.id!r}: GPU {gpu} is not on this host (nvidia-smi -L lists its UUIDs)")
        else:
            resolved.append(gpu)
    return tuple(resolved)


def resolve_all(settings: WorkspaceSettings, gpu_state: dict) -> dict[str, tuple[str, ...]]:
    """Every workspace's UUIDs, and no GPU given exclusively to two of them (an index and a UUID can
    name the same GPU, so this is checked again once resolved)."""
    resolved, owner = {}, {}
    for ws in settings.workspaces:
        if ws.state == "absent":
            continue
        resolved[ws.id] = resolve_gpus(ws, gpu_state)
        for uuid in resolved[ws.id]:
            other = owner.get(uuid)
            if other and (other.exclusive or ws.exclusive):
                raise UsageError(f"workspaces {other.id!r} and {ws.id!r} both claim GPU {uuid} exclusively: "
                                 "give each its own GPUs or set exclusive: false on both")
            owner[uuid] = ws
    return resolved


def on_failed_gpus(settings: WorkspaceSettings, resolved: dict[str, tuple[str, ...]], health,
                   records: dict) -> tuple[dict[str, str], dict[str, str]]:
    """Workspaces that ask for a failed GPU (gpuhost.health: `health` is a HostHealth): (refused: the
    new ones, named: those already on the host, left as they are), each workspace id -> one line
    naming the GPU, the cause and the fix."""
    failed = {gpu.uuid: gpu for gpu in health.failed_gpus() if gpu.uuid}
    refused, named = {}, {}
    for ws in settings.workspaces:
        sick = next((failed[u] for u in resolved.get(ws.id, ()) if u in failed), None)
        if sick is None:
            continue
        if ws.id in records:
            named[ws.id] = (f"workspace {ws.id} is on failed {sick.gpu}: {sick.cause}; fix: {sick.fix} (the workspace "
                            "is left as it is: move its user's work, then give it other gpus)")
        else:
            refused[ws.id] = f"workspace {ws.id}: {sick.gpu} is failed ({sick.cause}): not given to it; fix: {sick.fix}"
    return refused, named


# --- The image ------------------------------------------------------------------------------------


def layer_dockerfile(base: str, ws: Workspace, settings: WorkspaceSettings) -> str:
    """The thin layer: the distribution's openssh-server and a pinned JupyterLab, on the plan's image."""
    layer = layer_data()["layer"]
    pip = "--no-cache-dir"
    lines = [f"# gpuhost workspace layer: JupyterLab {layer['jupyterlab']} and an SSH server. Built on the host.",
             f"FROM {base}", "USER root"]
    if settings.workspace_wheels:
        lines.append("COPY wheels /tmp/gpuhost-wheels")
        pip += " --no-index --find-links /tmp/gpuhost-wheels"
    elif settings.workspace_pip_index:
        pip += f" --index-url {shlex.quote(settings.workspace_pip_index)}"
    lines.append(
        "RUN set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
        f"apt-get install -y -q --no-install-recommends {' '.join(layer['apt_packages'])}; "
        "rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*; "
        f"PIP_BREAK_SYSTEM_PACKAGES=1 python -m pip install {pip} jupyterlab=={layer['jupyterlab']}; "
        "rm -rf /tmp/gpuhost-wheels")
    if ws.apt_packages:  # its own step, so the step above stays cached
        lines.append("RUN set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
                     f"apt-get install -y -q --no-install-recommends {' '.join(map(shlex.quote, ws.apt_packages))}; "
                     "rm -rf /var/lib/apt/lists/*")
    return "\n".join(lines) + "\n"


def layer_tag(dockerfile: str) -> str:
    return f"{LAYER_REPO}:{sha(dockerfile)}"


def workspace_image(ws: Workspace, settings: WorkspaceSettings, base: str) -> tuple[str, str | None]:
    """(image the container runs, the layer's Dockerfile or None when the user gave an image)."""
    if ws.image:
        return ws.image, None
    dockerfile = layer_dockerfile(base, ws, settings)
    return layer_tag(dockerfile), dockerfile


# --- Files and the container ----------------------------------------------------------------------


def home(ws: Workspace) -> str:
    return ws.mounts[0][1]


def config_files(ws: Workspace, user: WorkspaceUser) -> dict[str, str]:
    """name -> content of the workspace's config files (root-owned, 0644, mounted read-only)."""
    name = ws.user
    files = {
        # Only root and the user exist in the container; no password anywhere ('x', no shadow).
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n{name}:x:{user.uid}:{user.gid}:{name}:{home(ws)}:/bin/bash\n",
        "group": f"root:x:0:\n{name}:x:{user.gid}:\n",
    }
    if ws.ssh:
        port = layer_data()["container"]["ssh_port"]
        files["sshd_config"] = "\n".join([
            f"# Written by gpuhost for workspace {ws.id}: key-only, no root, {name} alone. sshd runs as {name}.",
            f"Port {port}",
            f"HostKey {CONF}/ssh-host-keys/ssh_host_ed25519_key",
            "PidFile /tmp/gpuhost-sshd.pid",
            f"AuthorizedKeysFile {CONF}/authorized_keys",
            f"AllowUsers {name}",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin no",
            "UsePAM no",
            "AllowTcpForwarding local",  # the Jupyter tunnel, VS Code Remote-SSH
            "GatewayPorts no",
            "X11Forwarding no",
            "AllowAgentForwarding no",
            "PermitTunnel no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
        ]) + "\n"
        files["authorized_keys"] = "".join(f"{key}\n" for key in user.ssh_keys)
    return files


def docker_run_args(ws: Workspace, user: WorkspaceUser, uuids: tuple[str, ...], image: str) -> list[str]:
    """`docker run` arguments (after `docker run`), least privilege, only its GPUs."""
    inside = layer_data()["container"]
    defaults = layer_data()["defaults"]
    conf = config_dir(ws)
    tls = bool(ws.jupyter_tls_cert)
    args = ["--rm", "--name", container_name(ws), "--hostname", ws.id,
            "--label", f"{LABEL}={ws.id}", "--label", f"{LABEL}.user={ws.user}",
            "--user", f"{user.uid}:{user.gid}", "--security-opt", "no-new-privileges",
            "--cap-drop", "ALL",  # sshd runs as the user, on a port above 1024: it needs no capability
            "--pids-limit", str(ws.pids), "--shm-size", ws.shm]
    # Its own bridge network (network_name): no route to another workspace's container.
    args += ["--network", network_name(ws)]
    if "cpus" in ws.model_fields_set:
        args += ["--cpus", f"{ws.cpus:g}"]
    else:  # the default: a quota Docker takes even on a host with fewer CPUs (--cpus it would refuse)
        args += ["--cpu-period", "100000", "--cpu-quota", str(round(ws.cpus * 100000))]
    args += ["--memory", ws.memory, "--memory-swap", ws.memory]
    # Only its GPUs: --gpus for Docker's GPU support, and NVIDIA_VISIBLE_DEVICES so an image that sets
    # `all` (jupyter/docker-stacks' CUDA images do) cannot widen it under the nvidia runtime.
    if uuids:
        devices = ",".join(uuids)
        args += ["--gpus", f'"device={devices}"' if len(uuids) > 1 else f"device={devices}",
                 "-e", f"NVIDIA_VISIBLE_DEVICES={devices}"]
    else:
        args += ["-e", "NVIDIA_VISIBLE_DEVICES=void"]
    for source, target, mode in ws.mounts:
        args += ["-v", f"{source}:{target}:{mode}"]
    args += ["-v", f"{conf}/passwd:/etc/passwd:ro", "-v", f"{conf}/group:/etc/group:ro",
             "-v", f"{BIN}:/opt/gpuhost-workspace:ro"]
    env = {"HOME": home(ws), "GPUHOST_ROOT_DIR": home(ws), "GPUHOST_GPU_COUNT": str(len(uuids)),
           "GPUHOST_HEALTH_RETRIES": str(defaults["health_retries"])}
    if ws.ssh:
        args += ["-v", f"{conf}/sshd_config:{CONF}/sshd_config:ro",
                 "-v", f"{conf}/authorized_keys:{CONF}/authorized_keys:ro",
                 "-v", f"{conf}/ssh-host-keys:{CONF}/ssh-host-keys:rw",
                 "-p", f"{ws.ssh_port}:{inside['ssh_port']}"]
        env |= {"GPUHOST_SSH": "1", "GPUHOST_SSH_PORT": str(inside["ssh_port"])}
    if ws.jupyter:
        # The token file, not the token: JUPYTER_TOKEN_FILE names a 0600 file mounted read-only.
        args += ["-v", f"{token_path(ws)}:{CONF}/jupyter_token:ro",
                 "-p", f"{'' if tls else '127.0.0.1:'}{ws.jupyter_port}:{inside['jupyter_port']}"]
        if tls:
            args += ["-v", f"{ws.jupyter_tls_cert}:{CONF}/tls/cert.pem:ro",
                     "-v", f"{ws.jupyter_tls_key}:{CONF}/tls/key.pem:ro"]
        # Inside its own network namespace it listens on every address so that Docker's port
        # forwarding reaches it; on the host the port is published on 127.0.0.1 unless TLS is set.
        env |= {"GPUHOST_JUPYTER": "1", "GPUHOST_JUPYTER_IP": "0.0.0.0",
                "GPUHOST_JUPYTER_PORT": str(inside["jupyter_port"]), "JUPYTER_TOKEN_FILE": f"{CONF}/jupyter_token"}
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    args += ["--health-cmd", "python /opt/gpuhost-workspace/health.py",
             "--health-interval", f"{ws.health_interval_s}s", "--health-timeout", "60s",
             "--health-retries", str(defaults["health_retries"]), "--health-start-period", "60s",
             "--entrypoint", "/bin/sh", image, "/opt/gpuhost-workspace/entrypoint.sh"]
    return args


# Before each start: a volume is no link and lies below root's directories only (none a link,
# another user's or writable by others), as owned_directory checked at deploy: a tenant who owns a
# volume's parent could otherwise swap it for a link to / and restart her container.
VOLUME_CHECK = ('for v in "$@"; do d=$(dirname "$v"); if [ -L "$v" ]; then bad="$v is a symbolic link"; '
                'else bad=; while [ "$d" != / ]; do if [ -L "$d" ] || [ "$(stat -c %u "$d")" != 0 ] || '
                '[ $((0$(stat -c %a "$d") & 022)) != 0 ]; then bad="$v lies in $d, a link, not root\'s or '
                'writable by others"; break; fi; d=$(dirname "$d"); done; fi; '
                'if [ -n "$bad" ]; then echo "gpuhost: volume $bad: not starting the workspace" >&2; exit 1; fi; done')


def volume_check_args(ws: Workspace) -> list[str]:
    """The command the unit runs before each start (VOLUME_CHECK over the workspace's host dirs)."""
    return ["/bin/sh", "-c", VOLUME_CHECK, "sh", *(source for source, _, _ in ws.mounts)]


def unit_text(ws: Workspace, run_args: list[str], spec: str) -> str:
    """The systemd unit: restart on failure, started at boot, the container removed when it stops."""
    name = container_name(ws)
    args = run_args[:1] + ["--label", f"{LABEL}.spec={spec}"] + run_args[1:]
    return "\n".join([
        f"# Written by gpuhost: workspace {ws.id} of {ws.user}. Edit the host data, not this file.",
        "[Unit]",
        f"Description=gpuhost workspace {ws.id} ({ws.user})",
        "After=docker.service network-online.target",
        "Requires=docker.service",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStartPre=-/usr/bin/docker rm -f {name}",
        # the workspace's own network, made when missing ('-': an existing one is kept)
        "ExecStartPre=-/usr/bin/docker " + systemd_command(network_create_args(ws)),
        "ExecStartPre=" + systemd_command(volume_check_args(ws)),
        "ExecStart=/usr/bin/docker run " + systemd_command(args),
        f"ExecStop=/usr/bin/docker stop -t 30 {name}",
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStartSec=300",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def spec_of(run_args: list[str], files: dict[str, str]) -> str:
    """What the running container was made from: a container whose label differs is restarted."""
    return sha(json.dumps([run_args, files], sort_keys=True))


def record(ws: Workspace, user: WorkspaceUser, uuids: tuple[str, ...], image: str) -> str:
    """workspace.json: what `gpuhost workspaces` shows (no secret in it). One line of JSON."""
    return json.dumps({"id": ws.id, "user": ws.user, "uid": user.uid, "gid": user.gid, "gpus": list(uuids),
                       "jupyter": ws.jupyter, "ssh": ws.ssh, "jupyter_port": ws.jupyter_port,
                       "ssh_port": ws.ssh_port, "tls": bool(ws.jupyter_tls_cert), "image": image,
                       "volumes": [":".join(m) for m in ws.mounts], "state": ws.state}, sort_keys=True) + "\n"


# --- Convergence ----------------------------------------------------------------------------------


def pending(wanted: dict, facts: dict, container_state: dict) -> list[str]:
    """What the snapshot does not show in place for one workspace (`wanted` from the stage)."""
    ws = wanted["ws"]
    files = facts["files"]
    out = []
    if ws.state == "absent":
        if unit_path(ws) in files or container_name(ws) in facts["containers"] or ws.id in facts["records"]:
            out.append("remove")
        return out
    for name, text in wanted["files"].items():
        if files.get(f"{config_dir(ws)}/{name}") != hashlib.sha1(text.encode()).hexdigest():
            out.append(name)
    for name, text in wanted["scripts"].items():
        if files.get(f"{BIN}/{name}") != hashlib.sha1(text.encode()).hexdigest():
            out.append(name)
    if files.get(unit_path(ws)) != hashlib.sha1(wanted["unit"].encode()).hexdigest():
        out.append("unit")
    if ws.jupyter:
        token = facts["tokens"].get(ws.id) or {}
        if not (token.get("mode") == "600" and token.get("uid") == wanted["uid"] and token.get("size")):
            out.append("token")
    if wanted["dockerfile"] is not None:
        base = container_state.get("image_digests", {}).get(wanted["base"])
        if not base or facts["layers"].get(wanted["image"]) != base:
            out.append("layer")
    elif wanted["image"] not in container_state.get("images", []):
        out.append("image")
    unit = facts["units"].get(unit_name(ws)) or {}
    container = facts["containers"].get(container_name(ws)) or {}
    if ws.state == "running":
        if unit.get("enabled") != "enabled" or unit.get("active") != "active" or container.get("state") != "running":
            out.append("running")
        elif container.get("spec") != wanted["spec"]:
            out.append("container")
    elif unit.get("enabled") == "enabled" or unit.get("active") == "active":
        out.append("stopped")
    return out


# --- Connecting -----------------------------------------------------------------------------------


def connect(rec: dict, address: str) -> dict[str, str]:
    """How the workspace's user reaches it: the ssh command, the tunnel and the URL."""
    out = {}
    if rec.get("ssh"):
        out["ssh"] = f"ssh -p {rec['ssh_port']} {rec['user']}@{address}"
    if rec.get("jupyter"):
        if rec.get("tls"):
            out["url"] = f"https://{address}:{rec['jupyter_port']}/lab"
        else:
            out["tunnel"] = (f"ssh -N -p {rec['ssh_port']} -L 8888:127.0.0.1:8888 {rec['user']}@{address}"
                             if rec.get("ssh") else
                             f"ssh -N -L 8888:127.0.0.1:{rec['jupyter_port']} <your login>@{address}")
            out["url"] = "http://127.0.0.1:8888/lab (the token: gpuhost workspaces --show-token)"
    return out
