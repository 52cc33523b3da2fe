"""The mirror's pure decisions: registry config, references through the mirror, daemon.json lists,
where an image came from, and what the snapshot shows pending on a mirror host."""

import subprocess

import pytest
import yaml

from gpuhost.errors import UsageError

from gpuhost.containers import daemon_json as dj
from gpuhost.mirror import config as mc
from gpuhost.mirror.operations import pull_script
from gpuhost.mirror.settings import MirrorSettings, Upstream
from gpuhost.mirror.stage import mirror_files, mirror_pending, mirror_problem
from gpuhost.run.converged import sha1

LAB = {"registry": "registry:5000", "url": "http://registry:5000", "port": 5010}


PASSWORD_FILE = "/nonexistent/mirror.password"  # only read by mirror_files / the pull


def settings(**data) -> MirrorSettings:
    return MirrorSettings.from_host_data({"mirror_insecure": True, "mirror_insecure_auth": True,
                                          "mirror_password_file": PASSWORD_FILE, **data})


def test_registry_config_is_a_proxy_of_one_upstream_with_delete_and_a_local_debug_server():
    s = settings(mirror_storage="/srv/cache")
    config = yaml.safe_load(mc.registry_config(s, Upstream(**LAB), credentials=("u", "p:w")))
    assert config["proxy"] == {"remoteurl": "http://registry:5000", "username": "u", "password": "p:w"}
    assert config["storage"]["filesystem"]["rootdirectory"] == "/srv/cache/registry-5000"
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["http"]["addr"] == ":5010" and config["http"]["debug"] == {"addr": "127.0.0.1:15010"}
    assert "tls" not in config["http"] and "ttl" not in config["proxy"]
    assert config["log"]["accesslog"] == {"disabled": False}


def test_tls_and_a_supported_ttl_are_rendered():
    s = MirrorSettings(mirror_tls_certificate="/etc/ssl/m.pem", mirror_tls_key="/etc/ssl/m.key", mirror_ttl="72h")
    config = yaml.safe_load(mc.registry_config(s, Upstream(registry="nvcr.io"), ttl_supported=True))
    assert config["http"]["tls"] == {"certificate": "/etc/ssl/m.pem", "key": "/etc/ssl/m.key"}
    assert config["proxy"] == {"remoteurl": "https://nvcr.io", "ttl": "72h"}
    assert s.scheme == "https"


def test_ttl_other_than_168h_is_refused_on_distribution_2():
    s = settings(mirror_ttl="72h")
    assert "fixed 168h" in mc.ttl_problem(s, ["2.8.2+ds1-1"])
    assert mc.ttl_problem(s, ["3.0.0-1"]) is None and mc.ttl_problem(settings(), ["2.8.2+ds1-1"]) is None


@pytest.mark.parametrize("reference,expected", [
    ("pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime", "m:5000/pytorch/pytorch:2.9.1-cuda13.0-cudnn9-runtime"),
    ("ubuntu:22.04", "m:5000/library/ubuntu:22.04"),
    ("docker.io/library/ubuntu:22.04", "m:5000/library/ubuntu:22.04"),
    ("nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3", "m:5001/nvidia/k8s/dcgm-exporter:4.2.3"),
    ("registry:5000/pytorch/pytorch:2.9.1", "m:5010/pytorch/pytorch:2.9.1"),
    ("quay.io/prometheus/node-exporter:v1.9.0", None),  # not cached by this mirror: left as it is
])
def test_references_are_rewritten_to_their_upstream_s_endpoint(reference, expected):
    s = settings(mirror_host="m", mirror_upstreams=[{"registry": "docker.io"}, {"registry": "nvcr.io"}, LAB])
    assert mc.through_mirror(reference, s) == expected


def test_no_mirror_host_no_rewrite_and_no_daemon_json_lists():
    assert mc.through_mirror("ubuntu:22.04", settings()) is None
    assert mc.daemon_json_lists(settings()) == {}


def test_pinned_drops_the_tag_for_the_digest():
    digest = "sha256:" + "a" * 64
    assert mc.pinned("m:5010/pytorch/pytorch:2.9.1", digest) == f"m:5010/pytorch/pytorch@{digest}"
    assert mc.pinned("m:5010/pytorch/pytorch:2.9.1", None) == "m:5010/pytorch/pytorch:2.9.1"


def test_daemon_json_gains_the_mirror_and_keeps_every_user_entry():
    s = settings(mirror_host="m", mirror_upstreams=[{"registry": "docker.io"}, LAB])
    lists = mc.daemon_json_lists(s)
    assert lists == {"registry-mirrors": ["http://m:5000"], "insecure-registries": ["m:5000", "m:5010"]}
    user = {"insecure-registries": ["registry:5000", "m:5010"], "registry-mirrors": ["https://other"],
            "log-driver": "json-file"}
    merged = dj.merged(user, lists=lists)
    assert merged["insecure-registries"] == ["registry:5000", "m:5010", "m:5000"]
    assert merged["registry-mirrors"] == ["https://other", "http://m:5000"]
    assert merged["log-driver"] == "json-file" and "nvidia" in merged["runtimes"]
    assert dj.merged(merged, lists=lists) == merged  # a second merge changes nothing
    with pytest.raises(Exception, match="not a list"):
        dj.merged({"registry-mirrors": "http://x"}, lists=lists)


def test_image_source_reads_docker_s_registry_digests():
    s = settings(mirror_host="m", mirror_upstreams=[LAB])
    tag, origin = "m:5010/pytorch/pytorch:2.9.1", "registry:5000/pytorch/pytorch:2.9.1"
    digest = "sha256:" + "b" * 64
    assert mc.image_source(tag, [tag, origin], {tag: digest}, s, origin) == "mirror m:5010 (cache of registry:5000)"
    assert mc.image_source(tag, [tag, origin], {origin: digest}, s, origin) == \
        "upstream registry:5000 (not through the mirror)"
    assert mc.image_source(origin, [origin], {origin: digest}) == "registry registry:5000"
    assert mc.image_source(tag, [], {}, s, origin) is None


def test_credentials_file_is_user_colon_password(tmp_path):
    good = tmp_path / "ngc"
    good.write_text("$oauthtoken:nvapi-abc:def\n")
    assert mc.read_credentials(str(good)) == ("$oauthtoken", "nvapi-abc:def")
    bad = tmp_path / "bad"
    bad.write_text("just-a-token\n")
    with pytest.raises(ValueError, match="user:password"):
        mc.read_credentials(str(bad))


def test_mirror_needs_tls_or_the_explicit_insecure_choice():
    managed = {"packages": {}, "units": {}, "files": {}}
    assert "mirror_insecure: true" in mirror_problem(MirrorSettings(), managed)
    assert mirror_problem(settings(), managed) is None


def test_a_mirror_in_place_has_nothing_pending(tmp_path):
    credentials, password = tmp_path / "cred", tmp_path / "password"
    credentials.write_text("u:p\n")
    credentials.chmod(0o600)
    password.write_text("client-pw\n")
    password.chmod(0o600)
    s = settings(mirror_upstreams=[{**LAB, "credentials_file": str(credentials)}], mirror_password_file=str(password))
    wanted = mirror_files(s)
    assert set(wanted) == {mc.UNIT_PATH, "/etc/gpuhost/mirror/registry-5000.yml", "/etc/gpuhost/mirror/registry-5000.htpasswd"}
    assert wanted == mirror_files(s, {"/etc/gpuhost/mirror/registry-5000.htpasswd":
                                      wanted["/etc/gpuhost/mirror/registry-5000.htpasswd"]}), \
        "the host's htpasswd, which the password still verifies: a converged mirror stays"
    converged = {"packages": {"docker-registry": ["2.8.2+ds1-1"]},
                 "units": {"docker-registry": {"enabled": "disabled", "active": "inactive"},
                           "gpuhost-mirror@registry-5000": {"enabled": "enabled", "active": "active"}},
                 "files": {path: sha1(text) for path, text in wanted.items()}}
    assert mirror_pending(s, converged, wanted) == []
    credentials.write_text("u:rotated\n")  # a new password is a changed config
    held = {"/etc/gpuhost/mirror/registry-5000.htpasswd": wanted["/etc/gpuhost/mirror/registry-5000.htpasswd"]}
    assert mirror_pending(s, converged, mirror_files(s, held)) == ["/etc/gpuhost/mirror/registry-5000.yml"]
    old = "/etc/gpuhost/mirror/quay.io.yml"
    assert mirror_pending(s, {**converged, "files": {**converged["files"], old: "0" * 40}}, wanted) == [
        f"{old} (an upstream no longer listed)"]
    fresh = {"packages": {}, "units": {"docker-registry": {"enabled": "enabled", "active": "active"}}, "files": {}}
    assert mirror_pending(s, fresh, wanted) == [
        "docker-registry", "docker-registry (the package's own registry) running", mc.UNIT_PATH,
        "/etc/gpuhost/mirror/registry-5000.htpasswd", "/etc/gpuhost/mirror/registry-5000.yml",
        "gpuhost-mirror@registry-5000"]
    password.chmod(0o644)
    with pytest.raises(Exception, match="other users can read it"):
        mirror_files(s)


@pytest.mark.parametrize("fallback", [None, "registry:5000/pytorch/pytorch@sha256:" + "c" * 64])
def test_pull_script_is_valid_shell(fallback):
    script = pull_script("m:5010/pytorch/pytorch:2.9.1", "registry:5000/pytorch/pytorch:2.9.1",
                         "m:5010/pytorch/pytorch@sha256:" + "c" * 64, fallback, "m")
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert ("fallback to the upstream registry:5000 is off" in script) is (fallback is None)


def test_a_seeded_upstream_is_a_plain_registry_for_air_gapped_sites():
    s = settings(mirror_host="m", mirror_upstreams=[{"registry": "nvcr.io", "seeded": True},
                                                    {"registry": "registry.corp:5000", "seeded": True, "port": 5020}])
    nvcr, corp = s.mirror_upstreams
    config = yaml.safe_load(mc.registry_config(s, nvcr))
    assert "proxy" not in config and config["http"]["addr"] == ":5001" and nvcr.remote_url is None
    assert config["storage"]["delete"] == {"enabled": False}, "a seeded digest stays pullable"
    assert config["auth"] == {"htpasswd": {"realm": "gpuhost-mirror nvcr.io",
                                           "path": "/etc/gpuhost/mirror/nvcr.io.htpasswd"}}
    assert "maintenance" not in config["storage"]
    assert mc.through_mirror("nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3", s) == "m:5001/nvidia/k8s/dcgm-exporter:4.2.3"
    assert corp.listen_port == 5020
    with pytest.raises(Exception, match="seeded"):
        settings(mirror_upstreams=[{"registry": "nvcr.io", "seeded": True, "url": "https://nvcr.io"}])


def test_only_registries_that_take_pushes_or_hold_credentials_ask_their_clients_to_log_in():
    public = yaml.safe_load(mc.registry_config(settings(), Upstream(registry="docker.io")))
    assert "auth" not in public, "a public cache: no push, no private content (proxy mode refuses pushes)"
    credentialed = yaml.safe_load(mc.registry_config(settings(), Upstream(**LAB, credentials_file="/c"), ("u", "p")))
    assert credentialed["auth"]["htpasswd"]["path"] == "/etc/gpuhost/mirror/registry-5000.htpasswd"
    readonly = Upstream(registry="seed.lab:5000", seeded=True, port=5020, readonly=True)
    assert yaml.safe_load(mc.registry_config(settings(), readonly))["storage"]["maintenance"] == \
        {"readonly": {"enabled": True}}
    with pytest.raises(Exception, match="set mirror_password_file"):
        MirrorSettings.from_host_data({"mirror_insecure": True, "mirror_upstreams": [
            {"registry": "seed.lab:5000", "seeded": True, "port": 5020}]})
    with pytest.raises(Exception, match="readonly is for a seeded registry"):
        settings(mirror_upstreams=[{**LAB, "readonly": True}])


def test_htpasswd_is_bcrypt_the_registry_reads():
    import bcrypt
    line = mc.htpasswd("pa:ss word")
    user, hashed = line.rstrip("\n").split(":", 1)
    assert user == "gpuhost" and hashed.startswith("$2b$10$") and "pa:ss" not in line
    assert bcrypt.checkpw(b"pa:ss word", hashed.encode()) and not bcrypt.checkpw(b"other", hashed.encode())


def test_htpasswd_salt_is_random_and_a_verified_file_is_kept():
    """A salt derived from the password would let a reader of the file test guesses without bcrypt."""
    first, second = mc.htpasswd("pa:ss word"), mc.htpasswd("pa:ss word")
    assert first[:29] != second[:29], "a random salt each time a file is made"
    assert mc.htpasswd("pa:ss word", first) == first  # the host's file, which still verifies: unchanged
    assert mc.htpasswd("rotated", first) != first     # a new password: a new file
    for damaged in ("gpuhost:$2b$10$notahash\n", "other:" + first.split(":", 1)[1], "", "gpuhost:x\nroot:y\n"):
        assert mc.htpasswd("pa:ss word", damaged).startswith("gpuhost:$2b$10$")


def test_the_snapshot_reads_the_mirrors_htpasswd_files():
    from facts.managed import ManagedState
    line = mc.htpasswd("pw")
    output = ["@@gpuhost managed 1", "@@files", "@@htpasswd", f"/etc/gpuhost/mirror/registry-5000.htpasswd\t{line.strip()}"]
    held = ManagedState().process(output)["htpasswd"]
    assert held == {"/etc/gpuhost/mirror/registry-5000.htpasswd": line}
    assert mc.htpasswd("pw", held["/etc/gpuhost/mirror/registry-5000.htpasswd"]) == line


def test_an_upstreams_credentials_file_others_can_read_is_refused(tmp_path):
    credentials, password = tmp_path / "cred", tmp_path / "password"
    credentials.write_text("u:KEY\n")
    credentials.chmod(0o644)
    password.write_text("client-pw\n")
    password.chmod(0o600)
    s = settings(mirror_upstreams=[{**LAB, "credentials_file": str(credentials)}], mirror_password_file=str(password))
    with pytest.raises(UsageError, match=rf"^mirror_upstreams registry:5000: credentials_file {credentials}: other "
                                         rf"users can read it \(mode 0644\): chmod 600"):
        mirror_files(s)
    credentials.chmod(0o600)
    assert "password: KEY" in mirror_files(s)[mc.config_path(s.mirror_upstreams[0])]  # 0600: read
