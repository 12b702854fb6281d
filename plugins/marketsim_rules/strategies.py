"""Rule-based pricing strategies: fixed, cost-plus, competitor-following, inventory and demand rules.

Every rule returns a price inside ``[obs.price_min, obs.price_max]``; rules that follow rivals never
price below cost (a monopolist with no rivals holds its own last price).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any, ClassVar

import numpy as np

from marketsim.market.rivals import best_response
from marketsim.strategy import MarketInfo, Observation, ObservationBatch, Strategy


def _clip(price: float, obs: Observation) -> float:
    """``price`` clipped to the allowed range of ``obs``."""
    return float(min(max(price, obs.price_min), obs.price_max))


def _cost_floor(price: float, obs: Observation, margin: float = 0.0) -> float:
    """``price`` raised to at least ``cost + margin``, then clipped to the allowed range."""
    return _clip(max(price, obs.cost + margin), obs)


def _clip_batch(price: np.ndarray, obs: ObservationBatch) -> np.ndarray:
    """``_clip`` of every row of a batch (the same floats)."""
    return np.minimum(np.maximum(price, obs.price_min), obs.price_max)


def _cost_floor_batch(price: np.ndarray, obs: ObservationBatch, margin: np.ndarray | float = 0.0) -> np.ndarray:
    """``_cost_floor`` of every row of a batch (the same floats)."""
    return _clip_batch(np.maximum(price, obs.cost + margin), obs)


def _lowest_rival(obs: ObservationBatch) -> tuple[np.ndarray, np.ndarray]:
    """Each row's cheapest rival price (inf where no seat is taken) and whether the row has a rival."""
    rivals = obs.competitor_prices
    if rivals.shape[1] == 0:
        return np.full(len(obs), np.inf), np.zeros(len(obs), bool)
    lowest = np.where(np.isnan(rivals), np.inf, rivals).min(axis=1)
    return lowest, ~np.isnan(rivals).all(axis=1)


def _param(rules: Sequence[Strategy], name: str) -> np.ndarray:
    """One float parameter of every rule of a batch (nan where it is None)."""
    return np.array(list(map(attrgetter(name), rules)), dtype=float)  # numpy reads None as nan


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class FixedPrice(Strategy):
    """Post the same price every step: the static benchmark every pricing study starts from."""

    name = "fixed_price"
    classifier: ClassVar[Mapping[str, Any]] = {"reactive": True, "observes": ("own",)}

    def __init__(self, price: float = 1.5) -> None:
        _check(math.isfinite(price) and price >= 0, f"price must be finite and >= 0, got {price}")
        self.fixed = float(price)  # the attribute `price` is the method, so `params` is overridden

    @property
    def params(self) -> dict[str, Any]:
        return {"price": self.fixed}

    def price(self, obs: Observation) -> float:
        return _clip(self.fixed, obs)

    @classmethod
    def price_batch(cls, rules: Sequence[Strategy], obs: ObservationBatch) -> np.ndarray:
        return _clip_batch(_param(rules, "fixed"), obs)


class CostPlus(Strategy):
    """Cost-plus pricing: post ``cost * (1 + markup)``, the classic full-cost rule (Hall & Hitch 1939)."""

    name = "cost_plus"
    classifier: ClassVar[Mapping[str, Any]] = {"reactive": True, "observes": ("own",)}

    def __init__(self, markup: float = 0.3) -> None:
        _check(markup > -1, f"markup must be > -1, got {markup}")
        self.markup = float(markup)

    def price(self, obs: Observation) -> float:
        return _clip(obs.cost * (1.0 + self.markup), obs)

    @classmethod
    def price_batch(cls, rules: Sequence[Strategy], obs: ObservationBatch) -> np.ndarray:
        return _clip_batch(obs.cost * (1.0 + _param(rules, "markup")), obs)


class Undercut(Strategy):
    """Undercut the cheapest rival by ``step``, never below ``cost + floor_margin``.

    The price war of an Edgeworth cycle (Maskin & Tirole 1988). With ``reset_price`` set, a seller that
    can no longer undercut profitably relents and jumps back up to it, which closes the cycle.
    """

    name = "undercut"
    classifier: ClassVar[Mapping[str, Any]] = {"reactive": True, "observes": ("own", "competitors")}

    def __init__(self, step: float = 0.05, floor_margin: float = 0.0, reset_price: float | None = None) -> None:
        _check(step >= 0, f"step must be >= 0, got {step}")
        self.step = float(step)
        self.floor_margin = float(floor_margin)
        self.reset_price = None if reset_price is None else float(reset_price)

    def price(self, obs: Observation) -> float:
        if not obs.competitor_prices:
            return _cost_floor(obs.own_price, obs, self.floor_margin)
        target = min(obs.competitor_prices) - self.step
        if self.reset_price is not None and target < obs.cost + self.floor_margin:
            return _cost_floor(self.reset_price, obs, self.floor_margin)
        return _cost_floor(target, obs, self.floor_margin)

    @classmethod
    def price_batch(cls, rules: Sequence[Strategy], obs: ObservationBatch) -> np.ndarray:
        step, margin, reset = (_param(rules, k) for k in ("step", "floor_margin", "reset_price"))
        lowest, has = _lowest_rival(obs)
        target = lowest - step
        relent = has & ~np.isnan(reset) & (target < obs.cost + margin)
        return _cost_floor_batch(np.where(has, np.where(relent, reset, target), obs.own_price), obs, margin)


class MatchLowest(Strategy):
    """Match the cheapest rival's last price (a price-matching guarantee), never below cost."""

    name = "match_lowest"
    classifier: ClassVar[Mapping[str, Any]] = {"reactive": True, "observes": ("own", "competitors")}

    def __init__(self, floor_margin: float = 0.0) -> None:
        self.floor_margin = float(floor_margin)

    def price(self, obs: Observation) -> float:
        target = min(obs.competitor_prices) if obs.competitor_prices else obs.own_price
        return _cost_floor(target, obs, self.floor_margin)

    @classmethod
    def price_batch(cls, rules: Sequence[Strategy], obs: ObservationBatch) -> np.ndarray:
        lowest, has = _lowest_rival(obs)
        return _cost_floor_batch(np.where(has, lowest, obs.own_price), obs, _param(rules, "floor_margin"))


class FollowAverage(Strategy):
    """Tit-for-tat in prices (Axelrod 1984): move to the rivals' average last price, never below cost.

    Posts ``(1 - weight) * own_last + weight * mean(rivals)``; ``weight = 1`` copies the average.
    """

    name = "follow_average"
    classifier: ClassVar[Mapping[str, Any]] = {"reactive": True, "observes": ("own", "competitors")}

    def __init__(self, weight: float = 1.0) -> None:
        _check(0 <= weight <= 1, f"weight must be in [0, 1], got {weight}")
        self.weight = float(weight)

    def price(self, obs: Observation) -> float:
        if not obs.competitor_prices:
            return _cost_floor(obs.own_price, obs)
        # added left to right (Python >= 3.12's sum() compensates, which would change the figures by version)
        average = functools.reduce(operator.add, obs.competitor_prices) / len(obs.competitor_prices)
        return _cost_floor((1 - self.weight) * obs.own_price + self.weight * average, obs)

    @classmethod
    def price_batch(cls, rules: Sequence[Strategy], obs: ObservationBatch) -> np.ndarray:
        total, count = np.zeros(len(obs)), np.zeros(len(obs))
        for column in obs.competitor_prices.T:  # left to right, as the scalar price adds
            seated = ~np.isnan(column)
            total, count = np.where(seated, total + column, total), count + seated
        weight = _param(rules, "weight")
        with np.errstate(invalid="ignore", divide="ignore"):
            follow = (1 - weight) * obs.own_price + weight * (total / count)
        return _cost_floor_batch(np.where(count > 0, follow, obs.own_price), obs)


class InventoryMarkdown(Strategy):
    """Markdown pricing for a stock that must sell within ``horizon`` steps (Gallego & van Ryzin 1994).

    With share ``s`` of the initial stock left and share ``t`` of the horizon left, it posts
    ``floor + (full - floor) * min(1, t / s)``: full price while sales keep pace with time, falling to
    ``floor_price`` as unsold stock meets the end of the horizon. Unlimited inventory posts full price.
    """

    name = "inventory_markdown"
    classifier: ClassVar[Mapping[str, Any]] = {"observes": ("own",)}

    def __init__(
        self,
        full_price: float = 2.0,
        floor_price: float = 1.0,
        horizon: int = 100,
        initial_inventory: float | None = None,
    ) -> None:
        _check(0 <= floor_price <= full_price, "need 0 <= floor_price <= full_price")
        _check(horizon > 0, f"horizon must be > 0, got {horizon}")
        self.full_price = float(full_price)
        self.floor_price = float(floor_price)
        self.horizon = int(horizon)
        self.initial_inventory = initial_inventory

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        self._start: float | None = self.initial_inventory  # stock at step 0, read on first sight

    def price(self, obs: Observation) -> float:
        if self._start is None:
            self._start = obs.inventory
        if not math.isfinite(obs.inventory) or not math.isfinite(self._start) or self._start <= 0:
            return _clip(self.full_price, obs)
        stock_left = max(obs.inventory, 0.0) / self._start
        time_left = max(self.horizon - obs.step, 0) / self.horizon
        pace = 1.0 if stock_left <= time_left else time_left / stock_left
        return _clip(self.floor_price + (self.full_price - self.floor_price) * pace, obs)

    def state_dict(self) -> dict[str, Any]:
        return {"start": self._start}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._start = state["start"]


class DemandResponsive(Strategy):
    """Adjust the price to last step's sales, the rule of thumb of many retail repricers.

    At step 0 it posts ``initial_price`` (default: its own starting price). After that, from its last
    posted price: multiply by ``1 + up`` after a sell-out (units reached capacity or inventory hit 0);
    multiply by ``1 - down`` after weak sales (no units, or units below ``weak_share`` times the
    reference: capacity when finite, else the mean units of the earlier steps, none at step 1);
    otherwise hold.
    It never goes below cost.
    """

    name = "demand_responsive"
    classifier: ClassVar[Mapping[str, Any]] = {"observes": ("own",)}

    def __init__(
        self,
        initial_price: float | None = None,
        up: float = 0.05,
        down: float = 0.05,
        weak_share: float = 0.5,
    ) -> None:
        _check(up >= 0 and 0 <= down < 1, "need up >= 0 and 0 <= down < 1")
        _check(0 <= weak_share <= 1, f"weak_share must be in [0, 1], got {weak_share}")
        self.initial_price = None if initial_price is None else float(initial_price)
        self.up = float(up)
        self.down = float(down)
        self.weak_share = float(weak_share)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        self._seen = 0  # steps of sales observed so far
        self._mean_units = 0.0  # their mean

    def price(self, obs: Observation) -> float:
        if obs.step == 0:
            start = obs.own_price if self.initial_price is None else self.initial_price
            return _clip(start, obs)
        units = obs.last_units
        sold_out = (math.isfinite(obs.capacity) and units >= obs.capacity) or obs.inventory <= 0
        if math.isfinite(obs.capacity):
            reference: float | None = obs.capacity
        else:
            reference = self._mean_units if self._seen else None
        weak = units <= 0 or (reference is not None and units < self.weak_share * reference)
        self._seen += 1
        self._mean_units += (units - self._mean_units) / self._seen
        if sold_out:
            return _cost_floor(obs.own_price * (1 + self.up), obs)
        if weak:
            return _cost_floor(obs.own_price * (1 - self.down), obs)
        return _cost_floor(obs.own_price, obs)

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self._seen, "mean_units": self._mean_units}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._seen = int(state["seen"])
        self._mean_units = float(state["mean_units"])


class ScheduledPromotions(Strategy):
    """Hi-lo promotional pricing: ``regular_price``, cut by ``discount`` during windows of ``length``.

    Step ``t`` is on promotion when ``(t - offset) % period < length`` (periodic sales, Varian 1980).
    """

    name = "scheduled_promotions"
    classifier: ClassVar[Mapping[str, Any]] = {"observes": ("own",)}

    def __init__(
        self,
        regular_price: float = 2.0,
        discount: float = 0.2,
        period: int = 50,
        length: int = 10,
        offset: int = 0,
    ) -> None:
        _check(0 <= discount <= 1, f"discount must be in [0, 1], got {discount}")
        _check(period > 0 and 0 <= length <= period, "need period > 0 and 0 <= length <= period")
        self.regular_price = float(regular_price)
        self.discount = float(discount)
        self.period = int(period)
        self.length = int(length)
        self.offset = int(offset)

    def on_promotion(self, step: int) -> bool:
        """Whether ``step`` falls inside a discount window."""
        return (step - self.offset) % self.period < self.length

    def price(self, obs: Observation) -> float:
        factor = 1 - self.discount if self.on_promotion(obs.step) else 1.0
        return _clip(self.regular_price * factor, obs)


class RandomPrice(Strategy):
    """Uniform random price in ``[low, high]`` (default: the allowed range): the zero-intelligence baseline
    (Gode & Sunder 1993)."""

    name = "random_price"
    classifier: ClassVar[Mapping[str, Any]] = {"stochastic": True, "observes": ("own",)}

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        if low is not None and high is not None:
            _check(low <= high, f"need low <= high, got {low} > {high}")
        self.low = None if low is None else float(low)
        self.high = None if high is None else float(high)

    def price(self, obs: Observation) -> float:
        low = _clip(obs.price_min if self.low is None else self.low, obs)
        high = _clip(obs.price_max if self.high is None else self.high, obs)
        return float(self.rng.uniform(low, high)) if high > low else low


class MyopicBestResponse(Strategy):
    """Best response to the rivals' last prices on the expected demand (Cournot-style adjustment).

    Maximises ``market.own_profit(p, rivals)`` over ``[max(cost, price_min), price_max]``: a ``grid``
    of points finds the best basin, bounded Brent search refines it. Played by all, it converges to
    the one-shot Bertrand-Nash equilibrium when the best-response map is a contraction.
    """

    name = "myopic_best_response"
    classifier: ClassVar[Mapping[str, Any]] = {"reactive": True, "observes": ("own", "competitors", "demand_model")}

    def __init__(self, grid: int = 101) -> None:
        _check(grid >= 3, f"grid must be >= 3, got {grid}")
        self.grid = int(grid)

    def price(self, obs: Observation) -> float:
        best = best_response(
            self.market,
            tuple(obs.competitor_prices),
            cost=obs.cost,
            price_min=obs.price_min,
            price_max=obs.price_max,
            grid=self.grid,
        )
        return _clip(best, obs)


ALL_STRATEGIES: tuple[type[Strategy], ...] = (
    FixedPrice,
    CostPlus,
    Undercut,
    MatchLowest,
    FollowAverage,
    InventoryMarkdown,
    DemandResponsive,
    ScheduledPromotions,
    RandomPrice,
    MyopicBestResponse,
)
