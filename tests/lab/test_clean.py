"""`./dev clean` (gpuhost/lab/clean.py): what the lab records before it changes the machine
(gpuhost/lab/changes.py), and how it puts it back. No Docker engine is started or stopped here: the
recording and the sysctl restore run on a real temporary state directory, the iptables/link/IP-forwarding
restore runs for real in a network namespace of its own (root only), where the Docker rules captured on
this machine are applied first. The whole command against a real engine runs last in CI (`./dev test`
under CI=true: `python -m gpuhost.lab clean --check`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost.lab import changes, clean, engine

# Real output, captured on this project's dev VM on 2026-12-01 (tests/fixtures/lab-machine/date.txt):
# `iptables -S`, `iptables -t nat -S` and `ip -o link show` while the lab's dockerd ran with one lab
# network, and the same in a fresh network namespace (`unshare -n iptables -S`): a machine before Docker.
FIXTURES = Path(__file__).parents[1] / "fixtures" / "lab-machine"


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


BEFORE = {"sysctl": {"net.ipv4.ip_forward": "0", "fs.inotify.max_user_instances": "128"},
          "links": ["eth0", "ifb0", "ifb1", "lo"],
          "iptables": {"filter": fixture_lines("iptables-filter-fresh.txt"),
                       "nat": fixture_lines("iptables-nat-fresh.txt")}}
ENGINE = {"sysctl": {"net.ipv4.ip_forward": "1", "fs.inotify.max_user_instances": "192"},
          "links": changes.link_names((FIXTURES / "ip-link-engine.txt").read_text()),
          "iptables": {"filter": fixture_lines("iptables-filter-engine.txt"),
                       "nat": fixture_lines("iptables-nat-engine.txt")}}


@pytest.fixture
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUHOST_LAB_DIR", str(tmp_path / "lab"))
    return tmp_path / "lab"


def test_link_names_drop_the_peer_suffix():
    assert {"lo", "eth0", "docker0", "br-80a5ce444a35", "veth2683a68"} <= set(ENGINE["links"])
    assert not any("@" in name or ":" in name for name in ENGINE["links"])


def test_first_record_wins(lab_dir):
    changes.record_sysctl("fs.inotify.max_user_instances", "128")
    changes.record_sysctl("fs.inotify.max_user_instances", "192")  # a second lab, after the first raised it
    assert changes.read_changes()["sysctl"] == {"fs.inotify.max_user_instances": "128"}
    changes.record_packages(["docker.io", "iptables"])
    assert (lab_dir / "installed-packages").read_text() == "docker.io\niptables\n"


def test_engine_record_keeps_the_machine_before_the_first_engine(lab_dir, monkeypatch):
    states = iter([{"sysctl": {"net.ipv4.ip_forward": "0"}, "links": ["lo"], "iptables": None},
                   {"sysctl": {"net.ipv4.ip_forward": "1"}, "links": ["docker0", "lo"], "iptables": None}])
    monkeypatch.setattr(changes, "machine_state", lambda: next(states))
    changes.record_before_engine()
    changes.record_before_engine()
    assert changes.read_changes()["before_engine"]["links"] == ["lo"]


def test_restore_removes_dockers_rules_chains_and_bridges_and_resets_the_policy():
    commands = [" ".join(c) for c in clean.network_restore(BEFORE, ENGINE)]
    assert "iptables -t filter -D FORWARD -j DOCKER-USER" in commands
    assert "iptables -t filter -P FORWARD ACCEPT" in commands
    assert "iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" in commands
    assert "iptables -t filter -X DOCKER-ISOLATION-STAGE-2" in commands
    assert "ip link delete docker0" in commands and "ip link delete br-80a5ce444a35" in commands
    assert not any("eth0" in c or "ifb0" in c or "veth" in c for c in commands)
    # jumps are removed before the chains they jump to
    assert commands.index("iptables -t filter -D FORWARD -j DOCKER-USER") < commands.index(
        "iptables -t filter -X DOCKER-USER")


def test_restore_leaves_what_was_there_before_and_what_is_not_dockers():
    user_rule = "-A FORWARD -i virbr0 -j ACCEPT"  # e.g. libvirt's, added after the lab's engine
    now = {**ENGINE, "iptables": {**ENGINE["iptables"], "filter": ENGINE["iptables"]["filter"] + [user_rule]},
           "links": ENGINE["links"] + ["virbr0"]}
    commands = [" ".join(c) for c in clean.network_restore(ENGINE, now)]
    assert commands == []


def test_sysctl_restore_writes_back_only_what_changed():
    writes, notes = clean.sysctl_restore(
        {"net.ipv4.ip_forward": "0", "fs.inotify.max_user_instances": "128",
         "net.bridge.bridge-nf-call-iptables": None, "net.ipv6.conf.all.forwarding": "0"},
        {"net.ipv4.ip_forward": "1", "fs.inotify.max_user_instances": "192",
         "net.bridge.bridge-nf-call-iptables": "1", "net.ipv6.conf.all.forwarding": "0"})
    assert writes == {"net.ipv4.ip_forward": "0", "fs.inotify.max_user_instances": "128"}
    assert notes == ["net.bridge.bridge-nf-call-iptables appeared (its kernel module was loaded): "
                     "it stays until reboot"]


def test_differences_name_each_change_and_ignore_veth_pairs():
    found = clean.differences(BEFORE, ENGINE)
    assert "sysctl net.ipv4.ip_forward: 0 before, 1 now" in found
    assert "link docker0: new" in found and not any("veth" in line for line in found)
    assert "iptables -t filter: '-P FORWARD DROP' new" in found
    assert clean.differences(BEFORE, BEFORE) == []


def test_clean_on_a_temp_state_dir_puts_the_sysctl_back_and_removes_the_dir(lab_dir, tmp_path, monkeypatch,
                                                                            capsys):
    """The real command on a real state directory; /proc/sys is a temporary copy, no engine answers."""
    proc_sys = tmp_path / "proc-sys"
    (proc_sys / "fs" / "inotify").mkdir(parents=True)
    (proc_sys / "fs" / "inotify" / "max_user_instances").write_text("192\n")
    monkeypatch.setattr(changes, "PROC_SYS", proc_sys)
    monkeypatch.setattr(engine, "SYSTEM_SOCKET", str(tmp_path / "no-docker.sock"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("GPUHOST_LAB_QUIET", raising=False)
    changes.record_sysctl("fs.inotify.max_user_instances", "128")
    changes.record_packages(["docker.io"])
    (lab_dir / "images").mkdir()
    (lab_dir / "images" / "host-abc.tar").write_bytes(b"x" * 1000)

    assert clean.clean(dry_run=True) == 0
    assert (proc_sys / "fs/inotify/max_user_instances").read_text() == "192\n" and lab_dir.is_dir()

    assert clean.clean() == 0
    err = capsys.readouterr().err
    assert (proc_sys / "fs/inotify/max_user_instances").read_text() == "128\n"
    assert not lab_dir.exists()
    assert "apt-get purge docker.io" in err
    assert "would: sysctl fs.inotify.max_user_instances=128" in err


NETNS_SCENARIO = r"""
import json, shlex, subprocess, sys
from pathlib import Path
from gpuhost.lab import changes, clean

def sh(*args):
    subprocess.run(args, check=True, capture_output=True)

Path("/proc/sys/net/ipv4/ip_forward").write_text("0\n")
before = changes.machine_state()
# What the lab's dockerd did on this machine: its bridges, rules, chains, policy, IP forwarding.
fixtures = Path(sys.argv[1])
sh("ip", "link", "add", "docker0", "type", "bridge")
sh("ip", "link", "add", "br-80a5ce444a35", "type", "bridge")
for table in ("filter", "nat"):
    for line in (fixtures / f"iptables-{table}-engine.txt").read_text().splitlines():
        words = shlex.split(line)
        if words[0] == "-P" or (words[0] == "-N" and words[1] not in ("INPUT", "FORWARD", "OUTPUT")):
            sh("iptables", "-t", table, *words)
    for line in (fixtures / f"iptables-{table}-engine.txt").read_text().splitlines():
        if line.startswith("-A "):
            sh("iptables", "-t", table, *shlex.split(line))
Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
engine_state = changes.machine_state()
for command in clean.network_restore(before, engine_state):
    sh(*command)
writes, _ = clean.sysctl_restore(before["sysctl"], changes.machine_state()["sysctl"])
for name, value in writes.items():
    Path("/proc/sys", *name.split(".")).write_text(value + "\n")
print(json.dumps({"engine": clean.differences(before, engine_state),
                  "after": clean.differences(before, changes.machine_state())}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables"),
                    reason="needs root, unshare and iptables (a network namespace of its own)")
def test_restore_in_a_network_namespace_puts_the_network_back():
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", NETNS_SCENARIO, str(FIXTURES)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert "link docker0: new" in result["engine"] and "sysctl net.ipv4.ip_forward: 0 before, 1 now" in result["engine"]
    assert result["after"] == []
