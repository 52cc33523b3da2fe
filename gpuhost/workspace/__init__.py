"""Workspaces: JupyterLab and SSH containers on the verified image, one systemd unit each."""
