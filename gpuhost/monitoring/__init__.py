"""Monitoring: node_exporter, gpuhost's own metrics, dcgm-exporter or the nvidia-smi collector,
Prometheus targets and alerting rules, a Grafana dashboard (issue 16)."""
