"""The one market step: every seller's price in, every seller's settled books out (a parallel environment).

``Market`` is driven by a frozen ``Scenario``. ``reset(seed)`` draws the consumer population and returns
one ``Observation`` per seller; ``step(prices)`` clears the market for all sellers at once (prices clipped
to each seller's range, sales limited by capacity and stock), settles the books (revenue, variable and
holding cost, inventory, restocking) and returns a ``StepResult``. Think PettingZoo's ``ParallelEnv``: the
caller owns the strategies; the Mesa ``MarketModel`` is one such caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from marketsim.config.scenario import Consumers, Scenario
from marketsim.market.economics import Benchmarks, ExpectedDemand, compute_benchmarks, demand_at, expected_demand
from marketsim.market.population import Population, population
from marketsim.market.step import observation, outcome, rivals_of
from marketsim.registry import Registry
from marketsim.strategy import MarketInfo, Observation, Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """One settled step for all sellers (arrays in seat order) and the consumers' side of it."""

    prices: np.ndarray  # posted prices, after clipping to each seller's range
    units: np.ndarray
    revenue: np.ndarray
    variable_cost: np.ndarray
    holding_cost: np.ndarray
    profits: np.ndarray  # revenue - variable cost - holding cost
    inventory: np.ndarray  # after sales and restocking (inf for unlimited stock)
    shoppers: float = 0.0
    buyers: float = 0.0
    consumer_surplus: float = 0.0


def market_info(
    i: int,
    demand: ExpectedDemand,
    benchmarks: Benchmarks,
    price_min: np.ndarray,
    price_max: np.ndarray,
    consumers: Consumers | None = None,
) -> MarketInfo:
    """The facts seller ``i``'s strategy is set up with (shared by the model and the batched engine); with
    ``consumers`` that have shocks, ``expected_profit_at`` gives the demand of each step."""
    return MarketInfo(
        index=i,
        n_sellers=len(price_min),
        costs=tuple(float(c) for c in demand.costs),
        price_min=float(price_min[i]),
        price_max=float(price_max[i]),
        nash_prices=benchmarks.nash.prices,
        monopoly_prices=benchmarks.monopoly.prices,
        expected_profit=demand.profits,
        expected_profit_at=profit_over_time(demand, consumers),
    )


def profit_over_time(
    demand: ExpectedDemand, consumers: Consumers | None
) -> Callable[[int, np.ndarray], np.ndarray] | None:
    """(step, prices) → expected profits with ``consumers``' shocks applied; None when they have none."""
    if consumers is None or not consumers.shocks:
        return None
    return lambda step, prices: demand_at(demand, consumers, step).profits(prices)


class Market:
    """A scenario's market: sellers' books and a demand backend, stepped for all sellers at once."""

    def __init__(self, scenario: Scenario, registry: Registry, demand: ExpectedDemand | None = None) -> None:
        self.scenario = scenario
        self.specs = scenario.expanded_sellers()
        self.demand = demand if demand is not None else expected_demand(scenario, registry)
        self.price_min = np.array([s.price_min for s in self.specs])
        self.price_max = np.array([s.price_max for s in self.specs])
        self.capacity = np.array([s.capacity if s.capacity is not None else math.inf for s in self.specs])
        self.holding_rate = np.array([s.inventory.holding_cost if s.inventory else 0.0 for s in self.specs])
        self.restocks = [
            (i, s.inventory.restock) for i, s in enumerate(self.specs) if s.inventory and s.inventory.restock
        ]
        self.consumers: Population | None = None
        self.state = self._opening()
        self.t = 0  # steps cleared since the last reset

    @cached_property
    def benchmarks(self) -> Benchmarks:
        """The market's one-shot Nash and joint-monopoly benchmarks (computed once, on first use)."""
        return compute_benchmarks(self.demand, self.price_min, self.price_max)

    def info(self, i: int) -> MarketInfo:
        """The facts seller ``i``'s strategy is set up with."""
        return market_info(i, self.demand, self.benchmarks, self.price_min, self.price_max, self.scenario.consumers)

    @property
    def n_sellers(self) -> int:
        """How many sellers (seats) the market has."""
        return len(self.specs)

    def _opening(self) -> StepResult:
        """The books before the first step: start prices, no sales, initial stock."""
        zeros = np.zeros(len(self.specs))
        stock = np.array([s.inventory.initial if s.inventory else math.inf for s in self.specs], dtype=float)
        start = np.array([s.start_price for s in self.specs], dtype=float)
        return StepResult(
            prices=start,
            units=zeros,
            revenue=zeros,
            variable_cost=zeros,
            holding_cost=zeros,
            profits=zeros,
            inventory=stock,
        )

    def reset(
        self, seed: int | np.random.Generator | None = None, consumers: Population | None = None
    ) -> tuple[Observation, ...]:
        """Open the market afresh and return each seller's first observation.

        The consumers are drawn from ``seed`` (an int or a generator, used as is), unless ``consumers``, a
        population already built on the caller's generator (the Mesa model's), is handed in.
        """
        if consumers is None:
            consumers = population(self.scenario, self.demand.model, np.random.default_rng(seed))
        self.consumers = consumers
        self.state = self._opening()
        self.t = 0
        return self.observations()

    def step(self, prices: Sequence[float] | np.ndarray) -> StepResult:
        """Clear the market at every seller's price (clipped to its range) and settle the books."""
        if self.consumers is None:
            raise RuntimeError("reset the market before stepping it")
        posted = np.minimum(np.maximum(np.asarray(prices, dtype=float), self.price_min), self.price_max)
        limits = np.minimum(self.capacity, self.state.inventory)
        sales = self.consumers.clear(self.demand.quality - posted, limits, self.t)
        units = np.asarray(sales.units, dtype=float)
        revenue = posted * units
        variable = self.demand.costs * units
        stock = self.state.inventory - units
        holding = self.holding_rate * np.where(np.isfinite(stock), stock, 0.0)
        profits = revenue - variable - holding
        self.t += 1
        self._restock(stock)
        self.state = StepResult(
            prices=posted,
            units=units,
            revenue=revenue,
            variable_cost=variable,
            holding_cost=holding,
            profits=profits,
            inventory=stock,
            shoppers=sales.shoppers,
            buyers=sales.buyers,
            consumer_surplus=sales.surplus,
        )
        return self.state

    def _restock(self, stock: np.ndarray) -> None:
        """Top up, in place, the stock of sellers whose restocking rule is due after step ``t``."""
        for i, rule in self.restocks:
            due = self.t % rule.every == 0 if rule.every is not None else stock[i] <= rule.reorder_point
            if due:
                stock[i] = max(stock[i], rule.up_to)

    def observations(self) -> tuple[Observation, ...]:
        """Each seller's observation before pricing step ``t``: its last price and sales, stock, rivals' prices."""
        s = self.state
        prices, units, profits, stock = s.prices.tolist(), s.units.tolist(), s.profits.tolist(), s.inventory.tolist()
        capacity = self.capacity.tolist()
        return tuple(
            observation(
                step=self.t,
                own_price=prices[i],
                cost=spec.cost,
                competitor_prices=rivals_of(prices, i),
                price_min=spec.price_min,
                price_max=spec.price_max,
                last_units=units[i],
                last_profit=profits[i],
                inventory=stock[i],
                capacity=capacity[i],
            )
            for i, spec in enumerate(self.specs)
        )

    def outcomes(self, result: StepResult, following: Sequence[Observation]) -> tuple[Outcome, ...]:
        """What each seller learns from the step ``result`` settled, with its ``following`` observation."""
        prices, units, profits = result.prices.tolist(), result.units.tolist(), result.profits.tolist()
        holding, stock = result.holding_cost.tolist(), result.inventory.tolist()
        return tuple(
            outcome(
                step=obs.step - 1,
                price=prices[i],
                units=units[i],
                cost=spec.cost,
                profit=profits[i],
                competitor_prices=obs.competitor_prices,
                next_observation=obs,
                holding_cost=holding[i],
                inventory=stock[i],
            )
            for i, (spec, obs) in enumerate(zip(self.specs, following))
        )
