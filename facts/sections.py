"""Shared plumbing for the gpuhost facts: sectioned shell output and small parsers.

Each fact runs ONE shell script that prints its readings as sections::

    @@name optional header words
    content line
    content line

so a single round trip carries many readings, and a reading that is absent
is an empty section rather than a failed command. The helpers here split
that output and parse the formats the sections share (key=value lines,
os-release style files, nvidia-smi CSV).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

MARK = "@@"


@dataclass
class Section:
    """One `@@name header` block and the lines that follow it."""

    name: str
    header: str = ""
    lines: list[str] = field(default_factory=list)


class Sections:
    """The sections of one script's output, in order, looked up by name."""

    def __init__(self, output: list[str]):
        self.all: list[Section] = []
        current: Section | None = None
        for line in output:
            if line.startswith(MARK) and len(line) > len(MARK) and not line[2].isspace():
                name, _, header = line[len(MARK) :].partition(" ")
                current = Section(name, header.strip())
                self.all.append(current)
            elif current is not None:
                current.lines.append(line)

    def first(self, name: str) -> Section | None:
        for section in self.all:
            if section.name == name:
                return section
        return None

    def every(self, name: str) -> list[Section]:
        return [section for section in self.all if section.name == name]

    def header(self, name: str) -> str | None:
        """The header words of the first section `name`; None when absent or '-'."""
        section = self.first(name)
        if section is None or section.header in ("", "-"):
            return None
        return section.header

    def lines(self, name: str) -> list[str]:
        """Content lines of the first section `name`, blank lines dropped."""
        section = self.first(name)
        if section is None:
            return []
        return [line for line in section.lines if line.strip()]

    def text(self, name: str) -> str | None:
        """Content of the first section `name` as text; None when empty."""
        section = self.first(name)
        if section is None:
            return None
        text = "\n".join(section.lines).strip("\n")
        return text if text.strip() else None


KV_RE = re.compile(r"(\w+)=(\S*)")


def key_values(text: str) -> dict[str, str]:
    """`a=1 b=x` -> {'a': '1', 'b': 'x'}; a value may be empty, never contains spaces."""
    return {key: value for key, value in KV_RE.findall(text)}


def key_values_with_tail(text: str, tail: str) -> tuple[dict[str, str], str | None]:
    """Like key_values, but `tail=` runs to the end of the line (a command line, say)."""
    marker = f" {tail}="
    head, found, rest = f" {text}".partition(marker)
    values = key_values(head)
    return values, (rest.strip() or None) if found else None


def env_file(lines: list[str]) -> dict[str, str]:
    """Parse KEY=value lines with shell quoting (/etc/os-release)."""
    values: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = " ".join(parts)
    return values


def csv_row(line: str) -> list[str]:
    """One nvidia-smi `--format=csv,noheader` row: comma separated, values trimmed."""
    return [value.strip() for value in line.split(",")]


def not_available(value: str | None) -> bool:
    return value is None or value in ("", "-", "[N/A]", "N/A", "[Not Supported]", "<no value>")


def int_or_none(value: str | None) -> int | None:
    if not_available(value):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        return None


PART_MARK = "@@gpuhost "


def part_blocks(output: list[str], names) -> dict[str, list[str]]:
    """Route each `@@gpuhost <part> 1` block of lines to that part; a part may have several
    blocks (a shared reading prints into the blocks of the parts that use it), kept in order."""
    blocks: dict[str, list[str]] = {name: [] for name in names}
    current: list[str] | None = None
    for line in output:
        if line.startswith(PART_MARK):
            current = blocks.get((line[len(PART_MARK):].split() or [""])[0])
        if current is not None:
            current.append(line)
    return blocks


def part_sections(output: list[str], name: str) -> Sections:
    """The sections of one part's blocks (a fact run alone also prints shared readings for others);
    output without any part marker is all this part's."""
    if not any(line.startswith(PART_MARK) for line in output):
        return Sections(output)
    return Sections(part_blocks(output, (name,))[name])
