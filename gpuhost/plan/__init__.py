"""Plan: the compatibility matrix, GPU identification, the resolver and each host's plan (pure, no I/O)."""
