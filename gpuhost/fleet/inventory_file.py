"""Hosts, groups and their settings from a plain YAML file, so users list servers without writing Python.

The file has three sections (inventories/lab.yaml documents them for users):

    all:     {key: value}               settings for every host (pyinfra's `all` data)
    groups:  {group: {key: value}}      groups and their settings ({} for none)
    hosts:   [{name, groups: [..], key: value}]   each host, the groups it is in, its own settings

`inventories/lab.py` turns it into pyinfra groups (module-level lists), so pyinfra itself merges
the data: --data > host > group > all, with `group_data/<group>.py` adding to a group's data and
`group_data/all.py` to `all`. pyinfra loads group_data only after the inventory module, so this
module loads those files too (with pyinfra's own loader) and checks every host's merged settings
before any host is contacted. Where pyinfra would settle a clash silently by file order (a key set
for one group both here and in group_data/<group>.py, or differently by two groups of one host),
the clash is refused instead: one line each, naming the host or group, the key and the fix.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gpuhost import yamlfile

from gpuhost.errors import GpuhostError, UsageError
from gpuhost.compose.settings import grouped, host_problems

SECTIONS = ("all", "groups", "hosts")
GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")  # a Python name: a group_data/<name>.py file, a --limit word
NOT_DATA = ("name", "groups")  # host entry keys that are not host data


@dataclass
class YamlInventory:
    """The YAML file as read: sections checked for shape, values not yet."""

    path: Path
    all_data: dict = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)  # declared groups -> settings, file order
    hosts: list[tuple[str, dict, tuple[str, ...]]] = field(default_factory=list)  # name, own data, groups
    problems: list[str] = field(default_factory=list)


@dataclass
class Layer:
    """One source of settings, for the merge and for naming where a bad value came from."""

    label: str  # e.g. "lab.yaml:all", "lab.yaml:groups.canary", "inventories/group_data/canary.py", "host"
    data: dict


def read_inventory(path: Path) -> YamlInventory:
    """Parse and shape-check the YAML; raises UsageError only when nothing can be read at all."""
    path = Path(path)
    try:
        content = yamlfile.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read inventory {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"inventory {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start}): save it as UTF-8") from None
    except yamlfile.YAMLError as exc:
        raise UsageError(f"inventory {path} {yamlfile.error_line(exc)}") from None
    if not isinstance(content, dict) or not isinstance(content.get("hosts"), list):
        raise UsageError(f"inventory {path} needs a 'hosts:' list (see inventories/lab.yaml)")
    inv = YamlInventory(path)
    where = f"inventory {path}"
    for key in content:
        if key not in SECTIONS:
            inv.problems.append(f"{where}: unknown section {key!r}: use {', '.join(SECTIONS)}")

    inv.all_data = content.get("all") or {}
    if not isinstance(inv.all_data, dict):
        inv.problems.append(f"{where}: 'all:' must be a mapping of settings, e.g. 'all: {{torch: \"2.9\"}}'")
        inv.all_data = {}

    groups = content.get("groups") or {}
    if not isinstance(groups, dict):
        inv.problems.append(f"{where}: 'groups:' must map group names to settings, e.g. 'groups: {{rack1: {{}}}}'")
        groups = {}
    for name, settings in groups.items():
        problem = _bad_group_name(name)
        if problem:
            inv.problems.append(f"{where}: group {name!r} {problem}")
            continue
        if settings is not None and not isinstance(settings, dict):
            inv.problems.append(f"group {name}: its settings must be a mapping ({{}} for none), got {settings!r}")
            continue
        inv.groups[name] = settings or {}

    seen: set[str] = set()
    for i, entry in enumerate(content["hosts"]):
        if isinstance(entry, str) and entry:
            entry = {"name": entry}  # `- gpu-01`: a host with no settings of its own
        if not isinstance(entry, dict) or not entry.get("name"):
            inv.problems.append(f"{where}: hosts[{i}] needs a name, e.g. '- name: gpu-01'")
            continue
        name = str(entry["name"])
        problem = _bad_host_name(name)
        if problem:
            inv.problems.append(f"{where}: host {name!r} {problem}")
            continue
        if name in seen:
            inv.problems.append(f"{where}: host {name} is listed twice: merge its entries")
            continue
        seen.add(name)
        member_of = entry.get("groups") or []
        if not isinstance(member_of, list) or not all(isinstance(g, str) for g in member_of):
            inv.problems.append(f"host {name}: groups is {member_of!r}: use a list of group names, e.g. [rack1]")
            member_of = []
        misspelt = {k: near[0] for k in entry if k not in NOT_DATA
                    for near in [difflib.get_close_matches(str(k).lower(), NOT_DATA, n=1, cutoff=0.75)] if near}
        inv.problems += [f"host {name}: unknown key {k!r}: did you mean {near}?" for k, near in misspelt.items()]
        inv.hosts.append((name, {k: v for k, v in entry.items() if k not in NOT_DATA and k not in misspelt},
                          tuple(dict.fromkeys(member_of))))
    return inv


def _bad_group_name(name) -> str | None:
    if name == "all":
        return "is reserved: put settings for every host under 'all:'"
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        return "is not a usable group name: use letters, digits and _, starting with a letter"
    return None


def _bad_host_name(name: str) -> str | None:
    """pyinfra reads `@local`, `@docker/...` as connectors: the deploy would run on this machine or in a container."""
    if name.startswith("@"):
        return ("is a pyinfra connector, not a host: the deploy would run on this machine (or a container); "
                "give the server a name and its address as ssh_hostname")
    if not name.strip() or any(c.isspace() or c == "," for c in name):
        return ("is not a usable host name: pyinfra would take a name with a space, gpuhost does not (host names "
                "also name fleet table rows, upgrade records and Slurm nodes, and --limit a,b splits at commas): "
                "use e.g. gpu-01 and put the address in ssh_hostname")
    return None


def group_data_dirs(inventory_module: Path, cwd: str | None) -> list[Path]:
    """The group_data folders pyinfra's CLI reads, in its order (later ones win): the working
    directory's, then the inventory's (pyinfra_cli.inventory.make_inventory_from_files)."""
    dirs = []
    if cwd:
        dirs.append(Path(cwd) / "group_data")
    inventory_dir = Path(inventory_module).parent.resolve()
    if str(inventory_dir) != cwd:
        dirs.append(inventory_dir / "group_data")
    return dirs


def read_group_data(dirs, groups: dict) -> tuple[dict[str, list[Layer]], list[str]]:
    """group -> its group_data/<group>.py layers, read by pyinfra's own loader (same names kept,
    imports dropped) with a stand-in inventory in context, as pyinfra does. One line per broken file."""
    from pyinfra.api import Inventory, State
    from pyinfra.context import ctx_inventory, ctx_state
    from pyinfra_cli.inventory import _get_group_data  # the loader pyinfra runs after the inventory module

    names_data, other = groups["all"]
    stand_in = Inventory((names_data, dict(other)), **{g: (hosts, dict(data)) for g, (hosts, data) in groups.items()
                                                       if g != "all"})
    layers: dict[str, list[Layer]] = {}
    problems = []
    state = None if ctx_state.isset() else State()  # pyinfra's exec_file records the file on the state
    with ctx_state.use(state or ctx_state.get()), ctx_inventory.use(stand_in):
        for folder in dirs:
            for file in sorted(Path(folder).glob("*.py")) if Path(folder).is_dir() else []:
                try:
                    data = _get_group_data(str(file))[file.stem]
                except (Exception, SystemExit) as exc:  # noqa: BLE001 (the user's file: any error is one line)
                    problems.append(python_file_problem(file, exc, "set values"))
                    continue
                layers.setdefault(file.stem, []).append(Layer(_shown(file), data))
    return layers, problems


def python_file_problem(path, exc: BaseException, purpose: str) -> str:
    """One line for a Python inventory or group_data file that pyinfra could not run: the file, the
    line and what happened there (a syntax error, an exception, sys.exit, bytes that are not text).
    `purpose`: what such a file should only do ("define hosts and groups", "set values")."""
    cause = getattr(exc, "exception", exc)  # pyinfra wraps errors in user code
    where = _shown(Path(path))
    as_python = "" if Path(path).suffix == ".py" else (
        " (pyinfra reads an inventory file as Python; a YAML one goes through inventories/lab.py: "
        f"GPUHOST_INVENTORY={path} pyinfra inventories/lab.py ...)")
    if isinstance(cause, UnicodeDecodeError):
        return (f"{where} is not Python source: byte {cause.object[cause.start]:#04x} at offset {cause.start} is not "
                f"UTF-8 text (a binary file?): point at the right file, or save it as UTF-8{as_python}")
    if isinstance(cause, SyntaxError):
        return f"{where} line {cause.lineno}: Python syntax error: {cause.msg}: fix that line{as_python}"
    line = _line_in(cause.__traceback__, Path(path))
    at = f"{where} line {line}" if line else where
    if isinstance(cause, SystemExit):
        return f"{at} calls sys.exit({cause.code!r}): remove it (the file should only {purpose})"
    return f"{at}: {type(cause).__name__}: {' '.join(str(cause).split())}: fix the file (it should only {purpose})"


def _line_in(tb, path: Path) -> int | None:
    """The line of `path` where an exception went through (the innermost), from its traceback."""
    import traceback

    target = path.resolve()
    lines = [frame.lineno for frame in traceback.extract_tb(tb) if Path(frame.filename).resolve() == target]
    return lines[-1] if lines else None


def _shown(path: Path) -> str:
    """A path as short as is still clear: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def pyinfra_groups(inv: YamlInventory, file_groups=()) -> dict[str, tuple[list, dict]]:
    """Module-level groups for the inventory module: {"all": (hosts, all data), group: (names, data)}.

    `all` lists every host with its own data; a group lists host names and carries the YAML's group
    settings (pyinfra adds group_data/<group>.py on top). Declared groups come first, in file order,
    then groups that only a group_data file defines. A group without hosts is accepted (pyinfra drops it).
    """
    members: dict[str, list[str]] = {g: [] for g in inv.groups}
    for name, _, host_groups in inv.hosts:
        for group in host_groups:
            if group in inv.groups or group in file_groups:
                members.setdefault(group, []).append(name)
    groups = {"all": ([(name, dict(data)) for name, data, _ in inv.hosts], dict(inv.all_data))}
    for group, names in members.items():
        groups[group] = (names, dict(inv.groups.get(group, {})))
    return groups


def check_groups(inv: YamlInventory, file_layers: dict[str, list[Layer]]) -> list[str]:
    """Group names a host lists but nothing defines, group names that are also host names."""
    problems = []
    defined = set(inv.groups) | set(file_layers)
    host_names = {name for name, _, _ in inv.hosts}
    for name, _, host_groups in inv.hosts:
        for group in host_groups:
            problem = _bad_group_name(group)
            if problem:
                problems.append(f"host {name}: group {group!r} {problem}")
            elif group not in defined:
                known = ", ".join(sorted(defined - {"all"})) or "none"
                problems.append(f"host {name}: group {group} is not defined: add it under 'groups:' in "
                                f"{inv.path.name} or create group_data/{group}.py (groups: {known})")
    for group in sorted(defined & host_names):
        problems.append(f"group {group}: it is also a host name, so --limit {group} is ambiguous: rename one")
    return problems


def merge_host(inv: YamlInventory, name: str, own: dict, host_groups, file_layers, file_group: str | None):
    """One host's layers, lowest first, as pyinfra merges them; and the clashes pyinfra would hide."""
    problems = []
    yaml_name = inv.path.name

    def level(label_yaml: str, yaml_data: dict, files: list[Layer], what: str) -> list[Layer]:
        """A group's (or all's) YAML settings plus its group_data files, refusing a key set differently in both."""
        for layer in files:
            for key, value in layer.data.items():
                if key in yaml_data and yaml_data[key] != value:
                    problems.append(f"{what}: {key} is {yaml_data[key]!r} in {label_yaml} but {value!r} in "
                                    f"{layer.label}: set it in one place")
        return [Layer(label_yaml, yaml_data), *files]

    layers = level(f"{yaml_name}:all", inv.all_data, file_layers.get("all", []), "all hosts")
    groups = [g for g in host_groups if g in inv.groups or g in file_layers]
    if file_group and file_group not in inv.groups and file_group in file_layers:
        groups.append(file_group)  # pyinfra's group named after the inventory file: every host
    group_levels = {g: level(f"{yaml_name}:groups.{g}", inv.groups.get(g, {}), file_layers.get(g, []), f"group {g}")
                    for g in groups}
    # Two groups of this host giving one key different values: pyinfra would take the later group's.
    setters: dict[str, dict[str, object]] = {}
    for group, group_layers in group_levels.items():
        for key, value in merged(group_layers).items():
            setters.setdefault(key, {})[group] = value
    for key, by_group in setters.items():
        values = list(by_group.values())
        if key not in own and any(v != values[0] for v in values[1:]):
            shown = ", ".join(f"{g} ({v!r})" for g, v in by_group.items())
            problems.append(f"host {name}: {key} differs between its groups {shown}: set it on the host, "
                            "or in one group")
    for group_layers in group_levels.values():
        layers += group_layers
    layers.append(Layer("host", own))
    return layers, problems


def merged(layers: list[Layer]) -> dict:
    out = {}
    for layer in layers:
        out.update(layer.data)
    return out


def setting_problems(layers: list[Layer], local: bool = True) -> list[str]:
    """The host's merged settings checked by gpuhost.compose.settings, one line per problem; a line names,
    for each key at fault that is not the host's own, where it was set."""
    lines = []
    for problem in host_problems(merged(layers), local):
        origins = []
        for key in problem.keys:
            origin = next((layer.label for layer in reversed(layers) if key in layer.data), "host")
            if origin != "host":
                origins.append(f"{key} from {origin}")
        lines.append(problem.message + (f" ({'; '.join(origins)})" if origins else ""))
    return lines


@dataclass
class LoadedInventory:
    """What the inventory module needs: pyinfra groups, and each host's merged settings as checked."""

    groups: dict[str, tuple[list, dict]]
    hosts: list[tuple[str, dict]]  # (name, merged settings without --data)


def load_inventory(path: Path, group_data_folders=(), file_group: str | None = None,
                   override_data: dict | None = None) -> LoadedInventory:
    """Read the YAML and the group_data files, check everything; UsageError with one line per problem.
    `override_data`: pyinfra's --data key=value, which beats every layer."""
    inv = read_inventory(path)
    problems = list(inv.problems)
    file_layers: dict[str, list[Layer]] = {}
    if group_data_folders:
        file_layers, file_problems = read_group_data(group_data_folders, pyinfra_groups(inv))
        problems += file_problems
    problems += check_groups(inv, file_layers)
    hosts, per_host = [], []
    for name, own, host_groups in inv.hosts:
        layers, clashes = merge_host(inv, name, own, host_groups, file_layers, file_group)
        problems += [p for p in clashes if p not in problems]  # a group clash once, not once per host
        per_host.append((name, setting_problems(layers + [Layer("--data", dict(override_data or {}))])))
        hosts.append((name, merged(layers)))
    problems += grouped(per_host)
    if len(problems) > 1:
        problems.insert(0, f"{len(problems)} problems in the inventory (no host was contacted):")
    if problems:
        raise UsageError("\n".join(problems))
    return LoadedInventory(pyinfra_groups(inv, set(file_layers)), hosts)


def inventory_yaml(entry: Path) -> Path:
    """The YAML file inventories/lab.py reads: $GPUHOST_INVENTORY, else lab.yaml beside it."""
    import os

    chosen = os.environ.get("GPUHOST_INVENTORY")
    if chosen is not None and not chosen.strip():
        raise UsageError(f"GPUHOST_INVENTORY is set but empty: set it to your YAML inventory "
                         f"(GPUHOST_INVENTORY=hosts.yaml), or unset it to read {entry.with_name('lab.yaml')}")
    return Path(chosen or entry.with_name("lab.yaml"))


def cli_override_data() -> dict:
    """pyinfra's `--data key=value` of the command running now, parsed as pyinfra parses them
    (pyinfra_cli.util.parse_cli_arg), so they are checked with the rest before any host is contacted.
    A number keeps the text it was typed as (`torch=2.10` reads as 2.1). Empty outside pyinfra's CLI."""
    import click
    from pyinfra_cli.util import parse_cli_arg

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        args = ctx.params.get("data") or ()
    else:  # a deploy file runs in a greenlet, without click's context: pyinfra's own command line
        argv = sys.argv if Path(sys.argv[0]).name == "pyinfra" else []
        args = [v for flag, v in zip(argv, argv[1:]) if flag == "--data"] + [
            a.removeprefix("--data=") for a in argv if a.startswith("--data=")]
    data = {}
    for arg in args:
        key, _, text = arg.partition("=")
        value = parse_cli_arg(text)
        data[key] = yamlfile.YamlFloat(value, text) if isinstance(value, float) else value
    return data


def load_hosts(path: Path, group_data_folders=()) -> list[tuple[str, dict]]:
    """(name, merged settings) pairs, every problem reported at once, one per line. Without
    group_data_folders only the YAML counts (what `gpuhost inspect hosts.yaml` reads)."""
    return load_inventory(path, group_data_folders).hosts
