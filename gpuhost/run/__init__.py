"""Run: what every deploy shares: host settings, context, report, convergence checks, stop, run summary, pinned keys."""
