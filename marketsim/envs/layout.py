"""The observation vector the environments show a seller, and the action each kind of action space maps to.

One fixed-length float32 vector per seller, built from the ``Observation`` the market gives that seat (so a
policy trained on the envs sees exactly the same numbers when it plays in a tournament as ``sb3_policy``):

====================  ==========================================================================================
feature               value
====================  ==========================================================================================
``own_price``         own last posted price, scaled so the seller's ``[price_min, price_max]`` is ``[0, 1]``
``rival_price_k``     each rival's last price in seat order, on the same scale (the seller's own range)
``own_units``         own units sold last step ÷ own units at the one-shot Nash prices
``own_profit``        own profit last step ÷ own profit at the one-shot Nash prices
``inventory``         stock left ÷ initial stock (only for a seller with a finite inventory)
``capacity``          capacity per step ÷ own Nash units (only for a seller with a finite capacity)
``season_k_sin/cos``  sin and cos of 2π (t + phase) / period for each sinusoidal demand shock (only if any)
====================  ==========================================================================================

Every scale comes from ``MarketInfo`` (what a strategy is set up with) and the seller's first observation, so
the layout is rebuilt identically inside the market loop. Nash units or profit that are not positive scale by 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marketsim.learning.tabular import seller_grid
from marketsim.strategy import MarketInfo, Observation

__all__ = ["ActionMap", "ObservationLayout", "nash_scales"]


def nash_scales(info: MarketInfo) -> tuple[float, float]:
    """The seller's units and profit at the one-shot Nash prices (1.0 where not positive and finite)."""
    i, nash = info.index, np.asarray(info.nash_prices, dtype=float)
    profit = float(info.expected_profit(nash)[i])
    margin = float(nash[i]) - info.costs[i]
    units = profit / margin if margin > 1e-12 else math.nan
    return (units if math.isfinite(units) and units > 0 else 1.0), (
        profit if math.isfinite(profit) and profit > 0 else 1.0
    )


@dataclass(frozen=True)
class ObservationLayout:
    """How one seller's observation becomes the env's vector (see the module's table)."""

    n_sellers: int
    price_low: float
    price_span: float
    unit_scale: float
    profit_scale: float
    stock_scale: float | None = None  # initial stock, when the seller's inventory is finite
    capacity: float | None = None  # capacity ÷ unit_scale, when finite
    seasons: tuple[tuple[float, float], ...] = ()  # (period, phase) of each sinusoidal shock

    @classmethod
    def for_seller(
        cls, info: MarketInfo, first: Observation, seasons: Sequence[tuple[float, float]] = ()
    ) -> ObservationLayout:
        """The layout of the seller ``info`` describes, whose observation before step 0 is ``first``."""
        units, profit = nash_scales(info)
        stock = first.inventory if math.isfinite(first.inventory) else None
        capacity = first.capacity / units if math.isfinite(first.capacity) else None
        return cls(
            n_sellers=info.n_sellers,
            price_low=info.price_min,
            price_span=max(info.price_max - info.price_min, 1e-12),
            unit_scale=units,
            profit_scale=profit,
            stock_scale=(stock if stock and stock > 0 else 1.0) if stock is not None else None,
            capacity=capacity,
            seasons=tuple((float(p), float(f)) for p, f in seasons),
        )

    @property
    def names(self) -> list[str]:
        """Each feature's name, in vector order."""
        names = ["own_price", *(f"rival_price_{k}" for k in range(1, self.n_sellers)), "own_units", "own_profit"]
        names += ["inventory"] if self.stock_scale is not None else []
        names += ["capacity"] if self.capacity is not None else []
        for k in range(1, len(self.seasons) + 1):
            names += [f"season_{k}_sin", f"season_{k}_cos"]
        return names

    @property
    def size(self) -> int:
        """Length of the vector."""
        return len(self.names)

    def encode(self, obs: Observation) -> np.ndarray:
        """The vector (float32) of one observation."""
        rivals = np.asarray(obs.competitor_prices, dtype=float)[None, :]
        row = self.encode_arrays(
            np.array([obs.own_price]), rivals, np.array([obs.last_units]), np.array([obs.last_profit]),
            np.array([obs.inventory]), obs.step,
        )  # fmt: skip
        return row[0]

    def encode_arrays(  # noqa: PLR0913 - one array per observed quantity, the batched form of ``encode``
        self,
        own_price: np.ndarray,
        rival_prices: np.ndarray,
        units: np.ndarray,
        profit: np.ndarray,
        inventory: np.ndarray | None,
        step: int,
    ) -> np.ndarray:
        """Vectors (B, size) for B observations of this seller at one step (arrays with a leading axis)."""
        B = len(own_price)
        cols = [(own_price[:, None] - self.price_low) / self.price_span]
        cols.append((rival_prices.reshape(B, -1) - self.price_low) / self.price_span)
        cols.append(np.column_stack([units / self.unit_scale, profit / self.profit_scale]))
        if self.stock_scale is not None:
            stock = np.zeros(B) if inventory is None else np.where(np.isfinite(inventory), inventory, 0.0)
            cols.append((stock / self.stock_scale)[:, None])
        if self.capacity is not None:
            cols.append(np.full((B, 1), self.capacity))
        for period, phase in self.seasons:
            angle = 2 * math.pi * (step + phase) / period
            cols.append(np.tile([math.sin(angle), math.cos(angle)], (B, 1)))
        return np.concatenate(cols, axis=1).astype(np.float32)


@dataclass(frozen=True)
class ActionMap:
    """A seller's action space: an index into its price grid (``discrete``) or a price (``continuous``)."""

    kind: str  # "discrete" | "continuous"
    grid: np.ndarray  # the seller's price grid (the tabular and deep learners' grid)
    price_min: float
    price_max: float

    @classmethod
    def for_seller(cls, info: MarketInfo, kind: str, grid_size: int = 15, xi: float = 0.1) -> ActionMap:
        """The action map of the seller ``info`` describes; the grid is ``seller_grid``'s."""
        if kind not in ("discrete", "continuous"):
            raise ValueError(f"action must be 'discrete' or 'continuous', got {kind!r}")
        return cls(kind, seller_grid(info, grid_size, xi), info.price_min, info.price_max)

    def space(self) -> Any:
        """The Gymnasium action space: ``Discrete`` over the grid, or a ``Box`` on ``[price_min, price_max]``.

        Gymnasium is imported here, so this module (which the ``sb3_policy`` seller imports) needs no extra.
        """
        from gymnasium import spaces

        if self.kind == "discrete":
            return spaces.Discrete(len(self.grid))
        return spaces.Box(np.float32(self.price_min), np.float32(self.price_max), shape=(1,), dtype=np.float32)

    def price(self, action: object) -> float:
        """The price an action posts (the market clips it to the seller's range)."""
        if self.kind == "discrete":
            a = int(np.asarray(action).reshape(-1)[0])
            if not 0 <= a < len(self.grid):
                raise ValueError(f"discrete action {a} is outside 0..{len(self.grid) - 1}")
            return float(self.grid[a])
        value = float(np.asarray(action, dtype=float).reshape(-1)[0])
        if not math.isfinite(value):
            raise ValueError(f"continuous action {value} is not a finite price")
        return value

    def prices(self, actions: np.ndarray) -> np.ndarray:
        """Prices (B,) for a batch of actions (indices or prices)."""
        actions = np.asarray(actions)
        if self.kind == "discrete":
            a = actions.reshape(len(actions)).astype(np.int64)
            if a.min(initial=0) < 0 or a.max(initial=0) >= len(self.grid):
                raise ValueError(f"discrete actions must lie in 0..{len(self.grid) - 1}")
            return self.grid[a]
        return np.asarray(actions, dtype=float).reshape(len(actions))
