"""Bytes fetched from the upstream registry, and wall time, to pre-pull an image on N hosts: direct
versus through a registry mirror (pull-through cache), for several N in one run.

    ./dev bench-mirror [--hosts 1,5,10] [--layers 8,4,2]     # from a fresh clone
    .venv/bin/python bench/mirror.py --hosts 1,5,10 [--update-figures]

One lab (gpuhost.lab): the lab registry as the "upstream" (Debian's docker-registry in a
container, holding a TEST FIXTURE image of random-byte layers: no Docker Hub here), one host made a
mirror by deploys/registry_mirror.py, and max(N) GPU hosts given Docker by
deploys/container_runtime.py. Then for each N, interleaved:

  direct   `pyinfra INVENTORY deploys/prepull.py` on N hosts: each pulls from the upstream
  mirror   the same with `--data mirror_host=mirror`, starting from an empty cache: the first
           host pulls alone (it warms the cache), then the rest, by the first host's digest

Upstream bytes are the sum of the bytes the upstream's own access log says it sent for blob
requests during the run. Before each run the hosts' images (and, for the mirror, its cache) are
removed. Results go to bench/out/mirror.json (git-ignored); --update-figures writes
bench/results/mirror.json, the figures docs/performance.md quotes. The lab is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpuhost.lab import HostSpec, Lab  # noqa: E402
from gpuhost.lab.engine import docker  # noqa: E402
from gpuhost.lab.fixture_repos import NVIDIA_CONTAINER_RUNTIME, NVIDIA_CONTAINER_RUNTIME_HOOK  # noqa: E402
from gpuhost.lab.image import layered_image  # noqa: E402
from gpuhost.mirror.record import blob_fetches  # noqa: E402
from gpuhost.plan.gpus import identify  # noqa: E402
from gpuhost.plan.resolver import Policy, resolve  # noqa: E402

UPSTREAM = "registry:5000"
PORT = 5010
CACHE = "/var/lib/gpuhost-mirror/registry-5000"
UNIT = "gpuhost-mirror@registry-5000"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,5,10", help="host counts, comma separated (default 1,5,10)")
    parser.add_argument("--layers", default="8,4,2", help="layer sizes in MB (default 8,4,2)")
    parser.add_argument("--update-figures", action="store_true", help="write bench/results/mirror.json")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.hosts.split(",")})
    layers = [int(float(mb) * 1_000_000) for mb in args.layers.split(",")]
    if not counts or counts[0] < 1 or counts[-1] > 30:
        parser.error("--hosts: counts from 1 to 30")
    out = REPO / "bench" / ("results" if args.update_figures else "out") / "mirror.json"

    tag = resolve([identify("H100")], current_driver=None, policy=Policy(registry=UPSTREAM)).image.tag
    mirrored = f"mirror:{PORT}/{tag.split('/', 1)[1]}"
    shared = {"mirror_insecure": True,
              "mirror_upstreams": [{"registry": UPSTREAM, "url": f"http://{UPSTREAM}", "port": PORT}]}
    gpu = {**shared, "target_gpus": ["H100"], "registry": UPSTREAM, "toolkit_source": "keep",
           "apt_lock_timeout": 600}
    names = [f"g{i:02d}" for i in range(1, counts[-1] + 1)]
    specs = [HostSpec("mirror", shared, groups=("mirrors",))] + [HostSpec(n, gpu) for n in names]
    started = time.monotonic()
    results = []
    with Lab(specs) as lab:
        registry = lab.registry()
        local = f"{registry.local_address}/{tag.split('/', 1)[1]}"
        layered_image(local, layers)
        docker("push", local, timeout=600)
        docker("image", "rm", local)
        for name in names:
            host = lab.host(name)
            host.exec("mkdir -p /etc/docker && cat > /etc/docker/daemon.json",
                      input=json.dumps({"insecure-registries": [UPSTREAM]}), check=True)
            for binary, script in (("nvidia-container-runtime", NVIDIA_CONTAINER_RUNTIME),
                                   ("nvidia-container-runtime-hook", NVIDIA_CONTAINER_RUNTIME_HOOK)):
                host.exec(f"cat > /usr/bin/{binary} && chmod 755 /usr/bin/{binary}", input=script, check=True)
        _check(lab.pyinfra("deploys/registry_mirror.py", "-y", "--limit", "mirror"))
        _check(lab.pyinfra("deploys/container_runtime.py", "-y", "--data", "mirror_host=mirror",
                           *[a for n in names for a in ("--limit", n)]))
        provisioned = time.monotonic() - started
        for count in counts:
            limit = [a for n in names[:count] for a in ("--limit", n)]
            for mode, extra in (("direct", []), ("mirror", ["--data", "mirror_host=mirror"])):
                _reset(lab, names[:count], tag, mirrored, cache=mode == "mirror")
                before = _upstream_lines(lab)
                t0 = time.monotonic()
                _check(lab.pyinfra("deploys/prepull.py", "-y", *extra, *limit))
                wall = time.monotonic() - t0
                fetched = [f for f in blob_fetches(_upstream_lines(lab)[len(before):])
                           if f.method == "GET" and f.status == 200]
                row = {"hosts": count, "mode": mode, "wall_s": round(wall, 2),
                       "upstream_bytes": sum(f.bytes for f in fetched), "upstream_blob_gets": len(fetched)}
                results.append(row)
                print(json.dumps(row), flush=True)
    document = {
        "what": "bytes the upstream sent and wall time to pre-pull one image on N hosts, direct vs mirror",
        "image_layers_bytes": layers,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "lab_setup_s": round(provisioned, 1),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(_table(results))
    print(f"written to {out.relative_to(REPO)}")
    return 0


def _reset(lab, names, tag, mirrored, cache: bool) -> None:
    """No image on the hosts, no gpuhost pull record; for a mirror run an empty cache too."""
    for name in names:
        lab.host(name).exec(f"docker image rm -f {mirrored} {tag} >/dev/null 2>&1; "
                            "rm -f /var/lib/gpuhost/pulled.json; true")
    if cache:
        lab.host("mirror").exec(f"systemctl stop {UNIT} && rm -rf {CACHE}/* && systemctl start {UNIT} && "
                                f"for i in $(seq 30); do curl -fs -o /dev/null http://127.0.0.1:{PORT}/v2/ "
                                "&& break; sleep 1; done", check=True)


def _upstream_lines(lab) -> list[str]:
    return docker("logs", lab.services["registry"].container, check=False).stdout.splitlines()


def _check(run) -> None:
    if run.returncode != 0:
        raise SystemExit(f"bench: a deploy failed:\n{run.stdout[-3000:]}")


def _table(results: list[dict]) -> str:
    lines = ["| hosts | direct: upstream MB | direct: wall s | mirror: upstream MB | mirror: wall s |",
             "|---|---|---|---|---|"]
    for count in sorted({r["hosts"] for r in results}):
        d, m = ({r["mode"]: r for r in results if r["hosts"] == count}[k] for k in ("direct", "mirror"))
        lines.append(f"| {count} | {d['upstream_bytes'] / 1e6:.1f} | {d['wall_s']:.1f} | "
                     f"{m['upstream_bytes'] / 1e6:.1f} | {m['wall_s']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
