"""The lab inventory: hosts, groups and settings come from lab.yaml beside this file.

    pyinfra inventories/lab.py deploys/gpu_host.py
    pyinfra inventories/lab.py deploys/gpu_host.py --limit canary     # one group
    pyinfra inventories/lab.py debug-inventory                        # each host's groups and merged data

Set GPUHOST_INVENTORY=/path/to/hosts.yaml to read another file. Each YAML group becomes a pyinfra
group (a module-level list here); group_data/all.py and group_data/<group>.py beside this file add
settings, which pyinfra merges as usual: --data > host > group > all. Those files are read here too,
so every host's merged settings, --data included, are checked before any host is contacted: one
line per problem (a problem many hosts share, once).
"""

from pathlib import Path as _Path

from pyinfra.api.exceptions import InventoryError as _InventoryError
from pyinfra.context import ctx_state as _ctx_state

from gpuhost.errors import GpuhostError as _GpuhostError
from gpuhost.fleet.inventory_file import (cli_override_data as _cli_override_data, group_data_dirs as _group_data_dirs,
                                         inventory_yaml as _inventory_yaml, load_inventory as _load_inventory)

_here = _Path(__file__)
_cwd = _ctx_state.get().cwd if _ctx_state.isset() else None  # pyinfra's CLI also reads <cwd>/group_data
try:
    _loaded = _load_inventory(_inventory_yaml(_here),
                              _group_data_dirs(_here, _cwd), file_group=_here.stem, override_data=_cli_override_data())
except _GpuhostError as _exc:
    raise _InventoryError(str(_exc)) from None

# pyinfra reads this module's lists and (hosts, data) tuples as groups: `all` and one per YAML group.
globals().update(_loaded.groups)
