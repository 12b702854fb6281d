"""Meta-evaluation: how fast does a strategy adapt to an unseen market of a task family?

Every agent takes the learner's seat in the SAME held-out tasks (same task seeds, so the same consumers
and the same draws where the agents price alike) and the market runs H steps through ``MarketModel``.
Each step records the posted price and its expected profit given the rivals' actual prices
(``model.demand.profits(prices)[learner]``, noise-free, with the task's seasonality and shocks of that step
applied by ``demand_at``), and the same for the ``clairvoyant`` oracle run
in the same task. Cumulative regret is R(t) = Σ_{s≤t} (oracle expected profit − agent expected profit).

``write`` produces ``summary.json`` (per agent: ``regret_10``, ``regret_25``, ``regret_H`` — means over tasks
with 95% CIs — and ``last10_oracle_share``, plus the family's ``fixed_price_share``), ``curves.csv``
(t, agent, mean regret, CI), ``tasks.csv`` (per task: drawn parameters and each agent's regret) and
``regret.png``. Tasks can be spread over worker processes; results never depend on the worker count.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from marketsim.market.economics import demand_at
from marketsim.market.model import MarketModel, StrategyError, market_info
from marketsim.meta.tasks import (
    Family,
    Task,
    best_fixed_price,
    expected_rollout,
    fixed_price_profits,
    rival_specs,
    sample_task,
    sample_tasks,
)
from marketsim.outputs import InputRecord, output_folder
from marketsim.registry import Registry, default_registry
from marketsim.strategy import Converging, Strategy, parameters
from marketsim.tables import write_csv

if TYPE_CHECKING:
    import pandas as pd

#: The oracle's strategy name (marketsim_bandits) and the baselines' (agent name -> strategy name).
ORACLE = "clairvoyant"
BASELINES: Mapping[str, str] = {
    "thompson_pricing": "thompson_pricing",
    "ucb_pricing": "ucb_pricing",
    "best_fixed_price": "best_fixed_price",
}
#: The times at which regret is reported (besides H).
REPORT_AT = (10, 25)

AgentSpec = tuple[str, Mapping[str, Any]]  # (registered strategy name, parameters)
Progress = Callable[[int, int], None]  # (tasks done, tasks in all)


class MetaEvalError(ValueError):
    """The evaluation cannot run as asked (unknown strategy, bad checkpoint, bad numbers)."""


# --- one agent in one task -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentRun:
    """One agent's H steps in one task: posted price, its expected profit, realised units and profit."""

    prices: np.ndarray  # (H,)
    expected_profit: np.ndarray  # (H,) expected profit of the posted price against the rivals' actual prices
    units: np.ndarray  # (H,) units actually sold
    profit: np.ndarray  # (H,) profit actually booked


def oracle_params(task: Task) -> dict[str, Any]:
    """The clairvoyant's parameters for ``task``: the rivals' rules, the family grid and the horizon."""
    return {
        "rivals": [r.as_dict() for r in rival_specs(task.scenario, task.learner)],
        "grid": tuple(task.grid),
        "horizon": task.horizon,
    }


def task_params(strategy: str, params: Mapping[str, Any], task: Task, registry: Registry) -> dict[str, Any]:
    """``params`` completed for ``task``: a strategy that takes a ``grid`` gets the family's grid unless given."""
    accepted = {p.name for p in parameters(registry.get(strategy).cls)}
    out = dict(params)
    if "grid" in accepted and "grid" not in out and task.grid:
        out["grid"] = tuple(task.grid)
    return out


def task_model(task: Task, registry: Registry) -> MarketModel:
    """The task's market, built once (placeholder in the learner seat); ``run_agent`` copies it per agent."""
    return MarketModel(task.scenario, registry)


def run_agent(
    task: Task,
    agent: AgentSpec | Strategy,
    registry: Registry,
    template: MarketModel | None = None,
    learning: bool = True,
) -> AgentRun:
    """Run ``agent`` in the learner seat of ``task`` for H steps and record what it posted and earned.

    ``agent`` is (strategy name, params) — params completed by ``task_params`` — or a Strategy instance
    (a meta-learner keeping its weights across tasks): it is ``setup`` with the seat's MarketInfo and the
    seat's generator exactly as ``MarketModel`` would have set it up. ``template`` (from ``task_model``) is
    copied, not changed: building a MarketModel costs ~0.2 s (its Nash/monopoly benchmarks), a copy ~3 ms.
    The result equals running ``MarketModel(with_strategy(task, name, params))`` step by step.
    ``learning=False`` runs the market with learning off (strategies told through ``set_training``).
    """
    template = template if template is not None else task_model(task, registry)
    model = copy.deepcopy(template)
    i = task.learner
    seat = model.sellers[i]
    try:
        if isinstance(agent, Strategy):
            strategy = agent
        else:
            name, params = agent
            strategy = registry.create(name, task_params(name, params, task, registry))
        rng = copy.deepcopy(template.sellers[i].strategy.rng)  # the seat's own, untouched generator
        info = market_info(i, model.demand, model.benchmarks, model.price_min, model.price_max, task.scenario.consumers)
        strategy.setup(info, rng)
    except Exception as exc:
        raise StrategyError(i, seat.name, 0, exc) from exc
    seat.strategy = strategy
    model.learners = [s for s in model.sellers if isinstance(s.strategy, Converging)]
    if not learning:
        model.set_learning(False)
    horizon = task.horizon
    prices, expected = np.empty(horizon), np.empty(horizon)
    units, profit = np.empty(horizon), np.empty(horizon)
    for t in range(horizon):
        model.step()
        posted = np.array([s.price for s in model.sellers])
        prices[t] = posted[i]
        expected[t] = demand_at(model.demand, task.scenario.consumers, t).profits(posted)[i]
        units[t], profit[t] = seat.units, seat.profit
    return AgentRun(prices, expected, units, profit)


def _evaluate_task(
    family: Family, split: str, k: int, agents: Mapping[str, AgentSpec], registry: Registry
) -> tuple[Task, AgentRun, list[AgentRun]]:
    task = sample_task(family, split, k)
    template = task_model(task, registry)
    oracle = run_agent(task, (ORACLE, oracle_params(task)), registry, template)
    return task, oracle, [run_agent(task, spec, registry, template) for spec in agents.values()]


# --- many tasks, many agents ---------------------------------------------------------------------------


def _ci(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% t-interval along ``axis``."""
    from scipy import stats

    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = stats.t.ppf(0.975, n - 1) * values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def _ratio_ci(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Ratio of means x̄/ȳ with a 95% delta-method interval (per-task pairs x_i, y_i)."""
    ratio = float(x.sum() / y.sum()) if y.sum() != 0 else math.nan
    n = len(x)
    if n < 2 or not math.isfinite(ratio):
        return ratio, ratio, ratio
    se = float(np.std(x - ratio * y, ddof=1) / math.sqrt(n) / abs(y.mean()))
    return ratio, ratio - 1.96 * se, ratio + 1.96 * se


@dataclass(frozen=True)
class EvalResult:
    """Every agent's and the oracle's path in every evaluated task."""

    family: str
    split: str
    horizon: int
    agents: tuple[str, ...]
    specs: Mapping[str, AgentSpec]
    tasks: tuple[int, ...]  # task indices of the split
    task_params: tuple[Mapping[str, Any], ...]
    prices: np.ndarray  # (A, T, H) posted prices
    expected: np.ndarray  # (A, T, H) expected profit of the posted price
    oracle_prices: np.ndarray  # (T, H)
    oracle: np.ndarray  # (T, H) the clairvoyant's expected profit
    seconds: float = 0.0
    workers: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. best_fixed_price: the price it posts
    inputs: tuple[InputRecord, ...] = ()  # what it was made from (``meta.train.eval_inputs``), for ``write``

    def to_pandas(self) -> pd.DataFrame:
        """One row per task (``tasks.csv``): its drawn parameters, the oracle's profit and each agent's R(25), R(H)."""
        return self.tasks_table()

    def agents_frame(self) -> pd.DataFrame:
        """One row per agent, lowest R(H) first: regret at 10, 25 and H steps with 95% CIs, oracle share, means."""
        import pandas as pd

        rows = [{"agent": name, **row} for name, row in self.summary()["agents"].items()]
        return pd.DataFrame(rows).sort_values("regret_H", kind="stable").reset_index(drop=True)

    def write(self, folder: str | Path, force: bool = False) -> Path:
        """Write the folder ``marketsim meta-eval`` writes (``write_eval``), with the inputs it was made from."""
        return write_eval(self, folder, force, self.inputs)

    def regret(self) -> np.ndarray:
        """(A, T, H) cumulative regret R(t) = Σ_{s≤t} (oracle − agent), t = 1 … H."""
        return np.cumsum(self.oracle[None] - self.expected, axis=2)

    def fixed_price_share(self) -> float | None:
        """Expected profit of the best fixed price over the oracle's, over all evaluated tasks and steps."""
        for a, name in enumerate(self.agents):
            if self.specs[name][0] == "best_fixed_price":
                return float(self.expected[a].sum() / self.oracle.sum())
        return None

    def summary(self) -> dict[str, Any]:
        """The content of summary.json."""
        regret = self.regret()
        last = min(10, self.horizon)
        agents: dict[str, Any] = {}
        for a, name in enumerate(self.agents):
            row: dict[str, Any] = {"strategy": self.specs[name][0]}
            for label, t in [*((f"regret_{t}", t) for t in REPORT_AT), ("regret_H", self.horizon)]:
                mean, low, high = _ci(regret[a, :, min(t, self.horizon) - 1])
                row[label], row[f"{label}_ci"] = float(mean), [float(low), float(high)]
            share, low, high = _ratio_ci(self.expected[a, :, -last:].sum(axis=1), self.oracle[:, -last:].sum(axis=1))
            row["last10_oracle_share"], row["last10_oracle_share_ci"] = share, [low, high]
            row["mean_profit"] = float(self.expected[a].mean())
            row["mean_price"] = float(self.prices[a].mean())
            agents[name] = row
        return {
            "family": self.family,
            "split": self.split,
            "tasks": len(self.tasks),
            "first_task": int(min(self.tasks)) if self.tasks else 0,
            "horizon": self.horizon,
            "fixed_price_share": self.fixed_price_share(),
            **dict(self.extra),
            "oracle": {"strategy": ORACLE, "mean_profit": float(self.oracle.mean())},
            "agents": agents,
            "regret": "R(t) = sum over steps s <= t of (oracle expected profit - agent expected profit); "
            "regret_25 is R(min(25, H)); CIs are 95% t-intervals over tasks; last10_oracle_share is the agent's "
            "expected profit over the last 10 steps over the oracle's, summed over tasks (delta-method CI)",
            "seconds": self.seconds,
            "workers": self.workers,
        }

    def curves(self):
        """Mean cumulative regret per step and agent, with 95% CIs, and mean expected profits (long format)."""
        import pandas as pd

        regret = self.regret()
        oracle_mean = self.oracle.mean(axis=0)
        frames = []
        for a, name in enumerate(self.agents):
            mean, low, high = _ci(regret[a])
            frames.append(
                pd.DataFrame(
                    {
                        "t": np.arange(1, self.horizon + 1),
                        "agent": name,
                        "regret": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "profit": self.expected[a].mean(axis=0),
                        "oracle_profit": oracle_mean,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def tasks_table(self):
        """One row per task: its index, drawn parameters, the oracle's profit and each agent's R(25) and R(H)."""
        import pandas as pd

        regret = self.regret()
        rows = []
        for t, (k, params) in enumerate(zip(self.tasks, self.task_params)):
            row = {"task": k, **params, "oracle_profit": float(self.oracle[t].sum())}
            for a, name in enumerate(self.agents):  # per task, for paired comparisons of agents
                row[f"{name}.regret_25"] = float(regret[a, t, min(25, self.horizon) - 1])
                row[f"{name}.regret_H"] = float(regret[a, t, -1])
            rows.append(row)
        return pd.DataFrame(rows)


def evaluate(
    family: Family,
    agents: Mapping[str, AgentSpec],
    n_tasks: int,
    split: str = "test",
    registry: Registry | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    start: int = 0,
) -> EvalResult:
    """Run every agent and the clairvoyant on tasks ``start … start+n_tasks-1`` of ``split``.

    ``agents`` maps a display name to (strategy name, params); a strategy that takes a ``grid`` gets the
    family's grid unless its params set one. ``workers`` > 1 spreads tasks over spawned processes.
    """
    given = registry
    registry = registry if registry is not None else default_registry()
    _check_request(family, agents, n_tasks, split, registry)
    began = time.perf_counter()
    indices = list(range(start, start + n_tasks))
    if workers <= 1 or n_tasks < 2:
        results = []
        for done, k in enumerate(indices, 1):
            results.append(_evaluate_task(family, split, k, agents, registry))
            if progress is not None:
                progress(done, n_tasks)
    else:
        results = _evaluate_parallel(family, split, indices, agents, given, workers, progress)
    tasks = [r[0] for r in results]
    names = tuple(agents)
    strategies = registry.provenance("strategy", [s for s, _ in agents.values()])
    extra: dict[str, Any] = {"provenance": {"strategies": strategies}}
    for strategy, params in agents.values():
        if strategy == "best_fixed_price" and "price" in params:
            extra["best_fixed_price"] = float(params["price"])
    return EvalResult(
        family=family.name,
        split=split,
        horizon=family.horizon,
        agents=names,
        specs={k: (s, dict(p)) for k, (s, p) in agents.items()},
        tasks=tuple(t.index for t in tasks),
        task_params=tuple(dict(t.params) for t in tasks),
        prices=np.array([[r[2][a].prices for r in results] for a in range(len(names))]),
        expected=np.array([[r[2][a].expected_profit for r in results] for a in range(len(names))]),
        oracle_prices=np.array([r[1].prices for r in results]),
        oracle=np.array([r[1].expected_profit for r in results]),
        seconds=time.perf_counter() - began,
        workers=max(1, min(workers, n_tasks)),
        extra=extra,
    )


@dataclass(frozen=True)
class SplitsResult:
    """Every agent on several splits of one family (the test tasks and each out-of-distribution slice)."""

    results: Mapping[str, EvalResult]  # split -> its evaluation, in the order evaluated
    inputs: tuple[InputRecord, ...] = ()

    def table(self) -> pd.DataFrame:
        """``splits.csv``: one row per split and agent, regret at 10, 25 and H with 95% CIs, oracle share."""
        import pandas as pd

        frames = [r.agents_frame().assign(split=split) for split, r in self.results.items()]
        frame = pd.concat(frames, ignore_index=True)
        return frame[["split", *[c for c in frame.columns if c != "split"]]]

    def summary(self) -> dict[str, Any]:
        """``summary.json``: each split's summary under ``splits``."""
        first = next(iter(self.results.values()))
        return {
            "family": first.family,
            "horizon": first.horizon,
            "splits": {split: r.summary() for split, r in self.results.items()},
            "seconds": sum(r.seconds for r in self.results.values()),
        }

    def write(self, folder: str | Path, force: bool = False) -> Path:
        """summary.json, splits.csv, curves.csv and tasks.csv (a ``split`` column) and regret.png, atomically."""
        import pandas as pd

        with output_folder(folder, "meta-eval", force, self.inputs) as tmp:
            (tmp / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
            write_csv(self.table(), tmp / "splits.csv")
            for name, part in (("curves", EvalResult.curves), ("tasks", EvalResult.tasks_table)):
                frames = [part(r).assign(split=split) for split, r in self.results.items()]
                write_csv(pd.concat(frames, ignore_index=True), tmp / f"{name}.csv")
            from marketsim.market.plots import save

            save(splits_regret_figure(self), tmp / "regret.png")
        return Path(folder)


def evaluate_splits(
    family: Family,
    agents: Mapping[str, AgentSpec],
    n_tasks: int,
    splits: Iterable[str],
    registry: Registry | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> SplitsResult:
    """``evaluate`` on each split in turn (tasks 0 … n_tasks-1 of each); progress counts every split's tasks."""
    splits = list(splits)
    if not splits or len(set(splits)) < len(splits):
        raise MetaEvalError(f"name each split once, at least one: got {splits}")
    for split in splits:  # every split checked before the first is evaluated
        _check_request(family, agents, n_tasks, split, registry if registry is not None else default_registry())
    total = len(splits) * n_tasks
    results: dict[str, EvalResult] = {}
    for n, split in enumerate(splits):
        step = None if progress is None else (lambda done, _, before=n * n_tasks: progress(before + done, total))
        results[split] = evaluate(family, agents, n_tasks, split, registry, step, workers)
    return SplitsResult(results)


def _check_request(
    family: Family, agents: Mapping[str, AgentSpec], n_tasks: int, split: str, registry: Registry
) -> None:
    """Refuse an evaluation that cannot run (MetaEvalError naming what is wrong)."""
    if n_tasks < 1:
        raise MetaEvalError(f"the number of tasks must be >= 1, got {n_tasks}")
    if split not in family.splits:
        if split == "ood":
            raise MetaEvalError(f"family {family.name!r} declares no ood slice")
        raise MetaEvalError(f"family {family.name!r} has no split {split!r}; its splits: {', '.join(family.splits)}")
    if not agents:
        raise MetaEvalError("no agents to evaluate")
    for name, (strategy, _) in agents.items():
        if strategy not in registry:
            raise MetaEvalError(
                f"agent {name!r}: unknown strategy {strategy!r}; available: {', '.join(registry.names())}"
            )
    if ORACLE not in registry:
        raise MetaEvalError(f"the oracle strategy {ORACLE!r} is not registered (install the marketsim_bandits plugin)")


def _init_worker() -> None:
    try:  # small networks act fastest on one thread per process
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _worker(family: Family, split: str, indices: list[int], agents, registry: Registry | None):
    registry = registry if registry is not None else default_registry()
    return [_evaluate_task(family, split, k, agents, registry) for k in indices]


def _evaluate_parallel(family, split, indices, agents, registry, workers, progress):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, wait

    size = max(1, min(8, len(indices) // (4 * workers)))
    chunks = [indices[k : k + size] for k in range(0, len(indices), size)]
    ctx = mp.get_context("spawn")
    done_tasks = 0
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(_worker, family, split, c, agents, registry): n for n, c in enumerate(chunks)}
        pending = set(futures)
        out: dict[int, list] = {}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                out[futures[f]] = f.result()
                done_tasks += len(out[futures[f]])
            if progress is not None:
                progress(done_tasks, len(indices))
    return [r for n in range(len(chunks)) for r in out[n]]


def baseline_agents(family: Family, registry: Registry, n_train: int = 200) -> dict[str, AgentSpec]:
    """Thompson sampling, UCB and the best fixed price (computed from ``n_train`` training tasks)."""
    price, _ = best_fixed_price(family, n_train, "train", registry=registry)
    return {
        "thompson_pricing": ("thompson_pricing", {}),
        "ucb_pricing": ("ucb_pricing", {}),
        "best_fixed_price": ("best_fixed_price", {"price": price}),
    }


def extra_agents(
    family: Family,
    split: str,
    registry: Registry,
    checkpoint: str | Path | Sequence[str | Path] | None = None,
    strategy: str | None = None,
) -> dict[str, AgentSpec]:
    """The agents to evaluate beside the baselines: each checkpoint's, or a registered strategy with its defaults.

    A checkpoint's strategy is ``strategy`` or else the one its JSON sidecar names; two checkpoints of one
    strategy are told apart by their folders. Each agent is built once for the first task of ``split``, so that a
    bad checkpoint fails now, not after hours of evaluation.
    """
    paths = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint or [])
    if paths:
        extra = {}
        for path in paths:
            name, spec = _checkpoint_agent(Path(path), strategy, registry)
            if name in extra or sum(1 for p in paths if _sidecar_strategy(Path(p)) == name) > 1:
                name = f"{name} ({Path(path).resolve().parent.name}/{Path(path).stem})"
            extra[name] = spec
    elif strategy:
        if strategy not in registry:
            raise MetaEvalError(f"unknown strategy {strategy!r}; available: {', '.join(registry.names())}")
        extra = {strategy: (strategy, {})}
    else:
        return {}
    probe = sample_task(family, split, 0)
    for name, params in extra.values():
        registry.create(name, task_params(name, params, probe, registry))
    return extra


def _sidecar_strategy(path: Path) -> str | None:
    """The strategy a checkpoint's sidecar names (None when it cannot be read)."""
    try:
        return json.loads(path.with_suffix(".json").read_text()).get("strategy")
    except (OSError, ValueError, AttributeError):
        return None


def _checkpoint_agent(path: Path, strategy: str | None, registry: Registry) -> tuple[str, AgentSpec]:
    """(name, spec) of a checkpoint evaluated in eval mode; its strategy from ``strategy`` or its sidecar."""
    pt = path if path.suffix == ".pt" else path.with_suffix(".pt")
    if not pt.is_file():
        raise MetaEvalError(f"checkpoint {pt} does not exist")
    sidecar = pt.with_suffix(".json")
    meta: dict[str, Any] = {}
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise MetaEvalError(f"checkpoint sidecar {sidecar} is not readable JSON: {exc}") from None
    name = strategy or meta.get("strategy")
    if not name:
        raise MetaEvalError(f"checkpoint sidecar {sidecar} names no 'strategy': name it (--strategy NAME)")
    if name not in registry:
        raise MetaEvalError(f"checkpoint strategy {name!r} is not registered; available: {', '.join(registry.names())}")
    params: dict[str, Any] = {"checkpoint": str(pt)}
    if "mode" in {p.name for p in parameters(registry.get(name).cls)}:
        params["mode"] = "eval"  # learners with a training mode act as evaluated, never updating their weights
    return str(name), (str(name), params)


def fixed_price_share(
    family: Family, n_tasks: int = 200, split: str = "test", n_train: int = 200, registry: Registry | None = None
) -> tuple[float, float]:
    """(share, price): the best fixed price's expected profit over the clairvoyant's, over ``n_tasks`` tasks.

    The price comes from ``n_train`` training tasks (``best_fixed_price``); both profits are computed on the
    noise-free dynamics (``expected_rollout``), which is exact for these two sales-blind strategies, so
    this takes seconds, not a full evaluation. A family where adaptation matters has a share well below 1.
    """
    registry = registry if registry is not None else default_registry()
    price, _ = best_fixed_price(family, n_train, "train", registry=registry)
    fixed = oracle = 0.0
    for task in sample_tasks(family, split, n_tasks):
        _, profits = expected_rollout(task, registry.create(ORACLE, oracle_params(task)), registry)
        oracle += float(profits.sum())
        fixed += float(fixed_price_profits(task, [price], registry)[0].sum())
    return fixed / oracle, price


# --- output --------------------------------------------------------------------------------------------


def _trailing(values: np.ndarray, window: int) -> np.ndarray:
    """Sum over the last ``window`` steps up to each step (fewer at the start)."""
    total = np.cumsum(values)
    total[window:] = total[window:] - total[:-window]
    return total


def plot_regret(result: EvalResult, path: Path) -> Path:
    """Write ``regret_figure`` to ``path`` (a PNG) and return the path."""
    from marketsim.market.plots import save

    return save(regret_figure(result), path)


def regret_figure(result: EvalResult) -> Any:
    """Two panels: mean cumulative regret with 95% bands, and per-step profit as a share of the oracle's.

    A horizon under two steps has no curve to draw: both panels say "not enough data" instead.
    """
    from marketsim.market.plots import not_enough_data, plt, plural

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    fig.suptitle(f"{result.family}: {plural(len(result.tasks), result.split + ' task')}, H = {result.horizon}")
    if result.horizon < 2:
        for ax in (left, right):
            not_enough_data(ax, f"a horizon of {plural(result.horizon, 'step')}; a curve needs at least 2")
        return fig
    regret = result.regret()
    t = np.arange(1, result.horizon + 1)
    order = np.argsort([-regret[a, :, -1].mean() for a in range(len(result.agents))])
    oracle_mean = result.oracle.mean(axis=0)
    window = min(5, result.horizon)
    for a in order:
        name = result.agents[a]
        mean, low, high = _ci(regret[a])
        (line,) = left.plot(t, mean, lw=1.8, label=f"{name} (R(H) = {mean[-1]:,.0f})")
        left.fill_between(t, low, high, color=line.get_color(), alpha=0.18, lw=0)
        share = _trailing(result.expected[a].mean(axis=0), window) / _trailing(oracle_mean, window)
        right.plot(t, share, lw=1.6, color=line.get_color(), label=name)
    for mark in REPORT_AT:
        if mark < result.horizon:
            left.axvline(mark, color="grey", ls=":", lw=0.9)
            right.axvline(mark, color="grey", ls=":", lw=0.9)
    left.set(
        title="Cumulative regret against the clairvoyant (mean, 95% CI)",
        xlabel="step t",
        ylabel="R(t) = Σ (oracle − agent) expected profit",
    )
    left.legend(loc="upper left", fontsize="small")
    right.axhline(1.0, color="k", lw=0.9, label="clairvoyant")
    right.set(
        title=f"Expected profit, share of the oracle's (trailing {window} steps)",
        xlabel="step t",
        ylabel="share of oracle profit",
    )
    right.set_ylim(bottom=max(0.0, float(np.nanmin(right.get_ylim()[0]))), top=1.05)
    right.legend(loc="lower right", fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_xlim(1, result.horizon)
    return fig


def splits_regret_figure(result: SplitsResult) -> Any:
    """One panel per split: each agent's mean cumulative regret with its 95% band, on a shared y axis."""
    from marketsim.market.plots import plt

    n = len(result.results)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), layout="constrained", squeeze=False,
                             sharey=True)  # fmt: skip
    first = next(iter(result.results.values()))
    fig.suptitle(f"{first.family}: cumulative regret against the clairvoyant per split (mean, 95% CI)")
    colours: dict[str, Any] = {}
    for ax, (split, r) in zip(axes.flat, result.results.items()):
        regret = r.regret()
        t = np.arange(1, r.horizon + 1)
        for a, name in enumerate(r.agents):
            mean, low, high = _ci(regret[a])
            (line,) = ax.plot(t, mean, lw=1.6, color=colours.get(name), label=f"{name} ({mean[-1]:,.0f})")
            colours[name] = line.get_color()
            ax.fill_between(t, low, high, color=line.get_color(), alpha=0.15, lw=0)
        for mark in REPORT_AT:
            ax.axvline(mark, color="grey", ls=":", lw=0.9)
        ax.set(title=f"{split} ({len(r.tasks)} tasks)", xlabel="step t")
        ax.legend(loc="upper left", fontsize="x-small", title="agent (R(H))", title_fontsize="x-small")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("R(t)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig


def write_eval(
    result: EvalResult, out_dir: str | Path, force: bool = False, inputs: Iterable[InputRecord] = ()
) -> Path:
    """Write ``inputs`` (the family, a checkpoint), summary.json, curves.csv, tasks.csv and regret.png, atomically."""
    with output_folder(out_dir, "meta-eval", force, inputs) as tmp:
        (tmp / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
        write_csv(result.curves(), tmp / "curves.csv")
        write_csv(result.tasks_table(), tmp / "tasks.csv")
        plot_regret(result, tmp / "regret.png")
    return Path(out_dir)
