"""The meta-training loop: the host samples a family's training tasks, batches their markets and drives a
``MetaLearner`` (``marketsim.strategy.MetaTrainable``) through its iterations, scoring it on held-aside tasks.

A meta-learning plugin supplies only the per-iteration update and its trained state; everything around it
(task sampling, the batched markets, the oracle, progress, the curve and its timing) is here, the same for
every meta-learner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marketsim.meta.batch import TaskBatch, oracle_profits
from marketsim.meta.tasks import Family, sample_tasks
from marketsim.registry import Registry
from marketsim.strategy import MetaLearner, MetaSetup, MetaTrainable

Progress = Callable[[int, int, Mapping[str, float]], None]  # (iterations done, total, latest metrics)


@dataclass
class MetaTrained:
    """A meta-learner's trained state, the parameters to rebuild it, its curve and extra checkpoints."""

    state: dict[str, Any]
    params: dict[str, Any]
    curve: list[dict[str, float]]  # one row per logged iteration (iteration, seconds, metrics…)
    extra: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # name -> (state, meta)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetaRun:
    """One meta-training run as asked: the family, the strategy class, and the run's settings."""

    family: Family
    cls: MetaTrainable
    registry: Registry
    iterations: int | None = None
    seed: int = 0
    device: str = "auto"
    progress: Progress | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def regret_metrics(regret: np.ndarray) -> dict[str, float]:
    """The curve's regret columns: mean cumulative regret after 25 steps (or H when shorter) and after H."""
    return {
        "val_regret_25": float(regret[:, min(25, regret.shape[1]) - 1].mean()),
        "val_regret_H": float(regret[:, -1].mean()),
    }


def run_meta_training(run: MetaRun) -> MetaTrained:
    """Meta-train ``run.cls`` on ``run.family``'s training tasks; return its state, curve and sidecar facts."""
    began = time.perf_counter()
    family = run.family
    setup = MetaSetup(grid=family.grid, horizon=family.horizon, seed=run.seed, device=run.device)
    learner: MetaLearner = run.cls.meta_learner(setup, **run.options)
    total = run.iterations if run.iterations is not None else learner.iterations
    rng = np.random.default_rng(run.seed)
    tasks = sample_tasks(family, "train", learner.pool + learner.validation)
    env = TaskBatch.from_tasks(tasks[: learner.pool], run.registry)
    held = TaskBatch.from_tasks(tasks[learner.pool :], run.registry)
    oracle = oracle_profits(tasks[learner.pool :], run.registry)

    def regret(expected: np.ndarray) -> np.ndarray:
        return np.cumsum(oracle - expected, axis=1)

    learner.begin(env)
    curve: list[dict[str, float]] = []
    for it in range(1, total + 1):
        metrics = learner.update(it, total, env, rng)
        if it % learner.log_every == 0 or it == total:
            row = {"iteration": it, "seconds": round(time.perf_counter() - began, 2), **metrics}
            curve.append({**row, **regret_metrics(regret(learner.validate(held)))})
        if run.progress is not None:
            run.progress(it, total, curve[-1] if curve else {})
    done = learner.finish(total, env, held, rng, regret)
    return MetaTrained(
        state=done.state, params=done.params, curve=curve, extra=done.extra, info={"iterations": total, **done.info}
    )
