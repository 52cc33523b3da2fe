"""Docker and NVIDIA container toolkit state of a host, read in one command.

`ContainerState` finds how Docker is installed (distribution package, snap,
rootless), which daemon.json the running dockerd really reads (its
--config-file, else the default for that kind of install), the runtimes and
live-restore the daemon reports, running containers that use GPUs, the
nvidia-container-toolkit version, CDI specs and the driver they were generated
for, and the images present. The command always exits 0. Environment
variables of containers are never read, except NVIDIA_VISIBLE_DEVICES.

Shape of the fact (all keys always present)::

    {
      "docker": {
        "installed": bool,             # a docker client or dockerd binary exists
        "client": "/usr/bin/docker" | None, "client_version": "27.5.1" | None,
        "dockerd": "/usr/bin/dockerd" | None, "daemon_version": "27.5.1" | None,
        "install": ["package" | "snap" | "rootless" | "binary"],   # how, may be several
        "packages": {"docker-ce": "5:27.5.1-1~ubuntu.24.04~noble", ...},
        "snap_version": "27.2.0" | None,
        "running": bool,               # a dockerd process exists
        "daemons": [{"pid": 812, "uid": 0, "rootless": False, "snap": False,
                     "config_file": "/etc/docker/daemon.json", "config_from": "default"|"--config-file"|"rootless",
                     "host": "unix:///run/docker.sock" | None}],      # its -H/--host socket
        "nested_daemons": 0,           # dockerds in other PID namespaces (containers), skipped
        "daemon_json": {"path": "/etc/docker/daemon.json", "exists": bool,   # of the daemon
                                                                          # `docker` talks to
                        "content": {...} | None, "error": "..." | None},
        "reachable": bool,             # `docker info` answered
        "info_error": "Cannot connect to the Docker daemon ..." | None,
        "runtimes": ["io.containerd.runc.v2", "nvidia", "runc"],
        "default_runtime": "runc" | None,
        "live_restore": bool | None,
        "cgroup_driver": "systemd" | None,
        "docker_host": "unix:///run/user/1000/docker.sock" | None,   # DOCKER_HOST of the session
        "client_host": "unix:///srv/docker.sock" | None,   # the daemon's own -H socket, used
      },                                                   # by the readings when not the default
      "nvidia_runtime": bool,          # 'nvidia' among the daemon's runtimes (or daemon.json's)
      "gpu_containers": [{"id": "3f2a...", "name": "train", "image": "...", "runtime": "nvidia",
                          "gpus": "all" | "0,1" | None, "via": ["device_requests"|"runtime"|"cdi"]}],
      "toolkit": {"installed": bool, "version": "1.17.8" | None,
                  "nvidia_ctk": path | None, "runtime_binary": path | None,
                  "packages": {"nvidia-container-toolkit": "1.17.8-1", ...},
                  "legacy": ["nvidia-docker2", "nvidia-container-runtime"]},  # deprecated, installed
      "cdi": {"specs": [{"path": "/etc/cdi/nvidia.yaml", "kind": "nvidia.com/gpu",
                         "driver_version": "580.95.05" | None}],
              "driver_versions": ["580.95.05"]},
      "images": ["pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", ...],
      "image_digests": {"pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime": "sha256:..."},  # pulled
      "warnings": ["..."],
    }
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyinfra.api import FactBase

from facts.readings import CONTAINER_PACKAGES as PACKAGES  # noqa: F401 (the packages it reads)
from facts.readings import Part, command
from facts.sections import Sections, key_values, key_values_with_tail, not_available, part_sections

DOCKER_PACKAGES = {"docker.io", "docker-ce", "moby-engine", "docker"}
TOOLKIT_PACKAGES = {
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
    "nvidia-docker2",
    "nvidia-container-runtime",
}
# NVIDIA's deprecated packages, superseded by nvidia-container-toolkit: nvidia-docker2 shipped a
# wrapper script and /etc/docker/daemon.json (NVIDIA/nvidia-docker debian/nvidia-docker2.install,
# commit fe18749), and is now a meta package whose "wrapper script ... should be considered
# deprecated" (debian/control, commit 0706626; read 2026-12-01); nvidia-container-runtime likewise.
LEGACY_TOOLKIT_PACKAGES = ("nvidia-docker2", "nvidia-container-runtime")
SNAP_DAEMON_JSON = "/var/snap/docker/current/config/daemon.json"
# POSIX sh, after the shared dpkg and docker readings (facts/readings.py): the daemon, its
# containers and images, and the packages are read there.
SCRIPT = r"""
echo '@@gpuhost container 1'
echo '@@snap'
[ -e /snap/docker/current/meta/snap.yaml ] && grep -m 1 '^version:' /snap/docker/current/meta/snap.yaml
echo '@@rootless_units'
for f in /root/.config/systemd/user/docker.service /home/*/.config/systemd/user/docker.service; do [ -e "$f" ] && echo "$f"; done
if [ -z "$cfgs" ]; then
  cfgs=/etc/docker/daemon.json
  [ -e /snap/docker/current ] && cfgs="$cfgs __SNAP_DAEMON_JSON__"
fi
# A file root does not own (a rootless daemon's) is read only when it is no link, and no line of it
# can pass for one of this output's markers (JSON never starts a line with @).
for f in $cfgs; do
  if [ -r "$f" ] && [ -O "$f" ]; then echo "@@daemon_json $f"; head -c 65536 "$f"; echo
  elif [ -r "$f" ] && ! [ -L "$f" ]; then echo "@@daemon_json $f"; head -c 65536 "$f" | sed 's/^@/ @/'; echo
  else echo "@@daemon_json_absent $f"; fi
done
# nvidia-ctk's version from its package when one is installed (the shared dpkg reading), else the binary.
on_path nvidia-ctk; kt=$w
echo "@@ctk ${kt:--}"
case "$pk" in *'@@package_flags cli='?' ctk=1'*) ;; *) [ -n "$kt" ] && $T "$kt" --version 2>&1 | head -n 2;; esac
on_path nvidia-container-runtime; r=$w
echo "@@nvidia_runtime_binary ${r:--}"
echo '@@cdi'
cf=; for f in /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json; do [ -f "$f" ] && cf="$cf $f"; done
[ -n "$cf" ] && awk '
  function out() { if (p != "") print "path=" p " kind=" (kd == "" ? "-" : kd) " lib=" (lb == "" ? "-" : lb) }
  FNR == 1 { out(); p = FILENAME; kd = lb = "" }
  kd == "" && match($0, /"?kind"?: *"?[A-Za-z0-9.\/_-]+/) { kd = substr($0, RSTART, RLENGTH); sub(/^"?kind"?: *"?/, "", kd) }
  lb == "" && match($0, /lib(cuda|nvidia-ml)\.so\.[0-9]+(\.[0-9]+)+/) { lb = substr($0, RSTART, RLENGTH) }
  END { out() }' $cf
"""
PART = Part("container", ("dpkg", "docker"), SCRIPT.replace("__SNAP_DAEMON_JSON__", SNAP_DAEMON_JSON))
COMMAND = command(PART)

DOCKER_VERSION_RE = re.compile(r"version\s+([0-9][^\s,]*)", re.IGNORECASE)
CTK_VERSION_RE = re.compile(r"version\s+([0-9][0-9.]*[0-9](?:-[0-9A-Za-z.]+)?)")
LIB_VERSION_RE = re.compile(r"\.so\.(\d+(?:\.\d+)+)$")


class ContainerState(FactBase):
    """Docker (how installed, daemon.json, runtimes, GPU containers), toolkit, CDI, images."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_container_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_container_sections(part_sections(output, "container"))


def process_container_sections(sections: Sections) -> dict[str, Any]:
    """Turn the script's sections into the documented dict (module docstring)."""
    warnings: list[str] = []
    images, image_digests = _images(sections)
    packages = _packages(sections.lines("packages"))
    docker_packages = {k: v for k, v in packages.items() if k not in TOOLKIT_PACKAGES}
    toolkit_packages = {k: v for k, v in packages.items() if k in TOOLKIT_PACKAGES}
    client = sections.header("docker_client")
    dockerd = sections.header("dockerd")
    snap_line = sections.lines("snap")
    snap_version = snap_line[0].split(":", 1)[1].strip().strip("'\"") if snap_line else None

    daemon_lines = sections.lines("daemons")
    daemons = [_daemon(line) for line in daemon_lines if line.startswith("pid=")]
    nested = sum(1 for line in daemon_lines if line.startswith("other_namespace "))
    rootless_units = sections.lines("rootless_units")
    docker_host = sections.header("docker_host")

    install: list[str] = []
    if set(docker_packages) & DOCKER_PACKAGES:
        install.append("package")
    if snap_version or any(d["snap"] for d in daemons):
        install.append("snap")
    if rootless_units or any(d["rootless"] for d in daemons) or _rootless_host(docker_host):
        install.append("rootless")
    if (client or dockerd) and not install:
        install.append("binary")

    daemon_json = _daemon_json(sections, _main_daemon(daemons, sections.header("docker_client_host")))
    info = _info(sections)
    runtimes = info["runtimes"]
    configured = (daemon_json["content"] or {}).get("runtimes") if daemon_json["content"] else None
    nvidia_runtime = "nvidia" in runtimes or (
        not info["reachable"] and isinstance(configured, dict) and "nvidia" in configured
    )

    if "snap" in install:
        warnings.append(
            f"Docker from snap reads {SNAP_DAEMON_JSON}, not /etc/docker/daemon.json"
        )
    if "rootless" in install:
        warnings.append("rootless Docker: the daemon reads ~/.config/docker/daemon.json of its user")
    if len(install) > 1:
        warnings.append(f"Docker installed several ways: {', '.join(install)}")
    for daemon in daemons:
        if daemon["config_from"] == "--config-file":
            warnings.append(f"dockerd (pid {daemon['pid']}) reads {daemon['config_file']} (--config-file)")
    if daemon_json["error"]:
        warnings.append(f"{daemon_json['path']}: {daemon_json['error']}")
    if daemons and not info["reachable"] and info["error"]:
        warnings.append(f"dockerd runs but `docker info` failed: {info['error']}")

    runtime_binary = sections.header("nvidia_runtime_binary")
    if nvidia_runtime and runtime_binary is None:
        warnings.append("the nvidia runtime is configured but nvidia-container-runtime is not installed")
    if info["reachable"] and isinstance(configured, dict) and "nvidia" in configured and "nvidia" not in runtimes:
        warnings.append(f"{daemon_json['path']} declares the nvidia runtime but the running dockerd "
                        "does not have it: restart Docker")

    ctk_lines = sections.lines("ctk")
    ctk_version = None
    if ctk_lines:
        match = CTK_VERSION_RE.search(ctk_lines[0])
        ctk_version = match.group(1) if match else None
    if ctk_version is None:
        ctk_version = _upstream(toolkit_packages.get("nvidia-container-toolkit"))

    specs = []
    for line in sections.lines("cdi"):
        values = key_values(line)
        lib = values.get("lib", "-")
        match = LIB_VERSION_RE.search(lib)
        specs.append(
            {
                "path": values.get("path"),
                "kind": None if not_available(values.get("kind")) else values["kind"],
                "driver_version": match.group(1) if match else None,
            }
        )
    return {
        "docker": {
            "installed": bool(client or dockerd or docker_packages or snap_version),
            "client": client,
            "client_version": _docker_version(sections.lines("docker_client")) or _client_package_version(client, packages),
            "dockerd": dockerd,
            "daemon_version": info["server_version"]
            or _docker_version(sections.lines("dockerd_version") or sections.lines("dockerd")),
            "install": install,
            "packages": docker_packages,
            "snap_version": snap_version,
            "running": bool(daemons),
            "daemons": daemons,
            "nested_daemons": nested,
            "daemon_json": daemon_json,
            "reachable": info["reachable"],
            "info_error": info["error"],
            "runtimes": runtimes,
            "default_runtime": info["default_runtime"],
            "live_restore": info["live_restore"],
            "cgroup_driver": info["cgroup_driver"],
            "docker_host": docker_host,
            "client_host": sections.header("docker_client_host"),
        },
        "nvidia_runtime": nvidia_runtime,
        "gpu_containers": [c for c in map(_container, sections.lines("containers")) if c],
        "toolkit": {
            "installed": bool(ctk_version or toolkit_packages or sections.header("ctk")),
            "version": ctk_version,
            "nvidia_ctk": sections.header("ctk"),
            "runtime_binary": runtime_binary,
            "packages": toolkit_packages,
            "legacy": sorted(p for p in toolkit_packages if p in LEGACY_TOOLKIT_PACKAGES),
        },
        "cdi": {
            "specs": specs,
            "driver_versions": sorted({s["driver_version"] for s in specs if s["driver_version"]}),
        },
        "images": images,
        "image_digests": image_digests,
        "warnings": warnings,
    }


def _packages(lines: list[str]) -> dict[str, str]:
    """`name version status` rows; only installed ones (status ii/hi)."""
    packages = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2][1:2] == "i":
            packages[parts[0]] = parts[1]
    return packages


def _upstream(version: str | None) -> str | None:
    """Debian/RPM package version -> upstream ('1.17.8-1' -> '1.17.8')."""
    if not version:
        return None
    version = version.split(":", 1)[-1]
    return version.split("-", 1)[0]


def _client_package_version(client: str | None, packages: dict[str, str]) -> str | None:
    """The version of /usr/bin/docker from its package (the script asks the binary only without one)."""
    if client != "/usr/bin/docker":
        return None
    return _upstream(packages.get("docker-ce-cli") or packages.get("docker.io"))


def _docker_version(lines: list[str]) -> str | None:
    if not lines:
        return None
    match = DOCKER_VERSION_RE.search(lines[0])
    return match.group(1) if match else None


def _rootless_host(docker_host: str | None) -> bool:
    return bool(docker_host) and "/run/user/" in docker_host  # type: ignore[operator]


def _daemon(line: str) -> dict[str, Any]:
    values, cmdline = key_values_with_tail(line, "cmdline")
    uid = values.get("uid", "")
    cmdline = cmdline or ""
    return {
        "pid": int(values["pid"]) if values.get("pid", "").isdigit() else None,
        "uid": int(uid) if uid.isdigit() else None,
        "rootless": (uid.isdigit() and uid != "0") or "rootless" in cmdline,
        "snap": cmdline.startswith("/snap/") or "/snap/docker/" in cmdline,
        "config_file": values.get("config"),
        "config_from": values.get("from"),
        "host": None if not_available(values.get("host")) else values["host"],
    }


def _main_daemon(daemons: list[dict[str, Any]], client_host: str | None) -> dict[str, Any] | None:
    """The dockerd that `docker` talks to: on the client's socket, else the system one."""
    if client_host:
        for daemon in daemons:
            if daemon["host"] == client_host:
                return daemon
    system = ("fd://", "unix:///var/run/docker.sock", "unix:///run/docker.sock", None)
    for daemon in daemons:
        if daemon["host"] in system and not daemon["rootless"]:
            return daemon
    return daemons[0] if daemons else None


def _daemon_json(sections: Sections, daemon: dict[str, Any] | None) -> dict[str, Any]:
    """The daemon.json the running dockerd reads, else the default one."""
    wanted = daemon["config_file"] if daemon else None
    present = {s.header: s for s in sections.every("daemon_json")}
    absent = [s.header for s in sections.every("daemon_json_absent")]
    if wanted is None:
        # Nothing running: the package default, else the snap's.
        candidates = list(present) + absent
        wanted = "/etc/docker/daemon.json"
        if "/etc/docker/daemon.json" not in present and SNAP_DAEMON_JSON in present:
            wanted = SNAP_DAEMON_JSON
        elif candidates and wanted not in candidates:
            wanted = candidates[0]
    section = present.get(wanted)
    if section is None:
        return {"path": wanted, "exists": False, "content": None, "error": None}
    text = "\n".join(section.lines).strip()
    if not text:
        return {"path": wanted, "exists": True, "content": {}, "error": None}
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        return {"path": wanted, "exists": True, "content": None, "error": f"invalid JSON ({exc})"}
    if not isinstance(content, dict):
        return {"path": wanted, "exists": True, "content": None, "error": "not a JSON object"}
    return {"path": wanted, "exists": True, "content": content, "error": None}


def _info(sections: Sections) -> dict[str, Any]:
    info: dict[str, Any] = {
        "reachable": False,
        "error": None,
        "server_version": None,
        "default_runtime": None,
        "live_restore": None,
        "cgroup_driver": None,
        "runtimes": [],
    }
    api = sections.text("api_info")
    if api is not None:
        return _api_info(info, api)
    if sections.first("info") is None:
        return info
    lines = sections.lines("info")
    values = dict(line.split("=", 1) for line in lines if "=" in line and line[0].isalpha())
    if sections.header("info_rc") != "0" or not values.get("server_version"):
        errors = [line.strip() for line in lines if not re.match(r"^\w+=", line)]
        info["error"] = errors[0] if errors else "docker info failed"
        return info
    info["reachable"] = True
    info["server_version"] = values.get("server_version") or None
    info["default_runtime"] = values.get("default_runtime") or None
    live = values.get("live_restore")
    info["live_restore"] = {"true": True, "false": False}.get(live or "")
    info["cgroup_driver"] = values.get("cgroup_driver") or None
    try:
        runtimes = json.loads(values.get("runtimes") or "{}")
    except json.JSONDecodeError:
        runtimes = {}
    info["runtimes"] = sorted(runtimes) if isinstance(runtimes, dict) else []
    return info


def _api_info(info: dict[str, Any], text: str) -> dict[str, Any]:
    """The Engine API's GET /info (the same fields `docker info --format` gives)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {**info, "error": "the Docker API's /info answer is not JSON"}
    if not isinstance(data, dict) or not data.get("ServerVersion"):
        return {**info, "error": "the Docker API's /info answer has no ServerVersion"}
    runtimes = data.get("Runtimes")
    return {**info, "reachable": True, "server_version": data["ServerVersion"],
            "default_runtime": data.get("DefaultRuntime") or None,
            "live_restore": data.get("LiveRestoreEnabled") if isinstance(data.get("LiveRestoreEnabled"), bool) else None,
            "cgroup_driver": data.get("CgroupDriver") or None,
            "runtimes": sorted(runtimes) if isinstance(runtimes, dict) else []}


UNTAGGED = "<none>:<none>"  # a dangling image, as the CLI and Docker 20.10's API name it: no tag


def _images(sections: Sections) -> tuple[list[str], dict[str, str]]:
    """(tags, {tag: registry digest}) from the API's GET /images/json or `docker images --digests`."""
    api = sections.text("api_images")
    if api is None:
        rows = [words for words in map(str.split, sections.lines("images")) if words and words[0] != UNTAGGED]
        return (sorted({words[0] for words in rows}),
                {words[0]: words[1] for words in rows if len(words) > 1 and words[1].startswith("sha256:")})
    try:
        images = json.loads(api)
    except json.JSONDecodeError:
        return [], {}
    tags, digests = set(), {}
    for image in images if isinstance(images, list) else []:
        repo_digests = {d.split("@", 1)[0]: d.split("@", 1)[1] for d in image.get("RepoDigests") or [] if "@" in d}
        for tag in image.get("RepoTags") or []:
            if tag == UNTAGGED:
                continue
            tags.add(tag)
            digest = repo_digests.get(tag.rsplit(":", 1)[0])
            if digest:
                digests[tag] = digest
    return sorted(tags), digests


def _container(line: str) -> dict[str, Any] | None:
    """A running container that uses GPUs, else None."""
    parts = line.split("\t")
    if len(parts) < 5:
        return None
    container_id, name, image, runtime, requests = parts[:5]
    visible = parts[5].partition("=")[2] if len(parts) > 5 and parts[5] else None
    via = []
    gpus = None
    try:
        device_requests = json.loads(requests) if requests not in ("", "null") else []
    except json.JSONDecodeError:
        device_requests = []
    for request in device_requests or []:
        capabilities = [cap for group in request.get("Capabilities") or [] for cap in group]
        if request.get("Driver") == "cdi":
            via.append("cdi")
            gpus = ",".join(request.get("DeviceIDs") or []) or gpus
        elif "gpu" in capabilities or request.get("Driver") == "nvidia":
            via.append("device_requests")
            ids = request.get("DeviceIDs") or []
            gpus = ",".join(ids) if ids else ("all" if request.get("Count") == -1 else str(request.get("Count")))
    if runtime == "nvidia" and visible and visible not in ("void", "none"):
        via.append("runtime")
        gpus = gpus or visible
    if not via:
        return None
    return {
        "id": container_id[:12],
        "name": name.lstrip("/"),
        "image": image,
        "runtime": runtime or None,
        "gpus": gpus,
        "via": via,
    }
