"""The pyinfra inventory of a lab: a Python file, so tests exercise the real entry point.

`pyinfra <inventory> deploys/gpu_host.py -y` then reaches every lab host over SSH
(paramiko) as root with the lab key. Per-host data (target_gpus, policies, ...) is written
next to the connection data; the connection data wins.
"""

from __future__ import annotations

import ast
import pprint
from pathlib import Path

from gpuhost.errors import UsageError
from gpuhost.lab.hosts import LabHost

GROUP = "lab_hosts"


def host_data(host: LabHost, known_hosts: Path) -> dict:
    """pyinfra host data: the spec's data plus how to reach the host."""
    return {
        **host.data,
        "ssh_hostname": "127.0.0.1",
        "ssh_port": host.port,
        "ssh_user": "root",
        "ssh_key": str(host.key_path),
        "ssh_known_hosts_file": str(known_hosts),
        "ssh_strict_host_key_checking": "accept-new",
        "ssh_look_for_keys": False,
        "ssh_allow_agent": False,
    }


def write_inventory(path: Path, hosts: list[LabHost], lab_id: str) -> Path:
    """Write `<GROUP> = [(name, data), ...]` as a Python module; return its path."""
    known_hosts = path.parent / "known_hosts"
    known_hosts.touch()
    entries = [(host.name, host_data(host, known_hosts)) for host in hosts]
    body = pprint.pformat(entries, sort_dicts=True, width=100)
    try:
        if ast.literal_eval(body) != entries:
            raise ValueError
    except (ValueError, SyntaxError):
        raise UsageError("lab host data must be plain Python literals (str, int, float, bool, "
                         "None, list, dict): fix the HostSpec data") from None
    groups: dict[str, list[str]] = {}
    for host in hosts:
        for group in host.spec.groups:
            groups.setdefault(group, []).append(host.name)
    extra = "".join(f"{group} = {names!r}\n" for group, names in sorted(groups.items()))
    path.write_text(f'"""pyinfra inventory of gpuhost lab {lab_id} (written by gpuhost.lab)."""\n\n'
                    f"{GROUP} = {body}\n{extra}")
    return path
