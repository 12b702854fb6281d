"""Tournaments played: the schedule of matches, one match played anywhere, and the resumable result store.

``schedule`` turns a validated tournament (``marketsim.config.tournament``) into ``MatchTask`` objects with
stable keys and seeds; ``run_match`` plays one anywhere; ``run_tournament`` hands the tasks to an executor
and is the only writer of the result store, so an interrupted run resumes exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from marketsim.config.plugins import plugin_registry
from marketsim.config.tournament import LoadedTournament, match_scenario, seatings
from marketsim.market.model import MarketModel, StrategyError
from marketsim.observers import ObserverError
from marketsim.seeds import match_seed
from marketsim.tournament.executors import Executor, Runner
from marketsim.tournament.matches import (
    MatchResult,
    MatchTask,
    SeatResult,
    fault_kind,
    fault_result,
    short_traceback,
)

if TYPE_CHECKING:
    from marketsim.tournament.results import Codec, ResultStore

PRICE_POINTS = 200  # evaluation price path kept per match (downsampled), for plots


def schedule(tournament: LoadedTournament) -> list[MatchTask]:
    """Every match of the tournament, with stable keys and seeds, in a fixed order."""
    spec, market = tournament.spec, tournament.market
    digest = market.digest()
    tasks = []
    for rep in range(spec.repetitions):
        seed = match_seed(spec.seed, digest, rep)
        for seats in seatings(spec):
            names = tuple(e.name for e in seats)
            tasks.append(
                MatchTask(
                    key=f"{digest[:12]}|{spec.format}|{','.join(names)}|r{rep}",
                    index=len(tasks),
                    seed=seed,
                    scenario=match_scenario(market, seats, seed, spec.phases),
                    seats=names,
                    train_steps=spec.phases.train_steps,
                    eval_steps=spec.phases.eval_steps,
                    learn_during_eval=spec.phases.learn_during_eval,
                    time_limit=spec.time_limit,
                    wall_limit=spec.wall_limit,
                    memory_limit_mb=spec.memory_limit_mb,
                    plugins=tuple(spec.plugins),
                    plugin_dirs=tournament.plugin_dirs,
                )
            )
    return tasks


def run_match(task: MatchTask, tracker: Callable[[int, int], None] | None = None) -> MatchResult:
    """Play one match: train, then evaluate; a misbehaving strategy gives a fault result, not an exception.

    An observer that fails (or returns metrics that are not JSON data) is nobody's seat: the match is a fault
    that names no entrant, so it scores nothing, and faults.csv says which observer failed.
    """
    start = time.perf_counter()
    try:
        model = _played(task, tracker)
        observers = _observer_results(model)
    except StrategyError as exc:
        return fault_result(task, fault_kind(exc.error), exc.seat, exc.step, short_traceback(exc.error))
    except Exception as exc:  # outside any strategy's code (e.g. the market itself runs out of memory)
        return fault_result(task, fault_kind(exc), None, None, short_traceback(exc))
    return replace(_scored(task, model, start), observers=observers)


def _observer_results(model: MarketModel) -> dict[str, dict[str, Any]]:
    """Each observer's finish() metrics as plain JSON data (numpy scalars and arrays made plain), by name.

    Checked here, in the process that played the match, so that a result always reaches the store; metrics
    that are not JSON data raise ``ObserverError`` naming the observer.
    """
    out = {}
    for name, metrics in model.finish_observers().items():
        try:
            out[name] = json.loads(json.dumps(metrics, allow_nan=True, default=_plain))
        except (TypeError, ValueError) as exc:
            raise ObserverError(name, model.steps, exc) from exc
    return out


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists; anything else is not JSON data."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON data: finish() must return numbers, text, lists or dicts")


def _played(task: MatchTask, tracker: Callable[[int, int], None] | None) -> MarketModel:
    """The match's market stepped through its phases (learning, then evaluation) with the model's own methods."""
    model = MarketModel(task.scenario, plugin_registry(task.plugins, task.plugin_dirs), tracker=tracker)
    for _ in range(task.train_steps):
        model.step()
    if not task.learn_during_eval:
        model.set_learning(False)
    for _ in range(task.eval_steps):
        model.step()
    return model


def _scored(task: MatchTask, model: MarketModel, start: float) -> MatchResult:
    """The result of a played match: each seat's means over the evaluation steps and its price path."""
    steps: pd.DataFrame = model.datacollector.get_model_vars_dataframe().iloc[-task.eval_steps :]
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
        key=task.key,
        index=task.index,
        seed=task.seed,
        seats=task.seats,
        status="ok",
        results=results,
        consumer_surplus=float(steps["consumer_surplus"].mean()),
        prices=prices,
        elapsed=time.perf_counter() - start,
    )


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
    executor: Executor,
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
    codec: Codec | None = None  # how results are written and read (matches by default; a sweep's points)

    def run(
        self,
        tasks: list[MatchTask],
        runner: Runner,
        executor: Executor,
        progress: Callable[[int, int], None] | None = None,
        retry_faults: str | None = None,
    ) -> list[MatchResult]:
        """Play the tasks the store lacks (and, with ``retry_faults``, those that faulted so); return all stored."""
        from marketsim.tournament.results import ResultStore  # coordinator only: spawned workers skip scipy

        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        with ResultStore(self.store_path, codec=self.codec) as store:
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

    def _claim(self, store: ResultStore) -> None:
        """Refuse a store of another identity, or a used one without ``resume``; then record this identity."""
        recorded, where = store.get_meta(self.meta_key), self.store_path
        if recorded is not None and recorded != self.digest:
            raise ResumeError(f"{where} holds {self.what} of {self.other}; choose another --out")
        if recorded is not None and not self.resume and store.done_keys():
            raise ResumeError(f"{where} already holds {self.what}; pass --resume to continue, or another --out")
        store.set_meta(self.meta_key, self.digest)
