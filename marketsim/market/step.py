"""The one builder of what strategies see: an ``Observation`` before pricing and an ``Outcome`` after settling.

Every engine that steps a market (the Mesa model, the batched engines, task rollouts, the tests' harness)
builds them here, so the meaning of each field is defined once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from marketsim.strategy import MarketInfo, Observation, Outcome


def rivals_of(prices: Sequence[float], index: int) -> tuple[float, ...]:
    """The other sellers' prices, in seat order without ``index``."""
    return tuple(float(p) for k, p in enumerate(prices) if k != index)


def observation(  # noqa: PLR0913 - keyword-only builder, one argument per Observation field
    *,
    step: int,
    own_price: float,
    cost: float,
    competitor_prices: tuple[float, ...],
    price_min: float,
    price_max: float,
    last_units: float = 0.0,
    last_profit: float = 0.0,
    inventory: float = math.inf,
    capacity: float = math.inf,
) -> Observation:
    """A seller's observation: its last posted price and sales, its stock, and its rivals' last prices."""
    return Observation(
        step=step,
        own_price=own_price,
        cost=cost,
        last_units=last_units,
        last_profit=last_profit,
        inventory=inventory,
        capacity=capacity,
        competitor_prices=competitor_prices,
        price_min=price_min,
        price_max=price_max,
    )


def outcome(  # noqa: PLR0913 - keyword-only builder, one argument per Outcome input
    *,
    step: int,
    price: float,
    units: float,
    cost: float,
    profit: float,
    competitor_prices: tuple[float, ...],
    next_observation: Observation,
    holding_cost: float = 0.0,
    inventory: float = math.inf,
) -> Outcome:
    """What a seller learns from after the market cleared: revenue and variable cost follow from price, units, cost."""
    return Outcome(
        step=step,
        price=price,
        units=units,
        revenue=price * units,
        variable_cost=cost * units,
        holding_cost=holding_cost,
        profit=profit,
        inventory=inventory,
        competitor_prices=competitor_prices,
        next_observation=next_observation,
    )


def state_observations(info: MarketInfo, grids: np.ndarray) -> list[Observation]:
    """The observation of seller ``info.index`` in every memory-1 grid state, for tabulating a greedy policy.

    ``grids`` (n, m) are all sellers' price grids; state k is last period's joint action with seller 0 the most
    significant digit (as ``marketsim.market.oracle`` indexes policies). Own units and profit are the expected
    ones at those prices, so each observation is exactly what the market would show after that period.
    """
    n, m = grids.shape
    i = info.index
    observations = []
    for actions in np.indices((m,) * n).reshape(n, -1).T:
        prices = grids[np.arange(n), actions]
        profit = float(info.expected_profit(prices)[i])
        margin = prices[i] - info.costs[i]
        observations.append(
            observation(
                step=1,
                own_price=float(prices[i]),
                cost=info.costs[i],
                last_units=profit / margin if margin > 0 else 0.0,
                last_profit=profit,
                competitor_prices=rivals_of(prices, i),
                price_min=info.price_min,
                price_max=info.price_max,
            )
        )
    return observations
