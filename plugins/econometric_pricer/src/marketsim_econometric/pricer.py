"""The econometric pricer: estimate demand from your own sales, then price at the estimated optimum.

This is what many pricing teams run first. Each step it fits, by ordinary least squares over its last
``window`` (price, units) observations,

* ``semilog`` (log-linear demand):  ln q = a + b·p + c·ln p̄  →  p* = cost − 1/b        (needs b < 0)
* ``loglog`` (constant elasticity):  ln q = a + b·ln p + c·ln p̄ → p* = cost · b/(1 + b)  (needs b < −1)

where p̄ is the rivals' mean price in the same step (a control, dropped when it never varies), and
posts p* plus a little Gaussian exploration so that the slope stays identified. The semi-log optimum
is self-consistent with logit demand: locally ∂ln q/∂p = −(1 − s)/μ, so p* = cost + μ/(1 − s) is the
logit first-order condition, and the pricer settles on the best response to what rivals post.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

import numpy as np

from marketsim.strategy import MarketInfo, Observation, Outcome, Strategy

DemandModel = Literal["semilog", "loglog"]


def fit_demand(prices: np.ndarray, units: np.ndarray, rivals: np.ndarray, model: DemandModel) -> float | None:
    """OLS slope b of ln q on own price (semilog) or ln price (loglog), controlling for ln p̄ when it varies.

    Returns None when there are too few usable points (positive sales) or the own price never varied.
    """
    keep = units > 0
    if keep.sum() < 3:
        return None
    own = prices[keep] if model == "semilog" else np.log(prices[keep])
    if np.ptp(own) < 1e-9:
        return None
    columns = [np.ones_like(own), own]
    control = np.log(rivals[keep]) if rivals.size else np.empty(0)
    if control.size and np.ptp(control) > 1e-9 and keep.sum() >= 4:
        columns.append(control)
    coef, *_ = np.linalg.lstsq(np.column_stack(columns), np.log(units[keep]), rcond=None)
    return float(coef[1])


def optimal_price(slope: float, cost: float, model: DemandModel) -> float | None:
    """The profit-maximising price under the fitted slope, or None when demand is not elastic enough."""
    if model == "semilog":
        return cost - 1.0 / slope if slope < 0 else None
    return cost * slope / (1.0 + slope) if slope < -1 else None


class EconometricPricer(Strategy):
    """Fit demand to your own price/sales history by least squares; post the estimated optimum.

    Semi-log ("log-linear") or log-log demand, re-estimated every step on the last ``window`` points;
    ``warmup`` steps of uniform random prices first, then the estimated optimum with Gaussian jitter of
    ``explore`` × (price range) and moves of at most ``max_move`` × (price range) per step.
    The textbook approach of regression-based pricing (e.g. Phillips, *Pricing and Revenue Optimization*, ch. 3).
    """

    name = "econometric_pricer"
    classifier = {"learns": True, "stochastic": True, "observes": ("own", "competitors")}

    def __init__(
        self,
        model: DemandModel = "semilog",
        window: int = 60,
        warmup: int = 10,
        explore: float = 0.02,
        max_move: float = 0.1,
        min_margin: float = 0.0,
    ) -> None:
        if model not in ("semilog", "loglog"):
            raise ValueError(f"model must be 'semilog' or 'loglog', got {model!r}")
        if window < 3 or warmup < 0:
            raise ValueError("window must be >= 3 and warmup >= 0")
        if not (0 <= explore <= 1 and 0 < max_move <= 1 and min_margin >= 0):
            raise ValueError("need 0 <= explore <= 1, 0 < max_move <= 1 and min_margin >= 0")
        self.model, self.window, self.warmup = model, window, warmup
        self.explore, self.max_move, self.min_margin = explore, max_move, min_margin

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Start with an empty history."""
        super().setup(market, rng)
        self.history: deque[tuple[float, float, float]] = deque(maxlen=self.window)
        self.t = 0
        self.last_fit: float | None = None

    def price(self, obs: Observation) -> float:
        """Random prices during warm-up, then the estimated optimum, kept near the last price, plus jitter."""
        low, high = max(obs.price_min, obs.cost + self.min_margin), obs.price_max
        span = max(high - low, 0.0)
        self.t += 1
        if self.t <= self.warmup or span == 0:
            return float(low + span * self.rng.random())
        target = self._target(obs.cost)
        if target is None:  # nothing identified yet: keep exploring around the last price
            target = obs.own_price
        step = self.max_move * span
        target = min(max(target, obs.own_price - step), obs.own_price + step)
        jitter = self.explore * span * self.rng.standard_normal()
        return float(min(max(target + jitter, low), high))

    def _target(self, cost: float) -> float | None:
        if len(self.history) < 3:
            return None
        prices, units, rivals = (np.array(column) for column in zip(*self.history))
        rivals = rivals[np.isfinite(rivals)] if np.isfinite(rivals).all() else np.empty(0)
        self.last_fit = fit_demand(prices, units, rivals, self.model)
        return None if self.last_fit is None else optimal_price(self.last_fit, cost, self.model)

    def learn(self, outcome: Outcome) -> None:
        """Add the step's (price, units, rivals' mean price) to the history."""
        rivals = float(np.mean(outcome.competitor_prices)) if outcome.competitor_prices else math.nan
        self.history.append((outcome.price, outcome.units, rivals))

    def state_dict(self) -> dict[str, Any]:
        """The price/sales history and the step counter."""
        return {"history": np.array(self.history, dtype=float).reshape(-1, 3), "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.history = deque((tuple(row) for row in np.asarray(state["history"], float)), maxlen=self.window)
        self.t = int(state["t"])
