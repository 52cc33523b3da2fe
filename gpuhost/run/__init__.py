"""Run: what every stage shares: host-data models, bounds and faults, convergence checks, stop, the run summary, pinned keys."""
