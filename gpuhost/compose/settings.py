"""Per-host settings from pyinfra host data, checked before any host is touched.

Each capability declares its host-data keys once, as a model in its own `settings.py`; CAPABILITIES
below registers them (one line each), and HostSettings has one field per entry
(`settings.driver.lock_timeout`, `settings.container.docker_source`, ...). The same check serves
every entry point (the deploy's inventory, inspect, upgrade, cloud-init render):

- every key must be declared by a capability, be pyinfra's own (connector data such as ssh_port,
  operation arguments such as _sudo), start with `x_`, or be listed in `user_keys`; an unknown key
  is an error with "did you mean" for a near miss;
- each value has the declared type and choice (a number is not a version string);
- each value can be served: the torch release and driver branch are in the matrix, declared GPUs
  have a plan; files and environment variables named exist here, a password file is private;
- a problem many hosts share is one line ("40 hosts (a, b, ...): ...").
"""

from __future__ import annotations

import difflib
import os
import typing
from dataclasses import make_dataclass
from functools import lru_cache

from pydantic import BaseModel, Field

from gpuhost.compose.plan_settings import PlanSettings
from gpuhost.containers.settings import ContainerSettings
from gpuhost.driver.settings import DriverSettings
from gpuhost.errors import UsageError
from gpuhost.mirror.settings import MirrorSettings
from gpuhost.monitoring.settings import MonitoringSettings
from gpuhost.plan.gpus import Gpu
from gpuhost.plan.resolver import Policy
from gpuhost.run.bounds import Bounds
from gpuhost.run.host_data import (HostDataModel, Problem, control_character_problems, model_keys, shown, validated,
                                   values_text)
from gpuhost.verify.settings import VerifySettings
from gpuhost.workspace.settings import WorkspaceSettings

USER_PREFIX = "x_"  # a user's own keys: x_rack, x_owner ... (or list them in user_keys)


class InputSettings(HostDataModel):
    """Keys about the host data itself."""

    user_keys: list[str] = Field(
        default_factory=list, description=f"your own extra keys (names, or prefixes ending in `*`); keys "
                                          f"starting with `{USER_PREFIX}` are always yours",
        json_schema_extra={"values": "a list, e.g. `[rack, \"site_*\"]`", "fix": 'use a list, e.g. [rack, "site_*"]'})


# HostSettings field -> the model of that capability's keys (a pydantic model; HostDataModel gives
# strict types, no extra keys and the hooks unservable/missing_locally). A new capability: one line here.
CAPABILITIES: dict[str, type[BaseModel]] = {
    "plan": PlanSettings,
    "driver": DriverSettings,
    "container": ContainerSettings,
    "verify": VerifySettings,
    "mirror": MirrorSettings,
    "monitoring": MonitoringSettings,
    "workspace": WorkspaceSettings,
    "bounds": Bounds,
    "inputs": InputSettings,
}


class _Shortcuts:
    """The names older code reads (settings.policy, settings.reboot, ...)."""

    @property
    def policy(self) -> Policy:
        return self.plan.policy

    @property
    def target_gpus(self) -> tuple[Gpu, ...]:  # declared GPUs: plan for these even when none is attached
        return self.plan.gpus

    @property
    def no_gpu(self) -> str:
        return self.plan.no_gpu

    @property
    def reboot(self) -> str:
        return self.driver.reboot


HostSettings = make_dataclass("HostSettings", list(CAPABILITIES.items()), bases=(_Shortcuts,), frozen=True)
HostSettings.__doc__ = "One host's settings: one checked model per capability (CAPABILITIES)."


def settings_from(data) -> HostSettings:
    """Read one host's settings; raises UsageError naming each wrong key and its fix."""
    models, problems = _models(data)
    if problems:
        raise UsageError("; ".join(p.message for p in problems))
    return HostSettings(**models)


def _models(data) -> tuple[dict[str, BaseModel], list[Problem]]:
    models, problems = {}, []
    for name, model in CAPABILITIES.items():
        built, wrong = _built(model, data)
        models[name] = built
        problems += wrong
    return models, problems


def _built(model: type[BaseModel], data) -> tuple[BaseModel | None, list[Problem]]:
    """A HostDataModel (or a plain model) from its own keys; a model with its own `from_host_data`
    (one that checks its keys against others, e.g. workspaces against target_gpus) through that."""
    own = getattr(model, "from_host_data", None)
    if own is None or issubclass(model, HostDataModel):
        return validated(model, data)
    refused = control_character_problems({k: data[k] for k in model_keys(model) if k in data})
    if refused:
        return None, refused
    try:
        return own(data), []
    except UsageError as exc:
        return None, [Problem(tuple(k for k in model_keys(model) if k in data), str(exc))]


# --- The check before any host is contacted -------------------------------------------------------


def host_problems(data: dict, local: bool = True) -> list[Problem]:
    """Everything wrong with one host's data. `local`: the data is for a deploy run from here, so
    files and variables it names must exist here (cloud-init's data is for the VM: False)."""
    return _checked(data, local)[0]


def _checked(data: dict, local: bool) -> tuple[list[Problem], HostSettings | None]:
    """(host_problems, the host's settings when there are none)."""
    problems = unknown_keys(data) + pyinfra_value_problems(data, local)
    models, wrong = _models(data)
    problems += wrong
    for model in models.values():
        if isinstance(model, HostDataModel):
            problems += model.unservable() + (model.missing_locally() if local else [])
    return problems, (None if problems else HostSettings(**models))


def check_hosts(hosts, local: bool = True) -> list[str]:
    """One line per problem across (name, data) pairs, a problem shared by hosts once; empty when fine."""
    return check_fleet(hosts, local)[0]


def check_fleet(hosts, local: bool = True) -> tuple[list[str], dict[str, HostSettings]]:
    """check_hosts' lines, and each host's settings when there are none (read once for the deploy)."""
    messages, settings = [], {}
    for name, data in hosts:
        problems, settings[name] = _checked(data, local)
        messages.append((name, [p.message for p in problems]))
    return grouped(messages), settings


def problems_text(header: str, lines: list[str]) -> str:
    """One problem: one line; more: a header with their count, then one line each."""
    return f"{header}: {lines[0]}" if len(lines) == 1 else "\n".join([f"{header} ({len(lines)} problems):", *lines])


def grouped(per_host) -> list[str]:
    """(host, [message]) pairs -> lines, a message many hosts share given once with their count."""
    hosts_of: dict[str, list[str]] = {}
    for name, messages in per_host:
        for message in dict.fromkeys(messages):
            hosts_of.setdefault(message, []).append(str(name))
    lines = []
    for message, names in hosts_of.items():
        if len(names) == 1:
            lines.append(f"host {names[0]}: {message}")
        else:
            shown_names = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"{len(names)} hosts ({shown_names}): {message}")
    return lines


@lru_cache(maxsize=1)
def gpuhost_keys() -> tuple[str, ...]:
    return tuple(key for model in CAPABILITIES.values() for key in model_keys(model))


@lru_cache(maxsize=1)
def pyinfra_keys() -> dict[str, object]:
    """pyinfra's own host-data keys and their types: every connector's data (ssh_port, docker_identifier
    ...) and the operation arguments a host's data may set (_sudo, _env ...), read from pyinfra itself."""
    from pyinfra.api.arguments import all_global_arguments
    from pyinfra.api.connectors import get_all_connectors

    keys: dict[str, object] = {}
    for connector in get_all_connectors().values():
        keys.update(typing.get_type_hints(connector.data_cls))
    keys.update((k, t) for k, t in all_global_arguments() if k.startswith("_"))
    # Keys connectors write into host data themselves (pyinfra 3.10 connectors/chroot.py, dockerssh.py).
    keys.update({"chroot_directory": str, "docker_image": str, "docker_container_id": str})
    return keys


def unknown_keys(data: dict) -> list[Problem]:
    """Keys nothing declares, each with its near misses."""
    known = set(gpuhost_keys()) | set(pyinfra_keys())
    declared = data.get("user_keys") if isinstance(data.get("user_keys"), list) else []
    names = {k for k in declared if isinstance(k, str) and not k.endswith("*")}
    prefixes = tuple(k[:-1] for k in declared if isinstance(k, str) and k.endswith("*")) + (USER_PREFIX,)
    problems = []
    for key in data:
        if not isinstance(key, str):
            problems.append(Problem((), f"key {shown(key)} is not a name: use a quoted key, or remove it"))
            continue
        if key in known or key in names or key.startswith(prefixes):
            continue
        near = near_misses(key, known)
        hint = f"did you mean {' or '.join(near)}? " if near else "remove it, or "
        problems.append(Problem((key,), f"unknown key {key!r}: {hint}(a key of your own: prefix it "
                                        f"{USER_PREFIX} or list it in user_keys)"))
    return problems


def near_misses(key: str, known) -> list[str]:
    """Declared keys a typo is close to: by spelling, or the key written with something added."""
    ours = [k for k in known if not k.startswith("_")]
    close = difflib.get_close_matches(key.lower(), ours, n=3, cutoff=0.75)
    if not close:
        lower = key.lower()
        close = sorted((k for k in ours if (len(k) >= 4 and k in lower) or (len(lower) >= 4 and lower in k)),
                       key=lambda k: -len(k))[:3]
    return close


def pyinfra_value_problems(data: dict, local: bool) -> list[Problem]:
    """pyinfra's own keys, with the types pyinfra checks them against when it connects (typeguard)."""
    from typeguard import TypeCheckError, check_type

    types = pyinfra_keys()
    problems = []
    for key, value in data.items():
        if key not in types or value is None:
            continue
        try:
            check_type(value, types[key])
        except TypeCheckError:
            problems.append(Problem((key,), f"{key} is {shown(value)}: use {values_text(types[key], plain=True)}"))
            continue
        problems += control_character_problems({key: value})
        problem = _connection_value_problem(key, value)
        if problem:
            problems.append(Problem((key,), problem))
    for key in ("ssh_key", "ssh_config_file"):  # files pyinfra reads here when it connects
        path = data.get(key)
        if local and isinstance(path, str) and not os.path.isfile(os.path.expanduser(path)):
            problems.append(Problem((key,), f"{key} {path}: no such file: fix the path"))
    return problems


def _connection_value_problem(key: str, value) -> str | None:
    """pyinfra's connection keys that pass its type check but cannot connect anywhere."""
    if key.endswith("_port") and isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= 65535:
        return f"{key} is the number {value}: use a TCP port from 1 to 65535 (SSH's is 22)"
    blank = {"ssh_hostname": "give the host's address or DNS name, or remove the key (the host's name is used)",
             "ssh_user": "give a user name, or remove the key (your own user name is used)"}
    if key in blank and isinstance(value, str) and not value.strip():
        return f"{key} is {shown(value)}: {blank[key]}"
    return None
