"""gpuhost workspace health check (written by gpuhost, mounted read-only; Docker runs it as the user).

Healthy when: the SSH server accepts connections (when on), JupyterLab's /api answers (when on; /api
needs no token and tells only the version), and, with GPUs assigned and a CUDA build of torch, torch
sees exactly those GPUs and runs a small kernel. A container that lost its GPUs (NVML "Unknown
Error" after `systemctl daemon-reload`, github.com/NVIDIA/nvidia-container-toolkit/issues/48) fails
that last part. Docker alone never restarts an unhealthy container, so after GPUHOST_HEALTH_RETRIES
failures in a row this check signals the entrypoint (SIGUSR1 to PID 1), which stops and exits 75:
systemd's Restart=on-failure then starts a fresh container, which gets its GPUs again. A CPU build of torch (the lab's) skips the CUDA part.
"""

import importlib.util
import os
import signal
import socket
import ssl
import sys
import urllib.request

STREAK = "/tmp/.gpuhost-health-failures"


def cuda_build() -> bool:
    """torch is installed with CUDA: read from its version.py, so a CPU build costs no torch import."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = open(os.path.join(list(spec.submodule_search_locations)[0], "version.py")).read()
    except OSError:
        return True  # cannot tell: ask torch itself
    return "cuda: Optional[str] = None" not in text and "cuda = None" not in text


def problems() -> list:
    found = []
    if os.environ.get("GPUHOST_SSH") == "1":
        try:
            socket.create_connection(("127.0.0.1", int(os.environ["GPUHOST_SSH_PORT"])), timeout=5).close()
        except OSError as exc:
            found.append(f"sshd does not answer: {exc}")
    if os.environ.get("GPUHOST_JUPYTER") == "1":
        tls = os.path.exists("/etc/gpuhost/tls/cert.pem")
        url = f"{'https' if tls else 'http'}://127.0.0.1:{os.environ['GPUHOST_JUPYTER_PORT']}/api"
        context = ssl._create_unverified_context() if tls else None  # our own server, by loopback
        try:
            urllib.request.urlopen(url, timeout=10, context=context).read()
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            found.append(f"Jupyter does not answer on /api: {exc}")
    expected = int(os.environ.get("GPUHOST_GPU_COUNT") or 0)
    if expected and not found and cuda_build():
        try:
            import torch

            if torch.version.cuda is not None:
                seen = torch.cuda.device_count()
                if seen != expected:
                    found.append(f"torch sees {seen} GPU(s), {expected} assigned")
                else:
                    for index in range(seen):
                        torch.ones(8, device=f"cuda:{index}").sum().item()
        except Exception as exc:  # noqa: BLE001
            found.append(f"torch.cuda probe failed: {exc}")
    return found


def main() -> int:
    found = problems()
    streak = 0
    if found:
        try:
            streak = int(open(STREAK).read() or 0) + 1
        except (OSError, ValueError):
            streak = 1
    with open(STREAK, "w") as out:
        out.write(str(streak))
    if not found:
        print("healthy")
        return 0
    print("; ".join(found))
    if streak >= int(os.environ.get("GPUHOST_HEALTH_RETRIES") or 3):
        print("stopping the container: systemd starts a fresh one")
        os.kill(1, signal.SIGUSR1)
    return 1


if __name__ == "__main__":
    sys.exit(main())
