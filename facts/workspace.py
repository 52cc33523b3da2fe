"""gpuhost's workspaces on a host, read in one command (a part of facts.snapshot.HostSnapshot).

Docker is asked only when a workspace unit exists, so hosts without workspaces pay nothing.
The Jupyter token is never read: only its mode, owner and size.

Shape of the fact (all keys always present)::

    {
      "files": {"/etc/systemd/system/gpuhost-workspace-alice.service": "<sha1>", ...},  # units,
                                    # /var/lib/gpuhost/workspaces/bin/*, <id>/{passwd,group,...}
      "tokens": {"alice": {"mode": "600", "uid": 1001, "gid": 1001, "size": 48}},
      "records": {"alice": {...}},  # <id>/workspace.json (gpuhost.workspace.decide.record)
      "units": {"gpuhost-workspace-alice": {"enabled": "enabled", "active": "active"}},
      "containers": {"gpuhost-workspace-alice": {"state": "running", "status": "Up 2 hours (healthy)",
                                                 "health": "healthy" | "unhealthy" | "starting" | None,
                                                 "spec": "<label gpuhost.workspace.spec>"}},
      "layers": {"gpuhost-workspace:<sha>": "<base image digest it was built on>"},
    }
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyinfra.api import FactBase

from facts.readings import Part, command
from facts.sections import Sections, part_sections

# POSIX sh, after the shared units and docker readings (facts/readings.py), which give the
# workspace units and, from the one Docker API call, the workspace containers and layer images.
SCRIPT = r"""
W=/var/lib/gpuhost/workspaces
echo '@@gpuhost workspace 1'
if [ -n "$wsu" ] || [ -d $W ]; then
  echo '@@files'
  sha1sum /etc/systemd/system/gpuhost-workspace-*.service $W/bin/* $W/*/passwd $W/*/group $W/*/sshd_config $W/*/authorized_keys $W/*/workspace.json 2>/dev/null
  echo '@@tokens'
  stat -c '%n %a %u %g %s' $W/*/jupyter_token 2>/dev/null
  echo '@@records'
  for f in $W/*/workspace.json; do [ -f "$f" ] && head -c 16384 "$f" && echo; done
fi
"""
PART = Part("workspace", ("units", "docker"), SCRIPT)
COMMAND = command(PART)
HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


class WorkspaceState(FactBase):
    """gpuhost's workspace units, config files, containers and layer images."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_workspace_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_workspace_sections(part_sections(output, "workspace"))


def process_workspace_sections(sections: Sections) -> dict[str, Any]:
    files = {}
    for line in sections.lines("files"):
        digest, _, path = line.strip().partition("  ")
        if path:
            files[path] = digest
    tokens = {}
    for line in sections.lines("tokens"):
        words = line.split()
        if len(words) == 5 and all(w.isdigit() for w in words[2:]):
            tokens[words[0].rsplit("/", 2)[-2]] = {"mode": words[1], "uid": int(words[2]), "gid": int(words[3]),
                                                   "size": int(words[4])}
    records = {}
    for line in sections.lines("records"):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            records[value["id"]] = value
    units = {}
    for line in sections.lines("units"):
        words = line.split()
        if len(words) == 3:
            units[words[0]] = {"enabled": words[1], "active": words[2]}
    containers = _api_containers(sections.text("api_workspace_containers"))
    for line in sections.lines("containers"):
        parts = line.split("\t")
        if len(parts) == 4:
            match = HEALTH.search(parts[3])
            health = match.group(1).replace("health: ", "") if match else None
            containers[parts[0]] = {"state": parts[1], "spec": parts[2] or None, "status": parts[3], "health": health}
    layers = _api_layers(sections.text("api_images"))
    for line in sections.lines("layers"):
        tag, _, base = line.strip().partition(" ")
        if tag:
            layers[tag] = base.strip() or None
    return {"files": files, "tokens": tokens, "records": records, "units": units, "containers": containers,
            "layers": layers}


def _api_containers(text: str | None) -> dict[str, dict]:
    """gpuhost's workspace containers from the Docker API's GET /containers/json?all=1 (label filter)."""
    containers = {}
    for item in _json_list(text):
        names = item.get("Names") or []
        if isinstance(item, dict) and names:
            status = str(item.get("Status") or "")
            match = HEALTH.search(status)
            containers[str(names[0]).lstrip("/")] = {
                "state": item.get("State"), "spec": (item.get("Labels") or {}).get("gpuhost.workspace.spec") or None,
                "status": status, "health": match.group(1).replace("health: ", "") if match else None}
    return containers


def _api_layers(text: str | None) -> dict[str, str | None]:
    """{first tag: base image digest} of gpuhost's workspace layer images, from GET /images/json."""
    layers = {}
    for image in _json_list(text):
        labels = image.get("Labels") or {} if isinstance(image, dict) else {}
        tags = [t for t in image.get("RepoTags") or [] if "<none>" not in t] if isinstance(image, dict) else []
        if "gpuhost.workspace.recipe" in labels and tags:
            layers[tags[0]] = labels.get("gpuhost.workspace.base-digest") or None
    return layers


def _json_list(text: str | None) -> list:
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []
