"""Fleet: the inventory file, rolling upgrades, and cloud-init first boot."""
