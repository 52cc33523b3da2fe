"""The fact commands, run for real with sh on this machine: they must never fail.

This machine (and CI) is a GPU-less Linux host without nvidia-smi, which is one of the
hosts the facts must read correctly. The commands are also run with an empty PATH, as on a
host that lacks every tool they use: exit status 0 and a parseable result all the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from facts import container, gpu, host, managed, snapshot

FACTS = {
    "gpu": (gpu.COMMAND, gpu.GpuState),
    "host": (host.COMMAND, host.HostState),
    "container": (container.COMMAND, container.ContainerState),
    "managed": (managed.COMMAND, managed.ManagedState),
}
# POSIX sh as pyinfra runs it, and bash where sh is something else: each distinct shell once.
SHELLS = list({os.path.realpath(p): p for p in map(shutil.which, ("sh", "dash", "bash")) if p}.values())


def run(command: str, shell: str = "sh", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([shell, "-c", command], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("name", sorted(FACTS))
def test_fact_command_exits_zero_and_parses(name, shell):
    command, fact = FACTS[name]
    result = run(command, shell)
    assert result.returncode == 0, result.stderr
    assert f"@@gpuhost {name} 1\n" in result.stdout
    data = fact().process(result.stdout.splitlines())
    assert isinstance(data, dict) and "warnings" in data


def test_gpu_fact_here_sees_what_sysfs_shows():
    out = run(gpu.COMMAND).stdout.splitlines()
    nvidia = subprocess.run(
        ["sh", "-c", "grep -l 0x10de /sys/bus/pci/devices/*/vendor 2>/dev/null | wc -l"],
        capture_output=True, text=True).stdout.strip()
    state = gpu.GpuState().process(out)
    assert len(state["gpus"]) + len(state["nvswitches"]) <= int(nvidia)
    if shutil.which("nvidia-smi") is None:
        assert state["driver"]["nvidia_smi"] is None or state["driver"]["nvidia_smi"].startswith("/")


@pytest.mark.parametrize("name", sorted(FACTS))
def test_fact_command_survives_a_host_without_any_tool(name):
    command, fact = FACTS[name]
    result = run(command, "/bin/sh", env={"PATH": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    data = fact().process(result.stdout.splitlines())
    assert data == fact().process(result.stdout.splitlines())  # deterministic
    assert isinstance(data["warnings"], list)


def test_snapshot_is_one_command_with_all_four_parts():
    result = run(snapshot.COMMAND)
    assert result.returncode == 0, result.stderr
    data = snapshot.HostSnapshot().process(result.stdout.splitlines())
    assert set(data) == {"gpu", "host", "container", "managed", "workspace", "health"}
    assert data["health"]["smi"]["ran"] is bool(shutil.which("nvidia-smi"))
    assert data["host"]["kernel"] == subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()


def test_fact_commands_are_quick_here():
    # Not a benchmark (bench/ measures speed): a guard against a step that waits on something.
    start = time.monotonic()
    run(snapshot.COMMAND)
    assert time.monotonic() - start < 30


def _tools(tmp_path, name: str, failing: tuple[str, ...]) -> tuple[dict, Path]:
    """PATH with shims for perl and curl: each logs its start, then fails (exit 7, as when it
    cannot connect) if named in `failing`, else runs the real tool."""
    bin_dir, log = tmp_path / name, tmp_path / f"{name}.log"
    bin_dir.mkdir()
    for tool in ("perl", "curl"):
        real = shutil.which(tool)
        body = "exit 7" if tool in failing or real is None else f'exec "{real}" "$@"'
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} >> '{log}'\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def test_container_fact_reads_the_same_through_perl_curl_and_the_cli(tmp_path):
    """The Docker Engine API read with perl's socket builtins, with curl where perl fails, and the
    docker CLI where both fail, give the same fact. Where a daemon answers here (the lab's engine
    on a development machine), this compares real readings and shows which tool read each;
    elsewhere all three report the same absent daemon."""
    readings = {}
    for name, failing in (("perl", ()), ("curl", ("perl",)), ("cli", ("perl", "curl"))):
        env, log = _tools(tmp_path, name, failing)
        result = run(container.COMMAND, env=env)
        readings[name] = (result.stdout, log.read_text().split() if log.exists() else [])
    answered = "@@api_info" in readings["perl"][0]
    if answered:
        assert readings["perl"][1] == ["perl"] and shutil.which("perl")
        assert readings["curl"][1] == ["perl", "curl"] and "@@api_info" in readings["curl"][0]
    assert "@@api_info" not in readings["cli"][0]
    facts = {name: container.ContainerState().process(out.splitlines()) for name, (out, _) in readings.items()}
    assert facts["perl"] == facts["curl"] == facts["cli"]
    assert facts["perl"]["docker"]["reachable"] == answered


def test_a_reading_cut_short_fails_and_is_never_read_as_a_host(tmp_path):
    """The snapshot's output is written at its end; when the shell reading it is killed midway (the
    OOM killer, say), the command fails with one line instead of printing a short host that would
    read as one with nothing installed."""
    shim = tmp_path / "sha1sum"  # run by the managed part's own shell: the one that reads everything
    shim.write_text("#!/bin/sh\nkill -9 $PPID\n")
    shim.chmod(0o755)
    cut = run(snapshot.COMMAND, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert cut.returncode == 1 and cut.stdout == ""
    assert cut.stderr.strip().splitlines()[-1] == "gpuhost: the reading stopped before its end"
    whole = run(snapshot.COMMAND)
    assert whole.returncode == 0 and whole.stdout.endswith("\n") and "@@gpuhost managed 1\n" in whole.stdout


LDCONFIG = "tests/fixtures/device-h100/raw/ldconfig-nvidia.txt"  # `ldconfig -p | grep nvidia` on the H100


def _nvml_section(tmp_path, ldconfig_lines: str) -> list[str]:
    """The gpu command's @@nvml lines where `ldconfig -p` lists `ldconfig_lines` and an nvidia-smi
    exists (the linker cache is asked only then): shims on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "cache.txt").write_text(ldconfig_lines)
    for name, body in {"ldconfig": f"cat '{tmp_path}/cache.txt'", "nvidia-smi": "exit 9"}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    out = run(gpu.COMMAND, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}).stdout.splitlines()
    start = out.index("@@nvml")
    return [line for line in out[start + 1:] if line.startswith("ldconfig ")]


def test_nvml_libraries_resolved_as_on_the_h100(tmp_path):
    """The H100's four linker-cache entries for NVML, its directories rebuilt under tmp_path as
    they were there (each name a link to libnvidia-ml.so.580.159.04), resolve to the real file,
    as the H100's own snapshot showed (tests/facts/gpu.GpuState/h100_driver580.json)."""
    lib = tmp_path / "usr/local/nvidia/lib64"
    lib.mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    real = lib / "libnvidia-ml.so.580.159.04"
    real.write_text("")
    for name in ("libnvidia-ml.so.1", "libnvidia-ml.so"):
        (lib / name).symlink_to(real.name)
        (tmp_path / "lib" / name).symlink_to(real)
    lines = [line for line in open(LDCONFIG).read().splitlines() if "libnvidia-ml" in line]
    assert len(lines) == 4
    relocated = "\n".join(line.replace("=> /", f"=> {tmp_path}/") for line in lines) + "\n"
    assert _nvml_section(tmp_path, relocated) == [f"ldconfig (libc6,x86-64) {real}"] * 4
    assert gpu._library_version([f"ldconfig (libc6,x86-64) {real}"]) == "580.159.04"


def test_nvml_library_gone_from_disk_is_listed_as_ldconfig_lists_it(tmp_path):
    """A stale cache entry (its directory gone) does not shift the others' real files."""
    lib = tmp_path / "lib64"
    lib.mkdir()
    real = lib / "libnvidia-ml.so.580.159.04"
    real.write_text("")
    (lib / "libnvidia-ml.so.1").symlink_to(real.name)
    gone = f"{tmp_path}/gone/libnvidia-ml.so.1"
    cache = (f"\tlibnvidia-ml.so.1 (libc6,x86-64) => {gone}\n"
             f"\tlibnvidia-ml.so.1 (libc6,x86-64) => {lib}/libnvidia-ml.so.1\n")
    assert _nvml_section(tmp_path, cache) == [f"ldconfig (libc6,x86-64) {gone}",
                                              f"ldconfig (libc6,x86-64) {real}"]


def test_dockerd_given_two_config_files_is_read_with_the_last(tmp_path):
    """dockerd's flag parser keeps the last `--config-file` (a review found the snapshot taking the
    first, and so checking the wrong file's age for the kept /info answer). A process named dockerd
    (a script: its comm is the file's name) with two of them."""
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    proc = subprocess.Popen([str(fake), "--config-file", "/etc/first.json", f"--config-file={tmp_path}/last.json"])
    try:
        for _ in range(50):  # until the kernel shows it under its name
            if open(f"/proc/{proc.pid}/comm").read().strip() == "dockerd":
                break
            time.sleep(0.05)
        state = container.ContainerState().process(run(container.COMMAND).stdout.splitlines())
    finally:
        proc.kill()
        proc.wait()
    daemon = next(d for d in state["docker"]["daemons"] if d["pid"] == proc.pid)
    assert (daemon["config_file"], daemon["config_from"]) == (f"{tmp_path}/last.json", "--config-file")
