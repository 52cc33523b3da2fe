"""Safe YAML parsing for gpuhost's data and inventory files, with libyaml's C parser when PyYAML
has it: about 8x faster than the pure-Python parser, and the matrix is parsed on every run.

Two traps are closed: a key given twice in one mapping is an error (PyYAML keeps the last one),
and a number keeps the text it was written as (`torch: 2.10` is the float 2.1; the error can say
"quote it: torch: "2.10"").
"""

from __future__ import annotations

import yaml
from yaml.constructor import ConstructorError

YAMLError = yaml.YAMLError
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlFloat(float):
    """A float that remembers how it was written (`2.10`), for error messages."""

    def __new__(cls, value, source_text: str | None = None):
        number = super().__new__(cls, value)
        number.source_text = source_text
        return number

    def __reduce__(self):  # copies are plain floats
        return float, (float(self),)


MOST_VALUES = 100_000  # a YAML file's values once its aliases are expanded (an inventory of 1000 hosts: ~20000)


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader, refusing duplicate keys and alias bombs, keeping numbers' text."""

    def get_single_data(self):
        """An alias bomb ("billion laughs": aliases of aliases) is refused before anything is built."""
        node = self.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {})
        except RecursionError:
            raise ConstructorError(None, None, "it nests too deep: flatten it", node.start_mark) from None
        if size > MOST_VALUES:
            raise ConstructorError(None, None, f"its aliases (*name) expand to more than {MOST_VALUES} values "
                                               f"(a YAML alias bomb?): write the values out, or use fewer aliases",
                                   node.start_mark)
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if earlier is not key_node:
                    raise ConstructorError(None, None, f"key {key!r} is given twice (first on line "
                                                       f"{earlier.start_mark.line + 1}): keep one",
                                           key_node.start_mark)
        return super().construct_mapping(node, deep)

    def construct_yaml_float(self, node):
        return YamlFloat(super().construct_yaml_float(node), node.value)


def _expanded_size(node, sizes: dict) -> int:
    """How many values a node stands for with every alias expanded; each node counted once (memo)."""
    if id(node) in sizes:
        if sizes[id(node)] is None:  # still being counted: the node contains itself
            raise ConstructorError(None, None, "an alias refers to the value it is in (it would never end): write "
                                               "the value out", node.start_mark)
        return sizes[id(node)]
    sizes[id(node)] = None
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


Loader.add_constructor("tag:yaml.org,2002:float", Loader.construct_yaml_float)
yaml.SafeDumper.add_representer(YamlFloat, yaml.SafeDumper.represent_float)  # dumped as the float it is
LOADER = Loader


def load(text: str):
    return yaml.load(text, Loader=LOADER)  # noqa: S506 (a safe loader)


def error_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: where, and what."""
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = ", ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)]))
    return f"is not valid YAML{at}: {what or ' '.join(str(exc).split())}"
