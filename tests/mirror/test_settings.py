"""Mirror host data: defaults, and every wrong value refused with one line naming the key and the fix."""

import pytest

from gpuhost.errors import UsageError
from gpuhost.mirror.settings import MirrorSettings
from gpuhost.compose.settings import check_hosts, settings_from


def test_defaults_use_no_mirror_and_cache_docker_hub():
    s = MirrorSettings.from_host_data({"ssh_port": 22, "torch": "2.9"})  # other keys are not its business
    assert s.mirror_host is None and s.mirror_fallback is False and s.mirror_pull_parallel == 4
    (hub,) = s.mirror_upstreams
    assert (hub.registry, hub.remote_url, hub.listen_port, hub.name) == (
        "docker.io", "https://registry-1.docker.io", 5000, "docker.io")


def test_known_upstreams_come_from_the_data_file_and_others_need_url_and_port():
    s = MirrorSettings.from_host_data({"mirror_insecure": True, "mirror_upstreams": [
        {"registry": "nvcr.io"}, {"registry": "registry.lab:5000", "url": "http://registry.lab:5000/", "port": 5100}]})
    nvcr, lab = s.mirror_upstreams
    assert (nvcr.remote_url, nvcr.listen_port) == ("https://nvcr.io", 5001)
    assert (lab.remote_url, lab.listen_port, lab.name) == ("http://registry.lab:5000", 5100, "registry.lab-5000")


def test_host_settings_carry_the_mirror():
    assert settings_from({"mirror_host": "mirror-01", "mirror_insecure": True}).mirror.mirror_host == "mirror-01"


@pytest.mark.parametrize("data,message", [
    ({"mirror_hots": "m"}, "mirror_hots is not a gpuhost setting: use one of"),
    ({"mirror_host": "http://m:5000"}, "mirror_host: mirror_host 'http://m:5000': use a host name or IP address"),
    ({"mirror_fallback": "yes"}, "mirror_fallback: Input should be a valid boolean"),
    ({"mirror_pull_parallel": 0}, "mirror_pull_parallel: Input should be greater than or equal to 1"),
    ({"mirror_ttl": "a week"}, "mirror_ttl: mirror_ttl 'a week': use a duration such as 168h"),
    ({"mirror_storage": "cache"}, "mirror_storage: 'cache' is not a plain absolute path"),
    ({"image_digest": "sha256:abc"}, "image_digest: image_digest 'sha256:abc': use sha256: and 64 hex digits"),
    ({"mirror_tls_certificate": "/etc/ssl/m.pem"}, "mirror_tls_certificate and mirror_tls_key go together"),
    ({"mirror_tls_certificate": "/a.pem", "mirror_tls_key": "/a.key", "mirror_insecure": True},
     "mirror_insecure is true but TLS is configured"),
    ({"mirror_upstreams": [{"registry": "quay.example"}]},
     "upstream quay.example is not in gpuhost/mirror/data/upstreams.yaml: give its url and port"),
    ({"mirror_upstreams": [{"registry": "nvcr.io", "port": 5000}, {"registry": "docker.io"}]},
     "two upstreams share port 5000"),
    ({"mirror_upstreams": [{"registry": "nvcr.io", "password": "x"}]},
     "mirror_upstreams.0.password is not a gpuhost setting: use one of credentials_file, port, readonly, registry, seeded, url"),
    ({"mirror_upstreams": [{"registry": "nvcr.io", "url": "ftp://nvcr.io"}]}, "use the registry's root"),
])
def test_bad_values_are_one_line_naming_the_key(data, message):
    with pytest.raises(UsageError) as caught:
        MirrorSettings.from_host_data(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_check_hosts_refuses_bad_mirror_data_before_any_host_is_touched():
    problems = check_hosts([("gpu-01", {"mirror_fallback": "maybe"}), ("gpu-02", {})])
    assert len(problems) == 1 and problems[0].startswith("host gpu-01: mirror_fallback:")


@pytest.mark.parametrize("upstream", [{"registry": "seed.lab:5000", "seeded": True, "port": 5020},
                                      {"registry": "nvcr.io", "credentials_file": "/c"}])
def test_a_login_over_plain_http_needs_tls_or_the_unsafe_lab_opt_in(upstream):
    data = {"mirror_insecure": True, "mirror_password_file": "/p", "mirror_upstreams": [upstream]}
    with pytest.raises(UsageError, match="would send that password over plain HTTP: configure mirror_tls_certificate"):
        MirrorSettings.from_host_data(data)
    assert MirrorSettings.from_host_data({**data, "mirror_insecure_auth": True}).mirror_insecure_auth
    tls = {"mirror_tls_certificate": "/m.pem", "mirror_tls_key": "/m.key"}
    assert MirrorSettings.from_host_data({**data, "mirror_insecure": False, **tls}).tls
