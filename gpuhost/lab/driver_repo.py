"""A signed local apt repository of TEST FIXTURE packages standing in for NVIDIA's driver repository.

NVIDIA's CUDA repository is not reachable from the lab, so e2e tests and benchmarks build this
one: packages named like NVIDIA's (nvidia-driver-pinning-580, nvidia-open, nvidia-persistenced;
they hold no driver, only a marker file and a systemd unit), signed with a gpg key generated per
run whose fingerprint the host data pins. Serve it with `lab.serve_directory(root / "repo",
name="apt")` (http://apt:8080/). Everything gpuhost does with it is real: fingerprint check,
keyring, deb822 source, apt-get update/install, apt-mark hold, the nouveau blacklist, systemctl
enable. Why not Debian's own non-free nvidia-driver: it is branch 535 with proprietary modules
only, while an H100 plan is R580 open, and its DKMS build cannot succeed here (no headers for
the machine's kernel).
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

VERSION = "580.95.05-1"
FIXTURE_PACKAGES = {
    "nvidia-driver-pinning-580": {"depends": None, "files": {}},
    "nvidia-persistenced": {"depends": None, "files": {
        "lib/systemd/system/nvidia-persistenced.service":
            "# TEST FIXTURE unit (gpuhost e2e), not NVIDIA's\n[Unit]\nDescription=fixture persistenced\n"
            "[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}},
    "nvidia-open": {"depends": "nvidia-persistenced", "files": {}},
}
def _run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def build_repository(root: Path) -> str:
    """A flat, signed apt repository of fixture packages; returns the signing key's fingerprint."""
    repo, gnupg = root / "repo", root / "gnupg"
    repo.mkdir(parents=True)
    gnupg.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    _run(*gpg, "--quick-gen-key", "gpuhost e2e fixture repository <fixture@gpuhost.invalid>", "rsa3072", "sign", "1d")
    fingerprint = next(line.split(":")[9] for line in
                       _run(*gpg, "--with-colons", "--list-keys").stdout.splitlines() if line.startswith("fpr"))
    stanzas = []
    for name, spec in FIXTURE_PACKAGES.items():
        tree = root / "build" / name
        (tree / "DEBIAN").mkdir(parents=True)
        control = (f"Package: {name}\nVersion: {VERSION}\nArchitecture: all\nMaintainer: gpuhost tests "
                   f"<fixture@gpuhost.invalid>\nDescription: TEST FIXTURE standing in for NVIDIA's {name}\n")
        if spec["depends"]:
            control += f"Depends: {spec['depends']}\n"
        (tree / "DEBIAN" / "control").write_text(control)
        for path, text in {f"usr/share/doc/{name}/FIXTURE": "gpuhost e2e test fixture\n", **spec["files"]}.items():
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text(text)
        deb = repo / f"{name}_{VERSION}_all.deb"
        _run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb))
        data = deb.read_bytes()
        stanzas.append(control + f"Filename: ./{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(packages)
    release = (f"Origin: gpuhost-e2e-fixture\nLabel: gpuhost-e2e-fixture\nDate: "
               f"{time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\nSHA256:\n"
               f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    (repo / "Release").write_text(release)
    _run(*gpg, "--local-user", fingerprint, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release"))
    (repo / "fixture-key.asc").write_text(_run(*gpg, "--armor", "--export", fingerprint).stdout)
    return fingerprint


def repository_data(fingerprint: str, url: str = "http://apt:8080/") -> dict:
    """Host data that plans an H100 host without a GPU and points its driver at the fixture repository."""
    return {"target_gpus": ["H100"], "reboot": "never", "driver_repository": url,
            "driver_repository_key": f"{url}fixture-key.asc", "driver_repository_fingerprint": fingerprint}
