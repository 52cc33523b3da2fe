"""Services the hosts need, served on the lab's own network instead of the internet.

No image registry and none of NVIDIA's repositories are reachable, so later stages point
the deploy's registry and apt settings at these: a real registry (Debian's
docker-registry) and a static HTTP server for a local apt repository. Each service joins
the lab network under a name the hosts resolve (e.g. http://registry:5000) and is also
published on a 127.0.0.1 port for the engine and the tests.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gpuhost.errors import GpuhostError
from gpuhost.lab.engine import docker

LEAST_PRIVILEGE = ["--cap-drop=ALL", "--security-opt", "no-new-privileges"]


@dataclass
class Service:
    """A running service: `url` for the hosts, `local_url` for this machine."""

    name: str
    container: str
    ip: str
    port: int
    local_port: int

    @property
    def address(self) -> str:
        """host:port as the lab hosts reach it (e.g. registry:5000)."""
        return f"{self.name}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def local_address(self) -> str:
        """host:port on this machine (the engine pushes to 127.0.0.1:PORT/...)."""
        return f"127.0.0.1:{self.local_port}"

    @property
    def local_url(self) -> str:
        return f"http://{self.local_address}"


def start_service(name: str, image: str, *, port: int, network: str, prefix: str,
                  labels: dict[str, str], args: list[str], command: list[str] | None = None,
                  ready_path: str = "/") -> Service:
    """docker run a service container on the lab network and wait until it answers HTTP."""
    container = f"{prefix}-{name}"
    label_args = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    docker("run", "-d", "--name", container, "--hostname", name, "--network", network,
           "--network-alias", name, *label_args, *LEAST_PRIVILEGE, *args,
           "-p", f"127.0.0.1::{port}", image, *(command or []))
    local_port = int(docker("port", container, f"{port}/tcp").stdout.split(":")[-1].split()[0])
    ip = docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                container).stdout.strip()
    service = Service(name=name, container=container, ip=ip, port=port, local_port=local_port)
    _wait_http(service, ready_path)
    return service


def start_registry(image: str, **common) -> Service:
    """Debian's docker-registry (distribution 2.8) as an unprivileged user, port 5000."""
    return start_service("registry", image, port=5000, ready_path="/v2/",
                         args=["--user", "docker-registry"], **common)


def serve_directory(path: Path, image: str, name: str = "apt", **common) -> Service:
    """Serve a local directory (e.g. an apt repository) read-only over HTTP on port 8080.

    The server runs as the caller's own uid, so it reads exactly what the caller can.
    """
    path = Path(path).resolve()
    if not path.is_dir():
        raise GpuhostError(f"cannot serve {path}: not a directory")
    return start_service(name, image, port=8080,
                         args=["-v", f"{path}:/srv/www:ro", "--user", f"{os.getuid()}:{os.getgid()}"],
                         command=["python3", "-m", "http.server", "8080", "--directory", "/srv/www"],
                         **common)


def _wait_http(service: Service, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(service.local_url + path, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            error = exc
        time.sleep(0.3)
    logs = docker("logs", "--tail", "10", service.container, check=False)
    raise GpuhostError(f"lab service {service.name} did not answer {path} in {timeout:.0f}s "
                       f"({error}); logs: {(logs.stdout + logs.stderr)[-300:]}")
