"""The mirror's operations as pyinfra runs them (pyinfra-testing's FakeState/FakeHost): secrets go
on stdin, never into a command line or an upload; a pinned digest is the only image that counts."""

from __future__ import annotations

import base64

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from gpuhost.mirror import operations as ops

IMAGE = "mirror:5010/pytorch/pytorch:2.9.1"
ORIGIN = "registry:5000/pytorch/pytorch:2.9.1"
PIN = "sha256:" + "c" * 64
RECORD = {"files.FileContents": {"path=/var/lib/gpuhost/pulled.json": [f'["{IMAGE}"]']}}


def commands(op, facts: dict, **kwargs) -> list:
    host = create_host(FakeState(), facts=facts)
    with ctx_state.use(host.state), ctx_host.use(host):
        return list(op._inner(**kwargs))


def test_a_private_file_is_written_from_stdin_never_uploaded():
    content = "proxy:\n  password: s3cret\n"
    (command,) = commands(ops.private_file, {"files.Sha1File": {"path=/etc/gpuhost/mirror/x.yml": None}},
                          dest="/etc/gpuhost/mirror/x.yml", content=content, user="docker-registry",
                          group="docker-registry")
    assert isinstance(command, StringCommand) and not isinstance(command, FileUploadCommand)
    assert "s3cret" not in command.get_raw_value() and "umask 077" in command.get_raw_value()
    assert base64.b64decode(command.connector_arguments["_stdin"]).decode() == content
    assert command.connector_arguments["_get_pty"] is False, "a pty echoes stdin back into the output"


def test_a_login_to_the_mirror_feeds_the_password_on_stdin_and_logs_out():
    found = commands(ops.image_pulled_via_mirror, {"docker.DockerImage": {f"object_id={IMAGE}": []}, **RECORD},
                     image=IMAGE, origin=ORIGIN, mirror="mirror", digest=PIN, password="pa$$ word")
    login, pull = found[:2]
    assert login.connector_arguments["_stdin"] == "pa$$ word"
    assert login.connector_arguments["_get_pty"] is False, "a pty echoes stdin back into the output"
    assert "--password-stdin" in login.get_raw_value()
    assert all("pa$$ word" not in c.get_raw_value() for c in found if isinstance(c, StringCommand))
    assert f"src=mirror:5010/pytorch/pytorch@{PIN}" in pull.get_raw_value()
    assert pull.get_raw_value().endswith("docker logout mirror:5010 >/dev/null 2>&1; exit $rc")


def test_with_a_pinned_digest_only_that_digest_is_present():
    other = {"docker.DockerImage": {f"object_id={IMAGE}": [{"RepoDigests": [f"mirror:5010/pytorch/pytorch@sha256:{'d' * 64}"]}]},
             **RECORD}
    assert commands(ops.image_pulled_via_mirror, other, image=IMAGE, origin=ORIGIN, mirror="mirror", digest=PIN)
    held = {"docker.DockerImage": {f"object_id={IMAGE}": [{"RepoDigests": [f"mirror:5010/pytorch/pytorch@{PIN}"]}]},
            **RECORD}
    assert commands(ops.image_pulled_via_mirror, held, image=IMAGE, origin=ORIGIN, mirror="mirror", digest=PIN) == []
