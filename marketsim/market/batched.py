"""The batched form of the market step: many logit markets cleared at once, arrays with a leading axis of
tasks (or sessions).

``BatchedLogitMarket`` holds each row's sellers (quality, cost, bounds; NaN-free, ``present`` marks the seats a
row has) and its consumers (logit ``mu``, outside value, WTP quadrature nodes for the expected demand, a
population drawn per episode for sampled sales). Column 0 is the seat whose sales are asked for (a learner).
Expected units are exactly ``ExpectedDemand.units`` on the quadrature nodes; sampled units draw each
consumer's arrival and logit choice like the agent-based market. Nothing here knows learners or tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from marketsim.config.scenario import Scenario
from marketsim.market.consumers import logit_parts
from marketsim.market.population import wtp_nodes

__all__ = ["BatchStep", "BatchedLogitMarket", "truncnorm_ppf"]


def truncnorm_ppf(q: np.ndarray, mean: Any, sd: Any) -> np.ndarray:
    """Quantiles of the normal(mean, sd) truncated at 0 (``NormalWTP``), through the upper tail for accuracy."""
    a = (0.0 - np.asarray(mean, float)) / np.asarray(sd, float)
    return mean + sd * -ndtri((1.0 - q) * ndtr(-a))


@dataclass(frozen=True)
class BatchStep:
    """What one lockstep step returns (arrays over rows): the seat in column 0's sales and profit."""

    prices: np.ndarray  # (B, J) posted prices
    units: np.ndarray  # (B,) column 0's units (sampled with noise, expected without)
    profit: np.ndarray  # (B,) column 0's booked profit
    expected_profit: np.ndarray  # (B,) column 0's expected profit at these prices


_ROW_ARRAYS = ("quality", "cost", "present", "pmin", "pmax", "mu", "outside", "nodes", "mass", "size", "arrival")


@dataclass(frozen=True, kw_only=True)
class BatchedLogitMarket:
    """B logit markets (no network, shocks or stock limits) as arrays; seats in the column order asked for."""

    quality: np.ndarray  # (B, J)
    cost: np.ndarray  # (B, J)
    present: np.ndarray  # (B, J) bool
    pmin: np.ndarray  # (B, J)
    pmax: np.ndarray  # (B, J)
    mu: np.ndarray  # (B,)
    outside: np.ndarray  # (B,)
    nodes: np.ndarray  # (B, K) WTP quadrature nodes
    mass: np.ndarray  # (B, K) consumers per step each node stands for
    size: np.ndarray  # (B,) population size
    arrival: np.ndarray  # (B,)
    wtp: tuple[Any, ...]  # ('normal', mean, sd), a frozen distribution, or None (a constant)
    wtp_const: np.ndarray  # (B,) the constant WTP where wtp[b] is None

    @classmethod
    def from_scenarios(cls, scenarios: Sequence[Scenario], orders: Sequence[Sequence[int]]) -> BatchedLogitMarket:
        """Row ``b`` is ``scenarios[b]`` with its seats in the columns ``orders[b]`` lists (seat of column 0 first)."""
        B, J = len(scenarios), max(len(o) for o in orders)
        K = max(1 if s.consumers.wtp.distribution == "constant" else s.demand.quadrature for s in scenarios)
        sellers = _SellerArrays.empty(B, J)
        mu, outside, size, arrival, wtp_const = (np.zeros(B) for _ in range(5))
        nodes, mass = np.zeros((B, K)), np.zeros((B, K))
        wtp: list[Any] = []
        for b, (sc, order) in enumerate(zip(scenarios, orders)):
            sellers.fill(b, sc, order)
            c = sc.consumers
            if c.wtp.distribution == "normal":  # truncated at 0: quantiles in closed form, vectorised
                wtp.append(("normal", c.wtp.mean, c.wtp.sd))
                k = sc.demand.quadrature
                w = truncnorm_ppf((np.arange(k) + 0.5) / k, c.wtp.mean, c.wtp.sd)
            else:
                dist = c.wtp.frozen()
                wtp.append(dist)
                wtp_const[b] = c.wtp.value if dist is None else 0.0
                w = wtp_nodes(sc)
            nodes[b, : len(w)], mass[b, : len(w)] = w, c.size * c.arrival / len(w)
            if len(w) < K:  # pad with massless nodes
                nodes[b, len(w) :] = w[-1]
            mu[b], outside[b], size[b], arrival[b] = c.mu, c.outside_value, c.size, c.arrival
        return cls(
            **sellers.as_fields(),
            mu=mu,
            outside=outside,
            nodes=nodes,
            mass=mass,
            size=size,
            arrival=arrival,
            wtp=tuple(wtp),
            wtp_const=wtp_const,
        )

    def __len__(self) -> int:
        return len(self.mu)

    def subset(self, idx: np.ndarray) -> BatchedLogitMarket:
        """The rows at ``idx``."""
        arrays = {k: getattr(self, k)[idx] for k in (*_ROW_ARRAYS, "wtp_const")}
        return replace(self, wtp=tuple(self.wtp[int(b)] for b in idx), **arrays)

    def share(self, prices: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Column 0's logit choice probability (B, N) for consumers with WTPs ``w`` (B, N) at ``prices`` (B, J)."""
        x = np.where(self.present, self.quality - prices, -np.inf)
        eps, z = logit_parts(w, x, self.outside, self.mu)
        return eps[:, :1] / (z + eps.sum(axis=1, keepdims=True))

    def expected_units(self, prices: np.ndarray) -> np.ndarray:
        """(B,) column 0's expected units: ``ExpectedDemand.units`` on the quadrature nodes."""
        return (self.share(prices, self.nodes) * self.mass).sum(axis=1)

    def draw_population(self, rng: np.random.Generator) -> np.ndarray:
        """Each row's consumers' WTPs (B, max size), nan-padded; normal WTPs drawn vectorised."""
        B, N = len(self), int(self.size.max())
        pop = np.full((B, N), np.nan)
        normal = [b for b, d in enumerate(self.wtp) if isinstance(d, tuple)]
        if normal:
            mean = np.array([self.wtp[b][1] for b in normal])
            sd = np.array([self.wtp[b][2] for b in normal])
            pop[normal] = truncnorm_ppf(rng.random((len(normal), N)), mean[:, None], sd[:, None])
        for b, dist in enumerate(self.wtp):
            n = int(self.size[b])
            if dist is None:
                pop[b, :n] = self.wtp_const[b]
            elif not isinstance(dist, tuple):
                pop[b, :n] = dist.rvs(size=n, random_state=rng)
            pop[b, n:] = np.nan
        return pop

    def sampled_units(self, prices: np.ndarray, population: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(B,) column 0's units: each consumer of ``population`` arrives and picks by its logit probability."""
        valid = np.isfinite(population)
        p = self.share(prices, np.where(valid, population, 0.0)) * self.arrival[:, None]
        return ((rng.random(population.shape) < p) & valid).sum(axis=1).astype(float)

    def settle(self, prices: np.ndarray, units: np.ndarray, expected: np.ndarray) -> BatchStep:
        """Column 0's booked profit for ``units`` at ``prices`` and its profit on the ``expected`` units."""
        margin = prices[:, 0] - self.cost[:, 0]
        return BatchStep(prices, units, prices[:, 0] * units - self.cost[:, 0] * units, margin * expected)


@dataclass
class _SellerArrays:
    """The per-seat arrays of a batch while it is filled."""

    quality: np.ndarray
    cost: np.ndarray
    present: np.ndarray
    pmin: np.ndarray
    pmax: np.ndarray

    @classmethod
    def empty(cls, B: int, J: int) -> _SellerArrays:
        return cls(np.zeros((B, J)), np.zeros((B, J)), np.zeros((B, J), bool), np.zeros((B, J)), np.ones((B, J)))

    def fill(self, b: int, scenario: Scenario, order: Sequence[int]) -> None:
        sellers = scenario.expanded_sellers()
        for col, seat in enumerate(order):
            s = sellers[seat]
            self.quality[b, col], self.cost[b, col] = s.quality, s.cost
            self.pmin[b, col], self.pmax[b, col], self.present[b, col] = s.price_min, s.price_max, True

    def as_fields(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("quality", "cost", "present", "pmin", "pmax")}
