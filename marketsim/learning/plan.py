"""The plan of a batched experiment: what every session shares (grids, profit table, Q₀, rivals' reactions).

Kept apart from the engine (``experiment``) and the diagnostics (``collusion``), which both read it, so
neither imports the other. Rule-based rivals are asked for their reaction to every last-period grid state
through ``Strategy.price_batch`` (their own code, batched) and snapped to their grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.config.scenario import Seller as SellerSpec
from marketsim.learning import tabular
from marketsim.market.economics import Benchmarks, compute_benchmarks
from marketsim.market.model import expected_demand, market_info
from marketsim.market.oracle import DiscreteMarket
from marketsim.registry import Registry
from marketsim.seeds import rule_generator
from marketsim.strategy import ObservationBatch, Strategy, TabularQLearner

__all__ = ["ExperimentError", "Plan", "check_supported", "make_plan", "tabulate_reaction"]


class ExperimentError(ValueError):
    """The scenario cannot be run by the batched engine (with the reason and what to do instead)."""


@dataclass(frozen=True)
class Plan:
    """What every session of an experiment shares."""

    scenario: Scenario
    names: tuple[str, ...]
    market: DiscreteMarket  # grids (n, m) and one-period profits (n, m^n) booked as sellers settle
    learners: tuple[int, ...]  # seller indices of the tabular learners
    configs: tuple[tabular.TabularConfig, ...]
    q0: tuple[np.ndarray, ...]  # initial Q table of each learner (states, m)
    reactions: dict[int, np.ndarray]  # rival seller -> action as a function of last period's joint action
    start_state: int
    memory: int
    benchmarks: Benchmarks
    provenance: dict = field(default_factory=dict)  # kind → name → the distribution that provided it

    @property
    def n(self) -> int:
        """Number of sellers."""
        return self.market.grids.shape[0]

    @property
    def m(self) -> int:
        """Number of prices on each grid."""
        return self.market.grids.shape[1]


def make_plan(scenario: Scenario, registry: Registry) -> Plan:
    """Check the scenario suits the batched engine and precompute grids, profits, Q₀ and rival reactions."""
    check_supported(scenario)
    specs = scenario.expanded_sellers()
    demand = expected_demand(scenario, registry)
    lows, highs = np.array([s.price_min for s in specs]), np.array([s.price_max for s in specs])
    bench = compute_benchmarks(demand, lows, highs)
    strategies = []
    for i, spec in enumerate(specs):
        strategy = registry.create(spec.strategy, spec.params)
        strategy.setup(market_info(i, demand, bench, lows, highs), rule_generator())  # rng unused here
        strategies.append(strategy)
    tabular_learners = {i: s for i, s in enumerate(strategies) if isinstance(s, TabularQLearner)}
    if not tabular_learners:
        raise ExperimentError("no tabular learner (q_learning, sarsa) among the sellers: use `marketsim run`")
    configs = [s.config for s in tabular_learners.values()]
    m, memory = configs[0].m, configs[0].memory
    if any(c.m != m or c.memory != memory for c in configs):
        raise ExperimentError("all learners of an experiment must share the grid size and the memory")
    grids = next(iter(tabular_learners.values())).grids
    reactions = {
        j: tabulate_reaction(strategies[j], specs[j], grids, j) for j in range(len(specs)) if j not in tabular_learners
    }
    start = [tabular.nearest(grids[j], s.start_price) for j, s in enumerate(specs)]
    return Plan(
        scenario=scenario,
        names=tuple(s.name for s in specs),
        market=DiscreteMarket(grids=grids, profits=tabular.profit_table(demand.profits, grids)),
        learners=tuple(tabular_learners),
        configs=tuple(configs),
        q0=tuple(s.q for s in tabular_learners.values()),
        reactions=reactions,
        start_state=tabular.initial_state(int(tabular.joint_index(start, m)), m, len(specs), memory),
        memory=memory,
        benchmarks=bench,
        provenance=registry.scenario_provenance(scenario),
    )


def check_supported(scenario: Scenario) -> None:
    """Raise ExperimentError unless the market is stationary with expected demand (what a profit table needs)."""
    reasons = []
    if scenario.demand.mode != "expected":
        reasons.append("demand.mode must be 'expected' (profits come from a table of the expected demand)")
    if scenario.network is not None:
        reasons.append("no word-of-mouth network")
    if scenario.consumers.shocks:
        reasons.append("no demand shocks (the profit table is stationary)")
    if any(s.capacity is not None or s.inventory is not None for s in scenario.sellers):
        reasons.append("no capacities or inventories")
    if reasons:
        raise ExperimentError(
            "the batched engine needs a stationary market: " + "; ".join(reasons) + ". Use `marketsim run` instead."
        )


def tabulate_reaction(strategy: Strategy, spec: SellerSpec, grids: np.ndarray, j: int) -> np.ndarray:
    """A deterministic rival's grid action for every last-period joint action, asked of the rule in one batch."""
    cls = type(strategy)
    if cls.classifier.get("stochastic") or cls.classifier.get("learns") or not cls.classifier.get("reactive"):
        raise ExperimentError(
            f"seller {spec.name!r} ({cls.name}) cannot be tabulated: rivals in an experiment must be "
            "deterministic rules that react only to last period's prices (classifier reactive: True)"
        )
    n, m = grids.shape
    joint = np.indices((m,) * n).reshape(n, -1)  # (n, m^n): every last-period joint action, seller 0 first
    prices = grids[np.arange(n)[:, None], joint].T  # (m^n, n)
    k = len(prices)
    batch = ObservationBatch(
        own_price=prices[:, j],
        competitor_prices=np.delete(prices, j, axis=1),
        cost=np.full(k, float(spec.cost)),
        price_min=np.full(k, float(spec.price_min)),
        price_max=np.full(k, float(spec.price_max)),
    )
    posted = np.asarray(cls.price_batch([strategy] * k, batch), dtype=float)
    clipped = np.minimum(np.maximum(posted, spec.price_min), spec.price_max)
    return np.abs(clipped[:, None] - grids[j][None, :]).argmin(axis=1).astype(np.int64)
