"""The lab's images, built locally because no image registry is reachable.

A test-host image is a Debian release made with debootstrap (packages in recipe/packages.txt,
then recipe/setup.sh in a chroot) and turned into an image with `docker import`: Debian 12
(bookworm, the default) or Debian 13 (trixie), as HostSpec.distro asks. Its tag is a hash
of the recipe and the release, so a second run reuses it and a changed recipe rebuilds it. The
root filesystem tarball is kept too, so a wiped engine re-imports without a debootstrap.
The hosts trust what this machine trusts: CA certificates an admin added here (e.g. an
egress proxy's, without which no HTTPS fetch from a host succeeds) go into the image too.
Service images (the registry) are variants: a host image plus Debian packages, committed.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path

from gpuhost.errors import GpuhostError
from gpuhost.lab.engine import LabUnavailable, docker
from gpuhost.lab.state import LABEL, RECIPE, locked, state_dir, step

# distro (HostSpec.distro) -> (debootstrap suite, image repository); bookworm keeps the old name.
DISTROS = {"debian12": ("bookworm", "gpuhost-lab/host"), "debian13": ("trixie", "gpuhost-lab/host-trixie")}
DEFAULT_DISTRO = "debian12"
MIRROR = "http://deb.debian.org/debian"
REGISTRY_REPO = "gpuhost-lab/registry"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
REGISTRY_PACKAGES = ["docker-registry"]
REGISTRY_CONFIG = "/etc/docker/registry/lab.yml"
REGISTRY_CMD = f'["/usr/bin/docker-registry", "serve", "{REGISTRY_CONFIG}"]'


def packages() -> list[str]:
    lines = (RECIPE / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def local_cas() -> dict[str, bytes]:
    """This machine's locally added CA certificates: {relative path: PEM}."""
    if not LOCAL_CAS.is_dir():
        return {}
    return {str(p.relative_to(LOCAL_CAS)): p.read_bytes() for p in sorted(LOCAL_CAS.rglob("*.crt"))}


def recipe_hash(distro: str = DEFAULT_DISTRO) -> str:
    """Hash of everything that shapes the host image of this distro."""
    digest = hashlib.sha256()
    for part in (DISTROS[distro][0], MIRROR, " ".join(packages()), (RECIPE / "setup.sh").read_text()):
        digest.update(part.encode() + b"\0")
    for name, pem in local_cas().items():
        digest.update(name.encode() + b"\0" + pem + b"\0")
    return digest.hexdigest()[:12]


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def ensure_host_image(distro: str = DEFAULT_DISTRO) -> str:
    """Return the tag of the current test-host image of distro, building it if missing."""
    suite, repo = DISTROS[distro]
    tag = f"{repo}:{recipe_hash(distro)}"
    if image_exists(tag):
        return tag
    with locked("image"):
        if image_exists(tag):
            return tag
        tarball = state_dir() / "images" / f"host-{suite}-{recipe_hash(distro)}.tar"
        if not tarball.exists():
            build_rootfs(tarball, suite)
        with step(f"importing {tarball.name} as {tag} (docker import)"), open(tarball, "rb") as data:
            proc = subprocess.run(["docker", "import", "-c", 'CMD ["/sbin/init"]', "-", tag],
                                  stdin=data, capture_output=True, text=True)
        if proc.returncode != 0:
            raise GpuhostError(f"docker import failed: {proc.stderr.strip()}")
        _drop_other_tags(repo, tag)
    return tag


def build_rootfs(tarball: Path, suite: str) -> None:
    """debootstrap the recipe into a directory, run setup.sh in it, tar it."""
    if not shutil.which("debootstrap"):
        raise GpuhostError("debootstrap is missing: apt-get install debootstrap (./dev does this)")
    if os.geteuid() != 0:
        raise LabUnavailable("building the test-host image (debootstrap, chroot) needs root: "
                             "run once as root (./dev does it with sudo)")
    cache = state_dir() / "debootstrap-cache"
    (cache / suite).mkdir(parents=True, exist_ok=True)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    for old in tarball.parent.glob(f"host-{suite}-*.tar"):
        old.unlink()
    build = Path(tempfile.mkdtemp(prefix="rootfs-", dir=state_dir()))
    try:
        with step(f"building the test-host image: debootstrap {suite} ({len(packages())} packages, about a minute)"):
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages())}",
                  f"--cache-dir={cache / suite}", suite, str(build), MIRROR])
        for name, pem in local_cas().items():
            target = build / "usr/local/share/ca-certificates" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pem)
        shutil.copy(RECIPE / "setup.sh", build / "tmp" / "lab-setup.sh")
        _run(["chroot", str(build), "/bin/sh", "/tmp/lab-setup.sh"])
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(build), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(tarball)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(build)], check=False)


def ensure_registry_image() -> str:
    """A host image plus Debian's docker-registry: a real registry server for the lab."""
    base = ensure_host_image()
    config = (RECIPE / "registry.yml").read_text()
    recipe = f"{base} {REGISTRY_PACKAGES} {REGISTRY_CMD} {config}"
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    tag = f"{REGISTRY_REPO}:{digest}"
    if image_exists(tag):
        return tag
    with locked("image"):
        if not image_exists(tag):
            with step(f"building {tag} (apt-get install {' '.join(REGISTRY_PACKAGES)} in a container, "
                      "a minute or two, once)"):
                commit_with_packages(base, REGISTRY_PACKAGES, tag, cmd=REGISTRY_CMD,
                                     files={REGISTRY_CONFIG: config})
            _drop_other_tags(REGISTRY_REPO, tag)
    return tag


VARIANT_REPO = "gpuhost-lab/host-with"
HOST_CMD = '["/sbin/init"]'


def ensure_variant_image(distro: str, pkgs: tuple[str, ...]) -> str:
    """The host image of distro plus Debian packages (e.g. Slurm's): committed once, tagged by a
    hash of the base image and the package list, so later labs start from it with no apt run."""
    base = ensure_host_image(distro)
    if not pkgs:
        return base
    digest = hashlib.sha256(f"{base} {sorted(pkgs)}".encode()).hexdigest()[:12]
    tag = f"{VARIANT_REPO}:{digest}"
    if image_exists(tag):
        return tag
    with locked("image"):
        if not image_exists(tag):
            with step(f"building {tag} (apt-get install {' '.join(sorted(pkgs))} in a container, once)"):
                commit_with_packages(base, sorted(pkgs), tag, cmd=HOST_CMD)
    return tag


def commit_with_packages(base: str, pkgs: list[str], tag: str, cmd: str,
                         files: dict[str, str] | None = None) -> None:
    """Install pkgs into a container of base (through the engine's NAT), add files, commit."""
    name = f"gpuhost-lab-build-{uuid.uuid4().hex[:8]}"
    script = ("set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
              f"apt-get install -y -q --no-install-recommends {' '.join(pkgs)}; "
              "apt-get clean; rm -rf /var/lib/apt/lists/*")
    try:
        proc = docker("run", "--name", name, "--label", f"{LABEL}=build",
                      "--label", f"{LABEL}.pid={os.getpid()}", base, "/bin/sh", "-c", script,
                      check=False)
        if proc.returncode != 0:
            raise GpuhostError(f"building {tag} failed: {proc.stderr.strip()[-400:]}")
        with tempfile.TemporaryDirectory() as tmp:
            for target, content in (files or {}).items():
                local = Path(tmp) / Path(target).name
                local.write_text(content)
                os.chmod(local, 0o644)
                docker("cp", str(local), f"{name}:{target}")
        docker("commit", "-c", f"CMD {cmd}", name, tag)
    finally:
        docker("rm", "-f", name, check=False)


def _drop_other_tags(repo: str, keep: str) -> None:
    """Remove older builds of repo (a changed recipe leaves them unused)."""
    listed = docker("image", "ls", repo, "--format", "{{.Repository}}:{{.Tag}}", check=False)
    for tag in listed.stdout.split():
        if tag != keep:
            docker("image", "rm", tag, check=False)


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        raise GpuhostError(f"{' '.join(cmd[:3])} failed: " + " | ".join(out))


def one_file_image(ref: str, name: str, text: str) -> str:
    """`docker import` a root filesystem of one file as `ref` (nothing to pull from); returns ref."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    docker("import", "-", ref, input=buffer.getvalue(), text=False)
    return ref


def layered_image(ref: str, layer_sizes: list[int]) -> str:
    """Build `ref` FROM scratch with one layer of random bytes per size (random: compressed size =
    size, so bytes on the wire are known); a small stand-in for a multi-layer image. Returns ref."""
    with tempfile.TemporaryDirectory() as context:
        lines = ["FROM scratch"]
        for index, size in enumerate(layer_sizes):
            (Path(context) / f"layer{index}").write_bytes(os.urandom(size))
            lines.append(f"COPY layer{index} /layer{index}")
        (Path(context) / "Dockerfile").write_text("\n".join(lines) + "\n")
        docker("build", "-q", "-t", ref, context, timeout=300)
    return ref
