"""Plan: the compatibility matrix, GPU identification and the resolver (pure, no I/O; imports only its own modules, gpuhost.errors and gpuhost.yamlfile)."""
