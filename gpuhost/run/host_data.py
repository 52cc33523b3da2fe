"""The base of every capability's host-data model, and how a wrong value reads.

A capability declares its keys once, as a pydantic model in its own `settings.py`: field name (or
alias) = the host-data key, the type and `Literal[...]` choices, the default and a description. The
models are strict (a number is not a version string, "yes" is not a boolean) and forbid extra
keys. pydantic's errors become one line each, naming the key, the value and the fix.

    class DriverSettings(HostDataModel):
        force: bool = Field(False, description="Change the driver even with GPU processes running.")

    DriverSettings.from_host_data(host.data.dict())   # UsageError("force is 'yes': use true or false")
"""

from __future__ import annotations

import collections.abc
import difflib
import os
import re
import stat
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gpuhost.errors import UsageError

URL_PREFIXES = ("https://", "http://", "file:/")


@dataclass(frozen=True)
class Problem:
    """One wrong value: the keys at fault (to name where they were set) and the line to show."""

    keys: tuple[str, ...]
    message: str


class HostDataModel(BaseModel):
    """Base of a capability's host-data keys: strict types, no extra keys, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True,
                              arbitrary_types_allowed=True)

    @classmethod
    def keys(cls) -> dict[str, str]:
        return model_keys(cls)

    @classmethod
    def from_host_data(cls, data):
        """The model for a host's data; UsageError with one line per wrong key."""
        model, problems = validated(cls, data)
        if problems:
            raise UsageError("; ".join(p.message for p in problems))
        return model

    def unservable(self) -> list[Problem]:
        """Values well formed but that cannot be served (not in the matrix, ...); checked before connecting."""
        return []

    def missing_locally(self) -> list[Problem]:
        """Files and variables named that must exist on the machine running pyinfra."""
        return []


def model_keys(model: type[BaseModel]) -> dict[str, str]:
    """host-data key -> field name, for any pydantic model (an alias is the key)."""
    return {(f.alias or name): name for name, f in model.model_fields.items()}


def validated(model: type[BaseModel], data) -> tuple[BaseModel | None, list[Problem]]:
    """(the model of this host's data, []) or (None, one Problem per wrong key). Only the model's
    keys are read; None counts as not set (the default applies). A string with a control character
    is refused whatever the key (control_character_problems)."""
    picked = {key: data[key] for key in model_keys(model) if key in data and data[key] is not None}
    refused = control_character_problems(picked)
    if refused:
        return None, refused
    try:
        return model.model_validate(picked), []
    except ValidationError as exc:
        return None, list({p.message: p for p in (_problem(model, e, picked) for e in exc.errors())}.values())


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def control_character_problems(data: dict) -> list[Problem]:
    """Every string in host data (also inside lists and mappings) reaches a unit file, a config or a
    shell somewhere: a control character (a newline, a tab, an escape) is refused, one line per key."""
    problems = []
    for key, value in data.items():
        found = _control_character(value)
        if found is not None:
            text, char = found
            where = "" if text is value else f" (in {shown(text)})"
            problems.append(Problem((str(key),), f"{key} is {shown(value)}: it holds the control character "
                                                  f"{char!r}{where}: remove it (a trailing newline comes from "
                                                  f"a YAML `|` block or a pasted value: use a quoted string)"))
    return problems


def _control_character(value, seen: frozenset = frozenset()) -> tuple[str, str] | None:
    """(the string, its first control character) somewhere in a value; None when there is none."""
    if isinstance(value, str):
        match = CONTROL_CHARACTER.search(value)
        return (value, match.group()) if match else None
    if id(value) in seen:  # a list that contains itself (Python group data): looked at once
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _control_character(key) or _control_character(item, seen | {id(value)})
        if found is not None:
            return found
    return None


# --- Errors as one line -------------------------------------------------------------------------


def _problem(cls: type[BaseModel], error: dict, picked: dict) -> Problem:
    loc = error.get("loc") or ()
    if not loc:  # a model validator: its message names the keys
        message = str((error.get("ctx") or {}).get("error") or error["msg"])
        return Problem(tuple(k for k in picked if re.search(rf"\b{re.escape(k)}\b", message)), message)
    key = str(loc[0])
    value = picked.get(key, error.get("input"))
    return Problem((key,), f"{key} is {shown(value)}: {fix(cls, key, error)}")


def shown(value) -> str:
    """A value as the user wrote it, near enough: YAML numbers keep their source text."""
    text = getattr(value, "source_text", None)
    if text is not None:
        return f"the number {text} (read as {float(value)!r})" if str(float(value)) != text else f"the number {text}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return repr(value)


def fix(cls: type[BaseModel], key: str, error: dict) -> str:
    """The fix for one error: the validator's own words, the field's declared hint, or the type's."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    field = cls.model_fields[model_keys(cls)[key]]
    extra = field.json_schema_extra or {}
    value = error.get("input")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and accepts_text(field.annotation):
        text = getattr(value, "source_text", None)
        if text is None and isinstance(value, float):  # a Python file's number: its digits are lost
            return f"quote it: {key}: \"{value!r}\" (a number loses digits, 2.10 reads as 2.1: quote the one you mean)"
        text = text or repr(value)
        return f"quote it: {key}: \"{text}\" (on the command line: --data '{key}=\"{text}\"')"
    if "fix" in extra:
        return extra["fix"]
    choices = [str(c) for c in (error.get("ctx") or {}).get("expected_choices", ())] or _choices(field.annotation)
    near = difflib.get_close_matches(value.strip().lower(), choices, n=1, cutoff=0.6) if isinstance(value, str) else []
    return (f"did you mean {near[0]}? " if near else "") + f"use {values_text(field.annotation, plain=True)}"


def _choices(annotation) -> list[str]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return [str(a) for a in args]
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return [c for a in args for c in _choices(a)]
    return []


def accepts_text(annotation) -> bool:
    """Whether a key takes text (then a number given for it lost its quotes)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return accepts_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return any(accepts_text(a) for a in args)
    return annotation is str


def values_text(annotation, plain: bool = False) -> str:
    """What a key takes, from its type: `a` / `b` for a Literal, `true` / `false`, ..."""
    tick = (lambda s: s) if plain else (lambda s: f"`{s}`")
    sep = ", " if plain else " / "
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return values_text(args[0], plain)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(values_text(a, plain) for a in args if a is not type(None))
    if origin is Literal:
        return ("one of " if plain else "") + sep.join(tick(a) for a in args)
    if annotation is bool:
        return f"{tick('true')} or {tick('false')}" if plain else "`true` / `false`"
    if annotation is int:
        return "a whole number"
    if annotation is str:
        return "a quoted string"
    if origin in (list, tuple):
        return f"a list of {values_text(args[0], plain)}s" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


# --- Validators shared by the capabilities -------------------------------------------------------


def url(value: str) -> str:
    """An http(s):// or file:/ URL (a mirror, a key)."""
    value = value.strip()
    if not value.startswith(URL_PREFIXES) or any(c.isspace() for c in value):
        raise ValueError("use an http(s):// or file:/ URL")
    return value


def fingerprint(value: str) -> str:
    """A key's 40 hex digits, spaces allowed; kept upper case without spaces."""
    digits = value.replace(" ", "").upper()
    if len(digits) != 40 or any(c not in "0123456789ABCDEF" for c in digits):
        raise ValueError("use the key's 40-hex-digit fingerprint")
    return digits


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("use a non-empty quoted string")
    return value.strip()


def secret_file_problem(key: str, path: str) -> str | None:
    """A file holding a secret, on this machine: it must exist, be readable and be private (0600)."""
    file = Path(os.path.expanduser(path))
    try:
        info = file.stat()
    except OSError as exc:
        return f"{key} {path}: {exc.strerror.lower()}: create it (chmod 600) or fix the path"
    if not stat.S_ISREG(info.st_mode):
        return f"{key} {path}: not a regular file: point it at the file that holds the password"
    if info.st_mode & 0o077:
        return (f"{key} {path}: other users can read it (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"chmod 600 {path}")
    if not os.access(file, os.R_OK):
        return f"{key} {path}: cannot be read by this user: fix its owner or permissions"
    return None


def env_problem(key: str, name: str) -> str | None:
    """An environment variable that must be set (not empty) where pyinfra runs."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return f"{key} is {name!r}: use the name of an environment variable, e.g. REGISTRY_PASSWORD"
    if not os.environ.get(name):
        return f"{key} {name}: the variable is unset or empty here: export it before running"
    return None


def model_rows(models: dict[str, type[BaseModel]]) -> list[tuple[str, str, str, str, str]]:
    """(capability, key, values, default, description) for every declared key: the docs' key tables."""
    rows = []
    for capability, model in models.items():
        for key, name in model_keys(model).items():
            field = model.model_fields[name]
            extra = field.json_schema_extra or {}
            default = extra.get("default_text") or _default_text(field.get_default(call_default_factory=True))
            rows.append((capability, key, extra.get("values") or values_text(field.annotation), default,
                         field.description or ""))
    return rows


def _default_text(value: Any) -> str:
    if value is None or value == [] or value == {} or value == ():
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"
