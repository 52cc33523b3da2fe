"""Monitoring only: pyinfra inventories/lab.py deploys/monitoring.py

node_exporter, gpuhost's own metrics and the GPU exporter, for hosts whose data says
`monitoring: true`; deploys/gpu_host.py includes it after the other stages.
"""

from gpuhost.monitoring.stage import monitoring_stage
from gpuhost.fleet.context import host_context

ctx = host_context()
monitoring_stage(ctx)
