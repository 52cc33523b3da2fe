"""Containers: Docker, the NVIDIA container toolkit, daemon.json, and the pre-pull of the plan's image."""
