"""Task families for meta-learning: tasks sampled from a family into concrete scenarios, and their rollouts.

The family file format (``family:`` and ``base:``) and its validation live in ``marketsim.config.family``;
this module draws tasks from a family, runs a strategy through a task on the noise-free dynamics, and finds
the best fixed price under the prior. Its former names (``load_family``, ``Family``, ``FamilySpec``…) are
re-exported here.

Meta-training, meta-test and OOD tasks come from disjoint seed streams: task ``k`` of split ``s`` draws
from ``SeedSequence(family.seed, spawn_key=(stream(s), k))`` (``marketsim.seeds.task_sequence``), so it is
the same whatever ``n`` is and whatever other tasks were drawn, and no two splits share a stream. Sampling
builds the scenario dict and validates it with pydantic only (no registry look-ups): thousands of tasks take
a second or two.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from marketsim import seeds
from marketsim.config.family import (
    OOD,
    Dist,
    Distribution,
    Family,
    FamilyError,
    FamilySpec,
    Grid,
    Rivals,
    RivalSlot,
    is_family_file,
    learner_index,
    read_family,
    set_path,
)
from marketsim.config.scenario import Scenario
from marketsim.config.validate import check_strategies
from marketsim.config.yamlsource import Located, Problem, SourceError, read_source
from marketsim.market import step
from marketsim.market.economics import demand_at
from marketsim.market.engine import profit_over_time
from marketsim.market.rivals import DeferredProfit, RivalRules, RivalSpec, full_prices
from marketsim.market.step import rivals_of
from marketsim.registry import Registry, default_registry
from marketsim.strategy import MarketInfo, Strategy

__all__ = [
    "OOD",
    "PLACEHOLDER",
    "SPLITS",
    "STREAMS",
    "Dist",
    "Distribution",
    "Family",
    "FamilyError",
    "FamilySpec",
    "Grid",
    "RivalRules",
    "RivalSlot",
    "RivalSpec",
    "Rivals",
    "Split",
    "Task",
    "best_fixed_price",
    "expected_rollout",
    "fixed_price_profits",
    "full_prices",
    "is_family_file",
    "load_family",
    "parse_family",
    "rival_specs",
    "rule_market",
    "sample_task",
    "sample_tasks",
    "split_stream",
    "task_market",
    "task_seed_sequence",
    "with_strategy",
]

Split = str  # "train", "test", "ood" or one of the family's named slices
SPLITS: tuple[str, ...] = ("train", "test", "ood")
#: Spawn key of each split's seed stream (part of the reproducibility contract).
STREAMS: Mapping[str, int] = {"train": 0, "test": 1, "ood": 2}
#: The strategy the learner seat holds in a sampled task until a caller puts its own there.
PLACEHOLDER = "fixed_price"


@dataclass(frozen=True)
class Task:
    """One market drawn from a family: a concrete scenario with ``steps = H`` and a placeholder learner."""

    index: int
    split: str
    scenario: Scenario
    learner: int  # seat index of the learner
    params: Mapping[str, Any]  # the drawn values, by path (for reports)
    grid: tuple[float, ...] = ()

    @property
    def horizon(self) -> int:
        return self.scenario.steps

    def rivals(self) -> list[int]:
        """Seat indices of every other seller."""
        return [j for j in range(len(self.scenario.sellers)) if j != self.learner]


# --- loading ------------------------------------------------------------------------------------------


def parse_family(
    text: str, source: str = "<string>", registry: Registry | None = None, base_dir: Path | None = None
) -> Family:
    """Validate family YAML text, and that its first drawn tasks are valid markets with known strategies;
    raise FamilyError listing each problem as file:line:col: field: reason."""
    registry = registry if registry is not None else default_registry()
    family, located = read_family(text, source, registry=registry, base_dir=base_dir)
    slices = family.slices()
    for split in family.splits:
        at = slices[split][0] if split in slices else ("family",)
        line, col, _ = located.locate(at)
        try:  # a drawn market must be a valid scenario with known strategies
            task = sample_task(family, split, 0)
        except SourceError as exc:
            raise SourceError([Problem(source, line, col, ".".join(at), exc.problems[0].message)]) from None
        found, _ = check_strategies(task.scenario.sellers, "sellers", Located(None, None, source), registry)
        if found:
            message = f"a drawn {split} task: "
            raise SourceError([Problem(source, line, col, ".".join(at), message + p.message) for p in found])
    return family


def load_family(path: str | Path, registry: Registry | None = None) -> Family:
    """Read and validate a family file."""
    path = Path(path)
    return parse_family(read_source(path), str(path), registry, path.parent)


# --- sampling -----------------------------------------------------------------------------------------


def split_stream(split: str) -> int:
    """The spawn key of a split's seed stream: fixed for train/test/ood, from its name's hash for a slice
    (so adding or reordering slices never changes another split's tasks)."""
    if split in STREAMS:
        return STREAMS[split]
    return 1_000 + int(hashlib.sha256(split.encode()).hexdigest()[:8], 16)


def task_seed_sequence(family: Family, split: str, k: int) -> np.random.SeedSequence:
    """The seed sequence of task ``k`` of ``split``: its own stream, disjoint from every other task's."""
    if split not in family.splits:
        raise ValueError(f"split must be one of {', '.join(family.splits)}, got {split!r}")
    return seeds.task_sequence(family.spec.seed, split_stream(split), k)


def sample_task(family: Family, split: str, k: int) -> Task:
    """Task ``k`` of ``split`` (the same whatever else is sampled)."""
    if k < 0:
        raise ValueError(f"task index must be >= 0, got {k}")
    draws_seq, market_seq = task_seed_sequence(family, split, k).spawn(2)
    rng = np.random.default_rng(draws_seq)
    sample, rivals, shocks = family.sampling(split)
    data = copy.deepcopy(family.base_data)
    params: dict[str, Any] = {}
    for path, dist in sample.items():
        params[path] = value = dist.draw(rng)
        set_path(data, path, value)
    count = int(rivals.count.draw(rng))
    params["rivals.count"] = count
    taken = {s["name"] for s in data["sellers"]}
    for j, slot in enumerate(rivals.slots[:count]):
        strategy = str(slot.strategy.draw(rng))
        name = slot.name or f"rival_{j + 1}"
        while name in taken:
            name += "_"
        taken.add(name)
        seller = {
            "name": name,
            "strategy": strategy,
            "params": {key: d.draw(rng) for key, d in slot.params.get(strategy, {}).items()},
            "cost": slot.cost.draw(rng),
            "quality": slot.quality.draw(rng),
            "price_min": slot.price_min,
            "price_max": slot.price_max,
        }
        if slot.initial_price is not None:
            seller["initial_price"] = slot.initial_price.draw(rng)
        params[f"rivals[{j}].strategy"] = strategy
        params.update({f"rivals[{j}].{key}": seller[key] for key in ("cost", "quality")})
        params.update({f"rivals[{j}].params.{key}": v for key, v in seller["params"].items()})
        data["sellers"].append(seller)
    for j, shock in enumerate(shocks):  # drawn last: a slice's other draws match those of a slice without shocks
        drawn = {key: dist.draw(rng) for key, dist in shock.items()}
        params.update({f"shocks[{j}].{key}": value for key, value in drawn.items() if key != "kind"})
        data["consumers"]["shocks"] = [*data["consumers"].get("shocks", []), drawn]
    grid = family.grid
    learner = next(s for s in data["sellers"] if s["name"] == family.spec.learner)
    learner["strategy"], learner["params"] = PLACEHOLDER, {"price": float(np.median(grid))}
    data["steps"] = family.spec.horizon
    data["seed"] = int(market_seq.generate_state(1, np.uint32)[0])
    data["name"] = f"{family.name}-{split}-{k}"
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(s) for s in first["loc"])
        raise SourceError(
            [Problem(family.source, 0, 0, "family", f"{split} task {k} is not a valid market: {where}: {first['msg']}")]
        ) from None
    return Task(k, split, scenario, learner_index(scenario, family.spec.learner), params, grid)


def sample_tasks(family: Family, split: Split, n: int, start: int = 0) -> list[Task]:
    """Tasks ``start … start+n-1`` of ``split`` ("train", "test", "ood" or a slice's name)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [sample_task(family, split, k) for k in range(start, start + n)]


def with_strategy(task: Task, strategy: str, params: Mapping[str, Any] | None = None) -> Scenario:
    """The task's scenario with ``strategy`` (registered name, params) in the learner seat."""
    sellers = list(task.scenario.sellers)
    seat = sellers[task.learner]
    sellers[task.learner] = seat.model_copy(update={"strategy": strategy, "params": dict(params or {})})
    return task.scenario.model_copy(update={"sellers": tuple(sellers)})


# --- rivals as known rules: their next prices from last period's prices --------------------------------


def rival_specs(scenario: Scenario, learner: int) -> list[RivalSpec]:
    """Every other seller of ``scenario`` in seat order, as the clairvoyant's ``rivals`` parameter wants them."""
    return [
        RivalSpec(s.strategy, dict(s.params), s.cost, s.price_min, s.price_max)
        for j, s in enumerate(scenario.expanded_sellers())
        if j != learner
    ]


# --- the best fixed price under the prior ----------------------------------------------------------------


def fixed_price_profits(task: Task, prices: Sequence[float], registry: Registry) -> np.ndarray:
    """(len(prices), H) expected one-step profit of the learner posting each price every step of ``task``.

    Rivals follow their rules on the expected dynamics (their prices depend on the learner's only through
    their deterministic reactions), profits come from the task's expected demand: exactly what a
    fixed-price learner earns in expectation in the task's market.
    """
    market, demand = task_market(task, registry)
    sellers = task.scenario.expanded_sellers()
    rules = RivalRules(rival_specs(task.scenario, task.learner), task.learner, market, registry)
    start = np.array([s.start_price for s in sellers])
    out = np.empty((len(prices), task.horizon))
    cache: dict[tuple, float] = {}
    consumers = task.scenario.consumers
    timed = bool(consumers.shocks)  # demand changes from step to step: no settling, a cache entry per step
    for a, p in enumerate(prices):
        last, before = start, None
        for t in range(task.horizon):
            now = full_prices(float(p), rules.next_prices(last), task.learner)
            key = (*np.round(now, 12), t if timed else None)
            if key not in cache:
                cache[key] = float(demand_at(demand, consumers, t).profits(now)[task.learner])
            out[a, t] = cache[key]
            if key == before and not timed:  # the rivals have settled: every later step repeats this one
                out[a, t:] = cache[key]
                break
            last, before = now, key
    return out


def task_market(task: Task, registry: Registry) -> tuple[MarketInfo, Any]:
    """The learner seat's MarketInfo and the task's ExpectedDemand, without the Nash/monopoly benchmarks
    (NaN here: computing them is what makes building a MarketModel cost ~0.2 s). Strategies given an
    explicit grid never read them."""
    from marketsim.market.model import expected_demand

    demand = expected_demand(task.scenario, registry)
    sellers = task.scenario.expanded_sellers()
    n = len(sellers)
    market = MarketInfo(
        index=task.learner,
        n_sellers=n,
        costs=tuple(float(c) for c in demand.costs),
        price_min=sellers[task.learner].price_min,
        price_max=sellers[task.learner].price_max,
        nash_prices=(math.nan,) * n,
        monopoly_prices=(math.nan,) * n,
        expected_profit=demand.profits,
        expected_profit_at=profit_over_time(demand, task.scenario.consumers),
    )
    return market, demand


def rule_market(task: Task, registry: Registry) -> MarketInfo:
    """The learner seat's MarketInfo for setting up the task's rival rules: like ``task_market``'s, but the
    expected demand is built only if a rule reads it (most reactive rules never do), so batching thousands
    of tasks stays cheap."""
    from marketsim.market.economics import expected_demand

    sellers = task.scenario.expanded_sellers()
    n = len(sellers)
    return MarketInfo(
        index=task.learner,
        n_sellers=n,
        costs=tuple(float(s.cost) for s in sellers),
        price_min=sellers[task.learner].price_min,
        price_max=sellers[task.learner].price_max,
        nash_prices=(math.nan,) * n,
        monopoly_prices=(math.nan,) * n,
        expected_profit=DeferredProfit(lambda: expected_demand(task.scenario, registry).profits),
    )


def expected_rollout(
    task: Task, strategy: Strategy, registry: Registry, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``strategy`` in the learner seat of ``task`` on the noise-free dynamics for H steps.

    Each step the rivals post what their rules give, the learner posts its price and sells exactly the
    expected units (and learns from that outcome). Returns (posted prices, expected profits), each (H,).
    Fast (no Mesa model, no consumer draws, no benchmarks): for sales-blind strategies (clairvoyant,
    fixed prices) it gives exactly their expected profit path in the task's noisy market too.
    """
    market, demand = task_market(task, registry)
    strategy.setup(market, np.random.default_rng(seed))
    rules = RivalRules(rival_specs(task.scenario, task.learner), task.learner, market, registry)
    seat = task.scenario.expanded_sellers()[task.learner]
    prices = np.array([s.start_price for s in task.scenario.expanded_sellers()])
    seen = {"cost": seat.cost, "price_min": seat.price_min, "price_max": seat.price_max}
    obs = step.observation(
        step=0, own_price=float(prices[task.learner]), competitor_prices=rivals_of(prices, task.learner), **seen
    )
    posted, earned = np.empty(task.horizon), np.empty(task.horizon)
    for t in range(task.horizon):
        own = min(max(float(strategy.price(obs)), seat.price_min), seat.price_max)
        now = full_prices(own, rules.next_prices(prices), task.learner)
        at = demand_at(demand, task.scenario.consumers, t)
        units = float(at.units(now)[task.learner])
        profit = float(at.profits(now)[task.learner])
        posted[t], earned[t] = own, profit
        after = rivals_of(now, task.learner)
        obs = step.observation(
            step=t + 1, own_price=own, competitor_prices=after, last_units=units, last_profit=profit, **seen
        )
        strategy.learn(
            step.outcome(
                step=t,
                price=own,
                units=units,
                cost=seat.cost,
                profit=profit,
                competitor_prices=after,
                next_observation=obs,
            )
        )
        prices = now
    return posted, earned


def best_fixed_price(
    family: Family,
    n_tasks: int = 200,
    split: str = "train",
    candidates: Sequence[float] | None = None,
    registry: Registry | None = None,
) -> tuple[float, float]:
    """The single price that maximises the mean expected H-step profit over ``n_tasks`` tasks of ``split``.

    Returns (price, mean profit per step). Candidates default to 121 prices spanning the family's grid,
    so the answer is not limited to grid points. This is the ``price`` parameter of ``best_fixed_price``
    the meta-evaluation hands that baseline (computed from training tasks, never from test tasks).
    """
    registry = registry if registry is not None else default_registry()  # a public entry point
    grid = family.grid
    candidates = np.asarray(candidates if candidates is not None else np.linspace(grid[0], grid[-1], 121), float)
    total = np.zeros(len(candidates))
    for task in sample_tasks(family, split, n_tasks):
        total += fixed_price_profits(task, candidates, registry).mean(axis=1)
    k = int(np.argmax(total))
    return float(candidates[k]), float(total[k] / max(n_tasks, 1))
