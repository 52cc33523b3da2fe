"""The in-container torch check: a standalone script copied or mounted into the PyTorch image.

`torch_check.py` uses only the standard library and torch, so it runs in any PyTorch image and
with a host's own PyTorch. The host side runs it and reads the one JSON object it prints.
"""

from pathlib import Path

SCRIPT = Path(__file__).with_name("torch_check.py")
"""Path of the check script, to copy or bind-mount (read-only) into the container."""
