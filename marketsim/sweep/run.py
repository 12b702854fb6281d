"""Running a sweep: one point anywhere (``run_point``), every point through an executor into the resumable store.

A point runs its job on the point's file: ``run`` plays the scenario once per repetition (seeds derived from the
point's seed), ``experiment`` runs ``repetitions`` sessions in lockstep from the point's seed, ``tournament``
plays the point's tournament serially, ``meta-eval`` evaluates the baselines on ``repetitions`` test tasks. Each
metric is summarised as its mean with a 95% Student-t interval over the repetitions (sessions, matches, tasks).
The coordinator is the store's only writer (``StoredRun``), so a sweep killed at any point resumes exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marketsim import seeds
from marketsim.config.sweep import checked_point, point_source
from marketsim.sweep.points import CODEC, PointResult, PointTask
from marketsim.tournament.executors import Executor, Tracker


def summarise(samples: Sequence[float]) -> dict[str, float]:
    """Mean and 95% Student-t interval of the finite samples (the interval is NaN with fewer than two)."""
    from scipy import stats

    x = np.asarray([v for v in samples if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "n": 1}
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(x.size)}


def run_point(task: PointTask, tracker: Tracker | None = None) -> PointResult:
    """Run one point's job and summarise its metrics (a runner for the tournament's executors)."""
    started = time.monotonic()
    samples, provenance = _JOBS[task.job](task)
    metrics = {name: summarise(values) for name, values in samples.items()}
    elapsed = round(time.monotonic() - started, 3)
    return PointResult(task.key, task.index, task.seed, task.values, "ok", metrics, None, elapsed, provenance)


def _source(task: PointTask) -> str:
    return point_source(task.base_path, task.key)


def _run_job(task: PointTask) -> tuple[dict[str, list[float]], dict[str, Any]]:
    from marketsim.market.run import simulate

    scenario = checked_point("scenario", task.base_text, _source(task), Path(task.base_path))
    run_seeds = [seeds.derive(task.seed, "repetition", r) for r in range(task.repetitions)]
    rows: dict[str, list[float]] = {m: [] for m in task.metrics}
    for seed in run_seeds:
        result = simulate(scenario.with_overrides(seed=seed))
        per_run = {
            "delta": float(np.nanmean([s.profit_gain for s in result.sellers])),
            "mean_price": float(np.mean([s.mean_price for s in result.sellers])),
            "consumer_surplus": result.consumer_surplus,
            "hhi": result.hhi,
            "mean_profit": float(np.mean([s.mean_profit for s in result.sellers])),
        }
        for name in rows:
            rows[name].append(per_run[name])
    return rows, {"scenario": scenario.digest(), "seeds": run_seeds}


def _experiment_job(task: PointTask) -> tuple[dict[str, list[float]], dict[str, Any]]:
    from marketsim.learning.experiment import run_experiment

    scenario = checked_point("scenario", task.base_text, _source(task), Path(task.base_path))
    scenario = scenario.with_overrides(seed=task.seed % 2**31)
    result = run_experiment(scenario, task.repetitions)
    table = result.sessions_table()
    gains = table[[c for c in table.columns if c.endswith(".profit_gain")]].mean(axis=1)
    prices = table[[c for c in table.columns if c.endswith(".price")]].mean(axis=1)
    per_session = {
        "delta": gains.tolist(),
        "convergence_steps": table["steps"].astype(float).tolist(),
        "converged_share": table["converged"].astype(float).tolist(),
        "mean_price": prices.tolist(),
    }
    seeds_used = [int(s) for s in result.seeds]
    return {m: per_session[m] for m in task.metrics}, {"scenario": scenario.digest(), "seeds": seeds_used}


def _tournament_job(task: PointTask) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The point's tournament, every match played here in turn; per-match samples of each metric."""
    from dataclasses import replace

    from marketsim.config.tournament import parse_tournament
    from marketsim.tournament.play import run_match, schedule
    from marketsim.tournament.results import leaderboard, match_rows

    loaded = parse_tournament(task.base_text, _source(task), base_dir=Path(task.base_path).parent, plugin_dirs=())
    loaded = replace(loaded, spec=loaded.spec.model_copy(update={"seed": task.seed % 2**31}))
    results = [run_match(match) for match in schedule(loaded)]
    rows = match_rows(results, loaded.spec.on_fault)
    board = leaderboard(rows)
    samples: dict[str, list[float]] = {}
    for metric in task.metrics:
        if metric == "mean_profit":
            for entrant in board["entrant"]:
                samples[f"mean_profit.{entrant}"] = _column(rows[rows["entrant"] == entrant], "mean_profit")
        elif metric == "win_rate":
            for entrant in board["entrant"]:
                samples[f"win_rate.{entrant}"] = _column(rows[rows["entrant"] == entrant], "win")
        elif metric == "mean_delta":
            samples[metric] = _column(rows, "profit_gain")
        elif metric == "faults":
            samples[metric] = [float(sum(r.fault is not None for r in results))]
    return samples, {"tournament": loaded.digest(), "matches": len(results)}


def _column(rows: Any, name: str) -> list[float]:
    return rows[name].dropna().astype(float).tolist()


def _meta_eval_job(task: PointTask) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The baselines (and the clairvoyant) on ``repetitions`` test tasks of the point's family; per-task regrets."""
    from marketsim.meta.evaluate import baseline_agents, evaluate
    from marketsim.meta.tasks import parse_family
    from marketsim.registry import default_registry

    registry = default_registry()
    family = parse_family(task.base_text, _source(task), registry, Path(task.base_path).parent)
    result = evaluate(family, baseline_agents(family, registry), task.repetitions, "test", registry)
    regret = result.regret()  # (agents, tasks, horizon)
    steps = {"regret_H": regret.shape[2], "regret_25": 25, "regret_10": 10}
    samples = {}
    for metric in task.metrics:
        t = min(steps[metric], regret.shape[2]) - 1
        for a, agent in enumerate(result.agents):
            samples[f"{metric}.{agent}"] = regret[a, :, t].tolist()
    return samples, {"family": result.family, "tasks": len(result.tasks)}


_JOBS: dict[str, Callable[[PointTask], tuple[dict[str, list[float]], dict[str, Any]]]] = {
    "run": _run_job,
    "experiment": _experiment_job,
    "tournament": _tournament_job,
    "meta-eval": _meta_eval_job,
}


def run_sweep(
    tasks: list[PointTask],
    digest: str,
    store_path: Path,
    executor: Executor,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[PointResult]:
    """Run every point the store lacks through ``executor``; every stored point, in design order."""
    from marketsim.tournament.play import StoredRun

    stored = StoredRun(store_path, "sweep", digest, "points", "a different sweep", resume, CODEC)
    return stored.run(tasks, run_point, executor, progress)
