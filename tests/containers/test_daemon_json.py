"""gpuhost.containers.daemon_json: the merge keeps every user key, adds the nvidia runtime, is idempotent."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuhost.containers.daemon_json import NVIDIA_RUNTIME, merged, parse, render, validate
from gpuhost.errors import GpuhostError

# Any JSON value (no NaN: daemon.json is JSON, and JSON has none).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                       max_size=4),
    max_leaves=12,
)
runtime_entries = st.fixed_dictionaries({"path": st.text(min_size=1, max_size=20)},
                                        optional={"args": st.lists(st.text(max_size=8), max_size=3)})
# A user's daemon.json: arbitrary keys, plus (sometimes) the keys the merge touches, well shaped.
user_files = st.builds(
    lambda free, runtimes, features, default: {
        **free,
        **({"runtimes": runtimes} if runtimes is not None else {}),
        **({"features": features} if features is not None else {}),
        **({"default-runtime": default} if default else {}),
    },
    st.dictionaries(st.text(max_size=16).filter(lambda k: k not in ("runtimes", "features",
                                                                        "default-runtime")),
                    json_values, max_size=6),
    st.none() | st.dictionaries(st.sampled_from(["nvidia", "runsc", "kata", "crun"]), runtime_entries,
                                max_size=3),
    st.none() | st.dictionaries(st.sampled_from(["cdi", "containerd-snapshotter", "buildkit"]),
                                st.booleans(), max_size=3),
    st.sampled_from([None, "runc", "io.containerd.runc.v2"]),
)


def _keeps(user, result, path="") -> None:
    """Every key/value of user is in result, recursively for objects."""
    for key, value in user.items():
        assert key in result, f"lost {path}{key}"
        if isinstance(value, dict):
            _keeps(value, result[key], f"{path}{key}.")
        else:
            assert result[key] == value, f"changed {path}{key}: {value!r} -> {result[key]!r}"


@settings(max_examples=300, deadline=None)
@given(user_files, st.booleans())
def test_every_user_key_survives_and_nvidia_is_there(user, cdi):
    before = json.loads(json.dumps(user))
    result = merged(user, features={"cdi": True} if cdi else None)
    assert user == before, "merge must not modify its input"
    _keeps(user, result)
    assert "nvidia" in result["runtimes"]
    if cdi:
        assert "cdi" in result["features"]
    validate(result)
    assert json.loads(render(result)) == result


@settings(max_examples=200, deadline=None)
@given(user_files, st.booleans(), st.booleans())
def test_merge_is_idempotent(user, default_runtime, cdi):
    kwargs = {"default_runtime": default_runtime, "features": {"cdi": True} if cdi else None}
    once = merged(user, **kwargs)
    twice = merged(once, **kwargs)
    assert twice == once
    assert render(twice) == render(once)


@settings(max_examples=100, deadline=None)
@given(user_files)
def test_default_runtime_only_when_asked(user):
    assert merged(user).get("default-runtime") == user.get("default-runtime")
    assert merged(user, default_runtime=True)["default-runtime"] == "nvidia"


def test_empty_or_missing_file_gets_only_the_runtime():
    assert merged(None) == {"runtimes": {"nvidia": NVIDIA_RUNTIME}}
    assert merged({}) == {"runtimes": {"nvidia": NVIDIA_RUNTIME}}


def test_features_are_deep_merged_not_replaced():
    """What `nvidia-ctk runtime configure --cdi.enabled` is reported to get wrong."""
    user = {"features": {"containerd-snapshotter": True, "cdi": False}}
    result = merged(user, features={"cdi": True})
    assert result["features"] == {"containerd-snapshotter": True, "cdi": False}
    assert merged({"features": {"buildkit": True}}, features={"cdi": True})["features"] == \
        {"buildkit": True, "cdi": True}


def test_users_own_nvidia_runtime_is_kept():
    user = {"runtimes": {"nvidia": {"path": "/opt/nvidia/bin/nvidia-container-runtime",
                                    "args": ["--debug"]}}}
    assert merged(user) == user


def test_options_are_applied_last_and_deep():
    result = merged({"log-opts": {"max-size": "10m"}},
                    options={"log-opts": {"max-file": "3"}, "live-restore": True})
    assert result["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert result["live-restore"] is True


@pytest.mark.parametrize("bad, words", [
    ([1, 2], "not a JSON object"),
    ({"runtimes": "nvidia"}, "'runtimes' is"),
    ({"features": ["cdi"]}, "'features'"),
    ({"runtimes": {"kata": {"args": []}}}, "runtime 'kata' needs a 'path'"),
    ({"default-runtime": "kata"}, "default-runtime 'kata' is not among its runtimes"),
    ({"features": {"cdi": "yes"}}, "features"),
])
def test_broken_user_files_are_refused_with_one_line(bad, words):
    with pytest.raises(GpuhostError) as exc:
        merged(bad)
    assert words in str(exc.value)
    assert "\n" not in str(exc.value)


def test_parse():
    assert parse(None) is None
    assert parse("  \n") is None
    assert parse('{"a": 1}') == {"a": 1}
    with pytest.raises(GpuhostError, match="not valid JSON"):
        parse('{"a": 1,}')
    with pytest.raises(GpuhostError, match="not a JSON object"):
        parse("[]")
