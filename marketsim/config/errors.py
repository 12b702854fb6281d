"""One translator from pydantic's validation errors to located, friendly one-line problems.

Every file kind (scenario, tournament, task family) validates its YAML into a pydantic model; this module
turns the errors into ``Problem`` s at file:line:col, with "did you mean" for a misspelt key and the keys
the enclosing model allows, walking the schema from the file's own root model.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ValidationError

from marketsim.config.yamlsource import Located, Problem, SourceError, brief
from marketsim.exceptions import PortableError

__all__ = ["FieldError", "Loc", "did_you_mean", "override_problems", "pydantic_problems", "source_error"]

#: Where a validation problem sits: field names and list indices, as in pydantic's error ``loc``.
Loc = tuple[str | int, ...]


class FieldError(PortableError, ValueError):
    """A model validator's complaint about one of its fields; ``loc`` is relative to the model.

    pydantic puts a model validator's error on the whole model; raising this instead lets the error
    point at the line of the field that is actually wrong (``price_max``, not the seller's first line).
    """

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


def source_error(problems: list[Problem]) -> SourceError:
    """A SourceError with ``problems`` in file order."""
    return SourceError(sorted(problems, key=lambda p: (p.line, p.column)))


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` looks like a misspelling of one of ``choices``."""
    if len(word) > 100:  # no field name is this long; comparing a huge key to each choice is wasted work
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def pydantic_problems(exc: ValidationError, located: Located, root: type[BaseModel]) -> list[Problem]:
    """One located Problem per pydantic error of validating ``located`` as ``root`` (the file's model)."""
    problems = []
    for err in exc.errors():
        if _follows_item_errors(err):
            continue
        loc = _error_loc(err)
        problems.append(located.problem(loc, _message(err, loc, root), at_key=err["type"] == "extra_forbidden"))
    return problems


def override_problems(exc: ValidationError, root: type[BaseModel], source: str = "override") -> list[Problem]:
    """One Problem per pydantic error of values given outside any file (command-line overrides)."""
    problems = []
    for err in exc.errors():
        loc = _error_loc(err)
        dotted = ".".join(f"[{s}]" if isinstance(s, int) else str(s) for s in loc).replace(".[", "[")
        problems.append(Problem(source, 0, 0, dotted, _message(err, loc, root)))
    return problems


def _unwrap(tp: Any) -> Any:
    """``tp`` without Annotated metadata and without None in a union (``X | None`` -> ``X``)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tags(model: Any) -> list[str]:
    """The values of the single-value Literal fields of ``model`` (its tags in a discriminated union)."""
    if not _is_model(model):
        return []
    out = []
    for field in model.model_fields.values():
        args = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is Literal else ()
        if len(args) == 1:
            out.append(str(args[0]))
    return out


def _union_member(union: Any, step: str | int) -> Any:
    """The member of ``union`` that pydantic names ``step`` in an error path (its tag, or its class name)."""
    members = [_unwrap(m) for m in typing.get_args(union)]
    found = next((m for m in members if step in _tags(m)), None)
    return found or next((m for m in members if getattr(m, "__name__", None) == step), None)


def _type_at(root: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The type pydantic validated the value at ``loc`` against (None when the path leaves the models)."""
    tp: Any = root
    for step in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            tp = next((f.annotation for n, f in tp.model_fields.items() if (f.alias or n) == step), None)
        elif typing.get_origin(tp) in (list, tuple) and isinstance(step, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (typing.Union, types.UnionType):  # pydantic puts the tag in the path
            tp = _union_member(tp, step)
        else:
            return None
        if tp is None:
            return None
    return _unwrap(tp)


def _field_names(model: Any) -> list[str]:
    """The keys a mapping validated as ``model`` may use."""
    if not _is_model(model):
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _error_loc(err: Any) -> Loc:
    """Where a pydantic error belongs: its ``loc``, moved down to the field a FieldError or tag names."""
    loc: Loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), FieldError):
        loc += ctx["error"].loc
    if err["type"] == "union_tag_invalid":
        loc += (str(ctx.get("discriminator", "")).strip("'\""),)
    return loc


def _shown(value: Any) -> str | None:
    """A short repr of a scalar or small list for an error message; None for mappings and long values.

    Built by ``brief``, which stops after a few items and levels: ``repr`` of a value that aliases blow up
    would take minutes and gigabytes before it could be cut.
    """
    if isinstance(value, dict | BaseModel):
        return None
    text = brief(value, limit=61)
    return text if len(text) <= 60 else None


def _unknown_field(loc: Loc, root: type[BaseModel]) -> str:
    allowed = _field_names(_type_at(root, loc[:-1]))
    key = str(loc[-1])
    listing = f"; allowed: {', '.join(allowed)}" if allowed else ""
    return f"unknown field {brief(key)}{did_you_mean(key, allowed)}{listing}"


def _too_short(loc: Loc, root: type[BaseModel]) -> str | None:
    """The enclosing model's own message for an empty list field (``Spec.too_short_messages``), if any."""
    owner = _type_at(root, loc[:-1])
    messages = getattr(owner, "too_short_messages", None) if _is_model(owner) else None
    return messages.get(str(loc[-1])) if messages and loc else None


def _message(err: Any, loc: Loc, root: type[BaseModel]) -> str:
    """A friendly one-line message for one pydantic error at ``loc``."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field(loc, root)
    if kind == "missing":
        return f"missing required field {loc[-1]!r}"
    if kind == "union_tag_invalid":
        return f"unknown {loc[-1]} {ctx.get('tag')!r}; expected one of: {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        tags = [t for m in typing.get_args(_type_at(root, loc)) for t in _tags(m)]
        disc = str(ctx.get("discriminator", "")).strip("'\"")
        return f"missing {disc!r}, which says what kind this is (one of: {', '.join(tags)})"
    if kind == "too_short" and (own := _too_short(loc, root)) is not None:
        return own
    msg = err["msg"].removeprefix("Value error, ")
    msg = msg.removeprefix("Input ") if msg.startswith("Input should") else msg
    if isinstance(ctx.get("error"), ValueError):  # our own validators already name the values
        return msg
    msg = msg.split(", got ")[0]  # "…, got a number with a fractional part": the value itself says more
    shown = _shown(err.get("input"))
    return f"{msg} (got {shown})" if shown is not None else msg


def _follows_item_errors(err: Any) -> bool:
    """A "too short" error that only repeats that some items failed (pydantic counts what validated)."""
    given, ctx = err.get("input"), err.get("ctx") or {}
    return err["type"] == "too_short" and isinstance(given, list | tuple) and len(given) >= ctx.get("min_length", 0)
