"""The lab's SSH key: one ed25519 key per machine, made without ssh-keygen.

The public half is written into each host's /root/.ssh/authorized_keys when the host
starts (not baked into the image), so a new key never needs an image rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gpuhost.lab.state import state_dir


def ensure_key() -> tuple[Path, str]:
    """Return (private key path, public key line), generating the pair once."""
    key_dir = state_dir() / "ssh"
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = key_dir / "id_ed25519", key_dir / "id_ed25519.pub"
    if not (private.exists() and public.exists()):
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH)
        partial = private.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        public.write_text(line.decode() + " gpuhost-lab\n")
        partial.rename(private)
    return private, public.read_text().strip()
