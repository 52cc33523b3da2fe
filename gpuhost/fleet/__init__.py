"""Fleet: the inventory file, the deploy's host context (every host checked first), rolling upgrades, and cloud-init first boot."""
