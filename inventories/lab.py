"""The lab inventory: hosts and their settings come from lab.yaml beside this file.

    pyinfra inventories/lab.py deploys/gpu_host.py

Set GPUHOST_INVENTORY=/path/to/hosts.yaml to read another file. Bad data stops here, one line per
problem, before any host is contacted.
"""

import os
from pathlib import Path

from pyinfra.api.exceptions import InventoryError

from gpuhost.errors import GpuhostError
from gpuhost.inventory_file import load_hosts

try:
    gpu_hosts = load_hosts(Path(os.environ.get("GPUHOST_INVENTORY", Path(__file__).with_name("lab.yaml"))))
except GpuhostError as exc:
    raise InventoryError(str(exc)) from None
