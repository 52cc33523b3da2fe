"""Image distribution through pull-through caches: CNCF distribution (Debian's docker-registry) in
proxy mode, one registry process per upstream, and GPU hosts that pull through it."""
