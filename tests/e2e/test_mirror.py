"""e2e: a registry mirror (pull-through cache) in the lab, with the real registry program.

Real: Debian's docker-registry (CNCF distribution 2.8) installed by deploys/registry_mirror.py
through apt on a lab host and run by systemd, one process per upstream; the lab's own registry
(the same program, in a container) as the "upstream" holding the plan's image; Debian's docker.io
on the GPU hosts, installed by the deploy; pyinfra's CLI over SSH. Stand-ins, as TEST FIXTURES:
the plan's image is a small three-layer image of random bytes (no Docker Hub here), and the
nvidia runtime binaries are gpuhost/lab/fixture_repos.py's (as in test_containers.py). The
"docker.io" upstream of the mirror points at the lab registry too: nothing leaves the lab.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gpuhost.lab import HostSpec, Lab
from gpuhost.lab.engine import docker
from gpuhost.lab.fixture_repos import NVIDIA_CONTAINER_RUNTIME, NVIDIA_CONTAINER_RUNTIME_HOOK
from gpuhost.lab.image import layered_image
from gpuhost.lab.results import host_statuses
from gpuhost.mirror.config import UNIT_PATH
from gpuhost.mirror.record import blob_fetches, served_per_client
from gpuhost.plan.gpus import identify
from gpuhost.plan.resolver import Policy, resolve

pytestmark = pytest.mark.e2e
GPU_HOSTS = ("gpu-1", "gpu-2")
UPSTREAM = "registry:5000"
MIRROR_PORT = 5010
SEEDED_REGISTRY, SEEDED_PORT = "seed.lab:5000", 5020  # an upstream the lab cannot reach: seeded
SECRET = "s3cret-TEST-FIXTURE-not-a-real-password"
CLIENT_SECRET = "client-TEST-FIXTURE-mirror-password"  # mirror_password_file: the mirror's user gpuhost
LAYERS = [1_500_000, 700_000, 300_000]
# distribution 2.8 fetches a cold blob from the upstream twice, once to store it and once to stream
# it to the first client (registry/proxy/proxyblobstore.go, ServeBlob: `go storeLocal` + copyContent;
# distribution/distribution@053a52c, read 2026-12-01): per blob and mirror, whatever the host count.
COLD_MISS_FETCHES = 2
USER_DAEMON_JSON = {"log-driver": "json-file", "log-opts": {"max-size": "10m"},
                    "insecure-registries": [UPSTREAM], "features": {"buildkit": True}}
RUNTIME_STAND_INS = {"nvidia-container-runtime": NVIDIA_CONTAINER_RUNTIME,
                     "nvidia-container-runtime-hook": NVIDIA_CONTAINER_RUNTIME_HOOK}


def _tag() -> str:
    return resolve([identify("H100")], current_driver=None, policy=Policy(registry=UPSTREAM)).image.tag


MIRRORED = f"mirror:{MIRROR_PORT}/{_tag().split('/', 1)[1]}"


@pytest.fixture(scope="module")
def lab(engine, tmp_path_factory):
    credentials = tmp_path_factory.mktemp("mirror") / "lab-upstream.cred"
    credentials.write_text(f"lab-user:{SECRET}\n")
    credentials.chmod(0o600)
    password = credentials.parent / "mirror.password"
    password.write_text(CLIENT_SECRET + "\n")
    password.chmod(0o600)
    # The lab has no TLS: its clients log in over plain HTTP, which only this unsafe opt-in allows.
    shared = {"mirror_insecure": True, "mirror_insecure_auth": True, "mirror_password_file": str(password),
              "mirror_upstreams": [
        {"registry": UPSTREAM, "url": f"http://{UPSTREAM}", "port": MIRROR_PORT,
         "credentials_file": str(credentials)},
        {"registry": "docker.io", "url": f"http://{UPSTREAM}"},  # TEST FIXTURE: Hub stand-in, never pulled
        {"registry": SEEDED_REGISTRY, "seeded": True, "port": SEEDED_PORT}]}  # air-gapped: filled by a push
    gpu = {**shared, "target_gpus": ["H100"], "registry": UPSTREAM, "toolkit_source": "keep",
           "mirror_host": "mirror"}
    hosts = [HostSpec("mirror", shared, groups=("mirrors",))] + [HostSpec(name, gpu) for name in GPU_HOSTS]
    with Lab(hosts) as running:
        for name in GPU_HOSTS:
            host = running.host(name)
            host.exec("mkdir -p /etc/docker && cat > /etc/docker/daemon.json",
                      input=json.dumps(USER_DAEMON_JSON), check=True)
            for binary, script in RUNTIME_STAND_INS.items():
                host.exec(f"cat > /usr/bin/{binary} && chmod 755 /usr/bin/{binary}", input=script, check=True)
        registry = running.registry()
        local = f"{registry.local_address}/{_tag().split('/', 1)[1]}"
        layered_image(local, LAYERS)
        docker("push", local, timeout=300)
        docker("image", "rm", local)
        yield running


def _gpuhost(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("gpuhost")), *args, str(lab.inventory_path)],
                          capture_output=True, text=True, timeout=300)


def _upstream_fetches(lab) -> list:
    logs = docker("logs", lab.services["registry"].container, check=False)
    return blob_fetches((logs.stdout + logs.stderr).splitlines())


def test_mirror_host_becomes_a_pull_through_cache_and_a_second_run_changes_nothing(lab):
    first = lab.pyinfra("deploys/registry_mirror.py", "-y")  # every host: only the group's becomes a mirror
    assert first.returncode == 0, first.stdout[-4000:]
    assert SECRET not in first.stdout
    mirror = lab.host("mirror")
    for unit in ("gpuhost-mirror@registry-5000", "gpuhost-mirror@docker.io", "gpuhost-mirror@seed.lab-5000"):
        assert mirror.ssh(f"systemctl is-active {unit}").stdout.strip() == "active", unit
        assert mirror.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled", unit
    assert mirror.ssh("systemctl is-active docker-registry").stdout.strip() != "active"
    stat = mirror.ssh("stat -c '%a %U' /etc/gpuhost/mirror/registry-5000.yml").stdout.split()
    assert stat == ["600", "docker-registry"]
    assert SECRET in mirror.ssh("cat /etc/gpuhost/mirror/registry-5000.yml").stdout
    assert SECRET not in mirror.ssh("ps -eo args; systemctl show -p Environment 'gpuhost-mirror@*'").stdout
    htpasswd = mirror.ssh("stat -c '%a %U' /etc/gpuhost/mirror/seed.lab-5000.htpasswd; "
                          "cat /etc/gpuhost/mirror/seed.lab-5000.htpasswd").stdout
    assert htpasswd.startswith("600 docker-registry\ngpuhost:$2b$") and CLIENT_SECRET not in htpasswd
    assert CLIENT_SECRET not in first.stdout
    # The GPU hosts reach each upstream's process on its own port (lab network); the proxy holding
    # upstream credentials answers only a client that logs in (issue 24).
    code = "curl -s -o /dev/null -w '%{http_code}' "
    answer = lab.host("gpu-1").ssh(f"{code} http://mirror:{MIRROR_PORT}/v2/; echo; "
                                   f"{code} -u gpuhost:{CLIENT_SECRET} http://mirror:{MIRROR_PORT}/v2/")
    assert answer.stdout.split() == ["401", "200"]
    assert lab.host("gpu-1").ssh("test -e /etc/gpuhost/mirror").returncode != 0, "not a mirror: left alone"

    second = lab.pyinfra("deploys/registry_mirror.py", "-y")
    assert second.returncode == 0, second.stdout[-4000:]
    statuses = host_statuses(second.stdout)
    assert all(s["Success"] == 0 and s["Error"] == 0 for s in statuses.values()), second.stdout[-4000:]
    assert f"registry mirror for registry:5000, docker.io, {SEEDED_REGISTRY}: in place" in second.stdout


def test_gpu_hosts_pull_through_the_mirror_each_blob_crosses_once(lab):
    if lab.host("mirror").ssh("systemctl is-active gpuhost-mirror@registry-5000").stdout.strip() != "active":
        pytest.skip("needs the mirror of the first test")
    before = len(_upstream_fetches(lab))
    run = lab.pyinfra("deploys/container_runtime.py", "deploys/prepull.py", "-y", "--limit", "gpu-*")
    assert run.returncode == 0, run.stdout[-4000:]
    assert "on the first host (warms mirror mirror)" in run.stdout
    digests = set()
    for name in GPU_HOSTS:
        host = lab.host(name)
        repo_digests = json.loads(host.ssh(f"docker image inspect -f '{{{{json .RepoDigests}}}}' {MIRRORED}").stdout)
        assert [d.split("@")[0] for d in repo_digests] == [MIRRORED.rsplit(":", 1)[0]], repo_digests
        digests |= {d.split("@")[1] for d in repo_digests}
        assert host.ssh(f"docker image inspect {_tag()}").returncode == 0, "the upstream name is tagged too"
        content = json.loads(host.ssh("cat /etc/docker/daemon.json").stdout)
        for key in ("log-driver", "log-opts", "features"):
            assert content[key] == USER_DAEMON_JSON[key], key
        assert content["insecure-registries"][0] == UPSTREAM  # the user's entry first, ours added
        assert f"mirror:{MIRROR_PORT}" in content["insecure-registries"]
        assert content["registry-mirrors"] == ["http://mirror:5000"]
        assert content["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
        info = json.loads(host.ssh("docker info --format '{{json .RegistryConfig.Mirrors}}'").stdout)
        assert info == ["http://mirror:5000/"]
    assert len(digests) == 1, "every host pulled the same digest"

    # The upstream's own log: each blob fetched once per cache fill, by the mirror, none by a GPU host.
    fetches = [f for f in _upstream_fetches(lab)[before:] if f.status == 200 and f.method == "GET"]
    per_blob = Counter(f.digest for f in fetches)
    assert len(per_blob) == len(LAYERS) + 1, per_blob  # the layers and the image config
    assert set(per_blob.values()) == {COLD_MISS_FETCHES}, per_blob
    assert {f.client for f in fetches} == {lab.host("mirror").ip}

    # The mirror's own record (its journal): it served every blob to each GPU host.
    status = _gpuhost(lab, "mirror", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    (mirror,) = report["mirrors"]
    served = {c["host"]: c for c in report["clients"]}
    for name in GPU_HOSTS:
        assert served[name]["blobs_served"] == len(LAYERS) + 1, served[name]
        assert served[name]["image_source"].startswith(f"mirror mirror:{MIRROR_PORT}"), served[name]
    cache = {u["registry"]: u for u in mirror["upstreams"]}[UPSTREAM]
    assert cache["reachable"] is True and cache["active"] is True
    assert cache["cache_bytes"] >= sum(LAYERS)
    blobs = len(LAYERS) + 1
    assert (cache["blob_requests"], cache["blob_misses"]) == (blobs * len(GPU_HOSTS), blobs), cache
    assert cache["hit_rate"] == round(1 - 1 / len(GPU_HOSTS), 3), cache

    # Pinned by digest: one host (the first) asked the mirror for the tag, the others for its digest.
    journal = lab.host("mirror").ssh("journalctl -u gpuhost-mirror@registry-5000 -o cat --no-pager").stdout
    by_tag = {c["host"]: bool(re.search(rf'^{re.escape(c["address"])} .*"(GET|HEAD) /v2/\S+/manifests/2\.', journal, re.M))
              for c in report["clients"]}
    assert sorted(by_tag.values()) == [False] * (len(GPU_HOSTS) - 1) + [True], by_tag

    # gpuhost inspect says where each host's image came from.
    inspect = _gpuhost(lab, "inspect", "--json")
    assert inspect.returncode == 0, inspect.stderr
    sources = {h["host"]: h["summary"].get("image_source") for h in json.loads(inspect.stdout)["hosts"]}
    for name in GPU_HOSTS:
        assert sources[name] == f"mirror mirror:{MIRROR_PORT} (cache of {UPSTREAM})", sources

    second = lab.pyinfra("deploys/container_runtime.py", "deploys/prepull.py", "-y", "--limit", "gpu-*")
    assert second.returncode == 0, second.stdout[-4000:]
    statuses = host_statuses(second.stdout)
    assert all(s["Success"] == 0 and s["Error"] == 0 for s in statuses.values()), second.stdout[-4000:]

    # An anonymous client gets nothing through the proxy that holds the upstream's credentials, not
    # even the image the GPU hosts (logged in) pulled; the hosts logged out again.
    repository, tag = MIRRORED.split("/", 1)[1].rsplit(":", 1)
    anonymous = lab.host("gpu-1").ssh(f"curl -s -o /dev/null -w '%{{http_code}}' "
                                      f"http://mirror:{MIRROR_PORT}/v2/{repository}/manifests/{tag}")
    assert anonymous.stdout == "401"
    assert "mirror:" not in lab.host("gpu-1").ssh("cat /root/.docker/config.json 2>/dev/null").stdout


def test_with_the_mirror_down_the_pull_fails_loudly_or_falls_back_when_allowed(lab):
    gpu = lab.host("gpu-1")
    if gpu.ssh(f"docker image inspect {MIRRORED}").returncode != 0:
        pytest.skip("needs the pull of the previous test")
    mirror = lab.host("mirror")
    mirror.ssh("systemctl stop gpuhost-mirror@registry-5000", check=True)
    try:
        gpu.ssh(f"docker image rm {MIRRORED} {_tag()}", check=True)
        off = lab.pyinfra("deploys/prepull.py", "-y", "--limit", "gpu-1")
        assert off.returncode != 0
        lines = [line for line in off.stdout.splitlines() if "gpuhost: pull of" in line]
        assert len(lines) == 1, off.stdout[-3000:]
        print(lines[0])  # the line a user sees (pytest -rP shows it)
        assert re.search(rf"through mirror mirror failed \(.+\); fallback to the upstream {UPSTREAM} is off "
                         r"\(mirror_fallback: true allows it\)", lines[0]), lines[0]

        on = lab.pyinfra("deploys/prepull.py", "-y", "--limit", "gpu-1", "--data", "mirror_fallback=true")
        assert on.returncode == 0, on.stdout[-3000:]
        assert "WARNING: pull of" in on.stdout and "pulling from the upstream" in on.stdout
        repo_digests = json.loads(gpu.ssh(f"docker image inspect -f '{{{{json .RepoDigests}}}}' {MIRRORED}").stdout)
        assert [d.split("@")[0] for d in repo_digests] == [_tag().rsplit(":", 1)[0]], "came from the upstream"
    finally:
        mirror.ssh("systemctl start gpuhost-mirror@registry-5000")


def test_air_gapped_a_seeded_registry_takes_pushes_only_after_a_login_and_hosts_run_its_digest(lab):
    gpu_1, gpu_2 = lab.host("gpu-1"), lab.host("gpu-2")
    if gpu_1.ssh(f"docker image inspect {MIRRORED}").returncode != 0:
        pytest.skip("needs the pull of the earlier test")
    seeded = f"mirror:{SEEDED_PORT}/{_tag().split('/', 1)[1]}"
    repository, tag = seeded.split("/", 1)[1].rsplit(":", 1)
    # Anyone in the lab: no push, no delete (issue 24).
    anonymous = gpu_1.ssh(f"docker tag {MIRRORED} {seeded} && docker push {seeded}")
    assert anonymous.returncode != 0 and "no basic auth credentials" in anonymous.stdout + anonymous.stderr
    delete = gpu_1.ssh(f"curl -s -o /dev/null -w '%{{http_code}}' -X DELETE "
                       f"http://mirror:{SEEDED_PORT}/v2/{repository}/manifests/sha256:{'0' * 64}")
    assert delete.stdout == "401"
    # The admin seeds it, logged in (the password on stdin).
    gpu_1.exec(f"docker login mirror:{SEEDED_PORT} -u gpuhost --password-stdin", input=CLIENT_SECRET, check=True)
    push = gpu_1.ssh(f"docker push {seeded}")
    assert push.returncode == 0, push.stdout + push.stderr
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout).group(1)
    gpu_2.ssh(f"docker image rm {MIRRORED} {_tag()}", check=True)  # its layers too: the pull must fetch them

    # By tag, a seeded image is refused in one line: its tag can be pushed again.
    by_tag = lab.pyinfra("deploys/prepull.py", "-y", "--limit", "gpu-2", "--data", f"registry={SEEDED_REGISTRY}")
    assert by_tag.returncode != 0 and "set image_digest" in by_tag.stdout, by_tag.stdout[-3000:]

    # Someone with the password pushes other content under the plan's tag: the host runs the digest.
    replaced = gpu_1.ssh(f"tar -cf - --files-from /dev/null | docker import - {seeded} >/dev/null && "
                         f"docker push {seeded}; docker logout mirror:{SEEDED_PORT}")
    assert replaced.returncode == 0 and digest not in replaced.stdout, replaced.stdout + replaced.stderr
    run = lab.pyinfra("deploys/prepull.py", "-y", "--limit", "gpu-2", "--data", f"registry={SEEDED_REGISTRY}",
                      "--data", f"image_digest={digest}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"by digest {digest}: a tag pushed again there is not followed" in run.stdout
    repo_digests = json.loads(gpu_2.ssh(f"docker image inspect -f '{{{{json .RepoDigests}}}}' {seeded}").stdout)
    assert repo_digests == [f"{seeded.rsplit(':', 1)[0]}@{digest}"], repo_digests
    journal = lab.host("mirror").ssh("journalctl -u gpuhost-mirror@seed.lab-5000 -o cat --no-pager").stdout
    served = {c: n["blobs"] for c, n in served_per_client(blob_fetches(journal.splitlines())).items()}
    assert served.get(gpu_2.ip) == len(LAYERS) + 1, served


def test_an_upstream_no_longer_listed_is_stopped_and_its_config_removed(lab):
    mirror = lab.host("mirror")
    if mirror.ssh("test -d /etc/gpuhost/mirror").returncode != 0:
        pytest.skip("needs the mirror of the first test")
    mirror.ssh("cp -p /etc/gpuhost/mirror/docker.io.yml /etc/gpuhost/mirror/quay.io.yml", check=True)
    run = lab.pyinfra("deploys/registry_mirror.py", "-y", "--limit", "mirror")
    assert run.returncode == 0, run.stdout[-3000:]
    assert mirror.ssh("test -e /etc/gpuhost/mirror/quay.io.yml").returncode != 0
    assert mirror.ssh("systemctl is-active gpuhost-mirror@docker.io").stdout.strip() == "active"
    again = lab.pyinfra("deploys/registry_mirror.py", "-y", "--limit", "mirror")
    assert host_statuses(again.stdout).get("mirror", Counter())["Success"] == 0, again.stdout[-3000:]


def test_with_a_sudo_user_no_secret_is_ever_readable_by_another_user(lab):
    """pyinfra's upload under _sudo stages files in /tmp with the SSH user's umask: a local user
    polling /tmp during the run never reads the upstream's or the clients' password (issue 24)."""
    mirror = lab.host("mirror")
    if mirror.ssh("test -d /etc/gpuhost/mirror").returncode != 0:
        pytest.skip("needs the mirror of the first test")
    mirror.exec("id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy; install -d -o deploy -m 700 "
                "/home/deploy/.ssh; install -o deploy -m 600 /root/.ssh/authorized_keys /home/deploy/.ssh/; "
                "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy; rm -f /tmp/stop-watch "
                "/etc/gpuhost/mirror/registry-5000.yml /etc/gpuhost/mirror/seed.lab-5000.htpasswd "
                f"{UNIT_PATH}", check=True)  # the secrets and a plain file are written again
    watcher = subprocess.Popen(
        ["docker", "exec", mirror.container, "su", "-s", "/bin/sh", "nobody", "-c",
         "while [ ! -e /tmp/stop-watch ]; do for f in /tmp/* /tmp/.[!.]*; do "
         "[ -f \"$f\" ] && cat \"$f\" 2>/dev/null && echo \"@@read $f\"; done; done"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        run = lab.pyinfra("deploys/registry_mirror.py", "-y", "--limit", "mirror",
                          "--data", "ssh_user=deploy", "--data", "_sudo=true")
    finally:
        mirror.exec("touch /tmp/stop-watch")
        seen = watcher.communicate(timeout=60)[0]
        mirror.exec("rm -f /tmp/stop-watch")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "@@read /tmp/pyinfra-" in seen, "the watcher saw pyinfra's staged upload of the unit (not a secret)"
    assert SECRET not in seen and CLIENT_SECRET not in seen and "gpuhost:$2b$" not in seen
    assert SECRET in mirror.ssh("cat /etc/gpuhost/mirror/registry-5000.yml").stdout, "written again"
    assert mirror.ssh("stat -c '%a %U' /etc/gpuhost/mirror/seed.lab-5000.htpasswd").stdout.split() == \
        ["600", "docker-registry"]
