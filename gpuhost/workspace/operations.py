"""pyinfra operations of the workspace stage: the layer image, the token, owned directories, removal.

Each is queued by gpuhost/workspace/stage.py only when the snapshot shows it is not in place.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import StringCommand, operation
from pyinfra.operations import files

from gpuhost.workspace.decide import LABEL, ROOT

q = shlex.quote


@operation()
def layer_image(tag: str, base: str, dockerfile: str, wheels: str | None = None):
    """
    Build the workspace layer `tag` on the host from `dockerfile` (FROM `base`), with `docker build`.

    + tag: gpuhost-workspace:<hash of the Dockerfile>
    + base: the plan's image, already pulled; its registry digest is kept as a label, so a newer
      base (the same tag pulled again) is seen and the layer rebuilt
    + dockerfile: the layer's Dockerfile (gpuhost.workspace.decide.layer_dockerfile)
    + wheels: a directory of wheels on the host, copied into the build context (no index)

    **Example:**

    .. code:: python

        layer_image(tag="gpuhost-workspace:0a1b2c3d4e5f", base="pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime",
                    dockerfile=layer_dockerfile(base, ws, settings))
    """
    context = f"{ROOT}/build/{tag.split(':', 1)[1]}"
    yield from files.directory._inner(path=context, mode="700")
    yield from files.put._inner(src=StringIO(dockerfile), dest=f"{context}/Dockerfile", mode="644")
    copy = f"rm -rf {q(context)}/wheels && cp -r {q(wheels)} {q(context)}/wheels && " if wheels else ""
    digest = f"$(docker image inspect -f '{{{{index .RepoDigests 0}}}}' {q(base)} | sed 's/.*@//')"
    yield StringCommand(
        f"{copy}docker build -q --label {LABEL}.recipe={q(tag.split(':', 1)[1])} "
        f"--label \"{LABEL}.base-digest={digest}\" -t {q(tag)} {q(context)} && rm -rf {q(context)}/wheels")


@operation(is_idempotent=False)
def jupyter_token(path: str, uid: int, gid: int):
    """
    A Jupyter token file: 48 random hex digits, no newline, mode 0600, owned by the workspace user.

    Made once and kept (a token the user saved keeps working); never printed. When the file
    exists only its owner and mode are set again.

    + path: the token file on the host
    + uid, gid: the workspace user's

    **Example:**

    .. code:: python

        jupyter_token(path="/var/lib/gpuhost/workspaces/alice/jupyter_token", uid=1001, gid=1001)
    """
    yield StringCommand(f"[ -s {q(path)} ] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n' "
                        f"> {q(path)}.tmp && mv -f {q(path)}.tmp {q(path)}); chown {uid}:{gid} {q(path)} && "
                        f"chmod 600 {q(path)}")


@operation(is_idempotent=False)
def owned_directory(path: str, uid: int, gid: int, mode: str = "750", adopt: bool = False, user: str = ""):
    """
    A directory owned by the workspace user: made when missing; an existing one must already be theirs.

    + path: the directory on the host
    + uid, gid: its owner (the workspace user's ids)
    + mode: its mode when gpuhost makes it
    + adopt: chown an existing directory (gpuhost's own, e.g. the SSH host keys); a user's volume is
      never chowned: one owned by someone else fails the host, naming the fix
    + user: the user's name, for that message

    **Example:**

    .. code:: python

        owned_directory(path="/srv/workspaces/alice", uid=1001, gid=1001, user="alice")
    """
    p, ids = q(path), f"{uid}:{gid}"
    if adopt:
        yield StringCommand(f"mkdir -p {p} && chown -h {ids} {p} && chmod {mode} {p}")
        return
    # Every value in a message is shell-quoted outside the double quotes: "...{q(x)}...".
    link = (f"echo \"gpuhost: volume \"{p}\" is a symbolic link: name the real directory in the workspace's "
            "volumes\" >&2; exit 1")
    refuse = (f"echo \"gpuhost: volume \"{p}\" is owned by $o, not {ids} of workspace user \"{q(user)}\": "
              f"chown -R {ids} \"{p}\", or use another directory\" >&2; exit 1")
    # Every volume, made now or already there, lies below directories only root can change (no
    # ancestor a link, another user's or writable by others): otherwise its owner could swap the path
    # for a link (to /) between this check and the chown or the container's next start. chown -h
    # never follows a link; the unit re-checks before each start (decide.volume_check_args).
    chain = (f"d=$(dirname {p}); while :; do if [ -e \"$d\" ] || [ -L \"$d\" ]; then "
             "if [ -L \"$d\" ] || [ \"$(stat -c %u \"$d\")\" != 0 ] || "
             "[ $((0$(stat -c %a \"$d\") & 022)) != 0 ]; then "
             f"echo \"gpuhost: volume \"{p}\" lies in $d, which is a link, not root's or writable by others: "
             "make it root's (mode 755), or create the volume for the user\" >&2; exit 1; fi; fi; "
             "[ \"$d\" = / ] && break; "
             "d=$(dirname \"$d\"); done")
    yield StringCommand(f"if [ -L {p} ]; then {link}; fi; {chain}; if [ -e {p} ]; then o=$(stat -c '%u:%g' {p}); "
                        f"[ \"$o\" = {ids} ] || {{ {refuse}; }}; "
                        f"else mkdir -p {p} && chown -h {ids} {p} && chmod {mode} {p}; fi")


@operation()
def workspace_removed(unit: str, container: str, config_dir: str, network: str | None = None):
    """
    Stop and remove a workspace: its unit, its container and its config (token, host keys). Its
    volumes stay: deleting the user's data is never gpuhost's to do.

    + unit: gpuhost-workspace-<id>
    + container: its container's name
    + config_dir: /var/lib/gpuhost/workspaces/<id>
    + network: its own Docker network (gpuhost-ws-<id>), removed too

    **Example:**

    .. code:: python

        workspace_removed(unit="gpuhost-workspace-bob", container="gpuhost-workspace-bob",
                          config_dir="/var/lib/gpuhost/workspaces/bob")
    """
    path = f"/etc/systemd/system/{unit}.service"
    yield StringCommand(f"systemctl disable --now {q(unit)} 2>/dev/null; docker rm -f {q(container)} >/dev/null 2>&1; "
                        + (f"docker network rm {q(network)} >/dev/null 2>&1; " if network else "")
                        + f"rm -f {q(path)} && rm -rf {q(config_dir)} && systemctl daemon-reload")
