"""Driver: its host-data keys, sources per OS, safety gates, pyinfra operations and the driver stage."""
