"""Schedulers that take part in gpuhost's changes: Slurm drains, waits and resumes (slurm.py)."""
