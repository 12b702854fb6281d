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
    earlier_seconds: float = 0.0  # training seconds of a resumed run's parts before this one


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


@dataclass(frozen=True)
class MetaBench:
    """What every meta-training loop works on: the learner, its iterations, the training pool, the held-aside
    validation tasks and their oracle profits (which turn the learner's expected profits into regret)."""

    learner: MetaLearner
    total: int
    env: TaskBatch
    held: TaskBatch
    oracle: np.ndarray  # (validation, H) the clairvoyant's expected profits

    def regret(self, expected: np.ndarray) -> np.ndarray:
        """Cumulative regret paths (tasks, H) of validation profits against the oracle."""
        return np.cumsum(self.oracle - expected, axis=1)

    def logs(self, iteration: int) -> bool:
        """Whether the curve gets a row after ``iteration``."""
        return iteration % self.learner.log_every == 0 or iteration == self.total

    def row(self, iteration: int, seconds: float, metrics: Mapping[str, float]) -> dict[str, float]:
        """The curve row of ``iteration``: the learner's metrics and its regret on the validation tasks now."""
        row = {"iteration": iteration, "seconds": round(seconds, 2), **metrics}
        return {**row, **regret_metrics(self.regret(self.learner.validate(self.held)))}


def build_learner(run: MetaRun) -> MetaLearner:
    """``run``'s learner, built by its strategy class from the family's grid and horizon and the options."""
    family = run.family
    setup = MetaSetup(grid=family.grid, horizon=family.horizon, seed=run.seed, device=run.device)
    return run.cls.meta_learner(setup, **run.options)


def meta_bench(run: MetaRun, learner: MetaLearner) -> MetaBench:
    """``learner``'s iterations, training pool and validation tasks (the family's train split) for ``run``."""
    total = run.iterations if run.iterations is not None else learner.iterations
    tasks = sample_tasks(run.family, "train", learner.pool + learner.validation)
    return MetaBench(
        learner=learner,
        total=total,
        env=TaskBatch.from_tasks(tasks[: learner.pool], run.registry),
        held=TaskBatch.from_tasks(tasks[learner.pool :], run.registry),
        oracle=oracle_profits(tasks[learner.pool :], run.registry),
    )


def run_meta_training(run: MetaRun) -> MetaTrained:
    """Meta-train ``run.cls`` on ``run.family``'s training tasks; return its state, curve and sidecar facts.

    The learner steps its own batches here, one iteration after the other (``marketsim.meta.distributed``
    runs the same bench with actor processes).
    """
    began = time.perf_counter()
    bench = meta_bench(run, build_learner(run))
    learner, total, env = bench.learner, bench.total, bench.env
    rng = np.random.default_rng(run.seed)
    learner.begin(env)
    curve: list[dict[str, float]] = []
    for it in range(1, total + 1):
        metrics = learner.update(it, total, env, rng)
        if bench.logs(it):
            curve.append(bench.row(it, time.perf_counter() - began, metrics))
        if run.progress is not None:
            run.progress(it, total, curve[-1] if curve else {})
    done = learner.finish(total, env, bench.held, rng, bench.regret)
    return MetaTrained(
        state=done.state, params=done.params, curve=curve, extra=done.extra, info={"iterations": total, **done.info}
    )
