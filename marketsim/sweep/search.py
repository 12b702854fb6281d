"""A sweep's ``search``: Optuna proposes points over the ranges, each is run and stored like a designed point.

The study asks for ``parallel`` trials at a time, the executor runs the ones the store lacks side by side, and
each trial is told its point's metric (a faulted point, or one whose metric is not a number, is a failed trial).
Seeded sampler, fixed batch size and points keyed by their values make the search reproducible and resumable:
a resumed search replays the same proposals, finds their points stored, and runs only the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marketsim.config.sweep import LoadedSweep, Range
from marketsim.exceptions import MissingExtraError
from marketsim.sweep.points import CODEC, PointResult, schedule
from marketsim.sweep.run import run_point
from marketsim.tournament.executors import Executor

MISSING = "a sweep's search needs Optuna, the optional extra: pip install 'marketsim[search]'"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingExtraError(MISSING) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(sweep: LoadedSweep) -> dict[str, Any]:
    """Each axis as an Optuna distribution: integer or float, logarithmic when the range is."""
    optuna = _optuna()
    out = {}
    for path, axis in sweep.spec.axes.items():
        assert isinstance(axis, Range)  # validation: a search draws from ranges only
        log = axis.scale == "log"
        if axis.integer:
            out[path] = optuna.distributions.IntDistribution(int(axis.low), int(axis.high), log=log)
        else:
            out[path] = optuna.distributions.FloatDistribution(axis.low, axis.high, log=log)
    return out


def run_search(
    sweep: LoadedSweep,
    store_path: Path,
    executor: Executor,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[PointResult]:
    """Run the search's trials (those stored are not run again); every stored point, in trial order."""
    from marketsim.tournament.play import StoredRun

    optuna, search = _optuna(), sweep.spec.search
    assert search is not None
    sampler_cls = optuna.samplers.TPESampler if search.sampler == "tpe" else optuna.samplers.RandomSampler
    study = optuna.create_study(direction=search.direction, sampler=sampler_cls(seed=sweep.spec.seed))
    space, stored, asked = distributions(sweep), {}, 0
    while asked < search.trials:
        trials = [study.ask(space) for _ in range(min(search.parallel, search.trials - asked))]
        tasks = schedule(sweep, [dict(t.params) for t in trials], start=asked)
        run = StoredRun(store_path, "sweep", sweep.digest(), "points", "a different sweep", resume or asked > 0, CODEC)
        report = (
            None
            if progress is None
            else (lambda k, _n, done=asked: progress(min(done + k, search.trials), search.trials))
        )
        stored = {r.key: r for r in run.run(tasks, run_point, executor, report)}
        for trial, task in zip(trials, tasks):
            _tell(study, trial, stored.get(task.key), search.metric)
        asked += len(trials)
        if progress is not None:
            progress(asked, search.trials)
    return sorted(stored.values(), key=lambda r: r.index)


def _tell(study: Any, trial: Any, result: PointResult | None, metric: str) -> None:
    """Tell the study a trial's value: its point's mean of ``metric``, or a failed trial."""
    import optuna

    value = None if result is None or result.status != "ok" else result.metrics.get(metric, {}).get("mean")
    if value is None or not math.isfinite(value):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)
