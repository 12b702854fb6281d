"""Safe YAML loading that keeps where every value came from, so errors can name file:line:col.

Duplicate mapping keys are an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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
        where = f"{self.field}: " if self.field else ""
        at = f"{self.source}:{self.line}:{self.column}" if self.line > 0 else self.source
        return " ".join(f"{at}: {where}{self.message}".split())  # newlines in a message would break "one line"


class SourceError(Exception):
    """A file that cannot be used, with every problem found in it (one line each)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

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


def read_source(path: Path) -> str:
    """A file's text; an unreadable or non-UTF-8 file is a SourceError naming the file (and line)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError([Problem(str(path), 1, 1, "", f"cannot read file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
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
    """Parse ``text`` safely; a syntax error or duplicate key raises SourceError with its line."""
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
