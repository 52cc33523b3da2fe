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

from facts.sections import Sections

SCRIPT = r"""
echo '@@gpuhost workspace 1'
W=/var/lib/gpuhost/workspaces
echo '@@files'
sha1sum /etc/systemd/system/gpuhost-workspace-*.service $W/bin/* $W/*/passwd $W/*/group $W/*/sshd_config $W/*/authorized_keys $W/*/workspace.json 2>/dev/null
echo '@@tokens'
stat -c '%n %a %u %g %s' $W/*/jupyter_token 2>/dev/null
echo '@@records'
for f in $W/*/workspace.json; do [ -f "$f" ] && head -c 16384 "$f" && echo; done
units=$(ls /etc/systemd/system/gpuhost-workspace-*.service 2>/dev/null | sed 's#.*/##')
if [ -n "$units" ] && command -v docker >/dev/null 2>&1; then
  echo '@@units'
  systemctl show -p Id -p UnitFileState -p ActiveState $units 2>/dev/null | awk -F= '
    $1 == "Id" { id = $2; sub(/\.service$/, "", id) } $1 == "UnitFileState" { st = $2 } $1 == "ActiveState" { ac = $2 }
    /^$/ { if (id != "") print id, st, ac; id = st = ac = "" } END { if (id != "") print id, st, ac }'
  echo '@@containers'
  docker ps -a --filter label=gpuhost.workspace --format '{{.Names}}	{{.State}}	{{.Label "gpuhost.workspace.spec"}}	{{.Status}}' 2>/dev/null
  echo '@@layers'
  tags=$(docker images --filter label=gpuhost.workspace.recipe --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -v '<none>')
  [ -n "$tags" ] && docker image inspect -f '{{index .RepoTags 0}} {{index .Config.Labels "gpuhost.workspace.base-digest"}}' $tags 2>/dev/null
fi
true
"""
COMMAND = SCRIPT.strip()
HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


class WorkspaceState(FactBase):
    """gpuhost's workspace units, config files, containers and layer images."""

    def command(self) -> str:
        return COMMAND

    @staticmethod
    def default() -> dict[str, Any]:
        return process_workspace_sections(Sections([]))

    def process(self, output: list[str]) -> dict[str, Any]:
        return process_workspace_sections(Sections(output))


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
    containers = {}
    for line in sections.lines("containers"):
        parts = line.split("\t")
        if len(parts) == 4:
            match = HEALTH.search(parts[3])
            health = match.group(1).replace("health: ", "") if match else None
            containers[parts[0]] = {"state": parts[1], "spec": parts[2] or None, "status": parts[3], "health": health}
    layers = {}
    for line in sections.lines("layers"):
        tag, _, base = line.strip().partition(" ")
        if tag:
            layers[tag] = base.strip() or None
    return {"files": files, "tokens": tokens, "records": records, "units": units, "containers": containers,
            "layers": layers}
