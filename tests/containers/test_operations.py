"""Operation tests for gpuhost.containers.operations, from the YAML cases in operation_cases/.

pyinfra-testing's FakeState/FakeHost supply the facts; the operation's generator runs as
pyinfra runs it. daemon_json cases decode the file the command would write and compare it
with the hand-written `expect_content`, and run the script through `sh -n`.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.operations import parse_commands
from pyinfra_testing.util import FakeState, create_host

from gpuhost.containers import operations as docker

CASES = sorted((Path(__file__).parent / "operation_cases").glob("*.yaml"))
B64 = re.compile(r"^echo ([A-Za-z0-9+/=]+) \| base64 -d", re.MULTILINE)


def run_case(case: dict):
    host = create_host(FakeState(), facts=case.get("facts", {}))
    op = getattr(docker, case["op"])
    with ctx_state.use(host.state), ctx_host.use(host):
        commands = parse_commands(list(op._inner(**case.get("kwargs", {}))))
    return commands, host.noop_description


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_operation(path):
    case = yaml.safe_load(path.read_text())
    if "exception" in case:
        with pytest.raises(Exception) as exc:
            run_case(case)
        assert str(exc.value).startswith(case["exception"])
        return
    commands, noop = run_case(case)
    if "expect_content" in case:
        assert len(commands) == 1, commands
        script = commands[0]
        written = json.loads(base64.b64decode(B64.search(script).group(1)))
        assert written == case["expect_content"]
        assert ('systemctl restart "$svc"' in script) is case["expect_restart"]
        assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
        return
    assert commands == case["commands"]
    if not commands:
        assert noop == case["noop_description"]


def test_a_registry_login_feeds_the_password_on_stdin_without_a_pty(tmp_path, monkeypatch):
    """Host data `_get_pty: true` would put the command's stdin on a pty, whose echo returns it."""
    case = yaml.safe_load((Path(__file__).parent / "operation_cases" / "image_pulled-missing-prunes-previous.yaml")
                          .read_text())
    monkeypatch.setenv("GPUHOST_TEST_REGISTRY_PASSWORD", "pa$$ word")
    host = create_host(FakeState(), facts=case["facts"])
    with ctx_state.use(host.state), ctx_host.use(host):
        login = next(docker.image_pulled._inner(**case["kwargs"], login_user="bot",
                                                password_env="GPUHOST_TEST_REGISTRY_PASSWORD"))
    assert "--password-stdin" in login.get_raw_value() and "pa$$ word" not in login.get_raw_value()
    assert login.connector_arguments["_stdin"] == "pa$$ word"
    assert login.connector_arguments["_get_pty"] is False


def test_a_registry_login_lives_in_a_docker_config_of_its_own_removed_on_exit(tmp_path, monkeypatch):
    """An interrupted pull never leaves the password in /root/.docker/config.json."""
    case = yaml.safe_load((Path(__file__).parent / "operation_cases" / "image_pulled-missing-prunes-previous.yaml")
                          .read_text())
    monkeypatch.setenv("GPUHOST_TEST_REGISTRY_PASSWORD", "pa$$ word")
    host = create_host(FakeState(), facts=case["facts"])
    with ctx_state.use(host.state), ctx_host.use(host):
        command = next(docker.image_pulled._inner(**case["kwargs"], login_user="bot",
                                                  password_env="GPUHOST_TEST_REGISTRY_PASSWORD")).get_raw_value()
    # run it with a docker that logs in (writes config.json under DOCKER_CONFIG), then fails the pull
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ "$1" = login ]; then cat > "$DOCKER_CONFIG/config.json"; '
                    'echo "$DOCKER_CONFIG" > "$LEFT"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "LEFT": str(tmp_path / "left"), "HOME": str(tmp_path),
           "TMPDIR": str(tmp_path)}
    done = subprocess.run(["sh", "-c", command], input="pa$$ word", env=env, capture_output=True, text=True)
    config_dir = Path((tmp_path / "left").read_text().strip())
    assert done.returncode == 1 and config_dir.parent == tmp_path and not config_dir.exists()
    assert not (tmp_path / ".docker").exists()


PIN = "sha256:" + "ab" * 32


def _pinned_pull(held_digests: list[str]) -> list:
    """image_pulled with image_digest pinned, the host holding the tag at these digests."""
    case = yaml.safe_load((Path(__file__).parent / "operation_cases" / "image_pulled-missing-prunes-previous.yaml")
                          .read_text())
    image = case["kwargs"]["image"]
    facts = dict(case["facts"])
    facts["docker.DockerImage"] = {f"object_id={image}": [{"RepoDigests": [f"pytorch/pytorch@{d}"]}
                                                          for d in held_digests]}
    host = create_host(FakeState(), facts=facts)
    with ctx_state.use(host.state), ctx_host.use(host):
        return [c.get_raw_value() if hasattr(c, "get_raw_value") else c
                for c in docker.image_pulled._inner(image=image, digest=PIN)]


def test_a_pinned_image_is_pulled_by_digest_and_tagged_when_the_host_holds_the_tag_elsewhere():
    """A tag pushed again on the registry (the host holds it at another digest) is not what runs:
    the pinned digest is pulled and tagged with the plan's tag."""
    commands = _pinned_pull(["sha256:" + "cd" * 32])
    assert commands[0].startswith(f"docker pull pytorch/pytorch@{PIN} && docker tag pytorch/pytorch@{PIN} "
                                  "pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime && ")


def test_a_pinned_image_the_host_holds_at_that_digest_is_not_pulled():
    assert not any(str(c).startswith("docker pull") for c in _pinned_pull([PIN]))


def test_repository_of_drops_the_tag_never_a_registry_port():
    assert docker.repository_of("mirror:5000/pytorch/pytorch:2.15.0-cuda13.2") == "mirror:5000/pytorch/pytorch"
    assert docker.repository_of("mirror:5000/pytorch/pytorch") == "mirror:5000/pytorch/pytorch"
