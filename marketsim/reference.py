"""The plugin author's reference, docs/reference.md, generated from the code so that it cannot drift.

Everything on the page comes from the contract modules: docstrings, the dataclass fields' descriptions
(``marketsim.strategy.described``), the classifier vocabulary (``CLASSIFIER_KEYS``), the hook specifications,
the capability protocols and the registry. ``tests/test_reference.py`` fails when the committed page differs.

    python -m marketsim.reference            write docs/reference.md
    python -m marketsim.reference --check    exit 1 if docs/reference.md is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from marketsim import exceptions, hookspecs, observers, registry, strategy
from marketsim.market import consumers
from marketsim.strategy import FIELD_DOC

#: Where the page lives in a source checkout.
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "reference.md"

#: The frozen data a plugin is handed or builds, in the order the page shows them.
CONTRACT_TYPES: tuple[type, ...] = (
    strategy.Observation,
    strategy.Outcome,
    strategy.MarketInfo,
    strategy.ObservationBatch,
    observers.RunInfo,
    observers.StepRecord,
    strategy.Parameter,
    strategy.MetaSetup,
    strategy.MetaCheckpoint,
)

#: Strategy members in life-cycle order.
STRATEGY_MEMBERS = (
    "setup",
    "price",
    "learn",
    "set_training",
    "state_dict",
    "load_state_dict",
    "params",
    "price_batch",
)
REGISTRY_MEMBERS = ("get", "create", "extension", "names", "clashes", "all_entries")
REGISTRY_CONSTANTS = ("ENTRY_POINT_GROUP", "DISABLE_AUTOLOAD_ENV", "ALLOW_ENV", "API_ATTRIBUTE", "KINDS")
FIELDS_MARKER = "\n\nFields:\n"


# --- text helpers ---------------------------------------------------------------------------------------------


def markdown(doc: str | None) -> str:
    """A docstring as Markdown: ``code`` to `code`, Google-style sections and ``:param x:`` lines to lists."""
    text = inspect.cleandoc(doc or "").split(FIELDS_MARKER)[0]
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    out: list[str] = []
    for line in text.splitlines():
        param = re.match(r":param (\w+):\s*(.*)", line)
        if param:
            out += ["", f"- **{param[1]}**: {param[2]}"]
        elif re.fullmatch(r"[A-Z][\w ]*:", line):
            out += ["", f"**{line}**", ""]
        elif re.match(r" {4}\w[\w.]* \(", line):
            name, rest = line.strip().split(" ", 1)
            out.append(f"- `{name}` {rest}")
        elif line.startswith("    ") and out and out[-1].startswith(("- ", "  ")):
            out.append("  " + line.strip())  # continuation of a list item
        else:
            out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def summary(doc: str | None) -> str:
    """The first line of a docstring, as Markdown."""
    return markdown(doc).split("\n")[0]


def cell(text: Any) -> str:
    """Text for a Markdown table cell (pipes escaped, one line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def signature(func: Callable[..., Any], name: str, method: bool = False) -> str:
    """``name(params) -> return`` with the annotations as written in the source (a method's ``self`` left out)."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())[1 if method else 0 :]
    shown = []
    for p in params:
        text = p.name if p.kind is not p.VAR_KEYWORD else f"**{p.name}"
        text = f"*{text}" if p.kind is p.VAR_POSITIONAL else text
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        shown.append(text)
    result = f" -> {_annotation(sig.return_annotation)}" if sig.return_annotation is not sig.empty else ""
    return f"{name}({', '.join(shown)}){result}"


def _annotation(annotation: Any) -> str:
    """An annotation as written (string annotations stay as they are)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def constant_docs(module: ModuleType) -> dict[str, str]:
    """The ``#:`` comments written above a module's constants, by constant name."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(module).splitlines():
        if line.startswith("#:"):
            pending.append(line[2:].strip())
            continue
        match = re.match(r"([A-Z_][A-Z0-9_]*)\s*[:=]", line)
        if match and pending:
            docs[match[1]] = " ".join(pending)
        pending = [] if not line.startswith("    ") else pending
    return docs


# --- sections -------------------------------------------------------------------------------------------------


def member_lines(cls: type, names: Iterable[str]) -> list[str]:
    """A heading and the docstring of each named method, property or classmethod of ``cls``."""
    lines: list[str] = []
    for name in names:
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, property):
            returns = raw.fget.__annotations__.get("return", "")
            head, doc = f"{name}: {returns}" if returns else name, raw.fget.__doc__
            head = f"property {head}"
        else:
            func = raw.__func__ if isinstance(raw, classmethod | staticmethod) else raw
            prefix = "classmethod " if isinstance(raw, classmethod) else ""
            head, doc = prefix + signature(func, name, method=True), func.__doc__
        lines += [f"#### `{head}`", "", markdown(doc) or "(no description)", ""]
    return lines


def field_table(cls: type) -> list[str]:
    """The fields of a contract dataclass: name, type, description."""
    rows = ["| field | type | description |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        rows.append(f"| `{f.name}` | `{cell(f.type)}` | {cell(markdown(f.metadata.get(FIELD_DOC, '')))} |")
    return rows


def contract_section() -> list[str]:
    """Every contract type with its fields and public methods."""
    lines = ["## Contract types", ""]
    lines += [
        "Frozen dataclasses (`dataclasses.replace` makes a changed copy). Tuples over sellers are in seat "
        "order. `help(marketsim.strategy.Observation)` prints the same descriptions.",
        "",
    ]
    for cls in CONTRACT_TYPES:
        lines += [f"### `{cls.__module__}.{cls.__name__}`", "", markdown(cls.__doc__), ""]
        lines += field_table(cls) + [""]
        methods = [n for n, v in vars(cls).items() if not n.startswith("_") and callable(v) and v.__doc__]
        lines += member_lines(cls, methods)
    return lines


def strategy_section() -> list[str]:
    """The Strategy base class: life cycle, attributes and every method a host calls."""
    lines = [f"## `marketsim.Strategy` (strategy API {strategy.STRATEGY_API_VERSION})", ""]
    lines += [markdown(strategy.Strategy.__doc__), "", "### Methods, in life-cycle order", ""]
    lines += member_lines(strategy.Strategy, STRATEGY_MEMBERS)
    lines += ["### Errors a strategy meets", ""]
    for err in (strategy.InvalidPriceError, exceptions.StopRun, exceptions.MissingExtraError):
        lines += [f"- `{err.__module__}.{err.__name__}`: {cell(markdown(err.__doc__))}"]
    return lines + [""]


def parameters_section() -> list[str]:
    """How a strategy's keyword parameters are read, checked and reported."""
    params_doc = markdown(inspect.getattr_static(strategy.Strategy, "params").fget.__doc__)
    reader = signature(strategy.parameters, "marketsim.strategy.parameters")
    return [
        "## Parameters",
        "",
        "A strategy's parameters are the keyword arguments of its `__init__`, each with a default; a scenario's "
        "or tournament entrant's `params:` maps onto them and is checked against the names and annotations "
        "before anything runs.",
        "",
        f"- `{reader}`: {summary(strategy.parameters.__doc__)}",
        f"- `Strategy.params`: {cell(params_doc)}",
        "",
        "So store every parameter under the attribute of the same name (`self.premium = premium`). Each "
        "parameter is described by a `Parameter` (see Contract types).",
        "",
    ]


def classifier_section() -> list[str]:
    """The classifier vocabulary: every key, its values, default, meaning and what the host does with it."""
    lines = [
        "## Classifier vocabulary",
        "",
        "A strategy's `classifier` is a mapping of facts about it; keys it leaves out take "
        "`DEFAULT_CLASSIFIER`'s values (the base class merges them when the subclass is created). The "
        "conformance kit checks the types and that `learns` and `stochastic` tell the truth.",
        "",
        "| key | values | default | meaning | what the host does with it |",
        "|---|---|---|---|---|",
    ]
    for key in strategy.CLASSIFIER_KEYS:
        lines.append(
            f"| `{key.name}` | {cell(key.values)} | `{key.default!r}` | {cell(key.meaning)} | {cell(key.host)} |"
        )
    lines += ["", "The parts `observes` may name:", "", "| part | what it covers |", "|---|---|"]
    lines += [f"| `{part}` | {cell(what)} |" for part, what in strategy.OBSERVES_PARTS.items()]
    return lines + [""]


def protocols(module: ModuleType) -> list[type]:
    """The runtime-checkable Protocols a module defines, in source order."""
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module.__name__ and getattr(obj, "_is_runtime_protocol", False)
    ]
    return sorted(found, key=lambda cls: inspect.getsourcelines(cls)[1])


def protocol_section() -> list[str]:
    """Every capability protocol with its members and who calls them."""
    lines = [
        "## Capability protocols",
        "",
        "Optional parts of the contract, each a `typing.Protocol` in `marketsim.strategy` that the host checks "
        "with `isinstance` (never by probing attribute names). Implement the members and the host finds them.",
        "",
    ]
    for proto in protocols(strategy):
        lines += [f"### `{proto.__name__}`", "", markdown(proto.__doc__), ""]
        own = vars(proto)
        for name, annotation in own.get("__annotations__", {}).items():
            lines += [f"- attribute `{name}: {_annotation(annotation)}`"]
        if own.get("__annotations__"):
            lines.append("")
        kinds = (property, classmethod, staticmethod)
        members = [n for n, v in own.items() if not n.startswith("_") and (callable(v) or isinstance(v, kinds))]
        lines += member_lines(proto, members)
    return lines


def extension_section() -> list[str]:
    """Observers and choice models: the base classes a plugin subclasses."""
    lines = ["## Observers", "", markdown(observers.Observer.__doc__), ""]
    lines += member_lines(observers.Observer, ("start", "on_step", "finish"))
    lines += ["## Choice models", "", markdown(consumers.ChoiceModel.__doc__), ""]
    return lines + member_lines(
        consumers.ChoiceModel, ("probabilities", "choose", "surplus", "expected_units", "reroute")
    )


def hook_section() -> list[str]:
    """Every hook specification with its parameters and return contract."""
    lines = ["## Hooks", "", markdown(hookspecs.__doc__), ""]
    specs = [f for f in vars(hookspecs).values() if callable(f) and hasattr(f, f"{hookspecs.PROJECT}_spec")]
    for func in sorted(specs, key=lambda f: inspect.getsourcelines(f)[1]):
        lines += [f"### `{signature(func, func.__name__)}`", "", markdown(func.__doc__), ""]
    return lines


def registry_section() -> list[str]:
    """How names are looked up: bare and qualified names, clashes, the environment switches."""
    lines = ["## Registry lookups", "", markdown(registry.Registry.__doc__), ""]
    docs = constant_docs(registry)
    for name in REGISTRY_CONSTANTS:
        value = getattr(registry, name)
        lines.append(f"- `{name} = {value!r}`" + (f": {cell(markdown(docs[name]))}" if name in docs else ""))
    lines += [""]
    lines += member_lines(registry.Registry, REGISTRY_MEMBERS)
    entry = registry.StrategyEntry
    lines += [f"### `{entry.__module__}.{entry.__name__}`", "", markdown(entry.__doc__), ""]
    lines += ["Fields: " + ", ".join(f"`{f.name}: {f.type}`" for f in dataclasses.fields(entry)), ""]
    props = [n for n, v in vars(entry).items() if isinstance(v, property)]
    lines += member_lines(entry, props)
    lines += ["### Errors", ""]
    for err in (registry.UnknownStrategyError, registry.AmbiguousNameError, registry.DuplicateStrategyError):
        lines.append(f"- `{err.__name__}`: {cell(markdown(err.__doc__))}")
    return lines + [""]


HEADER = """# marketsim reference for plugin authors

<!-- Generated by `python -m marketsim.reference` from the code; do not edit. tests/test_reference.py checks it. -->

Everything a plugin codes against: the strategy life cycle, the data it is handed, the classifier vocabulary,
parameters, the capability protocols, observers, choice models, the hooks and how names are looked up. The
walk-through is [the plugin guide](plugins.md). Each entry comes from the docstrings and field descriptions in
`marketsim/strategy.py`, `observers.py`, `hookspecs.py`, `registry.py` and `market/consumers.py`, which
`help()` shows too.

Contents: [Strategy](#marketsimstrategy-strategy-api-10) · [Parameters](#parameters) ·
[Classifier vocabulary](#classifier-vocabulary) · [Contract types](#contract-types) ·
[Capability protocols](#capability-protocols) · [Observers](#observers) · [Choice models](#choice-models) ·
[Hooks](#hooks) · [Registry lookups](#registry-lookups)
"""


def generate() -> str:
    """The whole reference page."""
    sections = [
        [HEADER],
        strategy_section(),
        parameters_section(),
        classifier_section(),
        contract_section(),
        protocol_section(),
        extension_section(),
        hook_section(),
        registry_section(),
    ]
    text = "\n".join("\n".join(lines) for lines in sections)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the page, or with ``--check`` say whether the written one is current (exit 1 if not)."""
    parser = argparse.ArgumentParser(prog="python -m marketsim.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the code")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help=f"the page (default {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run `python -m marketsim.reference`", file=sys.stderr)
            return 1
        print(f"{args.out} is current")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
