"""`marketsim plugins` and `marketsim new-plugin`: what is registered, and a new plugin distribution to start from."""

from __future__ import annotations

import argparse
import inspect
import json
import sys

from rich.markup import escape
from rich.table import Table

from marketsim.cli.console import err, out, warn_plugin_problems
from marketsim.config.errors import did_you_mean
from marketsim.registry import (
    KINDS,
    AmbiguousNameError,
    Registry,
    StrategyEntry,
    UnknownStrategyError,
    default_registry,
)
from marketsim.strategy import parameters


def _describe(entry: StrategyEntry, clashing: bool) -> dict:
    """One registered class as plain data: where it comes from, its parameters and summary line."""
    return {
        "name": entry.qualified_name if clashing else entry.name,
        "qualified_name": entry.qualified_name,
        "plugin": entry.plugin,
        "distribution": entry.distribution,
        "version": entry.version,
        "refused_bare_name": clashing,
        "parameters": {p.name: (None if p.required else p.default) for p in parameters(entry.cls)},
        "summary": (entry.cls.__doc__ or "").strip().splitlines()[0] if entry.cls.__doc__ else "",
    }


def _rows(registry: Registry, kind: str) -> list[dict]:
    """Every class of ``kind``; one whose bare name clashes is listed by its qualified name."""
    table = registry.table(kind)
    rows = []
    for entry in table.entries():
        row = _describe(entry, entry.name in table.clashes)
        if kind == "strategy":
            row["classifier"] = {k: list(v) if isinstance(v, tuple) else v for k, v in entry.cls.classifier.items()}
        rows.append(row)
    return rows


def cmd_plugins(args: argparse.Namespace) -> int:
    """List registered strategies, choice models and observers (or show one); exit 1 when a plugin has problems."""
    registry = default_registry()
    if args.what:
        if len(args.what) != 2 or args.what[0] != "show":
            print("usage: marketsim plugins [--json] [--check] | marketsim plugins show NAME", file=sys.stderr)
            return 2
        return _show_plugin(registry, args.what[1])
    problems = [{"plugin": p.plugin, "reason": p.reason} for p in registry.problems]
    if args.json:
        notes = [{"plugin": p.plugin, "reason": p.reason} for p in registry.unavailable]
        kinds = {"strategies": "strategy", "choice_models": "choice model", "observers": "observer"}
        listing = {key: _rows(registry, kind) for key, kind in kinds.items()}
        print(json.dumps({**listing, "problems": problems, "unavailable": notes}, indent=2, default=repr))
    elif not args.check:
        _print_listing(registry)
    for p in registry.unavailable:
        err.print(f"[dim]not installed: plugin {escape(repr(p.plugin))}: {escape(p.reason)}[/]", highlight=False)
    warn_plugin_problems(registry)
    if args.check and not problems:
        out.print(f"plugins ok: {len(registry)} strategies, no problems")
    return 1 if problems else 0


def _print_listing(registry: Registry) -> None:
    """The strategies as a table, then the choice models and observers on a line each."""
    rows = _rows(registry, "strategy")
    table = Table(title=f"{len(rows)} registered strategies")
    for col in ("name", "from", "learns", "stochastic", "parameters (defaults)", "what it does"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items()) or "—"
        source = f"{r['distribution']} {r['version']}" if r["distribution"] else r["plugin"]
        name = f"{r['name']} (clash)" if r["refused_bare_name"] else r["name"]
        cells = (name, source, str(r["classifier"]["learns"]), str(r["classifier"]["stochastic"]), params, r["summary"])
        table.add_row(*(escape(c) for c in cells))
    out.print(table)
    for kind in ("choice model", "observer"):
        items = _rows(registry, kind)
        listed = ", ".join(f"{r['name']} ({r['distribution'] or r['plugin']})" for r in items) or "none"
        out.print(f"{kind}s: {escape(listed)}")


def _show_plugin(registry: Registry, name: str) -> int:
    """One strategy, choice model or observer: where it comes from, its docstring, classifier and parameters."""
    found = [(kind, _lookup(registry, kind, name)) for kind in KINDS]
    hits = [(kind, entry) for kind, entry in found if isinstance(entry, StrategyEntry)]
    if not hits:
        ambiguous = [entry for _, entry in found if isinstance(entry, AmbiguousNameError)]
        if ambiguous:
            print(f"error: {ambiguous[0]}", file=sys.stderr)
            return 2
        known = sorted({n for kind in KINDS for n in registry.table(kind).names()})
        hint = did_you_mean(name, known)
        print(f"error: nothing is registered as {name!r}{hint}; see `marketsim plugins`", file=sys.stderr)
        return 2
    for kind, entry in hits:
        _print_entry(kind, entry)
    return 0


def _lookup(registry: Registry, kind: str, name: str) -> StrategyEntry | UnknownStrategyError:
    """The entry of ``kind`` named ``name``, or the error saying why there is none."""
    try:
        return registry.extension(kind, name)
    except UnknownStrategyError as exc:
        return exc


def _print_entry(kind: str, entry: StrategyEntry) -> None:
    """A registered class's origin, docstring, classifier (strategies) and parameter table."""
    where = f"{entry.cls.__module__}.{entry.cls.__qualname__}"
    origin = f"{kind} from {escape(entry.source)}  ({where}; qualified: {entry.qualified_name})"
    out.print(f"[bold]{entry.name}[/]  {origin}")
    out.print(escape(inspect.cleandoc(entry.cls.__doc__ or "(no docstring)")))
    if kind == "strategy":
        out.print("classifier: " + ", ".join(f"{k}={v!r}" for k, v in entry.cls.classifier.items()))
    table = Table(title="parameters")
    for col in ("name", "type", "default"):
        table.add_column(col)
    for p in parameters(entry.cls):
        if kind == "choice model" and p.name == "mu":
            table.add_row("mu", "float", "consumers.mu (set by the scenario, not here)")
            continue
        annotation = getattr(p.annotation, "__name__", None) or str(p.annotation).replace("typing.", "")
        table.add_row(p.name, escape(annotation), "(required)" if p.required else escape(repr(p.default)))
    out.print(table)


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """Write a new strategy-plugin distribution; list what was written and the next three commands."""
    import shlex

    from marketsim.scaffold import ScaffoldError, write_plugin

    try:
        folder, written = write_plugin(args.name, args.dir, args.strategy)
    except ScaffoldError as exc:
        print(f"marketsim new-plugin: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"marketsim new-plugin: error: could not write the plugin: {exc}", file=sys.stderr)
        return 1
    here = folder.as_posix() if folder.is_absolute() or folder.as_posix().startswith(".") else f"./{folder.as_posix()}"
    lines = [f"[green]wrote[/] the marketsim plugin {escape(args.name)} in {escape(here)}/:"]
    lines += [f"  {escape(path)}" for path in written]
    quoted, tournament = escape(shlex.quote(here)), escape(shlex.quote(f"{here}/examples/tournament.yaml"))
    lines += [
        "next:",
        f"  python -m pip install -e {quoted}",
        f"  python -m pytest {quoted}",
        f"  marketsim tournament {tournament} --out runs/{folder.name}-cup",
    ]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)  # whole lines: paths and commands to copy
    return 0
