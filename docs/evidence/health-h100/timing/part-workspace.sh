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
