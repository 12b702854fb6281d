"""Economic benchmarks of a market: one-shot Bertrand–Nash, joint monopoly, profit gain, surplus, HHI.

Computed with scipy on the expected (continuum) demand, so every run can say whether its sellers
compete (profit gain Δ near 0) or collude (Δ near 1), as in Calvano et al. (2020).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from marketsim.config.scenario import Consumers, Scenario
from marketsim.market.consumers import ChoiceModel, Logit
from marketsim.market.population import wtp_nodes
from marketsim.registry import Registry


@dataclass(frozen=True)
class ExpectedDemand:
    """Noise-free demand of a consumer population: WTP quadrature nodes carrying market mass."""

    quality: np.ndarray  # (J,) brand terms a_j
    costs: np.ndarray  # (J,) marginal costs
    outside: float  # a0, the outside option's value
    mu: float  # Gumbel taste scale (0 = none)
    wtp: np.ndarray  # (K,) WTP nodes
    mass: np.ndarray  # (K,) consumers per step each node stands for (size × arrival / K)
    survival: Callable[[float], float] | None = None  # P(WTP > t); makes mu = 0 demand exact, not stepped
    choice: ChoiceModel | None = None  # the consumer-choice model (None: the logit of scale mu)

    @property
    def model(self) -> ChoiceModel:
        """The choice model demand follows."""
        return self.choice if self.choice is not None else Logit(self.mu)

    def units(self, prices: np.ndarray) -> np.ndarray:
        """Expected units sold by each seller at the price vector."""
        x = self.quality - np.asarray(prices, float)
        model = self.model
        if isinstance(model, Logit) and model.mu == 0 and self.survival is not None:  # best value wins, ties split
            best = float(np.max(x))
            ties = x >= best - 1e-12
            return ties / ties.sum() * float(self.mass.sum()) * float(self.survival(self.outside - best))
        return model.expected_units(self.wtp, self.mass, x, self.outside)

    def profits(self, prices: np.ndarray) -> np.ndarray:
        """Expected one-step profit of each seller at the price vector."""
        prices = np.asarray(prices, float)
        units = self.units(prices)
        return prices * units - self.costs * units  # booked exactly as a Seller settles a step

    def consumer_surplus(self, prices: np.ndarray) -> float:
        """Expected consumer surplus per step at the price vector."""
        x = self.quality - np.asarray(prices, float)
        return float(self.model.surplus(self.wtp, x, self.outside) @ self.mass)


def choice_model(scenario: Scenario, registry: Registry) -> ChoiceModel:
    """The scenario's consumer-choice model, built from its class in ``registry`` with ``mu`` and its params."""
    spec = scenario.consumers.choice
    return registry.extension("choice model", spec.model).cls(mu=scenario.consumers.mu, **spec.params)


def expected_demand(scenario: Scenario, registry: Registry) -> ExpectedDemand:
    """The scenario's noise-free demand at its base arrival rate (no shocks, no capacity, full awareness).

    ``registry`` supplies the choice model by name, so a model registered only there works everywhere.
    """
    sellers = scenario.expanded_sellers()
    nodes = wtp_nodes(scenario)
    c = scenario.consumers
    return ExpectedDemand(
        quality=np.array([s.quality for s in sellers]),
        costs=np.array([s.cost for s in sellers]),
        outside=c.outside_value,
        mu=c.mu,
        wtp=nodes,
        mass=np.full(len(nodes), c.size * c.arrival / len(nodes)),
        survival=None if (dist := c.wtp.frozen()) is None else (lambda t: float(dist.sf(t))),
        choice=choice_model(scenario, registry),
    )


def demand_at(demand: ExpectedDemand, consumers: Consumers, step: int) -> ExpectedDemand:
    """``demand`` at ``step`` with the population's seasonality and shocks applied (the same object without shocks).

    Arrivals scale every node's mass by ``arrival_at(step) / arrival``; a WTP shift moves every node (and the
    survival function) by the shift, as ``Population`` does to the consumers it draws.
    """
    if not consumers.shocks:
        return demand
    factor = consumers.arrival_at(step) / consumers.arrival if consumers.arrival > 0 else 0.0
    shift = consumers.wtp_shift_at(step)
    survival = demand.survival
    if survival is not None and shift:
        base = survival
        survival = lambda t: base(t - shift)  # noqa: E731 - P(WTP + shift > t)
    return replace(demand, wtp=demand.wtp + shift, mass=demand.mass * factor, survival=survival)


@dataclass(frozen=True)
class Benchmark:
    """Prices, per-seller profits and units, and consumer surplus at one benchmark point."""

    prices: tuple[float, ...]
    profits: tuple[float, ...]
    units: tuple[float, ...]
    consumer_surplus: float
    converged: bool

    def as_dict(self) -> dict:
        """Plain-data form for summary.json."""
        return {
            "prices": list(self.prices),
            "profits": list(self.profits),
            "units": list(self.units),
            "consumer_surplus": self.consumer_surplus,
            "converged": self.converged,
        }


@dataclass(frozen=True)
class Benchmarks:
    """The Nash and joint-monopoly benchmarks of one market."""

    nash: Benchmark
    monopoly: Benchmark

    def profit_gain(self, profits: np.ndarray) -> np.ndarray:
        """Per-seller Δ = (π − π_N)/(π_M − π_N); NaN where the benchmarks coincide."""
        nash, mono = np.asarray(self.nash.profits), np.asarray(self.monopoly.profits)
        gap = mono - nash
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(gap) > 1e-12, (np.asarray(profits) - nash) / gap, np.nan)


def _point(demand: ExpectedDemand, prices: np.ndarray, converged: bool) -> Benchmark:
    return Benchmark(
        prices=tuple(float(p) for p in prices),
        profits=tuple(float(v) for v in demand.profits(prices)),
        units=tuple(float(v) for v in demand.units(prices)),
        consumer_surplus=demand.consumer_surplus(prices),
        converged=converged,
    )


def maximise(f: Callable[[float], float], low: float, high: float, grid: int, xatol: float) -> float:
    """The argmax of ``f`` on [low, high]: the best of ``grid`` points, refined by bounded Brent search in its
    neighbourhood (kept only when it is no worse). The one best-response search of the project."""
    points = np.linspace(low, high, grid)
    values = [f(p) for p in points]
    k = int(np.argmax(values))
    lo, hi = points[max(k - 1, 0)], points[min(k + 1, grid - 1)]
    res = optimize.minimize_scalar(lambda p: -f(p), bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    return float(res.x) if res.success and -res.fun >= values[k] else float(points[k])


def best_response(demand: ExpectedDemand, prices: np.ndarray, j: int, low: float, high: float, grid: int = 64) -> float:
    """Seller j's profit-maximising price in [low, high] with rivals at ``prices`` (grid, then Brent)."""
    trial = np.array(prices, dtype=float)

    def profit(p: float) -> float:
        trial[j] = p
        return float(demand.profits(trial)[j])

    return maximise(profit, low, high, grid, xatol=1e-12)


def nash_equilibrium(
    demand: ExpectedDemand, price_min: np.ndarray, price_max: np.ndarray, tol: float = 1e-10, max_iter: int = 500
) -> Benchmark:
    """One-shot Bertrand–Nash prices by best-response iteration from marginal cost."""
    low = np.maximum(demand.costs, price_min)
    prices = np.clip(demand.costs, price_min, price_max).astype(float)
    for _ in range(max_iter):
        before = prices.copy()
        for j in range(len(prices)):
            prices[j] = best_response(demand, prices, j, low[j], price_max[j])
        if np.max(np.abs(prices - before)) < tol:
            return _point(demand, prices, True)
    return _point(demand, prices, False)


def joint_monopoly(
    demand: ExpectedDemand, price_min: np.ndarray, price_max: np.ndarray, start: np.ndarray
) -> Benchmark:
    """Prices maximising the sellers' joint profit (the collusive benchmark), by L-BFGS-B."""
    bounds = list(zip(np.maximum(demand.costs, price_min), price_max))
    starts = [np.clip(start, *np.array(bounds).T), np.array([(lo + hi) / 2 for lo, hi in bounds])]
    best = None
    for x0 in starts:
        res = optimize.minimize(
            lambda p: -float(demand.profits(p).sum()),
            x0,
            method="L-BFGS-B",
            jac="3-point",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return _point(demand, best.x, bool(best.success))


def compute_benchmarks(demand: ExpectedDemand, price_min: np.ndarray, price_max: np.ndarray) -> Benchmarks:
    """Nash and joint-monopoly benchmarks for the market (capacities ignored)."""
    nash = nash_equilibrium(demand, price_min, price_max)
    return Benchmarks(nash, joint_monopoly(demand, price_min, price_max, np.array(nash.prices)))


def hhi(units: np.ndarray) -> float:
    """Herfindahl–Hirschman index of unit shares, on the 0–10,000 scale (0 when nothing sold)."""
    units = np.asarray(units, float)
    total = units.sum()
    return float(np.sum((100.0 * units / total) ** 2)) if total > 0 else 0.0
