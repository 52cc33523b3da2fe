#!/bin/sh
# gpuhost workspace entrypoint (written by gpuhost, mounted read-only): runs as the workspace's
# user, never root, as PID 1 of the container. SSH key-only (sshd_config from gpuhost), JupyterLab
# with its token from the 0600 file named by JUPYTER_TOKEN_FILE, never from the command line or
# the environment. `docker stop` (SIGTERM) stops both and exits 0; the health check's SIGUSR1
# stops both and exits 75, a failure, so systemd's Restart=on-failure starts a fresh container.
set -eu
conf=/etc/gpuhost
pids=
if [ "${GPUHOST_SSH:-0}" = 1 ]; then
  # Host keys live on a host directory: the same keys after restarts and image updates.
  key=$conf/ssh-host-keys/ssh_host_ed25519_key
  [ -s "$key" ] || ssh-keygen -q -t ed25519 -N '' -C "gpuhost workspace" -f "$key"
  /usr/sbin/sshd -D -e -f "$conf/sshd_config" &
  pids="$pids $!"
fi
if [ "${GPUHOST_JUPYTER:-0}" = 1 ]; then
  # An empty token would turn Jupyter's authentication off: refuse.
  [ -s "${JUPYTER_TOKEN_FILE:-}" ] || { echo "gpuhost: the Jupyter token file is missing or empty: not starting Jupyter" >&2; exit 1; }
  set -- jupyter lab --no-browser --ip="$GPUHOST_JUPYTER_IP" --port="$GPUHOST_JUPYTER_PORT" \
    --ServerApp.root_dir="$GPUHOST_ROOT_DIR"
  if [ -s "$conf/tls/cert.pem" ]; then
    set -- "$@" --ServerApp.certfile="$conf/tls/cert.pem" --ServerApp.keyfile="$conf/tls/key.pem"
  fi
  "$@" &
  pids="$pids $!"
fi
stop() {
  kill -TERM $pids 2>/dev/null || true
  wait || true
  exit "$1"
}
trap 'stop 0' TERM INT
trap 'echo "gpuhost: the health check failed: stopping for a fresh start" >&2; stop 75' USR1
set +e
wait
# A service ended on its own: let the health check see it (and stop us), or docker stop end us.
while :; do sleep 3600 & wait $!; done
