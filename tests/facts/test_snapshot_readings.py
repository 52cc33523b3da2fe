"""The snapshot asks each tool once (issue 29), and reads what it read before.

The pair fixtures are one lab host (converged with the lab's stand-ins) read over SSH by the
snapshot command before issue 29 (0a0f100) and by today's, a second apart (tests/fixtures/README.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from facts import gpu, readings, snapshot
from facts.managed import primary_fingerprints
from facts.sections import Sections
from facts.snapshot import HostSnapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Tools whose every start the shims below count; each is asked once at most.
COUNTED = ("dpkg-query", "systemctl", "perl", "curl", "docker", "nvidia-smi", "apt-cache", "gpg")


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_the_new_snapshot_reads_what_the_old_one_read():
    old = HostSnapshot().process(lines("debian12-lab-host/snapshot-pair-0a0f100.out"))
    new = HostSnapshot().process(lines("debian12-lab-host/snapshot-pair-new.out"))
    assert new == old
    assert new["managed"]["units"]["docker"] == {"enabled": "enabled", "active": "active"}
    assert new["container"]["docker"]["reachable"] and new["container"]["images"]


def test_each_tool_runs_once_at_most(tmp_path):
    """Shims log each start of a counted tool, then run the real one (or, for nvidia-smi, which
    this machine lacks, answer nothing): the snapshot starts each once at most, nvidia-smi three
    times, at once in the background (one --query-gpu for every field, the compute processes and
    the NVLink links' state, which no field gives), the
    docker CLI only for what the Engine API does not give."""
    log = tmp_path / "calls"
    for tool in COUNTED:
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        run = f'exec "{real}" "$@"' if real else "exit 0"
        shim = tmp_path / tool
        # One write per call (O_APPEND): calls in the background run at the same time.
        shim.write_text(f'#!/bin/sh\nline=$(printf "%s " {tool} "$@" | tr "\\n" " ")\nprintf "%s\\n" "$line" >> "{log}"\n{run}\n')
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["sh", "-c", snapshot.COMMAND], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    calls = [line for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    counts = {tool: sum(1 for call in calls if call.split()[0] == tool) for tool in COUNTED}
    assert {tool: n for tool, n in counts.items() if tool not in ("nvidia-smi", "docker") and n > 1} == {}
    # The docker CLI: its --version only for a binary install, `inspect` once for the running
    # containers' details; the daemon, its containers and images come from one call on the API
    # (perl's socket builtins; curl where they fail).
    docker = sorted(next(w for w in call.split()[1:] if w in ("--version", "inspect", "info", "ps", "images"))
                    for call in calls if call.split()[0] == "docker")
    assert docker in ([], ["--version"], ["inspect"], ["--version", "inspect"]) or "@@api_info" not in result.stdout
    smi = [call for call in calls if call.startswith("nvidia-smi ")]
    assert len(smi) == 3 and any("--query-gpu=" + gpu.SMI_FIELDS in call for call in smi)
    assert any("--query-compute-apps=" in call for call in smi)
    assert any(call.startswith("nvidia-smi nvlink -s") for call in smi)  # NVLink state: no --query-gpu field
    assert "@@gpuhost gpu 1" in result.stdout and "@@smi_path " + str(tmp_path / "nvidia-smi") in result.stdout


def test_a_reading_is_taken_once_for_all_parts():
    parts = [part for part, _ in snapshot.PARTS.values()]
    assert sum("dpkg" in p.reads for p in parts) > 1 and sum("units" in p.reads for p in parts) > 1
    assert snapshot.COMMAND.count("dpkg-query -W -f=") == 1
    assert snapshot.COMMAND.count("systemctl show") == 1
    assert snapshot.COMMAND.count(readings.DOCKER.strip().splitlines()[0]) == 1


def _gpg_fingerprints(path: Path, home: Path) -> list[str]:
    out = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--show-keys", "--with-colons", str(path)],
                         capture_output=True, text=True).stdout.splitlines()
    found, after_pub = [], False
    for record in (line.split(":") for line in out):
        if record[0] == "pub":
            after_pub = True
        elif record[0] == "fpr" and after_pub:
            found.append(record[9])
            after_pub = False
    return found


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed here")
def test_keyring_fingerprints_are_gpgs(tmp_path):
    """The control node's reading of keyring bytes gives what gpg gives, for the real keyrings of
    this machine (Debian's archive keys, armored and binary) and the same keys dearmored."""
    keyrings = sorted(p for d in ("/etc/apt/trusted.gpg.d", "/usr/share/keyrings") if Path(d).is_dir()
                      for p in Path(d).iterdir() if p.is_file())
    assert keyrings, "no keyring on this machine to compare with"
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    for path in keyrings:
        expected = _gpg_fingerprints(path, home)
        assert primary_fingerprints(path.read_bytes()) == expected, path
        binary = subprocess.run(["gpg", "--dearmor"], input=path.read_bytes(), capture_output=True).stdout
        if path.read_bytes()[:1] == b"-" and binary:
            assert primary_fingerprints(binary) == expected, path
    assert primary_fingerprints(b"not a keyring") == [] and primary_fingerprints(b"\x99\x01") == []


def _engine_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/lib/gpuhost-lab/engine/docker.sock"
    path = host.removeprefix("unix://")
    return path if host.startswith("unix://") and Path(path).is_socket() else None


@pytest.mark.skipif(_engine_socket() is None or shutil.which("curl") is None or shutil.which("docker") is None,
                    reason="no Docker engine here to read")
def test_workspace_containers_read_the_same_through_the_api_and_the_cli():
    """The workspace part reads its containers from the one Engine API call (the docker reading);
    the CLI's `docker ps -a --filter label=...` is its fallback. On this machine's engine, for the
    lab's own containers (label gpuhost.lab), the containers both readings saw (others start and
    stop meanwhile) read the same: state, status line, spec label, health."""
    from facts.workspace import process_workspace_sections

    sock = _engine_socket()
    for _ in range(5):  # other containers start and stop meanwhile: compare those both readings saw
        api = subprocess.run(["curl", "-s", "--unix-socket", sock, "http://localhost/containers/json?all=1&filters="
                              "%7B%22label%22%3A%5B%22gpuhost.lab%22%5D%7D"], capture_output=True, text=True).stdout
        cli = subprocess.run(["docker", "-H", f"unix://{sock}", "ps", "-a", "--filter", "label=gpuhost.lab", "--format",
                              '{{.Names}}\t{{.State}}\t{{.Label "gpuhost.workspace.spec"}}\t{{.Status}}'],
                             capture_output=True, text=True).stdout
        through_api = process_workspace_sections(Sections(["@@api_workspace_containers", api]))["containers"]
        through_cli = process_workspace_sections(Sections(["@@containers", *cli.splitlines()]))["containers"]
        both = sorted(set(through_api) & set(through_cli))
        if both and all(through_api[name] == through_cli[name] for name in both):
            break
    if not through_cli:
        pytest.skip("no lab containers on this engine to compare")
    assert both and {name: through_api[name] for name in both} == {name: through_cli[name] for name in both}
