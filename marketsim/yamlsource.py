"""Safe YAML loading that keeps where every value came from, so errors can name file:line:col.

Duplicate mapping keys are an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
        where = f"{self.field}: " if self.field else ""
        return f"{self.source}:{self.line}:{self.column}: {where}{self.message}"


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
            if key in seen:
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

    def locate(self, path: Sequence[Any]) -> tuple[int, int, str]:
        """(line, column, dotted field) of the deepest node on ``path``; unknown steps are skipped."""
        node, fields = self.root, []
        for step in path:
            child = _child(node, step)
            if child is None:
                continue
            node = child
            fields.append(f"[{step}]" if isinstance(step, int) else str(step))
        mark = node.start_mark if node is not None else None
        dotted = ".".join(fields).replace(".[", "[")
        return (mark.line + 1, mark.column + 1, dotted) if mark else (1, 1, dotted)

    def problem(self, path: Sequence[Any], message: str) -> Problem:
        """A Problem located at ``path``."""
        line, col, dotted = self.locate(path)
        return Problem(self.source, line, col, dotted, message)


def _child(node: yaml.Node | None, step: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(step):
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        return node.value[step]
    return None


def load_yaml(text: str, source: str) -> Located:
    """Parse ``text`` safely; a syntax error or duplicate key raises SourceError with its line."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceError([Problem(source, line, col, "", f"invalid YAML: {exc.problem}")]) from None
    finally:
        loader.dispose()
    return Located(data, root, source)
