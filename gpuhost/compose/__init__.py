"""Compose: one host's settings (every capability's model, checked together), the plan's own keys, the host plan (plan + driver sources + mirror) and its report."""
