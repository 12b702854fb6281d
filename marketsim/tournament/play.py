"""Tournaments: entrants meet in declared markets, match by match, seeded, resumable and fault-isolated.

A tournament file names a market (a scenario file or an inline scenario whose sellers are the seats),
the entrants, a format and the phases of each match. ``schedule`` turns it into ``MatchTask`` objects
with stable keys; ``run_match`` plays one anywhere; ``run_tournament`` hands the tasks to an
executor and is the only writer of the result store, so an interrupted run resumes exactly.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from marketsim.config import limits
from marketsim.config.scenario import (
    Scenario,
    _error,
    _pydantic_problems,
    _Spec,
    check_strategies,
    checkpoint_problems,
    memory_excess,
    resolve_checkpoints,
    scenario_from_located,
)
from marketsim.config.yamlsource import Located, Problem, load_yaml, read_source
from marketsim.market.model import MarketModel, StrategyError
from marketsim.registry import Registry, default_registry, load_registry
from marketsim.tournament.matches import (
    DEFAULT_MEMORY_LIMIT_MB,
    MatchResult,
    MatchTask,
    SeatResult,
    fault_kind,
    fault_result,
    short_traceback,
)

PRICE_POINTS = 200  # evaluation price path kept per match (downsampled), for plots


class Entrant(_Spec):
    """A competitor: a display name and a registered strategy with its parameters."""

    name: str = Field(..., min_length=1, description="Display name, unique in the tournament.")
    strategy: str = Field(..., description="Registered strategy name (see `marketsim plugins`).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword parameters of the strategy (a relative `checkpoint` path is relative to this file).",
    )
    checkpoint: str | None = Field(
        None, description="Saved state to load (passed as the `checkpoint` parameter); relative to this file."
    )


class Phases(_Spec):
    """What a match consists of: learners learn, then everyone is evaluated."""

    train_steps: int = Field(0, ge=0, description="Steps in which learners learn (not scored).")
    eval_steps: int = Field(200, gt=0, description="Scored steps.")
    learn_during_eval: bool = Field(False, description="Keep learning while being evaluated.")


class Exploit(_Spec):
    """Exploitability runs (``marketsim tournament --exploit``): a best-responder trained against each entrant."""

    strategy: str = Field(
        "dqn", description="Registered learning strategy of the best-responder (the DQN seller by default)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword parameters of the best-responder (its defaults otherwise)."
    )
    train_steps: int = Field(10_000, gt=0, description="Steps the best-responder learns against the frozen entrant.")
    eval_steps: int = Field(500, gt=0, description="Scored steps of the exploit match, with nothing learning.")
    repetitions: int = Field(
        3, ge=1, description="Exploit runs per entrant; run r uses the seed of the tournament's repetition r."
    )
    time_limit: float = Field(
        600.0, gt=0, description="CPU seconds one exploit run (self-play replay and exploit match) may use."
    )


class Tournament(_Spec):
    """A tournament file."""

    name: str = Field(..., min_length=1, description="Short name of the tournament.")
    description: str = Field("", description="What it compares.")
    seed: int = Field(0, ge=0, description="Root seed; each match's seed derives from it and the match.")
    market: str | dict[str, Any] = Field(
        ...,
        description="Scenario file (a relative path is relative to this file's folder) or an inline scenario "
        "(whose relative paths are relative to this file's folder too).",
    )
    entrants: list[Entrant] = Field(..., min_length=2, description="The competitors.")
    format: Literal["round_robin", "all_play_all", "vs_field"] = Field(
        "round_robin",
        description="round_robin: every pair as a duopoly, both seatings; all_play_all: everyone in one "
        "market; vs_field: each entrant against the fixed field.",
    )
    field: list[Entrant] = Field(default_factory=list, description="The fixed rivals of a vs_field tournament.")
    self_play: bool = Field(True, description="round_robin also plays each entrant against a copy of itself.")
    repetitions: int = Field(3, ge=1, description="Times each pairing is played (each with its own seed).")
    phases: Phases = Field(default_factory=Phases, description="Training and evaluation steps of a match.")
    time_limit: float = Field(
        60.0,
        gt=0,
        description="CPU seconds a match may use in its worker before it is stopped (a `timeout` fault). CPU "
        "time, not wall time, so a busy machine gives the same results as an idle one.",
    )
    wall_limit: float | None = Field(
        None,
        gt=0,
        description="Wall-clock seconds after which a match that sleeps or blocks is killed (a `wall_timeout` "
        "fault); a backstop, by default max(3 × time_limit, time_limit + 60).",
    )
    memory_limit_mb: int | None = Field(
        DEFAULT_MEMORY_LIMIT_MB,
        gt=0,
        description="MiB of memory (address space) a match may add in its worker; above it the match is a "
        "`memory` fault of the seat that allocated. null: no cap.",
    )
    on_fault: Literal["forfeit", "void"] = Field(
        "forfeit", description="forfeit: the faulty entrant scores 0 and loses; void: the match is dropped."
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Extra plugin modules (local, uninstalled strategies), imported only from a directory allowed "
        "with `marketsim tournament --plugin-dir DIR` (never by `validate`). Installed plugins need no entry.",
    )
    exploit: Exploit = Field(
        default_factory=Exploit,
        description="Budget of the exploitability runs of `marketsim tournament --exploit`; not part of the "
        "tournament's identity, so changing it never invalidates stored matches.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Tournament:
        names = [e.name for e in self.entrants] + [f.name for f in self.field]
        odd = sorted(n for n in names if set(n) & set(",|#"))
        if odd:  # these characters separate the parts of a match key
            raise ValueError(f"entrant names may not contain ',', '|' or '#': {', '.join(map(repr, odd))}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"entrant and field names must be unique; repeated: {', '.join(dupes)}")
        if self.format == "vs_field" and not self.field:
            raise ValueError("format vs_field needs a non-empty 'field' of rivals")
        if self.wall_limit is not None and self.wall_limit < self.time_limit:
            raise ValueError(f"wall_limit ({self.wall_limit:g} s) must be at least time_limit ({self.time_limit:g} s)")
        return self


@dataclass(frozen=True)
class LoadedTournament:
    """A validated tournament with its market resolved."""

    spec: Tournament
    market: Scenario
    source: str
    plugin_dirs: tuple[str, ...] = ()  # where the user allowed the spec's plugin modules to come from

    def digest(self) -> str:
        """Identifies the tournament (spec and market, not the exploit budget): a resume must match it."""
        spec = self.spec.model_dump(mode="json", exclude={"exploit"})
        blob = json.dumps(spec, sort_keys=True) + self.market.digest()
        return hashlib.sha256(blob.encode()).hexdigest()


def parse_tournament(
    text: str,
    source: str = "<string>",
    registry: Registry | None = None,
    base_dir: Path | None = None,
    plugin_dirs: Sequence[str | Path] | None = None,
) -> LoadedTournament:
    """Validate tournament YAML; errors name file:line:col like scenario errors.

    ``plugin_dirs`` None (validation) imports none of the file's ``plugins:`` and leaves the strategies they
    may provide to be checked at run time; a sequence (running) imports them from those directories only.
    """
    located = load_yaml(text, source)
    if not isinstance(located.data, dict):
        raise _error([Problem(source, 1, 1, "", "a tournament must be a YAML mapping (key: value lines)")])
    try:
        spec = Tournament.model_validate(located.data)
    except ValidationError as exc:
        raise _error(_pydantic_problems(exc, located)) from None
    base_dir = base_dir or Path.cwd()
    dirs = None if plugin_dirs is None else tuple(str(Path(d).resolve()) for d in plugin_dirs)
    registry = _plugin_registry(spec, located, dirs) if registry is None else registry
    market = _market(spec, located, registry, base_dir)
    spec = _resolve_checkpoints(spec, base_dir)
    problems, _ = check_strategies([_with_checkpoint(e) for e in spec.entrants], "entrants", located, registry)
    problems += check_strategies([_with_checkpoint(e) for e in spec.field], "field", located, registry)[0]
    if "exploit" in located.data:  # the default best-responder (dqn) needs torch: checked when --exploit asks
        problems += _exploit_problems(spec, located, registry)
    if dirs is None and spec.plugins:  # validation: strategies of the (unimported) plugins are checked at run time
        problems = [p for p in problems if not p.message.startswith("unknown strategy")]
    problems = problems or _checkpoint_problems(spec, located) or _seated_problems(spec, market, located, registry)
    if problems:
        raise _error(problems)
    return LoadedTournament(spec, market, source, dirs or ())


def _exploit_problems(spec: Tournament, located: Located, registry: Registry) -> list[Problem]:
    """The best-responder's strategy and parameters, located under ``exploit:``; it must be a learner."""
    part = located.part("exploit")
    problems = check_strategies([spec.exploit], "", part, registry)[0]  # steps "" and 0 locate nothing: exploit.*
    if not problems and not registry.get(spec.exploit.strategy).cls.classifier.get("learns"):
        message = f"the best-responder must be a learning strategy; {spec.exploit.strategy!r} does not learn"
        problems.append(part.problem(("strategy",), message))
    return problems


def best_responder_problem(tournament: LoadedTournament) -> str | None:
    """Why ``--exploit`` cannot run with this file's best-responder (not registered, or not a learner), or None."""
    registry = _registry(tuple(tournament.spec.plugins), tournament.plugin_dirs)
    name = tournament.spec.exploit.strategy
    if name not in registry:
        why = next((p.reason for p in registry.problems if name in p.reason), "no installed plugin registers it")
        return f"{tournament.source}: exploit.strategy: best-responder {name!r} is not available: {why}"
    if not registry.get(name).cls.classifier.get("learns"):
        return f"{tournament.source}: exploit.strategy: the best-responder must be a learning strategy, not {name!r}"
    return None


def _plugin_registry(spec: Tournament, located: Located, dirs: tuple[str, ...] | None) -> Registry:
    """The registry for a tournament file: installed plugins, plus ``plugins:`` found in ``dirs`` (if given)."""
    problems = []
    for i, name in enumerate(spec.plugins):
        if not all(part.isidentifier() for part in name.split(".")):
            problems.append(located.problem(("plugins", i), f"{name!r} is not a module name (package.module)"))
        elif dirs is not None and PathFinder.find_spec(name.split(".")[0], list(dirs)) is None:
            where = ", ".join(dirs) if dirs else "none allowed: pass --plugin-dir DIR"
            problems.append(
                located.problem(
                    ("plugins", i),
                    f"plugin module {name!r} not found in the allowed plugin directories ({where}); "
                    "installed plugins need no entry here",
                )
            )
    if problems:
        raise _error(problems)
    if dirs is None or not spec.plugins:
        return default_registry()
    return _registry(tuple(spec.plugins), dirs)


def _with_checkpoint(entrant: Entrant) -> Entrant:
    """The entrant with its checkpoint passed as the strategy's ``checkpoint`` parameter (as matches do)."""
    if entrant.checkpoint is None:
        return entrant
    return entrant.model_copy(update={"params": {**entrant.params, "checkpoint": entrant.checkpoint}})


def _resolve_checkpoints(spec: Tournament, base_dir: Path) -> Tournament:
    """Checkpoint paths (``checkpoint:`` and a ``checkpoint`` parameter) relative to the tournament file."""

    def resolve(e: Entrant) -> Entrant:
        if e.checkpoint is None:
            return e
        return e.model_copy(update={"checkpoint": str((base_dir / e.checkpoint).resolve())})

    entrants = [resolve(e) for e in resolve_checkpoints(spec.entrants, base_dir)]
    rivals = [resolve(f) for f in resolve_checkpoints(spec.field, base_dir)]
    return spec.model_copy(update={"entrants": entrants, "field": rivals})


def _checkpoint_problems(spec: Tournament, located: Located) -> list[Problem]:
    """Entrants and rivals whose checkpoint (field or parameter) names no file: refused before any match."""
    problems = []
    for section in ("entrants", "field"):
        items = getattr(spec, section)
        problems += checkpoint_problems([e.checkpoint for e in items], section, located, ("checkpoint",))
        params = [e.params.get("checkpoint") for e in items]
        problems += checkpoint_problems(params, section, located, ("params", "checkpoint"))
    return problems


def _seated_problems(spec: Tournament, market: Scenario, located: Located, registry: Registry) -> list[Problem]:
    """Refuse a tournament whose market, with some match's entrants seated, exceeds the seller limit or memory budget.

    Each distinct line-up is estimated with the scenario's own ``memory_excess``; a problem names the entrant
    (or rival) whose tables are the largest part, or the market when its population is. When every member
    fits filling all seats of a match, every line-up fits (a sum is at most n times its largest term), so
    a large round robin needs one estimate per member, not one per pairing.
    """
    home = {e.name: (section, i) for section in ("entrants", "field") for i, e in enumerate(getattr(spec, section))}
    lineups = seatings(spec)
    full = [(m,) * len(lineups[0]) for m in [*spec.entrants, *spec.field]] if lineups else []
    if len(lineups) > len(full) and not _seated_problems_in(spec, market, located, registry, full, home):
        return []
    return _seated_problems_in(spec, market, located, registry, lineups, home)


def _seated_problems_in(
    spec: Tournament,
    market: Scenario,
    located: Located,
    registry: Registry,
    lineups: list[tuple[Entrant, ...]],
    home: dict[str, tuple[str, int]],
) -> list[Problem]:
    """The first of ``lineups`` (seats of a match) above the seller limit or memory budget, located at ``home``."""
    seen: set[tuple[str, ...]] = set()
    for seats in lineups:
        names = tuple(e.name for e in seats)
        if tuple(sorted(names)) in seen or any(e.strategy not in registry for e in seats):
            continue
        seen.add(tuple(sorted(names)))
        if len(seats) > (most := limits.max_sellers()):
            message = f"{len(seats):,} seats in a match is more than {most:,}, the most one market may hold"
            return [located.problem(("entrants",), f"{message} (set MARKETSIM_MAX_SELLERS to allow more)")]
        found = memory_excess(_match_scenario(market, seats, spec.seed, spec.phases), registry)
        if found is not None:
            where, message = found
            path = (*home[names[where[1]]], "params") if where[0] == "sellers" else ("market", *where)
            lineup = " vs ".join(names) if len(names) <= 4 else f"all {len(names)} seats"
            return [located.problem(path, f"in a match of {lineup}: {message}")]
    return []


def _market(spec: Tournament, located: Located, registry: Registry, base_dir: Path) -> Scenario:
    if isinstance(spec.market, dict):
        return scenario_from_located(located.part("market"), registry, base_dir)
    from marketsim.config.scenario import load_scenario

    path = base_dir / spec.market
    if not path.is_file():
        raise _error([located.problem(("market",), f"scenario file {spec.market!r} not found in {base_dir}")])
    return load_scenario(path, registry)


def load_tournament(
    path: str | Path, registry: Registry | None = None, plugin_dirs: Sequence[str | Path] | None = None
) -> LoadedTournament:
    """Read and validate a tournament file (``plugin_dirs``: see ``parse_tournament``)."""
    path = Path(path)
    return parse_tournament(read_source(path), str(path), registry, path.parent, plugin_dirs)


def match_seed(root: int, market_digest: str, repetition: int) -> int:
    """Seed of every match of one repetition: common random numbers, so entrants compare on paired seeds."""
    sequence = np.random.SeedSequence([root, int(market_digest[:16], 16), repetition])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def seatings(spec: Tournament) -> list[tuple[Entrant, ...]]:
    """Who sits where in each match of one repetition, in schedule order."""
    entrants = spec.entrants
    if spec.format == "all_play_all":
        return [tuple(entrants)]
    if spec.format == "vs_field":
        return [(e, *spec.field) for e in entrants]
    out = []
    for i, a in enumerate(entrants):
        for b in entrants[i:]:
            if a is b:
                if spec.self_play:
                    out.append((a, b))
            else:
                out += [(a, b), (b, a)]
    return out


def schedule(tournament: LoadedTournament) -> list[MatchTask]:
    """Every match of the tournament, with stable keys and seeds, in a fixed order."""
    spec, market = tournament.spec, tournament.market
    digest = market.digest()
    tasks = []
    for rep in range(spec.repetitions):
        seed = match_seed(spec.seed, digest, rep)
        for seats in seatings(spec):
            names = tuple(e.name for e in seats)
            key = f"{digest[:12]}|{spec.format}|{','.join(names)}|r{rep}"
            scenario = _match_scenario(market, seats, seed, spec.phases)
            tasks.append(
                MatchTask(
                    key=key,
                    index=len(tasks),
                    seed=seed,
                    scenario=scenario,
                    seats=names,
                    train_steps=spec.phases.train_steps,
                    eval_steps=spec.phases.eval_steps,
                    learn_during_eval=spec.phases.learn_during_eval,
                    time_limit=spec.time_limit,
                    wall_limit=spec.wall_limit,
                    memory_limit_mb=spec.memory_limit_mb,
                    plugins=tuple(spec.plugins),
                    plugin_dirs=tournament.plugin_dirs,
                )  # fmt: skip
            )
    return tasks


def _match_scenario(market: Scenario, seats: tuple[Entrant, ...], seed: int, phases: Phases) -> Scenario:
    """The market with one seller per seat (seat templates from the market's sellers, last one repeated)."""
    templates = market.expanded_sellers()
    sellers, used = [], set()
    for s, entrant in enumerate(seats):
        name = entrant.name if entrant.name not in used else f"{entrant.name}#{s + 1}"
        used.add(name)
        params = dict(_with_checkpoint(entrant).params)
        template = templates[min(s, len(templates) - 1)]
        sellers.append(template.model_copy(update={"name": name, "strategy": entrant.strategy, "params": params}))
    steps = phases.train_steps + phases.eval_steps
    return market.model_copy(update={"sellers": tuple(sellers), "seed": seed, "steps": steps})


@functools.lru_cache(maxsize=8)
def _registry(plugins: tuple[str, ...], plugin_dirs: tuple[str, ...] = ()) -> Registry:
    """The installed plugins plus the tournament's extra plugin modules from ``plugin_dirs`` (cached per process)."""
    if not plugins:
        return default_registry()
    return load_registry(plugins=[(name, _import_plugin(name, plugin_dirs)) for name in plugins])


def _import_plugin(name: str, plugin_dirs: tuple[str, ...]) -> ModuleType:
    """Import module ``name`` from one of the allowed ``plugin_dirs`` only, never from elsewhere on sys.path."""
    top = name.split(".")[0]
    found = PathFinder.find_spec(top, list(plugin_dirs))
    if found is None or found.loader is None:
        raise ImportError(f"plugin module {name!r} is not in the allowed plugin directories {list(plugin_dirs)}")
    loaded = sys.modules.get(top)
    if loaded is None:
        module = importlib.util.module_from_spec(found)
        sys.modules[top] = module
        try:
            found.loader.exec_module(module)
        except BaseException:
            del sys.modules[top]
            raise
    elif Path(getattr(loaded, "__file__", None) or "/").resolve() != Path(found.origin or "").resolve():
        raise ImportError(f"module {top!r} is already imported from {loaded.__file__}, not from {found.origin}")
    return importlib.import_module(name)  # a submodule is found through its package's __path__, inside the dir


def run_match(task: MatchTask, tracker: Callable[[int, int], None] | None = None) -> MatchResult:
    """Play one match: train, then evaluate; a misbehaving strategy gives a fault result, not an exception."""
    start = time.perf_counter()
    try:
        model = MarketModel(task.scenario, _registry(task.plugins, task.plugin_dirs), tracker=tracker)
        for _ in range(task.train_steps):
            model.step()
        if not task.learn_during_eval:
            model.set_learning(False)
        for _ in range(task.eval_steps):
            model.step()
    except StrategyError as exc:
        return fault_result(task, fault_kind(exc.error), exc.seat, exc.step, short_traceback(exc.error))
    except Exception as exc:  # outside any strategy's code (e.g. the market itself runs out of memory)
        return fault_result(task, fault_kind(exc), None, None, short_traceback(exc))
    steps = model.datacollector.get_model_vars_dataframe().iloc[-task.eval_steps :]
    names = [s.name for s in model.sellers]
    profits = np.array([steps[f"{n}.profit"].mean() for n in names])
    gains = model.benchmarks.profit_gain(profits)
    results = tuple(
        SeatResult(
            seat=i,
            entrant=task.seats[i],
            strategy=s.strategy.name,
            mean_profit=float(profits[i]),
            mean_price=float(steps[f"{n}.price"].mean()),
            mean_units=float(steps[f"{n}.units"].mean()),
            profit_gain=float(gains[i]),
        )
        for i, (n, s) in enumerate(zip(names, model.sellers))
    )
    picks = np.unique(np.linspace(0, len(steps) - 1, min(PRICE_POINTS, len(steps))).astype(int))
    prices = tuple(tuple(float(p) for p in steps[f"{n}.price"].to_numpy()[picks]) for n in names)
    return MatchResult(
        key=task.key, index=task.index, seed=task.seed, seats=task.seats, status="ok", results=results,
        consumer_surplus=float(steps["consumer_surplus"].mean()), prices=prices,
        elapsed=time.perf_counter() - start,
    )  # fmt: skip


class ResumeError(RuntimeError):
    """The result store belongs to a different tournament, or exists while --resume was not given."""


class TournamentInterrupted(KeyboardInterrupt):
    """The user stopped the tournament (Ctrl-C); ``kept`` of ``total`` matches are stored for a --resume."""

    def __init__(self, kept: int, total: int, store_path: Path) -> None:
        super().__init__(f"interrupted: {kept} of {total} matches are kept in {store_path}; continue with --resume")
        self.kept, self.total, self.store_path = kept, total, store_path


def run_tournament(
    tournament: LoadedTournament,
    store_path: Path,
    executor: Any,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    retry_faults: str | None = None,
) -> list[MatchResult]:
    """Run every match not yet in the store; the coordinator (this process) is the store's only writer.

    ``retry_faults`` (a fault kind, or "all") with ``resume`` also replays the stored matches that faulted
    with that kind, replacing their results. A Ctrl-C raises ``TournamentInterrupted``; what is stored stays.
    """
    stored = StoredRun(store_path, "tournament", tournament.digest(), "results", "a different tournament", resume)
    return stored.run(schedule(tournament), run_match, executor, progress, retry_faults)


@dataclass(frozen=True)
class StoredRun:
    """Tasks played into a resumable result store that belongs to one identity (``digest`` under ``meta_key``)."""

    store_path: Path
    meta_key: str  # the store's meta entry holding the identity ("tournament", "exploit")
    digest: str
    what: str  # what the store holds, for messages ("results", "exploit runs")
    other: str  # what a mismatching identity means ("a different tournament")
    resume: bool

    def run(
        self,
        tasks: list[MatchTask],
        runner: Callable[..., MatchResult],
        executor: Any,
        progress: Callable[[int, int], None] | None = None,
        retry_faults: str | None = None,
    ) -> list[MatchResult]:
        """Play the tasks the store lacks (and, with ``retry_faults``, those that faulted so); return all stored."""
        from marketsim.tournament.results import ResultStore

        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        with ResultStore(self.store_path) as store:
            self._claim(store)
            retry = store.faulted_keys(None if retry_faults == "all" else retry_faults) if retry_faults else set()
            done = store.done_keys()
            todo = [t for t in tasks if t.key not in done or t.key in retry]
            finished = len(tasks) - len(todo)
            if progress is not None:
                progress(finished, len(tasks))

            def record(result: MatchResult) -> None:
                nonlocal finished
                store.add(result, replace=result.key in retry)
                finished += 1
                if progress is not None:
                    progress(finished, len(tasks))

            try:
                executor.run(todo, runner, record)
            except KeyboardInterrupt as exc:
                raise TournamentInterrupted(len(store), len(tasks), self.store_path) from exc
            return store.results()

    def _claim(self, store: Any) -> None:
        """Refuse a store of another identity, or a used one without ``resume``; then record this identity."""
        recorded, where = store.get_meta(self.meta_key), self.store_path
        if recorded is not None and recorded != self.digest:
            raise ResumeError(f"{where} holds {self.what} of {self.other}; choose another --out")
        if recorded is not None and not self.resume and store.done_keys():
            raise ResumeError(f"{where} already holds {self.what}; pass --resume to continue, or another --out")
        store.set_meta(self.meta_key, self.digest)
