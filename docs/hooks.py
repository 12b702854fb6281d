"""MkDocs hooks of the documentation site: reference parts generated from the code at build time, so they cannot drift.

A page asks for a generated part with an HTML comment on a line of its own:

- ``<!-- generated: schema KIND -->``: every field of a file kind (scenario, tournament, family), read from the JSON
  Schema that ``marketsim schema`` prints (``marketsim.config.schema.file_schema``);
- ``<!-- generated: strategies -->``: every bundled strategy, read from the plugin registry.

Two more comments speak to the tests (``tests/test_docs.py`` runs every page's code blocks) and are shown on the
page, so a reader knows what was run:

- ``<!-- not run: REASON -->`` before a block the tests do not run, and why;
- ``<!-- budget: COMMAND ARGS; ... -->`` before a block whose ``marketsim COMMAND`` lines the tests run with ARGS
  appended (a smaller budget: a later flag overrides an earlier one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

#: Bundled strategies come from this distribution; a third-party plugin installed where the docs are built is
#: left out, so the page describes marketsim itself.
BUNDLED = "marketsim"
#: Which page holds the field tables of each file kind (the scenario tables are linked from the others).
SCHEMA_PAGES = {"scenario": "scenarios.md", "tournament": "tournaments.md", "family": "meta.md", "sweep": "sweeps.md"}

_MARKER = re.compile(r"^<!-- generated: (?P<what>[a-z]+)(?: (?P<arg>[a-z]+))? -->$", re.M)
_NOT_RUN = re.compile(r"^<!-- not run: (?P<why>.+?) -->$", re.M)
_BUDGET = re.compile(r"^<!-- budget: (?P<args>.+?) -->$", re.M)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill in the generated parts of a page and show the tests' notes."""
    here = page.file.src_uri
    markdown = _MARKER.sub(lambda m: generate(m["what"], m["arg"], here), markdown)
    markdown = _NOT_RUN.sub(lambda m: f"*Not run by the tests: {m['why']}.*\n", markdown)
    return _BUDGET.sub(lambda m: _budget_note(m["args"]), markdown)


def _budget_note(args: str) -> str:
    """The visible form of a budget comment: which flags the tests add to which command."""
    parts = [f"`marketsim {part.strip()}`" for part in args.split(";") if part.strip()]
    return f"*The tests run this with a smaller budget: {', '.join(parts)}.*\n"


def generate(what: str, arg: str | None, page: str) -> str:
    """The markdown of one generated part; ValueError for an unknown one (the build stops)."""
    if what == "schema" and arg in SCHEMA_PAGES:
        return schema_markdown(arg, page)
    if what == "strategies" and arg is None:
        return strategies_markdown()
    raise ValueError(f"{page}: unknown generated part {what!r} {arg or ''}")


# --- the file formats, from the JSON Schema ------------------------------------------------------------------


def schema_markdown(kind: str, page: str) -> str:
    """A table of fields for the top level of a ``kind`` file and each object type it uses."""
    from marketsim.config.schema import file_schema

    schema = file_schema(kind)
    defs = schema.get("$defs", {})
    shared = set(file_schema("scenario").get("$defs", {})) | {"Scenario"} if kind != "scenario" else set()
    lines = [f"### The top level of a {kind} file {{#{_anchor(kind, kind)}}}", "", *_table(schema, kind, shared, page)]
    for name in _reachable(schema, defs):
        if name in shared:
            continue
        model = defs[name]
        lines += ["", f"### `{name}` {{#{_anchor(kind, name)}}}", "", model.get("description", ""), ""]
        lines += _table(model, kind, shared, page)
    return "\n".join(lines) + "\n"


def _anchor(kind: str, name: str) -> str:
    """The HTML id of one object type's table."""
    return f"{kind}-{name.lower()}"


def _reachable(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """The ``$defs`` names in the order a reader meets them, from the top level down."""
    seen: list[str] = []
    queue = list(_refs(schema.get("properties", {})))
    while queue:
        name = queue.pop(0)
        if name in seen or name not in defs:
            continue
        seen.append(name)
        queue += list(_refs(defs[name].get("properties", {})))
    return seen


def _refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` target name under ``node``."""
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _table(model: dict[str, Any], kind: str, shared: set[str], page: str) -> list[str]:
    """One model's fields: name, type and limits, default, description."""
    required = set(model.get("required", ()))
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for field, prop in model.get("properties", {}).items():
        default = "required" if field in required else _default(prop)
        cells = (f"`{field}`", _type(prop, kind, shared, page), default, _cell(prop.get("description", "")))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _default(prop: dict[str, Any]) -> str:
    """A field's default as YAML would write it; an empty list or object when the schema gives none."""
    if "default" in prop:
        return f"`{_yaml(prop['default'])}`"
    if prop.get("type") == "array":
        return "`[]`"
    if prop.get("type") == "object":
        return "`{}`"
    if "$ref" in prop:
        return "its fields' defaults"
    return "—"


def _value(value: Any) -> str:
    """A parameter's default as a file would write it (YAML), or as Python shows it when it is not plain data."""
    try:
        return _yaml(list(value) if isinstance(value, tuple) else value)
    except TypeError:
        return repr(value)


def _yaml(value: Any) -> str:
    """A JSON value written the way a YAML file would spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


_JSON_TYPES = {"string": "text", "integer": "integer", "number": "number", "boolean": "true/false"}
_JSON_TYPES |= {"null": "null", "object": "mapping", "array": "list"}
_LIMITS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))


def _type(prop: dict[str, Any], kind: str, shared: set[str], page: str) -> str:
    """A field's type in words, with links to object types and its limits."""
    if "$ref" in prop:
        return _link(prop["$ref"].rsplit("/", 1)[-1], kind, shared, page)
    if "const" in prop:
        return f"`{_yaml(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{_yaml(v)}`" for v in prop["enum"])
    for key in ("oneOf", "anyOf"):
        if key in prop:
            return " or ".join(_type(branch, kind, shared, page) for branch in prop[key])
    words = _base_type(prop, kind, shared, page)
    limits = [f"{sign} {prop[key]}" for key, sign in _LIMITS if key in prop]
    if len(prop.get("prefixItems", ())) != prop.get("maxItems", -1):  # a fixed-length tuple shows its length
        limits += [_count("at least", prop["minItems"])] if "minItems" in prop else []
        limits += [_count("at most", prop["maxItems"])] if "maxItems" in prop else []
    limits += ["not empty"] if prop.get("minLength") == 1 else []
    return words + (f" ({', '.join(limits)})" if limits else "")


def _count(bound: str, n: int) -> str:
    """A bound on a list's length in words."""
    return f"{bound} {n} item{'s' if n != 1 else ''}"


def _base_type(prop: dict[str, Any], kind: str, shared: set[str], page: str) -> str:
    """The plain JSON type of a field: lists and maps with their element type."""
    if "prefixItems" in prop:
        return "[" + ", ".join(_type(p, kind, shared, page) for p in prop["prefixItems"]) + "]"
    if prop.get("type") == "array":
        items = prop.get("items")
        return "list of " + _type(items, kind, shared, page) if items else "list"
    if prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict):
        return "map of " + _type(prop["additionalProperties"], kind, shared, page)
    if prop.get("type") == "object" and prop.get("properties"):
        fields = (f"{name}: {_type(sub, kind, shared, page)}" for name, sub in prop["properties"].items())
        return "{" + ", ".join(fields) + "}"
    kinds = prop.get("type", [])
    return " or ".join(_JSON_TYPES[k] for k in ([kinds] if isinstance(kinds, str) else kinds)) or "any"


def _link(name: str, kind: str, shared: set[str], page: str) -> str:
    """A link to an object type's table, on this page or on the scenario page for the scenario's types."""
    if name in shared:
        target = "scenario" if name == "Scenario" else name
        return f"[{name}]({_relative(SCHEMA_PAGES['scenario'], page)}#{_anchor('scenario', target)})"
    return f"[{name}](#{_anchor(kind, name)})"


def _relative(target: str, page: str) -> str:
    """``target`` (a path under docs/) as a link from ``page``; every page of the site sits at the top."""
    return "../" * page.count("/") + target


def _cell(text: str) -> str:
    """Text that is safe inside a table cell: one line, no bare bars or angle brackets."""
    return _text(" ".join(text.split())).replace("|", "\\|")


def _text(text: str) -> str:
    """Docstring text as markdown: ``<`` outside code spans escaped, so ``rival_<k>`` is not taken for HTML."""
    parts = re.split(r"(`+[^`]*`+)", text)
    return "".join(part if part.startswith("`") else part.replace("<", "&lt;") for part in parts)


# --- the strategies, from the registry --------------------------------------------------------------------------


def strategies_markdown() -> str:
    """Every bundled strategy: a summary table, then one section each with its docstring and parameters."""
    import inspect

    from marketsim.registry import default_registry

    registry = default_registry()
    entries = [e for e in registry.table("strategy").entries() if e.distribution == BUNDLED]
    missing = [f"`{p.plugin}` ({_cell(p.reason)})" for p in registry.unavailable]
    lines = [f"Left out, their extra not being installed where this site was built: {'; '.join(missing)}.", ""]
    lines = lines if missing else []
    lines += ["| strategy | plugin | learns | what it does |", "|---|---|---|---|"]
    for e in entries:
        doc = inspect.cleandoc(e.cls.__doc__ or "").split("\n\n")[0]
        lines.append(f"| [`{e.name}`](#{e.name}) | `{e.plugin}` | {_yes(e.cls.classifier['learns'])} | {_cell(doc)} |")
    for e in entries:
        lines += ["", *_strategy_section(e)]
    return "\n".join(lines) + "\n"


def _yes(flag: object) -> str:
    """A classifier flag in a word."""
    return "yes" if flag else "no"


def _strategy_section(entry: Any) -> list[str]:
    """One strategy: where it lives, its docstring, classifier and parameters with defaults."""
    import inspect

    from marketsim.strategy import parameters

    cls = entry.cls
    where = f"`{cls.__module__}.{cls.__qualname__}`, plugin `{entry.plugin}` ({entry.distribution} {entry.version})"
    classifier = ", ".join(f"{k}: `{_yaml(list(v) if isinstance(v, tuple) else v)}`" for k, v in cls.classifier.items())
    lines = [
        f"### `{entry.name}` {{#{entry.name}}}",
        "",
        f"From {where}.",
        "",
        _text(inspect.cleandoc(cls.__doc__ or "")),
    ]
    lines += ["", f"**Classifier:** {classifier}.", ""]
    params = parameters(cls)
    if not params:
        return [*lines, "**Parameters:** none."]
    lines += ["| parameter | type | default |", "|---|---|---|"]
    for p in params:
        annotation = p.annotation.__name__ if isinstance(p.annotation, type) else str(p.annotation)
        default = "required" if p.required else f"`{_value(p.default)}`"
        lines.append(f"| `{p.name}` | `{annotation.replace('typing.', '')}` | {default} |")
    return lines
