"""Pricing baselines for meta-learning: bandits that learn demand from their own sales, the best fixed
price under a task prior, and a clairvoyant oracle that knows demand and the rivals' rules.

The bandits choose among the prices of a grid: an explicit ``grid`` (what a task family hands them, so
every task offers the same actions and nothing about the task leaks through it) or, without one,
``grid_size`` prices built like the tabular learners' grid around the market's Nash and monopoly prices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from marketsim.learning import tabular
from marketsim.market.rivals import RivalRules, best_response, full_prices
from marketsim.strategy import MarketInfo, Observation, Outcome, Strategy
from marketsim_rules.strategies import FixedPrice  # the public rule, reused


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _clip(price: float, obs: Observation) -> float:
    return float(min(max(price, obs.price_min), obs.price_max))


class _GridPricer(Strategy):
    """Shared grid handling: an explicit grid, or the tabular learners' grid around Nash and monopoly."""

    def _init_grid(self, grid: Sequence[float] | None, grid_size: int, xi: float) -> None:
        _check(grid is None or len(grid) >= 2, "an explicit grid needs at least two prices")
        _check(grid is None or all(math.isfinite(p) and p >= 0 for p in grid), "grid prices must be finite and >= 0")
        _check(grid_size >= 2, f"grid_size must be >= 2, got {grid_size}")
        _check(xi >= 0, f"xi must be >= 0, got {xi}")
        self.grid = None if grid is None else tuple(float(p) for p in grid)
        self.grid_size = int(grid_size)
        self.xi = float(xi)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        self.prices = tabular.seller_grid(market, self.grid_size, self.xi, self.grid)
        self.m = len(self.prices)

    def _arm(self, price: float) -> int:
        return tabular.nearest(self.prices, price)


class ThompsonPricing(_GridPricer):
    """Thompson sampling over a price grid with a Poisson-Gamma model of the units sold at each price.

    Units at grid price p_a are Poisson(λ_a) with a Gamma prior of shape ``prior_shape`` and mean λ₀; after
    n_a steps at p_a selling S_a units the posterior is Gamma(prior_shape + S_a, prior_shape/λ₀ + n_a).
    Each step it draws λ̃_a from every arm's posterior and posts the price maximising (p_a − c)·λ̃_a
    (Thompson 1933; for pricing, Ferreira, Simchi-Levi & Wang 2018). λ₀ is ``prior_units`` or, when not
    given, empirical Bayes: the largest mean sales seen at any price so far (1 before any sale), which
    makes untried prices optimistic without knowing the market's size. Not training: the posterior mean.
    """

    name = "thompson_pricing"
    classifier: ClassVar[Mapping[str, Any]] = {"learns": True, "stochastic": True, "observes": ("own",)}

    def __init__(
        self,
        grid: tuple[float, ...] | None = None,
        grid_size: int = 15,
        xi: float = 0.1,
        prior_shape: float = 1.0,
        prior_units: float | None = None,
    ) -> None:
        self._init_grid(grid, grid_size, xi)
        _check(prior_shape > 0, f"prior_shape must be > 0, got {prior_shape}")
        _check(prior_units is None or prior_units > 0, f"prior_units must be > 0, got {prior_units}")
        self.prior_shape = float(prior_shape)
        self.prior_units = None if prior_units is None else float(prior_units)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        self.pulls = np.zeros(self.m)
        self.sales = np.zeros(self.m)

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Shape and rate of every arm's Gamma posterior."""
        if self.prior_units is not None:
            prior_mean = self.prior_units
        else:
            seen = self.pulls > 0
            prior_mean = float((self.sales[seen] / self.pulls[seen]).max()) if seen.any() else 1.0
            prior_mean = max(prior_mean, 1e-3)
        return self.prior_shape + self.sales, self.prior_shape / prior_mean + self.pulls

    def price(self, obs: Observation) -> float:
        shape, rate = self._posterior()
        units = shape / rate if not self.training else self.rng.gamma(shape, 1.0 / rate)
        value = (self.prices - obs.cost) * units
        return _clip(float(self.prices[int(np.argmax(value))]), obs)

    def learn(self, outcome: Outcome) -> None:
        a = self._arm(outcome.price)
        self.pulls[a] += 1
        self.sales[a] += outcome.units

    def state_dict(self) -> dict[str, Any]:
        return {"pulls": self.pulls.copy(), "sales": self.sales.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pulls = np.array(state["pulls"], dtype=float)
        self.sales = np.array(state["sales"], dtype=float)


class UCBPricing(_GridPricer):
    """UCB1 over a price grid on the profit each price earned (Auer, Cesa-Bianchi & Fischer 2002).

    Untried prices come first (in a random order); then it posts the price with the highest
    ``mean profit + exploration · scale · sqrt(2 ln t / n_a)``, where ``scale`` is the largest mean profit
    seen at any price (profits have no known bound, so the bonus is relative to what the market pays).
    The default ``exploration`` (0.02) was tuned on 60 training tasks of ``scenarios/meta_pricing.yaml``
    (0 … 0.7 tried; over 50 steps little exploration beyond the first pass pays, and the textbook UCB1
    constant, 1 on rewards in [0, 1], doubles the regret). Not training: the best mean profit.
    """

    name = "ucb_pricing"
    classifier: ClassVar[Mapping[str, Any]] = {"learns": True, "stochastic": True, "observes": ("own",)}

    def __init__(
        self,
        grid: tuple[float, ...] | None = None,
        grid_size: int = 15,
        xi: float = 0.1,
        exploration: float = 0.02,
    ) -> None:
        self._init_grid(grid, grid_size, xi)
        _check(exploration >= 0, f"exploration must be >= 0, got {exploration}")
        self.exploration = float(exploration)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        self.pulls = np.zeros(self.m)
        self.total = np.zeros(self.m)
        self.order = rng.permutation(self.m)  # the order untried prices are tried in

    def price(self, obs: Observation) -> float:
        untried = [a for a in self.order if self.pulls[a] == 0]
        tried = self.pulls > 0
        if untried and self.training:
            return _clip(float(self.prices[untried[0]]), obs)
        if not tried.any():
            return _clip(float(self.prices[self.order[0]]), obs)
        mean = np.where(tried, self.total / np.maximum(self.pulls, 1), -np.inf)
        if not self.training:
            return _clip(float(self.prices[int(np.argmax(mean))]), obs)
        scale = max(float(np.abs(mean[tried]).max()), 1e-9)
        t = float(self.pulls.sum())
        bonus = self.exploration * scale * np.sqrt(2.0 * math.log(max(t, 1.0)) / np.maximum(self.pulls, 1))
        return _clip(float(self.prices[int(np.argmax(mean + bonus))]), obs)

    def learn(self, outcome: Outcome) -> None:
        a = self._arm(outcome.price)
        self.pulls[a] += 1
        self.total[a] += outcome.profit

    def state_dict(self) -> dict[str, Any]:
        return {"pulls": self.pulls.copy(), "total": self.total.copy(), "order": self.order.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pulls = np.array(state["pulls"], dtype=float)
        self.total = np.array(state["total"], dtype=float)
        self.order = np.array(state["order"], dtype=np.int64)


class BestFixedPrice(FixedPrice):
    """Post ``price`` every step: the best single price under a task prior, the no-adaptation baseline.

    The strategy only posts its parameter. The price itself is computed by
    ``marketsim.meta.tasks.best_fixed_price(family)``: the price (out of 121 spanning the family's grid) with
    the highest mean expected profit over the horizon, averaged over the family's *training* tasks with
    rivals reacting by their rules; ``marketsim meta-eval`` computes it and hands it over as ``price``.
    It is the rules plugin's public ``fixed_price`` under another name (and so shares its ``price_batch``).
    """

    name = "best_fixed_price"


class Clairvoyant(_GridPricer):
    """An oracle that knows the market: expected demand (``MarketInfo.expected_profit``) and rivals' rules.

    With ``rivals`` (one mapping per other seller in seat order: ``strategy``, ``params``, ``cost``,
    ``price_min``, ``price_max``) it predicts the rivals' prices each step exactly. When no rival's
    price ever depends on its own (fixed rivals, or none), its best policy is myopic: it posts the
    continuous optimum against the rivals' predicted prices (a 101-point scan refined by Brent).
    When rivals react to it (match, undercut…), it posts the value-iteration optimum on the price grid:
    over the rivals' reachable price vectors, backward induction over the ``horizon`` steps left (the
    task's total expected profit), or discounted value iteration with ``delta`` when no horizon is given.
    Without ``rivals`` it treats the rivals' last prices as fixed (a myopic best response).
    When demand changes over time (``MarketInfo.expected_profit_at``: seasonality, a regime change) it
    optimises each step's demand: the myopic optimum of that step, or backward induction over per-step
    rewards (the discounted variant keeps the base demand).
    The meta-evaluation's oracle profit is what this strategy earns in expectation in the task.
    """

    name = "clairvoyant"
    classifier: ClassVar[Mapping[str, Any]] = {"observes": ("own", "competitors", "demand_model")}

    def __init__(
        self,
        rivals: list[dict[str, Any]] | None = None,
        grid: tuple[float, ...] | None = None,
        grid_size: int = 15,
        xi: float = 0.1,
        horizon: int | None = None,
        delta: float = 0.95,
        max_states: int = 20_000,
    ) -> None:
        self._init_grid(grid, grid_size, xi)
        _check(horizon is None or horizon > 0, f"horizon must be > 0, got {horizon}")
        _check(0 <= delta < 1, f"delta must be in [0, 1), got {delta}")
        _check(max_states > 0, f"max_states must be > 0, got {max_states}")
        self.rivals = None if rivals is None else [dict(r) for r in rivals]
        self.horizon = None if horizon is None else int(horizon)
        self.delta = float(delta)
        self.max_states = int(max_states)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        _check(
            self.rivals is None or len(self.rivals) == market.n_sellers - 1,
            f"clairvoyant got {0 if self.rivals is None else len(self.rivals)} rivals for a market of "
            f"{market.n_sellers} sellers",
        )
        self.rules = None if self.rivals is None else RivalRules(self.rivals, market.index, market)
        self._keys: dict[tuple, int] = {}  # rivals' price vector -> node
        self._nodes: list[tuple[float, ...]] = []
        self._reward: list[np.ndarray] = []  # per node: profit of each grid action
        self._next: list[np.ndarray] = []  # per node: the rivals' next vector (node) after each action
        self._controlled = False  # does any rival's price depend on ours?
        self._values: dict[int, np.ndarray] = {}  # steps left (0 = discounted) -> node values
        self._myopic: dict[tuple, float] = {}
        self._timed: dict[int, np.ndarray] = {}  # step -> node values from it on; -1-step -> its rewards (timed demand)

    # -- the rivals' reachable price vectors and the profit of each grid action in each of them

    def _node(self, rivals: tuple[float, ...]) -> int:
        key = tuple(round(p, 9) for p in rivals)
        found = self._keys.get(key)
        if found is not None:
            return found
        self._values.clear()
        self._timed.clear()
        frontier = [rivals]
        self._keys[key] = len(self._nodes)
        self._nodes.append(rivals)
        self._reward.append(np.empty(0))
        self._next.append(np.empty(0, dtype=np.int64))
        while frontier:
            r = frontier.pop()
            k = self._keys[tuple(round(p, 9) for p in r)]
            rewards, nexts = np.empty(self.m), np.empty(self.m, dtype=np.int64)
            for a, p in enumerate(self.prices):
                now = full_prices(float(p), r, self.market.index)
                rewards[a] = float(self.market.expected_profit(now)[self.market.index])
                nxt = self.rules.next_prices(now)
                nkey = tuple(round(q, 9) for q in nxt)
                if nkey not in self._keys:
                    if len(self._nodes) >= self.max_states:
                        raise RuntimeError(
                            f"the rivals reach more than {self.max_states} price vectors: too many for the oracle"
                        )
                    self._keys[nkey] = len(self._nodes)
                    self._nodes.append(nxt)
                    self._reward.append(np.empty(0))
                    self._next.append(np.empty(0, dtype=np.int64))
                    frontier.append(nxt)
                nexts[a] = self._keys[nkey]
            self._reward[k], self._next[k] = rewards, nexts
            self._controlled = self._controlled or len(set(nexts.tolist())) > 1
        return self._keys[key]

    def _value(self, steps_left: int) -> np.ndarray:
        """Node values with ``steps_left`` (>= 1) steps to go; 0 asks for the discounted infinite-horizon values."""
        if steps_left in self._values:
            return self._values[steps_left]
        reward, succ = np.array(self._reward), np.array(self._next)
        if steps_left == 0:
            values = np.zeros(len(self._nodes))
            for _ in range(100_000):
                new = (reward + self.delta * values[succ]).max(axis=1)
                done = float(np.abs(new - values).max()) <= 1e-10 * max(1.0, float(np.abs(new).max()))
                values = new
                if done:
                    break
        else:
            values = np.zeros(len(self._nodes))
            for h in range(1, steps_left + 1):
                values = self._values.get(h) if h in self._values else (reward + values[succ]).max(axis=1)
                self._values[h] = values
        self._values[steps_left] = values
        return values

    def _rewards_at(self, step: int) -> np.ndarray:
        """(nodes, grid) profit of each grid action in each node under the demand of ``step``."""
        key = -1 - step  # beside the value caches of _timed, cleared with them when new nodes appear
        if key not in self._timed:
            at, i = self.market.expected_profit_at, self.market.index
            assert at is not None
            self._timed[key] = np.array(
                [[float(at(step, full_prices(float(p), r, i))[i]) for p in self.prices] for r in self._nodes]
            )
        return self._timed[key]

    def _value_from(self, step: int) -> np.ndarray:
        """Node values of the steps ``step … horizon-1`` under each step's own demand (0 past the horizon)."""
        if step >= (self.horizon or 0):
            return np.zeros(len(self._nodes))
        if step not in self._timed:
            later = self._value_from(step + 1)
            self._timed[step] = (self._rewards_at(step) + later[np.array(self._next)]).max(axis=1)
        return self._timed[step]

    def _best_response(self, rivals: tuple[float, ...], obs: Observation) -> float:
        timed = self.market.expected_profit_at is not None
        key = (*(round(p, 12) for p in rivals), obs.step if timed else None)
        if key not in self._myopic:
            market = self.market
            if timed:
                at, step = self.market.expected_profit_at, obs.step
                market = replace(market, expected_profit=lambda prices: at(step, prices))
            self._myopic[key] = best_response(
                market, rivals, cost=obs.cost, price_min=obs.price_min, price_max=obs.price_max, grid=101
            )
        return self._myopic[key]

    def price(self, obs: Observation) -> float:
        if self.rules is None:
            return _clip(self._best_response(tuple(obs.competitor_prices), obs), obs)
        last = full_prices(obs.own_price, obs.competitor_prices, self.market.index)
        rivals = self.rules.next_prices(last)
        node = self._node(rivals)
        if not self._controlled:
            return _clip(self._best_response(rivals, obs), obs)
        if self.horizon is None:  # stationary: discounted values
            q = self._reward[node] + self.delta * self._value(0)[self._next[node]]
        elif self.market.expected_profit_at is not None:  # demand changes over time: per-step rewards
            q = self._rewards_at(obs.step)[node] + self._value_from(obs.step + 1)[self._next[node]]
        else:  # the steps left in the task, this one included
            steps_left = max(self.horizon - obs.step, 1)
            future = self._value(steps_left - 1) if steps_left > 1 else np.zeros(len(self._nodes))
            q = self._reward[node] + future[self._next[node]]
        best = q.max()
        a = int(np.argmax(q >= best - 1e-11 * max(1.0, abs(best))))  # lowest price among ties
        return _clip(float(self.prices[a]), obs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError("clairvoyant has no state to load")


ALL_STRATEGIES: tuple[type[Strategy], ...] = (ThompsonPricing, UCBPricing, BestFixedPrice, Clairvoyant)
