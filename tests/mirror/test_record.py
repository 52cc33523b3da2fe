"""The registry's own record, read back from real logs (tests/mirror/fixtures/README.md)."""

from collections import Counter
from pathlib import Path

from facts.mirror import process_client_sections, process_mirror_sections
from facts.sections import Sections
from gpuhost.mirror.record import blob_fetches, hit_rate, served_per_client, stored_from_upstream

FIXTURES = Path(__file__).resolve().parent / "fixtures"
UPSTREAM = (FIXTURES / "upstream-registry.log").read_text().splitlines()
MIRROR = (FIXTURES / "mirror-journal.log").read_text().splitlines()


def test_upstream_log_shows_the_mirror_fetched_each_blob_twice_and_no_gpu_host_came():
    fetches = [f for f in blob_fetches(UPSTREAM) if f.method == "GET" and f.status == 200]
    from_mirror = [f for f in fetches if f.client == "172.29.0.2"]
    assert len(from_mirror) == 8 and set(Counter(f.digest for f in from_mirror).values()) == {2}
    assert {f.client for f in fetches} <= {"172.29.0.2", "172.29.0.1"}  # the mirror; this machine's push checks
    assert {f.repository for f in fetches} == {"pytorch/pytorch"}


def test_mirror_journal_shows_each_gpu_host_got_every_blob_and_four_misses():
    fetches = blob_fetches(MIRROR)
    served = served_per_client(fetches)
    assert set(served) == {"172.29.0.3", "172.29.0.4"}
    assert all(numbers["blobs"] == 4 for numbers in served.values())
    assert served["172.29.0.3"]["bytes"] == served["172.29.0.4"]["bytes"] > 2_500_000
    stored = stored_from_upstream(MIRROR)
    assert len(stored) == 5  # the 4 blobs and the manifest
    assert hit_rate(fetches, stored) == {"requests": 8, "misses": 4, "hit_rate": 0.5}


def test_mirror_fact_sections_are_parsed_per_upstream():
    output = ["@@upstream registry-5000", "active active", "size 2653296", "reach 200",
              "@@log registry-5000", *MIRROR, "@@upstream docker.io", "active failed", "size", "reach 000",
              "@@log docker.io"]
    state = process_mirror_sections(Sections(output))
    assert state["registry-5000"]["active"] is True and state["registry-5000"]["cache_bytes"] == 2653296
    assert state["registry-5000"]["reach_status"] == 200 and len(state["registry-5000"]["log"]) == len(MIRROR)
    assert state["docker.io"] == {"active": False, "cache_bytes": None, "reach_status": 0, "log": []}


def test_client_fact_reads_address_images_and_gpuhost_s_pulls():
    tag = "mirror:5010/pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime"
    digest = "sha256:99225d52af9638296bd942c8eba00c81d1c05e11be8bdc5dfc59e13145d44eac"
    output = ["@@address", "172.29.0.3", "@@images", f"{tag} {digest}",
              "registry:5000/pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime <none>", "@@pulled", f'["{tag}"]']
    state = process_client_sections(Sections(output))
    assert state["address"] == "172.29.0.3" and state["pulled"] == [tag]
    assert state["image_digests"] == {tag: digest} and len(state["images"]) == 2
