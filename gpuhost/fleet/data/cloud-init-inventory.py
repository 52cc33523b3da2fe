"""This host for pyinfra: `@local` with the host data in host-data.yaml beside this file.

Written by `gpuhost cloud-init render` to /etc/gpuhost/inventory.py. The data is checked again
here, by the installed gpuhost: a problem stops the run, one line per problem, before any change.
"""

from pathlib import Path

import yaml
from pyinfra.api.exceptions import InventoryError

from gpuhost.compose.settings import check_hosts

_data = yaml.safe_load(Path(__file__).with_name("host-data.yaml").read_text()) or {}
_problems = check_hosts([("@local", _data)])
if _problems:
    raise InventoryError("\n".join(_problems))

gpu_hosts = [("@local", _data)]
