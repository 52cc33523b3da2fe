"""Group `canary`: hosts that get a new driver branch before the rest of the fleet.

A host joins with `groups: [canary]` in lab.yaml; `pyinfra inventories/lab.py deploys/gpu_host.py
--limit canary` deploys to these hosts only. These settings beat group_data/all.py and lab.yaml's
`all:`; a host's own settings beat them.
"""

driver_branch = "production"  # the newest production branch rather than the LTS one
# reboot = "auto"  # let canaries reboot into the new driver unattended
