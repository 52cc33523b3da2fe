"""Run the gpuhost deploy on one Vagrant VM, from the host, over SSH (the Vagrantfile's trigger).

    python vagrant/provision.py --name ubuntu2404 --host 127.0.0.1 --port 2222 \
        --user vagrant --key .vagrant/machines/ubuntu2404/virtualbox/private_key

The Vagrantfile passes Vagrant's own SSH details for the machine (no second `vagrant` call while
`vagrant up` holds the machine). The host data comes from --data FILE, else $GPUHOST_VAGRANT_DATA,
else vagrant/host-data.yaml when present; it is checked first (one line per problem, exit 2,
nothing contacted). Then this writes vagrant/.gpuhost/<name>.yaml and runs

    pyinfra inventories/lab.py deploys/gpu_host.py -y     (GPUHOST_INVENTORY=<that file>)

with `_sudo: true` (Vagrant's user has passwordless sudo) and host keys handled as Vagrant does
for its VMs (not checked, not stored: each `vagrant up` makes new ones).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # run from a checkout: gpuhost importable even without an install

import yaml  # noqa: E402

from gpuhost.errors import GpuhostError  # noqa: E402
from gpuhost.compose.settings import check_hosts  # noqa: E402
from gpuhost.fleet.inventory_file import load_hosts  # noqa: E402

CONNECTION_KEYS = ("ssh_hostname", "ssh_port", "ssh_user", "ssh_key")


def host_data(path: Path | None) -> tuple[dict, str]:
    """The host data for every VM, and where it came from (for error lines)."""
    if path is None and os.environ.get("GPUHOST_VAGRANT_DATA"):
        path = Path(os.environ["GPUHOST_VAGRANT_DATA"])
    if path is None and (HERE / "host-data.yaml").exists():
        path = HERE / "host-data.yaml"
    if path is None:
        return {}, "host data"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise GpuhostError(f"host data {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise GpuhostError(f"host data {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise GpuhostError(f"host data {path} must be a mapping of host data keys (torch: '2.9', ...)")
    for key in CONNECTION_KEYS:
        if key in data:
            raise GpuhostError(f"host data {path}: {key} comes from Vagrant: remove it")
    return data, str(path)


def inventory(name: str, host: str, port: int, user: str, key: str, data: dict) -> dict:
    """The inventory file's content (inventories/lab.yaml format) for one VM."""
    return {
        "all": data,
        "hosts": [{
            "name": f"vagrant-{name}",
            "ssh_hostname": host,
            "ssh_port": port,
            "ssh_user": user,
            "ssh_key": key,
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            "_sudo": True,
        }],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run deploys/gpu_host.py on one Vagrant VM over SSH.")
    parser.add_argument("--name", required=True, help="the Vagrant machine name (e.g. ubuntu2404)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--user", required=True)
    parser.add_argument("--key", required=True, help="the machine's private key (Vagrant's ssh_info)")
    parser.add_argument("--data", type=Path, help="YAML host data for the VM (inventory keys)")
    parser.add_argument("--state-dir", type=Path, default=HERE / ".gpuhost",
                        help="where the VM's inventory file goes (default: vagrant/.gpuhost)")
    parser.add_argument("--print-inventory", action="store_true", help="print the inventory, run nothing")
    args = parser.parse_args(argv)
    try:
        data, source = host_data(args.data)
        problems = check_hosts([(f"vagrant-{args.name}", data)])
        if problems:
            raise GpuhostError("; ".join(f"{source}: {problem}" for problem in problems))
        content = yaml.safe_dump(inventory(args.name, args.host, args.port, args.user, args.key, data),
                                 sort_keys=False)
        if args.print_inventory:
            print(content, end="")
            return 0
        path = args.state_dir.resolve() / f"{args.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        load_hosts(path)  # the inventory reads it the same way: fail here, not half-way
    except GpuhostError as exc:
        print(f"gpuhost: error: {exc}", file=sys.stderr)
        return 2
    pyinfra = Path(sys.executable).with_name("pyinfra")
    command = [str(pyinfra) if pyinfra.exists() else "pyinfra", str(REPO / "inventories" / "lab.py"),
               str(REPO / "deploys" / "gpu_host.py"), "-y"]
    print(f"gpuhost: {' '.join(command)}  (GPUHOST_INVENTORY={path})", flush=True)
    return subprocess.run(command, cwd=REPO, env={**os.environ, "GPUHOST_INVENTORY": str(path)}).returncode


if __name__ == "__main__":
    sys.exit(main())
