"""Safe YAML loading that keeps where every value came from, so errors can name file:line:col.

Duplicate mapping keys are an error (PyYAML silently keeps the last one). Loading is bounded, so a tiny
hostile file cannot cost much: files larger than ``limits.max_file_bytes()`` are refused before they are
read, and the composer refuses nesting deeper than ``limits.max_yaml_depth()``, an alias to a node that
contains it, and documents whose aliases expand to more than ``limits.max_yaml_nodes()`` nodes.
Values shown in messages go through ``brief``, which never builds the whole ``repr`` of a large value.
"""

from __future__ import annotations

import reprlib
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from marketsim.config import limits
from marketsim.exceptions import PortableError

#: Longest message a Problem prints; a plugin's exception text could otherwise be arbitrarily long.
MESSAGE_LIMIT = 600

_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxdict, _BRIEF.maxlist, _BRIEF.maxtuple, _BRIEF.maxset = 2, 4, 6, 6, 6
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 48, 48, 40


def brief(value: Any, limit: int = 60) -> str:
    """A repr of ``value`` at most ``limit`` characters long, built without walking all of a large value."""
    text = _BRIEF.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file, located as precisely as we can."""

    source: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        """``source:line:col: field: message`` on one line (``source: …`` when ``line`` is 0, not in a file)."""
        field = self.field if len(self.field) <= 120 else self.field[:117] + "..."  # a key can be any length
        where = f"{field}: " if field else ""
        at = f"{self.source}:{self.line}:{self.column}" if self.line > 0 else self.source
        message = self.message if len(self.message) <= MESSAGE_LIMIT else self.message[:MESSAGE_LIMIT] + " …"
        return " ".join(f"{at}: {where}{message}".split())  # newlines in a message would break "one line"


class SourceError(PortableError, Exception):
    """A file that cannot be used, with every problem found in it (one line each)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly below ``node`` (keys and values of a mapping)."""
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, deep nesting, recursive aliases and alias bombs.

    The composer counts every node's size with its aliases expanded (an alias adds the whole size of
    the node it names), bottom-up and once per distinct node, so a bomb is refused after composing a
    few dozen nodes, at the line of the first value that grows too large.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors of nodes being composed (an alias to one would be a cycle)
        self._sizes: dict[int, int] = {}  # id(node) -> nodes with aliases expanded
        self._max_depth, self._max_nodes = limits.max_yaml_depth(), limits.max_yaml_nodes()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, enforcing the depth limit and measuring its expanded size."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open:
            raise yaml.composer.ComposerError(
                problem=f"alias *{event.anchor} refers to a value that contains it (a cycle)",
                problem_mark=event.start_mark,
            )
        if self._depth >= self._max_depth:
            raise yaml.composer.ComposerError(
                problem=f"nested more than {self._max_depth} levels deep (MARKETSIM_MAX_YAML_DEPTH)",
                problem_mark=event.start_mark,
            )
        anchor = None if isinstance(event, yaml.AliasEvent) else getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)
        self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> None:
        """Record ``node``'s expanded size; refuse it when it exceeds the node limit."""
        if id(node) in self._sizes:  # an alias: its node was measured when it was composed
            return
        size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
        if size > self._max_nodes:
            raise yaml.composer.ComposerError(
                problem=f"aliases expand this value to more than {self._max_nodes:,} nodes (MARKETSIM_MAX_YAML_NODES); "
                "a file this small that grows this large is an alias bomb",
                problem_mark=node.start_mark,
            )
        self._sizes[id(node)] = size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # unhashable key (a list or mapping): SafeLoader reports it with its line
                continue
            if repeated:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first defined on line {first})", key_node.start_mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class Located:
    """Parsed YAML data plus the node tree it came from, for mapping error paths to lines."""

    data: Any
    root: yaml.Node | None
    source: str
    prefix: tuple[str, ...] = ()  # field names above ``root`` when this is a part of a larger file

    def part(self, key: str) -> Located:
        """The value under ``key`` as its own Located, whose problems still read ``key.field``."""
        found = _child(self.root, key)
        node = found[1] if found is not None else None
        data = self.data.get(key) if isinstance(self.data, dict) else None
        return Located(data, node, self.source, (*self.prefix, key))

    def locate(self, path: Sequence[Any], at_key: bool = False) -> tuple[int, int, str]:
        """(line, column, dotted field) of the deepest node on ``path``; unknown steps are skipped.

        With ``at_key`` the position is that of the last step's key (``colour:``) rather than its value.
        """
        node, mark_node, fields = self.root, self.root, list(self.prefix)
        for step in path:
            found = _child(node, step)
            if found is None:
                continue
            key_node, node = found
            mark_node = key_node if at_key and key_node is not None else node
            fields.append(f"[{step}]" if isinstance(step, int) else str(step))
        mark = mark_node.start_mark if mark_node is not None else None
        dotted = ".".join(fields).replace(".[", "[")
        return (mark.line + 1, mark.column + 1, dotted) if mark else (1, 1, dotted)

    def problem(self, path: Sequence[Any], message: str, at_key: bool = False) -> Problem:
        """A Problem located at ``path`` (at its key with ``at_key``)."""
        line, col, dotted = self.locate(path, at_key)
        return Problem(self.source, line, col, dotted, message)


def read_bytes(path: Path, what: str = "file") -> bytes:
    """A regular file's bytes, at most ``limits.max_file_bytes()`` of them; anything else is a SourceError.

    The size is checked before reading and the read itself is capped, so a device or a file that grows
    while it is read cannot make us read without end.
    """
    try:
        limit = limits.max_file_bytes()
    except limits.LimitSettingError as exc:
        raise SourceError([Problem(str(path), 0, 0, "", str(exc))]) from None
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a folder, a device (/dev/zero), a pipe
            raise SourceError([Problem(str(path), 0, 0, "", f"not a regular file (a {what} must be one)")])
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SourceError([Problem(str(path), 0, 0, "", f"cannot read {what}: {exc.strerror or exc}")]) from None
    if len(data) > limit:
        message = f"{what} is larger than {limits.human_bytes(limit)} (the limit; set MARKETSIM_MAX_FILE_BYTES)"
        raise SourceError([Problem(str(path), 0, 0, "", message)])
    return data


def read_source(path: Path) -> str:
    """A file's text; an unreadable, oversized or non-UTF-8 file is a SourceError naming the file (and line)."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError([Problem(str(path), line, 1, "", f"not UTF-8 text (byte {exc.start})")]) from None


def _child(node: yaml.Node | None, step: Any) -> tuple[yaml.Node | None, yaml.Node] | None:
    """(key node or None, value node) of ``step`` below ``node``: a mapping key or a sequence index."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(step):
                return key_node, value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        return None, node.value[step]
    return None


def _yaml_problem(exc: yaml.YAMLError, source: str, text: str) -> Problem:
    """One located Problem for a PyYAML error (syntax, reader or constructor)."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow, located by offset
        offset = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return Problem(
            source, line, column, "", f"invalid YAML: special character U+{exc.character:04X} is not allowed"
        )
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(source, 1, 1, "", f"invalid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "cannot parse"
    if exc.context:  # e.g. "while parsing a flow sequence": says what was open when parsing failed
        problem = f"{exc.context} {problem}" if problem.startswith("but ") else f"{exc.context}: {problem}"
        opened = exc.context.startswith("while ") and exc.context_mark is not None
        if opened and exc.context_mark.line + 1 != line:
            problem += f" (it started on line {exc.context_mark.line + 1})"
    if "'\\t'" in problem:
        problem += " (indent with spaces, not tabs)"
    return Problem(source, line, col, "", f"invalid YAML: {problem}")


def load_yaml(text: str, source: str) -> Located:
    """Parse ``text`` safely; a syntax error, duplicate key or exceeded limit raises SourceError with its line."""
    try:
        limit = limits.max_file_bytes()
    except limits.LimitSettingError as exc:
        raise SourceError([Problem(source, 0, 0, "", str(exc))]) from None
    if len(text) > limit:  # characters, not bytes: a cheap check that never encodes a huge string
        raise SourceError([Problem(source, 0, 0, "", f"text is longer than {limit:,} characters (the limit)")])
    try:
        loader = _Loader(text)  # the reader checks every character here
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SourceError([_yaml_problem(exc, source, text)]) from None
    return Located(data, root, source)
