"""Operations for Docker and the NVIDIA container toolkit: signed apt repositories, daemon.json,
image pulls. Generators yielding commands, in the style of pyinfra's operations/apt.py.

Each reads what it needs when it runs (so it sees earlier operations' effects) and yields
nothing, through `host.noop`, when the host is already as asked: a second run changes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.docker import DockerImage
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from gpuhost.containers import daemon_json as dj
from gpuhost.errors import GpuhostError
from facts.managed import KeyringFingerprints
from gpuhost.run.stop import stop_command
from gpuhost.run.keys import pinned_key_script, set_aside_script

PULLED_RECORD = "/var/lib/gpuhost/pulled.json"


@operation()
def signed_apt_repo(filename: str, key_url: str, fingerprint: str, keyring: str, uri: str,
                    suite: str, components: list[str] | None = None, allow_http: bool = False,
                    adopt: str | None = None, set_aside: tuple[str, ...] = ()):
    """An apt repository whose signing key is pinned by fingerprint (deb822, Signed-By).

    + filename: base name of /etc/apt/sources.list.d/<filename>.sources
    + key_url: where the ASCII-armoured key is downloaded from (https; see allow_http)
    + allow_http: also accept an http:// or file:/ key_url (see pinned_key_script); only for a key URL
      the user configured (a mirror in a closed network), never for the vendors' defaults
    + fingerprint: the 40-hex fingerprint the key must have; any other key is refused
    + keyring: where the dearmored key goes (never apt's trusted.gpg)
    + uri, suite, components: the repository line; suite "/" for a flat repository
    + adopt: a source file another tool wrote for `uri` whose keyring holds exactly the pinned key
      (gpuhost.run.keys.choose_source): used as is, gpuhost writes no second source
    + set_aside: others' source files for `uri` that would conflict; moved to /var/lib/gpuhost/backup once
      the key is checked (a refused key moves nothing)

    **Example:**

    .. code:: python

        signed_apt_repo(filename="docker", key_url="https://download.docker.com/linux/debian/gpg",
                        fingerprint="9DC858229FC7DD38854AE2D88D81803C0EBFCD88",
                        keyring="/etc/apt/keyrings/docker.gpg",
                        uri="https://download.docker.com/linux/debian", suite="bookworm",
                        components=["stable"])
    """
    fingerprint = fingerprint.replace(" ", "").upper()
    if adopt:
        if set_aside:
            yield set_aside_script(set_aside)
        else:
            host.noop(f"repository {uri}: {adopt} adopted")
        return
    # A keyring already at the path (the vendor's documented one, say) counts only when it holds
    # exactly the pinned key: else the key is fetched and checked like on a clean host. The key is
    # decided first: a refused key leaves the host's sources as they were (nothing set aside yet).
    if host.get_fact(KeyringFingerprints, path=keyring) != [fingerprint]:
        yield StringCommand(pinned_key_script(key_url, fingerprint, keyring, allow_http=allow_http))
    else:
        host.noop(f"keyring {keyring} holds exactly the pinned key {fingerprint}")
    if set_aside:
        yield set_aside_script(set_aside)
    yield from files.put._inner(
        src=StringIO(deb822(uri, suite, components or [], keyring)),
        dest=f"/etc/apt/sources.list.d/{filename}.sources", mode="644",
    )


def deb822(uri: str, suite: str, components: list[str], keyring: str) -> str:
    lines = ["Types: deb", f"URIs: {uri}", f"Suites: {suite}"]
    if components:
        lines.append(f"Components: {' '.join(components)}")
    lines.append(f"Signed-By: {keyring}")
    return "\n".join(lines) + "\n"


@operation()
def daemon_json(path: str = "/etc/docker/daemon.json", default_runtime: bool = False,
                features: dict | None = None, options: dict | None = None,
                restart: bool = True, service: str = "docker", lists: dict | None = None):
    """Merge the NVIDIA runtime into daemon.json safely, and restart Docker only when it changed.

    + path: the daemon.json the running dockerd really reads (ContainerState's
      docker.daemon_json.path: snap and --config-file installs read another file)
    + default_runtime: also set "default-runtime": "nvidia"
    + features: Docker features to add where the user has none (e.g. {"cdi": True})
    + options: extra top-level settings from host data (docker_daemon_options), applied last
    + lists: list settings to extend where items are missing (the mirror's registry-mirrors and
      insecure-registries); the user's items stay
    + restart: restart Docker after a change; False writes the file and leaves the restart to
      the admin (the caller passes False while GPU containers run: see below)
    + service: the systemd unit to restart

    Steps on the host, one command: write the merged file next to the old one, validate it
    (`dockerd --validate --config-file`, Docker >= 23; older Docker is checked by its restart),
    keep a timestamped backup (<path>.gpuhost-backup-YYYYmmddTHHMMSSZ), move the new file in
    atomically, restart Docker and wait for `docker info`. If Docker does not come back, the
    backup is put back, Docker restarted again, and the host fails with the journal's last line.

    Why not while GPU containers run: `systemctl restart docker` stops every container unless
    the daemon runs with "live-restore": true, which keeps containers running while dockerd is
    down and reattaches them when it returns (same major version, compatible config). So the
    caller restarts only when no GPU container runs, or live-restore is on, or host data says
    `docker_restart_with_gpu_containers: true`. The nvidia runtime entry only matters to new
    containers, so running ones lose nothing by waiting.

    Why merge ourselves instead of `nvidia-ctk runtime configure`: see gpuhost/containers/daemon_json.py
    (the vendor tool is reported to replace other `features` entries).

    **Example:**

    .. code:: python

        daemon_json(path="/etc/docker/daemon.json", features={"cdi": True})
    """
    lines = host.get_fact(FileContents, path=path)
    text = "\n".join(lines) if lines is not None else None
    try:
        current = dj.parse(text)
        wanted = dj.merged(current, default_runtime=default_runtime, features=features,
                           options=options, lists=lists)
    except GpuhostError as exc:
        # Said as this host's error, one line; raising here would stop the run for every host.
        yield StringCommand(stop_command(f"{path}: {exc}"))
        return
    if current == wanted:
        host.noop(f"{path} already has the nvidia runtime and every requested setting")
        return
    yield StringCommand(apply_script(path, dj.render(wanted), restart=restart, service=service))


def apply_script(path: str, content: str, restart: bool, service: str = "docker") -> str:
    """The host-side steps of daemon_json(): validate, back up, swap, restart, roll back."""
    q = shlex.quote
    b64 = base64.b64encode(content.encode()).decode()
    directory = posixpath.dirname(path) or "/"
    script = f"""
set -u
f={q(path)}; svc={q(service)}
mkdir -p {q(directory)}
new=$(mktemp {q(path)}.gpuhost-new.XXXXXX) || exit 1
echo {b64} | base64 -d > "$new" || {{ rm -f "$new"; exit 1; }}
if [ -e "$f" ]; then chmod --reference="$f" "$new"; chown --reference="$f" "$new"; else chmod 644 "$new"; fi
d=$(command -v dockerd || true)
if [ -n "$d" ] && "$d" --help 2>&1 | grep -q -- '--validate'; then
  if ! out=$("$d" --validate --config-file "$new" 2>&1); then
    rm -f "$new"
    echo "gpuhost: dockerd --validate refused the new $f ($(echo "$out" | tail -n 1)); $f left unchanged" >&2
    exit 1
  fi
fi
backup=
if [ -e "$f" ]; then backup="$f.gpuhost-backup-$(date -u +%Y%m%dT%H%M%SZ)"; cp -p "$f" "$backup"; fi
mv -f "$new" "$f"
echo "gpuhost: wrote $f (backup: ${{backup:-none, there was no file}})"
"""
    if not restart:
        script += ('echo "gpuhost: Docker NOT restarted (GPU containers run): restart it when they '
                   'finish: systemctl restart $svc"\n')
        return script.strip()
    script += r"""
up() { i=0; while [ $i -lt 30 ]; do docker info >/dev/null 2>&1 && return 0; i=$((i+1)); sleep 1; done; return 1; }
if ! systemctl is-active --quiet "$svc"; then echo "gpuhost: $svc not running: not restarted"; exit 0; fi
if systemctl restart "$svc" && up; then echo "gpuhost: $svc restarted with the new $f"; exit 0; fi
log=$(journalctl -u "$svc" -n 60 --no-pager -o cat 2>/dev/null)
why=$(echo "$log" | grep -iE 'unable to configure|directive|daemon\.json' | tail -n 1)
[ -n "$why" ] || why=$(echo "$log" | grep -iE 'fail|error|invalid' | tail -n 1)
if [ -n "$backup" ]; then cp -p "$backup" "$f"; else rm -f "$f"; fi
systemctl reset-failed "$svc" 2>/dev/null
if systemctl restart "$svc" && up; then state="Docker is running again with the old file"; else state="Docker is STILL DOWN: check journalctl -u $svc"; fi
echo "gpuhost: Docker did not start with the new $f (${why:-no reason in the journal}); restored ${backup:-the absence of the file}; $state" >&2
exit 1
"""
    return script.strip()


@operation()
def image_pulled(image: str, login_user: str | None = None, password_file: str | None = None,
                 password_env: str | None = None, record: str = PULLED_RECORD,
                 remove_previous: bool = False, digest: str | None = None):
    """Pull an image unless it is already present, and remember that gpuhost pulled it.

    + image: full reference, registry prefix included (registry:5000/pytorch/pytorch:2.9.1-...)
    + login_user: registry user; the password comes from password_file (a file on the machine
      running pyinfra) or password_env (an environment variable there); it is fed on stdin to
      `docker login --password-stdin`, never written to a file on the way, never part of a command
      line or of pyinfra's output, and the host logs out after the pull
    + record: JSON list of the images gpuhost pulled on this host
    + remove_previous: `docker image rm` the images in the record other than `image` (never
      images gpuhost did not pull; an image a container still uses is kept with a warning)
    + digest: the image pinned (sha256:...): present only at that digest; pulled by digest and
      tagged `image`, so a tag pushed again on the registry never changes what the host runs

    Present means: the tag exists locally with a registry digest (RepoDigests): a tag is
    immutable in practice for pytorch/pytorch releases, so re-pulling would transfer nothing.
    Progress: docker pull prints one line per layer event without a TTY; pyinfra shows them
    with -v, and the last line names the digest.

    **Example:**

    .. code:: python

        image_pulled(image="pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", remove_previous=True)
    """
    q = shlex.quote
    present = [i for i in (host.get_fact(DockerImage, object_id=image) or []) if i.get("RepoDigests")
               and (digest is None or any(d.endswith(f"@{digest}") for d in i["RepoDigests"]))]
    recorded = _read_record(record)
    if present:
        host.noop(f"{image} present ({digest or present[0]['RepoDigests'][0].split('@')[-1]})")
    else:
        registry = registry_of(image)
        password = _password(password_file, password_env) if login_user else None
        source = f"{repository_of(image)}@{digest}" if digest else image
        tagged = f" && docker tag {q(source)} {q(image)}" if digest else ""
        pull = (f"docker pull {q(source)}{tagged} && echo \"gpuhost: pulled {image} "
                f"$(docker image inspect -f '{{{{index .RepoDigests 0}}}}' {q(image)})\"")
        if password is None:
            yield StringCommand(pull)
        else:
            # The password on stdin: in no command line or output (no pty: it would echo it), and
            # the login's config in a root-only DOCKER_CONFIG of this pull alone, removed on exit,
            # on a signal or a dropped connection: never left in /root/.docker/config.json.
            yield StringCommand(
                "d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && trap 'exit 129' HUP INT TERM && "
                f"DOCKER_CONFIG=$d docker login {q(registry)} -u {q(login_user)} --password-stdin >/dev/null && "
                f"DOCKER_CONFIG=$d {pull}", _stdin=password, _get_pty=False)
    yield from recorded_pull(record, recorded, image, remove_previous)


def recorded_pull(record: str, recorded: list[str], image: str, remove_previous: bool):
    """Commands that bring gpuhost's pull record (and, when asked, the images it lists) up to date
    once `image` is present; shared by the pulls through a registry mirror."""
    stale, keep = pull_record(recorded, image, remove_previous)
    for old in stale:
        yield StringCommand(f"docker image rm {shlex.quote(old)} 2>&1 || echo 'gpuhost: kept {old} (in use or gone)'")
    if keep != recorded:
        yield from files.directory._inner(path=posixpath.dirname(record), mode="755")
        yield from files.put._inner(src=StringIO(json.dumps(keep, indent=2) + "\n"),
                                    dest=record, mode="644")


def pull_record(recorded: list[str], image: str, remove_previous: bool) -> tuple[list[str], list[str]]:
    """(images to remove, the record to keep) after `image` is present. Pure."""
    if remove_previous:
        return [old for old in recorded if old != image], [image]
    return [], recorded + ([image] if image not in recorded else [])


def repository_of(image: str) -> str:
    """The reference without its tag ('registry:5000/pytorch/pytorch' from '...:2.15.0-...')."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def registry_of(image: str) -> str:
    """The registry part of a reference ('docker.io' when it has none)."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _read_record(path: str) -> list[str]:
    lines = host.get_fact(FileContents, path=path)
    if not lines:
        return []
    try:
        value = json.loads("\n".join(lines))
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _password(password_file: str | None, password_env: str | None) -> str:
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise OperationError(f"registry password variable {password_env} is empty or unset: "
                                 "export it before running pyinfra")
        return value
    if password_file:
        try:
            with open(os.path.expanduser(password_file)) as handle:
                return handle.read().strip()
        except OSError as exc:
            raise OperationError(f"registry password file {password_file}: {exc.strerror}") from None
    raise OperationError("registry_user is set but neither registry_password_file nor "
                         "registry_password_env: set one of them")
