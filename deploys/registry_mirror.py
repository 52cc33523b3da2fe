"""Turn the hosts of the inventory group `mirrors` into pull-through caches of container images.

    pyinfra inventories/lab.py deploys/registry_mirror.py --limit mirrors

One registry process (Debian's docker-registry, CNCF distribution in proxy mode) per upstream the
data names (`mirror_upstreams`: Docker Hub by default, nvcr.io, ...), each on its own port with its
own cache folder and 0600 config (upstream credentials, never printed), TLS or the explicit
`mirror_insecure: true`, a systemd unit and a health check. Like every stage it compares the one
reading taken at the start and queues nothing when the mirror is in place. Hosts outside the
group (`mirror_group`) are left alone. GPU hosts then use it through `mirror_host` (gpu_host.py).
"""

from pyinfra import host, logger

from gpuhost.mirror.stage import mirror_stage
from gpuhost.fleet.context import host_context

# 1. Settings (every host's, checked before any is touched) and the one reading.
ctx = host_context()

# 2. The mirror, on the hosts of its group only.
if ctx.settings.mirror.mirror_group in host.groups:
    mirror_stage(ctx)
else:
    logger.info(f"[{host.name}] not in group {ctx.settings.mirror.mirror_group}: not a mirror, left alone")
