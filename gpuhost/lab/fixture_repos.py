"""Signed local apt repositories of TEST FIXTURE packages standing in for NVIDIA's repositories.

NVIDIA's CUDA repository and its libnvidia-container (container toolkit) repository are not
reachable from the lab, so e2e tests and benchmarks build one of these: packages named like
NVIDIA's, holding fixture files only, signed with a gpg key generated per run whose fingerprint
the host data pins. Serve it with `lab.serve_directory(root / "repo", name="apt")`
(http://apt:8080/). Everything gpuhost does with it is real: fingerprint check, keyring, deb822
source, apt-get update/install of exact versions, apt-mark hold, systemctl enable.

- driver_builds() (the default): NVIDIA's CUDA repository as far as the lab needs it, generated
  from the SAME data as the real install (gpuhost/driver/data/driver_sources.yaml through
  select_source, versions from gpuhost/plan/data/drivers.yaml), for two branches at once as the
  real repository holds many: the H100 plan's branch (planned_branch()) and OTHER_BRANCH. Per
  branch: the pinning package, the driver package and what it depends on, persistenced (a
  systemd unit) and the fabric manager packages, holding marker files, no driver. Laid out as
  public evidence shows NVIDIA's index: the pinning package's version is not a driver version
  ('580-5', vendor-audit-2026-12.md S23; 'nvidia-driver-pinning-610=610-2ubuntu1', NVIDIA/NemoClaw
  PR #8207); nvidia-open depends on nvidia-driver-open (>= its version), so a newer branch
  satisfies it unless the pin is in place (dsx-ai-factory/infra-controller PR #6049); the pin is
  an apt preferences file, which apt reads only in its next run, so it must be installed in its
  own step first (NVIDIA's installation guide). The preferences file's exact content was not
  seen: the stand-in's (branch.* at priority 1000) models the effect those sources describe.
  Why not Debian's own non-free nvidia-driver: it is branch 535/550 with proprietary modules
  only, and its DKMS build cannot succeed here (no headers for the machine's kernel).
- recorded_builds(): NVIDIA's CUDA repository as public output RECORDED it (RECORDED_CUDA: each
  name and version with where it was seen), not as gpuhost's data predicts it: it lacks R620 and
  offers a newer R595 than the data names, so a wrong prediction fails a test
  (tests/e2e/test_driver_repository.py).
- TOOLKIT_PACKAGES: the container toolkit's four packages, laid out and depending on each other
  as NVIDIA's (github.com/NVIDIA/nvidia-container-toolkit, packaging/debian/control and
  *.install: -base ships nvidia-ctk and nvidia-container-runtime, nvidia-container-toolkit the
  hook). Their programs are shell scripts written for the tests (see each file's header).

    fingerprint = build_repository(root)                                    # the driver's, two branches
    fingerprint = build_repository(root, packages=TOOLKIT_PACKAGES,
                                   versions=(TOOLKIT_VERSION, TOOLKIT_NEWER))  # two versions
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gpuhost.containers.settings import repos
from gpuhost.driver.sources import select_source, served_branches
from gpuhost.plan.gpus import identify
from gpuhost.plan.matrix import load_matrix
from gpuhost.plan.resolver import resolve

# The lab's test hosts are Debian 12 or 13; the CUDA source is the same for both.
LAB_HOST = {"os": {"id": "debian", "version_id": "12", "codename": "bookworm"}, "arch": "x86_64",
            "kernel": "6.1.0-26-amd64"}
FLAVOUR = "open"  # an H100 plan
OTHER_BRANCH = "580"


PERSISTENCED_UNIT = ("# TEST FIXTURE unit (gpuhost e2e), not NVIDIA's\n[Unit]\nDescription=fixture persistenced\n"
                     "[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")


def planned_branch() -> str:
    """The branch the real resolver plans for an H100 on a lab host (R620 in December 2026)."""
    return resolve([identify("H100")], served_branches=served_branches(LAB_HOST, "cuda")).driver.branch


def driver_version(branch: str) -> str:
    """'620.70.06-1': the branch's first version from the matrix, with a Debian revision."""
    return f"{load_matrix().branch(int(branch)).first_version}-1"


def driver_builds(branches: Sequence[str] | None = None, flavour: str = FLAVOUR) -> list[tuple[str, str, dict]]:
    """(name, version, spec) of every stand-in package, from the real install's data."""
    builds = []
    for branch in branches or (planned_branch(), OTHER_BRANCH):
        src = select_source(LAB_HOST, branch, flavour, "cuda", nvswitch=True)
        version, upstream = driver_version(branch), driver_version(branch).rsplit("-", 1)[0]
        userspace = f"nvidia-driver-{flavour}" if flavour == "open" else "nvidia-driver"
        pinned = [src.driver_package, userspace, src.persistenced, *src.fabric_manager]
        builds += [
            (src.pin_package, f"{branch}-5", {"depends": None, "files": {
                f"etc/apt/preferences.d/{src.pin_package}":
                    "# TEST FIXTURE (gpuhost e2e), standing in for NVIDIA's branch pin\n"
                    f"Package: {' '.join(pinned)}\nPin: version {branch}.*\nPin-Priority: 1000\n"}}),
            (src.driver_package, version, {"depends": f"{userspace} (>= {upstream})", "files": {}}),
            (userspace, version, {"depends": f"{src.persistenced} (>= {upstream})", "files": {}}),
            (src.persistenced, version, {"depends": None, "files": {
                f"lib/systemd/system/{src.persistenced}.service": PERSISTENCED_UNIT}}),
            *((name, version, {"depends": None, "files": {}}) for name in src.fabric_manager),
        ]
    return builds


# RECORDED metadata of NVIDIA's CUDA repository (name, version, where it was seen), read 2026-12-06.
# The versions are NOT gpuhost's predictions: a stand-in built from them can disagree with the data
# (R620 is absent; R595's newest point release is not the data's first_version 595.45.04).
RECORDED_CUDA = (
    ("nvidia-open", "615.71.09-1ubuntu1", "dsx-ai-factory/infra-controller PR #5927 (2026-09-14): "
     "nvidia-open=615.71.09-1ubuntu1 from NVIDIA's CUDA repository"),
    ("nvidia-open", "610.57.04-1ubuntu1", "`apt-cache madison nvidia-open | grep sbsa` (repos/ubuntu2404/sbsa), "
     "quoted in a public engineering log on GitHub (search tool find_string id 65717647662)"),
    ("nvidia-open", "595.91.07-1ubuntu1", "same madison output"),
    ("nvidia-open", "590.48.01-0ubuntu1", "same madison output"),
    ("nvidia-driver-pinning-610", "610-2ubuntu1", "NVIDIA/NemoClaw PR #8207: nvidia-driver-pinning-610=610-2ubuntu1"),
    ("nvidia-driver-pinning-580", "580-5", "third-party `apt-cache policy` output, vendor-audit-2026-12.md S23"),
)


def recorded_builds() -> list[tuple[str, str, dict]]:
    """The stand-in of RECORDED_CUDA: each recorded package at its recorded version. What was not
    recorded is not invented: the pins hold no preferences file (its content was never seen), and
    the only support added is a TEST FIXTURE nvidia-persistenced per driver version (a unit the
    stage enables), which nvidia-open depends on; names and versions stay the recorded ones."""
    builds = []
    for name, version, _ in RECORDED_CUDA:
        if name == "nvidia-open":
            upstream = version.rsplit("-", 1)[0]
            builds += [(name, version, {"depends": f"nvidia-persistenced (>= {upstream})", "files": {}}),
                       ("nvidia-persistenced", version, {"depends": None, "files": {
                           "lib/systemd/system/nvidia-persistenced.service": PERSISTENCED_UNIT}})]
        else:
            builds.append((name, version, {"depends": None, "files": {}}))
    return builds


TOOLKIT_VERSION = repos()["nvidia_container_toolkit"]["default_version"]  # the real install's default
TOOLKIT_NEWER = "1.20.1-1"  # TEST FIXTURE version after the default: a pinned host must not take it

# TEST FIXTURE nvidia-ctk: the three calls gpuhost makes, answering in the real tool's formats.
# `--version`: "NVIDIA Container Toolkit CLI version 1.17.8" + "commit: ..." (as the real CLI
# prints, e.g. the 1.17.8 session in github.com/ssst0n3/docker_archive,
# nvidia-container-toolkit/v1.17.8/README.md). `cdi generate`: the real tool asks NVML for the
# driver version; this stand-in reads the kernel module's /sys/module/nvidia/version, else
# nvidia-smi's driver_version (the lab's test hosts have a TEST FIXTURE nvidia-smi), and fails
# like the real one without a driver. The spec it writes is shaped like the real one
# (cdiVersion, kind nvidia.com/gpu, devices, a libcuda.so.<driver> mount), much shortened.
# `system create-dev-char-symlinks --create-all`: links /dev/char/MAJ:MIN to each /dev/nvidia*
# character device (the lab has none) and logs the call to /var/log/gpuhost-fixture-nvidia-ctk.log.
NVIDIA_CTK = r"""#!/bin/sh
# TEST FIXTURE (gpuhost e2e), not NVIDIA's nvidia-ctk: a shell stand-in built into the lab's
# fixture repository by gpuhost/lab/fixture_repos.py. It implements only what gpuhost calls.
log=/var/log/gpuhost-fixture-nvidia-ctk.log
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) nvidia-ctk $*" 2>/dev/null >>"$log"
case "$1" in
  --version|-v)
    echo "NVIDIA Container Toolkit CLI version @UPSTREAM@"
    echo "commit: 0000000000000000000000000000000000000000 (TEST FIXTURE)"
    ;;
  cdi)
    [ "$2" = generate ] || { echo "fixture nvidia-ctk: only 'cdi generate' is implemented" >&2; exit 2; }
    shift 2; out=
    while [ $# -gt 0 ]; do
      case "$1" in --output=*) out=${1#--output=};; --output) shift; out=$1;; esac; shift
    done
    driver=$(cat /sys/module/nvidia/version 2>/dev/null)
    [ -n "$driver" ] || driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
    if [ -z "$driver" ]; then
      echo 'ERRO[0000] failed to generate CDI spec: failed to create device CDI specs: failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND' >&2
      exit 1
    fi
    echo "INFO[0000] Using driver version $driver" >&2
    spec="---
# TEST FIXTURE CDI spec written by the gpuhost e2e stand-in for nvidia-ctk, not NVIDIA's output
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  mounts:
  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.$driver
    hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.$driver
    options:
    - ro
    - nosuid
    - nodev
    - bind
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: \"0\"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: all
kind: nvidia.com/gpu"
    if [ -z "$out" ]; then printf '%s\n' "$spec"; exit 0; fi
    mkdir -p "$(dirname "$out")" && printf '%s\n' "$spec" > "$out.tmp" && mv -f "$out.tmp" "$out" || exit 1
    echo "INFO[0000] Generated CDI spec with version 0.5.0" >&2
    ;;
  system)
    [ "$2" = create-dev-char-symlinks ] || { echo "fixture nvidia-ctk: only 'system create-dev-char-symlinks'" >&2; exit 2; }
    n=0
    for node in /dev/nvidia*; do
      [ -c "$node" ] || continue
      mm=$(stat -c '%t %T' "$node") || continue
      set -- $mm; mkdir -p /dev/char; ln -sfn "../${node#/dev/}" "/dev/char/$((0x$1)):$((0x$2))"; n=$((n + 1))
    done
    echo "fixture nvidia-ctk: $n /dev/char symlinks" 2>/dev/null >>"$log"
    ;;
  *) echo "fixture nvidia-ctk: '$1' is not implemented" >&2; exit 2;;
esac
"""
NVIDIA_CONTAINER_RUNTIME = """#!/bin/sh
# TEST FIXTURE (gpuhost e2e), not NVIDIA's nvidia-container-runtime: hands every call to runc.
exec runc "$@"
"""
NVIDIA_CONTAINER_RUNTIME_HOOK = """#!/bin/sh
# TEST FIXTURE (gpuhost e2e), not NVIDIA's hook: reads the state runc passes, exposes no GPU.
cat >/dev/null
exit 0
"""
# What the stand-ins hold, per package: {"depends": control Depends or None, "files": {path: text}}.
# "@VERSION@" in either is replaced by the package version, "@UPSTREAM@" by its upstream part; text
# that starts with "#!" is installed executable. The package names come from the real install's data.
TOOLKIT_CONTENT = {
    "libnvidia-container1": {"depends": None, "files": {}},
    "libnvidia-container-tools": {"depends": "libnvidia-container1 (>= @VERSION@)", "files": {}},
    "nvidia-container-toolkit-base": {"depends": None, "files": {
        "usr/bin/nvidia-ctk": NVIDIA_CTK,
        "usr/bin/nvidia-container-runtime": NVIDIA_CONTAINER_RUNTIME}},
    "nvidia-container-toolkit": {
        "depends": "nvidia-container-toolkit-base (= @VERSION@), libnvidia-container-tools (= @VERSION@), "
                   "libnvidia-container-tools (<< 2.0.0)",
        "files": {"usr/bin/nvidia-container-runtime-hook": NVIDIA_CONTAINER_RUNTIME_HOOK}},
}
TOOLKIT_PACKAGES = {name: TOOLKIT_CONTENT.get(name, {"depends": None, "files": {}})
                    for name in repos()["nvidia_container_toolkit"]["packages"]}


def _run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def _fill(text: str, version: str) -> str:
    return text.replace("@VERSION@", version).replace("@UPSTREAM@", version.rsplit("-", 1)[0])


def build_repository(root: Path, packages: Mapping[str, dict] | None = None,
                     versions: Sequence[str] = (), builds: Sequence[tuple[str, str, dict]] | None = None) -> str:
    """A flat, signed apt repository (root/"repo") of `packages`, each built at every one of
    `versions`, or of `builds` (name, version, spec); default: driver_builds(). Returns the
    signing key's fingerprint. The key is root/"repo"/fixture-key.asc."""
    if builds is None:
        builds = ([(n, v, spec) for v in versions for n, spec in packages.items()] if packages
                  else driver_builds())
    repo, gnupg = root / "repo", root / "gnupg"
    repo.mkdir(parents=True)
    gnupg.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    _run(*gpg, "--quick-gen-key", "gpuhost e2e fixture repository <fixture@gpuhost.invalid>", "rsa3072", "sign", "1d")
    fingerprint = next(line.split(":")[9] for line in
                       _run(*gpg, "--with-colons", "--list-keys").stdout.splitlines() if line.startswith("fpr"))
    stanzas = [_package(root / "build" / f"{name}_{version}", repo, name, version, spec)
               for name, version, spec in builds]
    index = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(index)
    release = (f"Origin: gpuhost-e2e-fixture\nLabel: gpuhost-e2e-fixture\nDate: "
               f"{time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\nSHA256:\n"
               f" {hashlib.sha256(index).hexdigest()} {len(index)} Packages\n")
    (repo / "Release").write_text(release)
    _run(*gpg, "--local-user", fingerprint, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release"))
    (repo / "fixture-key.asc").write_text(_run(*gpg, "--armor", "--export", fingerprint).stdout)
    return fingerprint


def _package(tree: Path, repo: Path, name: str, version: str, spec: dict) -> str:
    """Build one .deb into the repository; returns its Packages stanza."""
    (tree / "DEBIAN").mkdir(parents=True)
    control = (f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: gpuhost tests "
               f"<fixture@gpuhost.invalid>\nDescription: TEST FIXTURE standing in for NVIDIA's {name}\n")
    if spec.get("depends"):
        control += f"Depends: {_fill(spec['depends'], version)}\n"
    (tree / "DEBIAN" / "control").write_text(control)
    for path, text in {f"usr/share/doc/{name}/FIXTURE": "gpuhost e2e test fixture\n", **spec["files"]}.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(_fill(text, version))
        (tree / path).chmod(0o755 if text.startswith("#!") else 0o644)
    deb = repo / f"{name}_{version}_all.deb"
    _run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb))
    data = deb.read_bytes()
    return control + f"Filename: ./{deb.name}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"


def repository_data(fingerprint: str, url: str = "http://apt:8080/") -> dict:
    """Host data that plans an H100 host without a GPU and points its driver at the fixture repository."""
    return {"target_gpus": ["H100"], "reboot": "never", "driver_repository": url,
            "driver_repository_key": f"{url}fixture-key.asc", "driver_repository_fingerprint": fingerprint}


def toolkit_repository_data(fingerprint: str, url: str = "http://apt:8080/",
                            version: str = TOOLKIT_VERSION) -> dict:
    """Host data that points the container toolkit at a fixture repository (TOOLKIT_PACKAGES)."""
    return {"target_gpus": ["H100"], "toolkit_source": "nvidia", "toolkit_version": version,
            "toolkit_repository": url, "toolkit_repository_key": f"{url}fixture-key.asc",
            "toolkit_repository_fingerprint": fingerprint}
