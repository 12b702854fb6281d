"""Scenario files read and checked: YAML parsed into a ``Scenario``, then checked against a registry and the disk.

The schema (``marketsim.config.scenario``) checks each value on its own; here strategy names and parameters,
choice models and observers are checked against the registry, named files (checkpoints, edge lists) against
the disk, and the market's estimated memory against the budget, so nothing that validates fails for these
at run time. Every problem names file:line:col.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from marketsim.config import limits
from marketsim.config.errors import Loc, did_you_mean, pydantic_problems, source_error
from marketsim.config.scenario import BarabasiAlbert, EdgeList, ErdosRenyi, Scenario, WattsStrogatz
from marketsim.config.spec import text_number_hint
from marketsim.config.yamlsource import Located, Problem, SourceError, brief, load_yaml, read_bytes, read_source
from marketsim.registry import AmbiguousNameError, Registry, UnknownStrategyError, default_registry
from marketsim.strategy import SizedState, parameters

__all__ = [
    "check_params",
    "check_strategies",
    "checkpoint_problems",
    "file_problems",
    "load_scenario",
    "memory_excess",
    "parse_scenario",
    "resolve_checkpoints",
    "scenario_from_located",
    "state_file",
]


def _type_name(tp: Any) -> str:
    """``float``, ``int | None``, … for an annotation."""
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _strategy_problems(
    scenario: Scenario, located: Located, registry: Registry
) -> tuple[list[Problem], list[dict[str, Any]]]:
    """Problems with strategy names and parameters, and each seller's parameters validated to their types.

    The choice model and observers are checked by building them: an unknown name lists the registered
    ones, and a parameter the class refuses is reported at its line.
    """
    problems, params = check_strategies(scenario.sellers, "sellers", located, registry)
    extensions = [("choice model", ("consumers", "choice"), "model", scenario.consumers.choice)]
    extensions += [("observer", ("observers", i), "observer", o) for i, o in enumerate(scenario.observers)]
    for kind, where, key, spec in extensions:
        problems += _extension_problems(kind, where, key, spec, located, registry, scenario.consumers.mu)
    return problems, params


def _extension_problems(
    kind: str, where: tuple, key: str, spec: Any, located: Located, registry: Registry, mu: float
) -> list[Problem]:
    """Check one choice model's or observer's name and parameters as a seller's are checked, then build it."""
    name = getattr(spec, key)
    table = registry.table(kind)
    try:
        entry = table.find(name)
    except UnknownStrategyError as exc:
        return [located.problem((*where, key), _unknown_message(kind, name, table.names(), exc))]
    if kind == "choice model" and "mu" in spec.params:
        message = "the logit scale is set once, as consumers.mu (every choice model is built with it): move it there"
        return [located.problem((*where, "params", "mu"), message, at_key=True)]
    extra = {"mu": mu} if kind == "choice model" else {}
    item = Item(kind, name, entry.cls, spec.params, where, frozenset(extra))
    problems, _ = check_params(item, located, lambda p: entry.cls(**extra, **p))
    return problems


def _unknown_message(kind: str, name: str, names: list[str], exc: UnknownStrategyError) -> str:
    """An unknown name with "did you mean" and the registered names, or the clash message of an ambiguous one."""
    if isinstance(exc, AmbiguousNameError):
        return str(exc)
    available = ", ".join(names) or "(none installed)"
    return f"unknown {kind} {name!r}{did_you_mean(name, names)}; available: {available}"


def check_strategies(
    items: Sequence[Any], section: str, located: Located, registry: Registry
) -> tuple[list[Problem], list[dict[str, Any]]]:
    """Check each item's ``strategy`` name and ``params`` (items listed under ``section`` in the file).

    Returns the problems, located in the file, and each item's parameters validated to their types.
    Used for scenario sellers and for tournament entrants alike.
    """
    problems: list[Problem] = []
    resolved: list[dict[str, Any]] = []
    for i, seller in enumerate(items):
        try:
            cls = registry.get(seller.strategy).cls
        except UnknownStrategyError as exc:
            message = _unknown_message("strategy", seller.strategy, registry.names(), exc)
            problems.append(located.problem((section, i, "strategy"), message))
            resolved.append(dict(seller.params))
            continue
        item = Item("strategy", seller.strategy, cls, seller.params, (section, i))
        found, params = check_params(item, located, lambda p, name=seller.strategy: registry.create(name, p))
        problems += found
        resolved.append(params)
    return problems, resolved


@dataclass(frozen=True)
class Item:
    """A named class with parameters in a file: a seller's strategy, a choice model or an observer."""

    kind: str  # "strategy", "choice model", "observer"
    name: str  # as written in the file
    cls: type
    params: Mapping[str, Any]
    where: tuple  # the path of the item in the file; its parameters are under where + ("params",)
    host_set: frozenset[str] = frozenset()  # parameters the host fills in itself (a choice model's mu)


def check_params(
    item: Item, located: Located, build: Callable[[dict[str, Any]], object]
) -> tuple[list[Problem], dict[str, Any]]:
    """Check ``item.params`` against its class's signature, then ``build`` it; return problems and typed params."""
    accepted = {p.name: p for p in parameters(item.cls) if p.name not in item.host_set}
    listing = ", ".join(f"{p.name}={p.default!r}" if not p.required else p.name for p in accepted.values()) or "none"
    problems = []
    typed: dict[str, Any] = {}
    for key, value in item.params.items():
        where = (*item.where, "params", key)
        if key not in accepted:
            hint = did_you_mean(str(key), list(accepted))
            message = f"unknown parameter {key!r}{hint} for {item.kind} {item.name!r}; accepted: {listing}"
            problems.append(located.problem(where, message, at_key=True))
            continue
        try:
            typed[key] = _typed_value(item, key, value, accepted[key].annotation)
        except ValueError as exc:
            problems.append(located.problem(where, str(exc)))
    for p in accepted.values():
        if p.required and p.name not in item.params:
            message = f"{item.kind} {item.name!r} needs parameter {p.name!r}"
            problems.append(located.problem((*item.where, "params"), message))
    if not problems:
        try:  # the class's own checks (ranges, consistency) also surface at validation time
            build(typed)
        except Exception as exc:  # a plugin's constructor may raise anything; report it, don't crash
            kind = "" if isinstance(exc, ValueError | TypeError) else f"{type(exc).__name__}: "
            message = f"{item.kind} {item.name!r} rejected its parameters: {kind}{exc}"
            problems.append(located.problem((*item.where, "params"), message))
    return problems, typed


def _typed_value(item: Item, key: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to the parameter's declared type; ValueError saying why it cannot be."""
    what = f"bad value {brief(value)} for {item.name} parameter {key!r} ({_type_name(annotation)})"
    try:
        typed = TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ").removeprefix("Input ")
        raise ValueError(f"{what}: {reason}") from None
    if isinstance(value, bool | str) and type(typed) in (bool, int, float) and type(value) is not type(typed):
        # lax validation would turn `yes` into 1.0 and "2" into 2: in YAML these are mistakes
        reason = (
            "a boolean, not a number (YAML reads yes/no/on/off as one)"
            if isinstance(value, bool)
            else f"text, not a number ({text_number_hint(value)})"
        )
        raise ValueError(f"{what}: {reason}")
    return typed


#: Rough bytes per consumer row (WTP, uniforms, choice, surplus, index arrays) and per row and seller
#: (logit weights, awareness and masks) while a step clears; and per node and edge of a networkx graph
#: (adjacency dicts both ways plus the sparse matrix), measured on Watts-Strogatz graphs.
BYTES_PER_CONSUMER, BYTES_PER_CONSUMER_SELLER = 64, 24
BYTES_PER_GRAPH_NODE, BYTES_PER_GRAPH_EDGE = 250, 250


#: Strategy parameters that name a file: relative to the folder of the file they are written in. ``cache`` may not
#: exist yet (it is created); ``prompt`` names a file only when it ends in ``.txt`` (else a bundled template).
FILE_PARAMS = ("checkpoint", "path", "cache", "prompt")


def _names_a_file(key: str, value: object) -> bool:
    return isinstance(value, str) and bool(value) and (key != "prompt" or value.endswith(".txt"))


def resolve_checkpoints(items: Sequence[Any], base_dir: Path) -> list[Any]:
    """Items (sellers, entrants) whose file parameters (``FILE_PARAMS``), relative paths, are made absolute.

    A file named in a file is relative to that file's folder, as an edge-list path or a tournament's market is,
    so a file means the same wherever it is run from.
    """
    out = []
    for item in items:
        files = {k: item.params.get(k) for k in FILE_PARAMS}
        update = {k: str((base_dir / v).resolve()) for k, v in files.items() if _names_a_file(k, v)}
        if update:
            item = item.model_copy(update={"params": {**item.params, **update}})
        out.append(item)
    return out


def state_file(path: str | Path) -> Path:
    """The ``.pt`` file a checkpoint path names (``run/checkpoint`` and ``run/checkpoint.pt`` alike)."""
    path = Path(path)
    return path if path.suffix == ".pt" else path.with_suffix(".pt")


def checkpoint_problems(paths: Sequence[Any], section: str, located: Located, key: Sequence[str]) -> list[Problem]:
    """A problem for each checkpoint path (already absolute) that names no file, at ``section[i].key``.

    ``paths[i]`` belongs to item ``i`` of ``section`` (None or a non-path where it has no checkpoint).
    """
    problems = []
    for i, path in enumerate(paths):
        if isinstance(path, str) and path and not state_file(path).is_file():
            problems.append(located.problem((section, i, *key), f"checkpoint file {state_file(path)} not found"))
    return problems


def file_problems(paths: Sequence[Any], section: str, located: Located, key: Sequence[str]) -> list[Problem]:
    """A problem for each file path (already absolute; None where an item has none) that names no file."""
    return [
        located.problem((section, i, *key), f"file {path} not found")
        for i, path in enumerate(paths)
        if isinstance(path, str) and path and not Path(path).is_file()
    ]


def _edge_list_problems(scenario: Scenario, located: Located) -> tuple[list[Problem], int]:
    """Problems with the edge-list file (its path already absolute) and its number of edges.

    The file is read within the size limit and checked line by line; a problem names the line of the
    file, never its content (the path might point at a file that is not ours to show).
    """
    graph, n = scenario.network.graph, scenario.consumers.size  # type: ignore[union-attr]
    where, path = ("network", "graph", "path"), Path(graph.path)
    if not path.exists():
        return [located.problem(where, f"edge-list file {path.name!r} not found in {path.parent}")], 0
    try:
        data = read_bytes(path, "edge-list file")
    except SourceError as exc:
        reason = exc.problems[0].message
        return [located.problem(where, f"edge-list file {graph.path}: {reason}")], 0
    edges = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        tokens = raw.split(b"#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) != 2 or not all(t.isdigit() and t.isascii() for t in tokens):
            reason = "is not an edge: each line holds two whole-number node ids 'u v' (or a # comment)"
            return [located.problem(where, f"edge-list file {graph.path}, line {number} {reason}")], edges
        if max(int(tokens[0]), int(tokens[1])) >= n:
            reason = f"names a node outside 0..{n - 1:,} (consumers.size = {n:,})"
            return [located.problem(where, f"edge-list file {graph.path}, line {number} {reason}")], edges
        edges += 1
    return [], edges


def _graph_edges(graph: Any, n: int, listed: int) -> float:
    """Expected number of edges of the social graph over ``n`` consumers (``listed`` for an edge list)."""
    if isinstance(graph, WattsStrogatz):
        return n * graph.k / 2
    if isinstance(graph, BarabasiAlbert):
        return n * graph.m
    if isinstance(graph, ErdosRenyi):
        return n * graph.mean_degree / 2
    return listed


def memory_excess(scenario: Scenario, registry: Registry, edges: int | None = None) -> tuple[Loc, str] | None:
    """Where (a path in ``scenario``) and why its estimated memory exceeds the budget; None when it fits.

    Sums the population, the social graph (``edges`` of an edge list; counted from its file when None) and
    the ``SizedState`` strategies' tables, and names the largest part, its estimate, the total and the budget.
    Parameters are those the strategies are built with, so they must already be valid.
    """
    budget = limits.memory_budget()
    sellers = sum(s.count for s in scenario.sellers)
    c = scenario.consumers
    rows = c.size if scenario.demand.mode == "agents" else scenario.demand.quadrature
    parts: list[tuple[Loc, str, float]] = [
        (
            ("consumers", "size"),
            "the consumer population",
            rows * (BYTES_PER_CONSUMER + BYTES_PER_CONSUMER_SELLER * sellers),
        )
    ]
    if scenario.network is not None:
        graph = scenario.network.graph
        if edges is None and isinstance(graph, EdgeList):
            edges = _edge_list_problems(scenario, Located(None, None, ""))[1]
        size = c.size * BYTES_PER_GRAPH_NODE + _graph_edges(graph, c.size, edges or 0) * BYTES_PER_GRAPH_EDGE
        parts.append((("network", "graph"), "the social graph", size))
    for i, seller in enumerate(scenario.sellers):
        if issubclass(registry.get(seller.strategy).cls, SizedState):
            made = registry.create(seller.strategy, dict(seller.params))
            what = f"the tables of strategy {seller.strategy!r}" + (f" (x{seller.count})" if seller.count > 1 else "")
            parts.append((("sellers", i, "params"), what, made.state_bytes(sellers) * seller.count))
    total = sum(size for _, _, size in parts)
    if total <= budget:
        return None
    where, what, size = max(parts, key=lambda part: part[2])
    overall = f"; {limits.human_bytes(total, exact=False)} in all" if total > size * 1.001 else ""
    message = (
        f"{what} would need an estimated {limits.human_bytes(size)}{overall}, more than the memory budget "
        f"of {limits.human_bytes(budget)} (set MARKETSIM_MEMORY_BUDGET to allow more)"
    )
    return where, message


def _memory_problems(scenario: Scenario, located: Located, registry: Registry, edges: int) -> list[Problem]:
    """Refuse a market whose estimated population, graph and strategy tables exceed the memory budget."""
    found = memory_excess(scenario, registry, edges)
    return [located.problem(*found)] if found else []


def parse_scenario(
    text: str, source: str = "<string>", registry: Registry | None = None, base_dir: Path | None = None
) -> Scenario:
    """Validate scenario YAML text; raise ScenarioError listing each problem as file:line:col.

    Strategy parameters come back converted to the types their strategy declares (``2`` -> ``2.0``).
    """
    located = load_yaml(text, source)
    if located.data is None:
        raise source_error(
            [Problem(source, 1, 1, "", "the file is empty; a scenario is a YAML mapping (key: value lines)")]
        )
    if not isinstance(located.data, dict):
        line, col, _ = located.locate(())
        kind = {list: "list", str: "single string"}.get(type(located.data), f"single {type(located.data).__name__}")
        message = f"a scenario must be a YAML mapping (key: value lines), not a {kind}"
        raise source_error([Problem(source, line, col, "", message)])
    return scenario_from_located(located, registry if registry is not None else default_registry(), base_dir)


def scenario_from_located(located: Located, registry: Registry, base_dir: Path | None = None) -> Scenario:
    """Validate parsed YAML (a mapping) into a Scenario; problems are located in the source file.

    Relative paths (an edge-list file, a seller's ``checkpoint`` parameter) resolve against ``base_dir``,
    the folder of the file the scenario is written in. Named files must exist and be usable, and the
    market's estimated memory must fit the budget, so nothing that validates fails for these at run time.
    """
    try:
        scenario = Scenario.model_validate(located.data)
    except ValidationError as exc:
        raise source_error(pydantic_problems(exc, located, Scenario)) from None
    scenario = _resolve_paths(scenario, base_dir or Path.cwd())
    problems, params = _strategy_problems(scenario, located, registry)
    checkpoints = [s.params.get("checkpoint") for s in scenario.sellers]
    problems = problems or checkpoint_problems(checkpoints, "sellers", located, ("params", "checkpoint"))
    paths = [s.params.get("path") for s in scenario.sellers]
    problems = problems or file_problems(paths, "sellers", located, ("params", "path"))
    edges = 0
    if scenario.network is not None and isinstance(scenario.network.graph, EdgeList):
        found, edges = _edge_list_problems(scenario, located)
        problems += found
    if problems:
        raise source_error(problems)
    sellers = tuple(s.model_copy(update={"params": p}) for s, p in zip(scenario.sellers, params))
    scenario = scenario.model_copy(update={"sellers": sellers})
    problems = _memory_problems(scenario, located, registry, edges)
    if problems:
        raise source_error(problems)
    return scenario


def _resolve_paths(scenario: Scenario, base_dir: Path) -> Scenario:
    """Make file paths inside the scenario absolute, so a run does not depend on the working directory."""
    scenario = scenario.model_copy(update={"sellers": tuple(resolve_checkpoints(scenario.sellers, base_dir))})
    if scenario.network is None or not isinstance(scenario.network.graph, EdgeList):
        return scenario
    graph = scenario.network.graph.model_copy(update={"path": str((base_dir / scenario.network.graph.path).resolve())})
    return scenario.model_copy(update={"network": scenario.network.model_copy(update={"graph": graph})})


def load_scenario(path: str | Path, registry: Registry | None = None) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    return parse_scenario(read_source(path), str(path), registry, path.parent)
