"""GPU health: readings, verdicts (ok / degraded / failed) with cause and fix, the on-host command."""
