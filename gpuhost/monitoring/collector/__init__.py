"""The nvidia-smi textfile collector that runs on GPU hosts without DCGM (stdlib only)."""

from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "nvidia_smi_textfile.py"
