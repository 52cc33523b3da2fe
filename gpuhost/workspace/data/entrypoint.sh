#!/bin/sh
# gpuhost workspace entrypoint (written by gpuhost, mounted read-only): runs as the workspace's
# user, never root. SSH key-only (sshd_config from gpuhost), JupyterLab with its token from the
# 0600 file named by JUPYTER_TOKEN_FILE, never from the command line or the environment.
set -eu
conf=/etc/gpuhost
if [ "${GPUHOST_SSH:-0}" = 1 ]; then
  # Host keys live on a host directory: the same keys after restarts and image updates.
  key=$conf/ssh-host-keys/ssh_host_ed25519_key
  [ -s "$key" ] || ssh-keygen -q -t ed25519 -N '' -C "gpuhost workspace" -f "$key"
  if [ "${GPUHOST_JUPYTER:-0}" != 1 ]; then
    exec /usr/sbin/sshd -D -e -f "$conf/sshd_config"
  fi
  /usr/sbin/sshd -e -f "$conf/sshd_config"   # forks into the background; the health check watches it
fi
# An empty token would turn Jupyter's authentication off: refuse.
[ -s "${JUPYTER_TOKEN_FILE:-}" ] || { echo "gpuhost: the Jupyter token file is missing or empty: not starting Jupyter" >&2; exit 1; }
set -- jupyter lab --no-browser --ip="$GPUHOST_JUPYTER_IP" --port="$GPUHOST_JUPYTER_PORT" \
  --ServerApp.root_dir="$GPUHOST_ROOT_DIR"
if [ -s "$conf/tls/cert.pem" ]; then
  set -- "$@" --ServerApp.certfile="$conf/tls/cert.pem" --ServerApp.keyfile="$conf/tls/key.pem"
fi
exec "$@"
