"""Rivals that follow known reactive rules, and the one-shot best response (a documented extension module).

A clairvoyant oracle, a task rollout or a batched engine predicts the rivals' next prices by asking each
rival's own registered rule (``RivalRules``), and a myopic pricer maximises its expected one-step profit
against given rival prices (``best_response``). Plugins may import this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marketsim import seeds
from marketsim.market.economics import maximise
from marketsim.market.step import observation, rivals_of
from marketsim.registry import Registry, default_registry
from marketsim.strategy import MarketInfo, Strategy

__all__ = ["DeferredProfit", "RivalRules", "RivalSpec", "best_response", "full_prices", "seat_market"]


@dataclass(frozen=True)
class RivalSpec:
    """What a clairvoyant knows about one rival: its rule and the facts its observation holds."""

    strategy: str
    params: Mapping[str, Any]
    cost: float
    price_min: float
    price_max: float

    def as_dict(self) -> dict[str, Any]:
        """Plain data (the clairvoyant's ``rivals`` parameter takes a list of these)."""
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "cost": self.cost,
            "price_min": self.price_min,
            "price_max": self.price_max,
        }


def seat_market(market: MarketInfo, seat: int, n_sellers: int, price_min: float, price_max: float) -> MarketInfo:
    """``market`` (one seat's facts) seen from another ``seat``, with that seat's price bounds."""
    return dataclasses.replace(market, index=seat, n_sellers=n_sellers, price_min=price_min, price_max=price_max)


class DeferredProfit:
    """A ``MarketInfo.expected_profit`` built on its first call: rules that never read the demand model
    (most reactive rules) cost nothing to set up."""

    def __init__(self, build: Callable[[], Callable[[np.ndarray], np.ndarray]]) -> None:
        self._build = build
        self._profit: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, prices: np.ndarray) -> np.ndarray:
        if self._profit is None:
            self._profit = self._build()
        return self._profit(prices)


class RivalRules:
    """Rivals that react deterministically to last period's prices: ``next_prices(prices)`` predicts them.

    ``prices`` is the full price vector of last period (the learner's at ``index``); the result is the
    rivals' prices this period, in seat order without ``index``. Built from the rivals' registered
    rules, so it is exact for rules with classifier ``reactive: True`` (what a family allows).
    """

    def __init__(
        self,
        rivals: Sequence[RivalSpec | Mapping[str, Any]],
        index: int,
        market: MarketInfo | None = None,
        registry: Registry | None = None,
    ) -> None:
        registry = registry if registry is not None else default_registry()
        self.specs = [r if isinstance(r, RivalSpec) else RivalSpec(**dict(r)) for r in rivals]
        self.index = index
        self.n = len(self.specs) + 1
        self.seats = [j for j in range(self.n) if j != index]
        self.rules: list[Strategy] = []
        for seat, spec in zip(self.seats, self.specs):
            rule = registry.create(spec.strategy, spec.params)
            if market is not None:  # the learner's market facts, seen from the rival's seat
                rule.setup(seat_market(market, seat, self.n, spec.price_min, spec.price_max), seeds.rule_generator())
            self.rules.append(rule)

    def next_prices(self, prices: Sequence[float]) -> tuple[float, ...]:
        """Every rival's price this period (clipped to its bounds), from last period's full price vector."""
        out = []
        for seat, spec, rule in zip(self.seats, self.specs, self.rules):
            obs = observation(
                step=1,
                own_price=float(prices[seat]),
                cost=spec.cost,
                competitor_prices=rivals_of(prices, seat),
                price_min=spec.price_min,
                price_max=spec.price_max,
            )
            out.append(min(max(float(rule.price(obs)), spec.price_min), spec.price_max))
        return tuple(out)


def full_prices(own: float, rivals: Sequence[float], index: int) -> np.ndarray:
    """The price vector with ``own`` at ``index`` and ``rivals`` in the other seats."""
    return np.insert(np.asarray(rivals, dtype=float), index, own)


def best_response(
    market: MarketInfo,
    rivals: tuple[float, ...],
    *,
    cost: float,
    price_min: float,
    price_max: float,
    grid: int = 101,
) -> float:
    """The price in ``[max(cost, price_min), price_max]`` maximising ``market.own_profit`` against ``rivals``.

    A ``grid`` of points finds the best basin and bounded Brent search refines it (kept only when it is no
    worse): the myopic best response of rule and oracle plugins, not clipped to the seller's bounds.
    """
    low = min(max(cost, price_min), price_max)
    high = price_max
    if high <= low:
        return float(low)

    return maximise(lambda p: market.own_profit(float(p), rivals), low, high, grid, xatol=1e-9)
