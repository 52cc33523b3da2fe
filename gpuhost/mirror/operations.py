"""Operations of the registry mirror: a config file that may hold secrets, the health check, and
an image pulled through the mirror. Generators yielding commands, in the style of pyinfra's
operations; each yields nothing (`host.noop`) when the host is already as asked.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.docker import DockerImage
from pyinfra.facts.files import Sha1File

from gpuhost.containers.operations import PULLED_RECORD, _read_record, recorded_pull
from gpuhost.mirror.config import pinned, split_reference

DIGEST_IN_OUTPUT = re.compile(r"@(sha256:[0-9a-f]{64})")


@operation()
def private_file(dest: str, content: str, user: str, group: str, mode: str = "600"):
    """A file that may hold secrets (an upstream's password): never diffed, printed or world-readable.

    + dest: the file; its directory should be one only root and `group` can enter
    + content: the text (compared by SHA-1; pyinfra's --diff never shows it, unlike files.put)
    + user, group, mode: the file's owner and mode (the registry's user must read it)

    The text goes to a root shell on stdin (base64), written under umask 077 and then owned, moded
    and moved over the old one: never through pyinfra's upload, which under `_sudo` stages the
    file in /tmp with the SSH user's umask (pyinfra connectors/ssh.py, put_file), never in a
    command line.

    **Example:**

    .. code:: python

        private_file(dest="/etc/gpuhost/mirror/nvcr.io.yml", content=config,
                     user="docker-registry", group="docker-registry")
    """
    if host.get_fact(Sha1File, path=dest) == hashlib.sha1(content.encode()).hexdigest():
        host.noop(f"{dest} is current")
        return
    yield secret_written(dest, content, f"{user}:{group}", mode)


def secret_written(dest: str, content: str, owner: str = "root:root", mode: str = "600") -> StringCommand:
    """One root command writing `content` to `dest` from stdin: umask 077, a new file, then chown,
    chmod and rename. The content is in no command line, no temp file another user can read, and
    never on a pty (whose echo would return it in the output, under host data `_get_pty: true`)."""
    q = shlex.quote
    new = f"{dest}.gpuhost-new"
    return StringCommand(f"umask 077 && rm -f {q(new)} && base64 -d > {q(new)} && chown {q(owner)} {q(new)} && "
                         f"chmod {q(mode)} {q(new)} && mv -f {q(new)} {q(dest)}",
                         _stdin=base64.b64encode(content.encode()).decode(), _get_pty=False)


@operation(is_idempotent=False)
def registry_healthy(unit: str, health_url: str, timeout: int = 30):
    """Wait until a registry process reports healthy on its debug server (`/debug/health`: 200 and
    `{}` while its storage driver check passes); fail with the unit's last log line otherwise.

    + unit: the systemd unit, for the messages
    + health_url: e.g. http://127.0.0.1:15000/debug/health (the debug server binds to localhost)
    + timeout: seconds to wait

    **Example:**

    .. code:: python

        registry_healthy(unit="gpuhost-mirror@docker.io", health_url="http://127.0.0.1:15000/debug/health")
    """
    q = shlex.quote
    yield StringCommand(
        f"i=0; while [ $i -lt {int(timeout)} ]; do "
        f"curl -fsS -o /dev/null {q(health_url)} 2>/dev/null && echo 'gpuhost: {unit} healthy' && exit 0; "
        "i=$((i+1)); sleep 1; done; "
        f"echo \"gpuhost: {unit} is not healthy after {int(timeout)}s "
        f"($(journalctl -u {q(unit)} -n 1 --no-pager -o cat 2>/dev/null))\" >&2; exit 1")


@operation()
def image_pulled_via_mirror(image: str, origin: str, mirror: str, digest: str | None = None,
                            digest_from=None, fallback: bool = False, record: str = PULLED_RECORD,
                            remove_previous: bool = False, password: str | None = None):
    """Pull an image through a registry mirror's endpoint, by digest, and say where it came from.

    + image: the reference through the mirror (mirror-01:5000/pytorch/pytorch:2.9.1-...)
    + origin: the same image at its upstream (pytorch/pytorch:2.9.1-...); also tagged locally,
      so what users and workloads name finds the image
    + mirror: the mirror host, for messages
    + digest: the pinned digest (sha256:...), else digest_from() or the tag
    + digest_from: a callable giving the digest the first host of this mirror pulled in this run
      (None while it is not known): every later host pulls exactly that image
    + fallback: when the mirror fails, pull from the upstream (a WARNING line); otherwise the host
      fails with one line naming the mirror and the setting
    + record, remove_previous: gpuhost's record of its pulls (see containers' image_pulled)
    + password: the mirror's client password (user gpuhost) when its registry wants a login: fed to
      `docker login --password-stdin` on stdin, never in a command line, file or output; logged
      out after the pull

    Present means: `image` exists with a registry digest of the mirror's repository, i.e. it was
    pulled through the mirror (an image that came from the upstream is pulled again).

    **Example:**

    .. code:: python

        image_pulled_via_mirror(image="mirror-01:5000/pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime",
                                origin="pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", mirror="mirror-01")
    """
    repository = image.rsplit(":", 1)[0]
    found = host.get_fact(DockerImage, object_id=image) or []
    held = {d for i in found for d in i.get("RepoDigests") or []}
    # Pinned: only that digest counts as present (a host holding another one pulls the pinned one).
    if (f"{repository}@{digest}" in held) if digest else any(d.split("@", 1)[0] == repository for d in held):
        host.noop(f"{image} present, pulled through mirror {mirror}")
    else:
        pin = digest or (digest_from() if digest_from else None)
        endpoint = split_reference(image)[0]
        if password is not None:
            # A failed login is said, not fatal: the pull then fails (or falls back) with its own line.
            yield StringCommand(f"out=$(docker login {shlex.quote(endpoint)} -u gpuhost --password-stdin 2>&1) || "
                                f"echo \"gpuhost: login to mirror \"{shlex.quote(endpoint)}\" failed: "
                                "$(printf '%s\\n' \"$out\" | tail -n 1)\" >&2; true", _stdin=password,
                                _get_pty=False)
        script = pull_script(image, origin, pinned(image, pin), pinned(origin, pin) if fallback else None, mirror)
        if password is not None:
            script = f"( {script}\n); rc=$?; docker logout {shlex.quote(endpoint)} >/dev/null 2>&1; exit $rc"
        yield StringCommand(script)
    yield from recorded_pull(record, _read_record(record), image, remove_previous)


def pull_script(image: str, origin: str, source: str, upstream_source: str | None, mirror: str) -> str:
    """Shell steps: pull `source` (the mirror's endpoint), else the upstream when fallback is on,
    tag it as `image` and `origin`, print where it came from with its digest. Pure.

    Docker's `registry-mirrors` would fall back to Docker Hub without a word; naming the mirror's
    endpoint makes a broken mirror fail here, and the digest Docker records names its source.
    """
    q = shlex.quote
    upstream = split_reference(origin)[0]
    if upstream_source:
        on_failure = (
            f'echo "gpuhost: WARNING: pull of {image} through mirror {mirror} failed ($why): pulling from '
            f'the upstream {upstream} (mirror_fallback: true)"\n'
            f"src={q(upstream_source)}; from='upstream {upstream} (fallback)'\n"
            'out=$(docker pull "$src" 2>&1) || { echo "gpuhost: pull of '
            f'{image} failed through mirror {mirror} and from the upstream {upstream} '
            '($(printf \'%s\\n\' "$out" | tail -n 1))" >&2; exit 1; }\n')
    else:
        on_failure = (
            f'echo "gpuhost: pull of {image} through mirror {mirror} failed ($why); fallback to the upstream '
            f'{upstream} is off (mirror_fallback: true allows it): check the mirror (gpuhost mirror status)" >&2\n'
            "exit 1\n")
    return (
        f"src={q(source)}; from='mirror {mirror}'\n"
        'if ! out=$(docker pull "$src" 2>&1); then\n'
        '  why=$(printf \'%s\\n\' "$out" | tail -n 1)\n'
        + "".join(f"  {line}\n" for line in on_failure.splitlines())
        + "fi\n"
        f'[ "$src" = {q(image)} ] || docker tag "$src" {q(image)}\n'
        f'docker tag "$src" {q(origin)}\n'
        'case "$src" in *@sha256:*) how=" (by digest ${src##*@}: a tag pushed again there is not followed)";; '
        '*) how="";; esac\n'
        f"echo \"gpuhost: pulled {image} from $from$how: $(docker image inspect -f '{{{{join .RepoDigests \" \"}}}}' "
        f'"$src")"')


def pulled_digest(meta) -> str | None:
    """The digest a completed image_pulled_via_mirror printed, for the hosts that pull after it."""
    if meta is None or not meta.is_complete() or not meta.did_succeed():
        return None
    for line in meta.stdout_lines:
        found = DIGEST_IN_OUTPUT.search(line)
        if found and line.startswith("gpuhost: pulled"):
            return found.group(1)
    return None
