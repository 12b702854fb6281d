"""Train one seller's learner in its scenario, then save a checkpoint and its learning curve.

The other sellers play their own strategies. A ``ParallelTrainable`` learner (A3C: several worker
processes sharing one model) is trained by ``marketsim.learning.parallel``, with ``workers`` processes;
any other learner learns inside the ordinary market loop.

The training folder holds ``checkpoint.pt`` + ``checkpoint.json`` (strategy, parameters, seller, scenario
name and hash, steps, versions), ``curve.csv`` (step, profit, moving average, price, and the normalised
score S where an oracle exists) and ``curve.png``. A scenario then evaluates the learner with
``params: {checkpoint: <folder>/checkpoint.pt, mode: eval}``.

S exists when the market is stationary with expected demand (what ``marketsim experiment`` needs) and
every rival is a deterministic rule reacting to last period's prices, and the learner is ``GreedyTabulable``:
its greedy policy over last period's grid prices is then scored exactly by ``marketsim.market.oracle``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketsim.config.scenario import Scenario
from marketsim.learning import tabular
from marketsim.learning.parallel import ScenarioMarkets, train_workers
from marketsim.learning.plan import ExperimentError, check_supported, make_plan
from marketsim.market import oracle
from marketsim.market.model import MarketModel
from marketsim.outputs import output_folder, scenario_record
from marketsim.registry import Registry, default_registry
from marketsim.strategy import GreedyTabulable, ParallelTrainable, Strategy, TabularQLearner
from marketsim.tables import write_csv

Progress = Callable[[int], None]  # steps done so far (summed over workers)


class TrainError(ValueError):
    """The seller cannot be trained as asked (unknown name, not a learner, workers unsupported)."""


@dataclass(frozen=True)
class Oracle:
    """What scoring a seller's greedy policy needs: the tabulated market, rivals' reactions, discount."""

    market: oracle.DiscreteMarket
    index: int
    reactions: dict[int, np.ndarray]
    delta: float

    def start_state(self, prices: list[float]) -> int:
        """Joint grid index of the given last posted prices (snapped to each seller's grid)."""
        actions = [tabular.nearest(self.market.grids[j], p) for j, p in enumerate(prices)]
        return int(self.market.joint(np.array(actions)))

    def score(self, strategy: Strategy, prices: list[float] | None = None) -> oracle.Score | None:
        """S of the strategy's greedy policy, from the state of ``prices`` (all starts when None)."""
        table = greedy_policy(strategy, self.market.grids)
        if table is None:
            return None
        start = None if prices is None else self.start_state(prices)
        return oracle.score(self.market, self.index, table, self.reactions, self.delta, start=start)


@dataclass
class TrainResult:
    """A trained learner's state, its learning curve and what it was trained on."""

    scenario: Scenario
    seller: str
    index: int
    strategy: str
    params: dict[str, Any]
    state: dict[str, Any]
    curve: pd.DataFrame
    steps: int
    workers: int
    seconds: float
    score: oracle.Score | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, scenario: Scenario, index: int, learner: Strategy, **rest: Any) -> TrainResult:
        """The result for seat ``index``'s ``learner``: seller, strategy and parameters read from them."""
        spec = scenario.expanded_sellers()[index]
        return cls(
            scenario=scenario, seller=spec.name, index=index, strategy=learner.name, params=dict(learner.params), **rest
        )

    def to_pandas(self) -> pd.DataFrame:
        """The learning curve (``curve.csv``): per step (and worker) profit, its moving average, price and S."""
        return self.curve

    def write(self, folder: str | Path, force: bool = False) -> Path:
        """Write the training folder ``marketsim train`` writes (``write_training``): the checkpoint and its curve."""
        return write_training(self, folder, force)

    def checkpoint_meta(self) -> dict[str, Any]:
        """The checkpoint's JSON sidecar (versions are added by ``save_checkpoint``)."""
        return {
            "strategy": self.strategy,
            "params": _jsonable(self.params),
            "seller": self.seller,
            "seller_index": self.index,
            "scenario": self.scenario.name,
            "scenario_hash": self.scenario.digest(),
            "steps": self.steps,
            "workers": self.workers,
            **self.meta,
        }

    def summary(self) -> dict[str, Any]:
        """The content of summary.json: sidecar facts plus timing, profits and the final score."""
        profit = self.curve["profit"].to_numpy()
        k = max(1, len(profit) // 10)
        return {
            **self.checkpoint_meta(),
            "seconds": self.seconds,
            "steps_per_second": self.steps / self.seconds if self.seconds > 0 else None,
            "mean_profit_first_tenth": float(profit[:k].mean()) if len(profit) else None,
            "mean_profit_last_tenth": float(profit[-k:].mean()) if len(profit) else None,
            "score": None if self.score is None else self.score.as_dict(),
        }


def _jsonable(value: Any) -> Any:
    """Parameters as JSON data (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def seller_index(scenario: Scenario, name: str) -> int:
    """Index of seller ``name`` among the scenario's expanded sellers; TrainError lists the names."""
    names = [s.name for s in scenario.expanded_sellers()]
    if name not in names:
        raise TrainError(f"no seller named {name!r} in scenario {scenario.name!r} (sellers: {', '.join(names)})")
    return names.index(name)


def greedy_policy(strategy: Strategy, grids: np.ndarray) -> np.ndarray | None:
    """The strategy's greedy action in every memory-1 grid state, or None when it cannot say."""
    if isinstance(strategy, TabularQLearner) and strategy.config.memory != 1:
        return None  # its states are longer histories: no memory-1 policy
    if isinstance(strategy, GreedyTabulable):
        return np.asarray(strategy.greedy_table(grids), dtype=np.int64)
    if isinstance(strategy, TabularQLearner):  # a Q table alone: its arg-max is the greedy policy
        return np.asarray(strategy.q.argmax(axis=1), dtype=np.int64)
    return None


def make_oracle(scenario: Scenario, index: int, learner: Strategy, registry: Registry) -> Oracle | None:
    """The exact oracle for seller ``index`` when the market and rivals allow one, else None."""
    if not isinstance(learner, GreedyTabulable):
        return None
    try:
        check_supported(scenario)
        specs = list(scenario.expanded_sellers())
        stand_in = {"strategy": "q_learning", "params": dict(learner.grid_params), "count": 1}
        specs[index] = specs[index].model_copy(update=stand_in)
        plan = make_plan(scenario.model_copy(update={"sellers": tuple(specs)}), registry)
    except (ExperimentError, ValueError, KeyError):
        return None
    if plan.learners != (index,) or not np.allclose(plan.market.grids[index], learner.prices):
        return None
    return Oracle(plan.market, index, plan.reactions, float(learner.discount))


def _strategy_class(scenario: Scenario, index: int, registry: Registry) -> type[Strategy]:
    spec = scenario.expanded_sellers()[index]
    try:
        return registry.get(spec.strategy).cls
    except KeyError as exc:
        raise TrainError(str(exc).strip("'\"")) from None


def train(
    scenario: Scenario,
    seller: str,
    steps: int | None = None,
    workers: int = 1,
    registry: Registry | None = None,
    progress: Progress | None = None,
    eval_points: int = 20,
) -> TrainResult:
    """Train ``seller``'s learner for ``steps`` (default: the scenario's) while the others play as usual."""
    registry = registry if registry is not None else default_registry()
    steps = scenario.steps if steps is None else int(steps)
    if steps < 1:
        raise TrainError(f"steps must be >= 1, got {steps}")
    if workers < 1:
        raise TrainError(f"workers must be >= 1, got {workers}")
    index = seller_index(scenario, seller)
    cls = _strategy_class(scenario, index, registry)
    if not cls.classifier.get("learns"):
        raise TrainError(f"seller {seller!r} plays {cls.name!r}, which does not learn: nothing to train")
    parallel = issubclass(cls, ParallelTrainable)
    if not parallel and workers > 1:
        raise TrainError(f"strategy {cls.name!r} trains in one process only: drop --workers or use 1")
    if parallel:
        result = _train_parallel(scenario, index, steps, workers, registry, progress)
    else:
        result = _train_in_market(scenario, index, steps, registry, progress, eval_points)
    result.meta["provenance"] = registry.scenario_provenance(scenario)
    return result


def _train_in_market(
    scenario: Scenario, index: int, steps: int, registry: Registry, progress: Progress | None, eval_points: int
) -> TrainResult:
    """Run the market loop for ``steps`` with the seller learning; score S every ``steps/eval_points``."""
    model = MarketModel(scenario, registry)
    seller = model.sellers[index]
    learner = seller.strategy
    judge = make_oracle(scenario, index, learner, registry)
    every = max(1, steps // max(eval_points, 1))
    rows: list[dict[str, float]] = []
    start = time.perf_counter()
    for k in range(1, steps + 1):
        model.step()  # a tabular learner's convergence stop is ignored: training runs the full budget
        row = {"step": k, "profit": seller.profit, "price": seller.price, "S": math.nan}
        if judge is not None and (k % every == 0 or k == steps):
            row["S"] = _score_value(judge.score(learner, [s.price for s in model.sellers]))
        rows.append(row)
        if progress is not None:
            progress(k)
    seconds = time.perf_counter() - start
    final = judge.score(learner, [s.price for s in model.sellers]) if judge is not None else None
    return TrainResult.of(
        scenario,
        index,
        learner,
        state=learner.state_dict(),
        curve=_curve(pd.DataFrame(rows), steps),
        steps=steps,
        workers=1,
        seconds=seconds,
        score=final,
    )


def _train_parallel(
    scenario: Scenario, index: int, steps: int, workers: int, registry: Registry, progress: Progress | None
) -> TrainResult:
    """Train a ``ParallelTrainable`` learner in ``workers`` processes (``parallel.train_workers``); score it once."""
    start = time.perf_counter()
    run = train_workers(ScenarioMarkets(scenario, registry), index, steps, workers, progress)
    state, rows = run.state, run.rows
    seconds = time.perf_counter() - start
    model = MarketModel(scenario, registry)
    learner = model.sellers[index].strategy
    learner.load_state_dict(state)
    learner.set_training(False)
    judge = make_oracle(scenario, index, learner, registry)
    final = judge.score(learner) if judge is not None else None
    frame = pd.DataFrame(rows, columns=["step", "worker", "profit", "price"]).sort_values(["step", "worker"])
    frame["S"] = math.nan
    if final is not None and len(frame):
        frame.loc[frame.index[-1], "S"] = final.score
    return TrainResult.of(
        scenario,
        index,
        learner,
        state=state,
        curve=_curve(frame.reset_index(drop=True), steps),
        steps=steps,
        workers=workers,
        seconds=seconds,
        score=final,
    )


def _score_value(score: oracle.Score | None) -> float:
    return math.nan if score is None else float(score.score)


def _curve(frame: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Add the moving average of profit (per worker when there are several) over a window of steps."""
    window = moving_window(steps)
    if "worker" in frame and frame["worker"].nunique() > 1:
        frame["moving_average"] = frame.groupby("worker")["profit"].transform(
            lambda s: s.rolling(window, min_periods=1).mean()
        )
    else:
        frame["moving_average"] = frame["profit"].rolling(window, min_periods=1).mean()
    front = ["step", "worker"] if "worker" in frame else ["step"]
    return frame[[*front, "profit", "moving_average", "price", "S"]]


def moving_window(steps: int) -> int:
    """Moving-average window of a curve: a twentieth of the steps, between 10 and 1000."""
    return int(min(1000, max(10, steps // 20)))


def write_training(result: TrainResult, out_dir: str | Path, force: bool = False) -> Path:
    """Write the scenario, checkpoint.pt/.json, curve.csv, curve.png and summary.json atomically into ``out_dir``."""
    from marketsim.learning.checkpoint import save_checkpoint
    from marketsim.learning.plots import plot_curve  # imports matplotlib: only when writing

    with output_folder(out_dir, "training", force, [scenario_record(result.scenario)]) as tmp:
        save_checkpoint(tmp / "checkpoint.pt", result.state, result.checkpoint_meta())
        write_csv(result.curve, tmp / "curve.csv")
        title = f"{result.scenario.name}: training {result.seller} ({result.strategy})"
        plot_curve(result.curve, tmp / "curve.png", title)
        (tmp / "summary.json").write_text(json.dumps(_jsonable(result.summary()), indent=2) + "\n")
    return Path(out_dir)
