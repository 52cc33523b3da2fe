"""Imports point one way (docs/architecture.md): a module imports its own layer or a layer below it,
and no modules import each other in a circle. Read from the source with `ast`, every import counted,
also those inside functions. A new package must be given a layer in LAYERS."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
SOURCES = ["gpuhost", "facts", "deploys", "inventories", "config.py"]

# Top to bottom; each entry: the layer's name and the modules (and their submodules) in it.
LAYERS = [
    ("entry points", ["deploys", "inventories", "config", "gpuhost.cli", "gpuhost.commands", "gpuhost.lab"]),
    ("fleet", ["gpuhost.fleet"]),
    ("composition", ["gpuhost.compose"]),
    ("capabilities", ["gpuhost.driver", "gpuhost.containers", "gpuhost.verify", "gpuhost.workspace",
                      "gpuhost.mirror", "gpuhost.monitoring", "gpuhost.health", "gpuhost.scheduler"]),
    ("shared runtime", ["gpuhost.run"]),
    ("facts", ["facts", "gpuhost.health.probe"]),  # the probe: stdlib readings and parsers, also the on-host command
    ("plan", ["gpuhost.plan"]),
    ("base", ["gpuhost.errors", "gpuhost.yamlfile", "gpuhost"]),  # "gpuhost": its __init__ only
]


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that names `module`'s package."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != "gpuhost"
            if (module == prefix or inside) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return best[0] if best else None


def source_modules() -> dict[str, Path]:
    files = [p for s in SOURCES for p in ([ROOT / s] if s.endswith(".py") else sorted((ROOT / s).rglob("*.py")))]
    names = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `name` imports: `from a.b import c` is a.b.c when c is a module, else a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    known = source_modules()
    return {name: imports(name, path, known) - {name} for name, path in known.items()}


def test_every_module_has_a_layer():
    missing = sorted(name for name in graph() if layer_of(name) is None)
    assert not missing, f"modules in no layer: {missing}: add their package to LAYERS (and docs/architecture.md)"


def test_imports_point_down():
    wrong = []
    for name, targets in sorted(graph().items()):
        here = layer_of(name)
        for target in sorted(targets):
            there = layer_of(target)
            if here is not None and there is not None and there < here:
                wrong.append(f"{name} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]}): "
                             f"a layer imports only itself and the layers below it")
    assert not wrong, "\n".join(wrong)


def test_the_plan_imports_only_itself_and_the_base():
    allowed = {"gpuhost.errors", "gpuhost.yamlfile"}
    wrong = [f"{name} imports {target}" for name, targets in sorted(graph().items()) if name.startswith("gpuhost.plan")
             for target in sorted(targets) if not target.startswith("gpuhost.plan") and target not in allowed]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges, cycles, done = graph(), [], set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycles.append(" -> ".join(stack[stack.index(name):] + [name]))
            return
        if name in done:
            return
        for target in sorted(edges[name]):
            visit(target, stack + [name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
