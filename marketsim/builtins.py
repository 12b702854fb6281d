"""marketsim's own choice models and observers, registered through the same hooks as any plugin's.

This module is a plugin that ``load_registry`` always loads first (even with plugin autoloading off),
because every market needs a choice model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from marketsim.hookspecs import hookimpl
from marketsim.market.consumers import Logit
from marketsim.observers import Observer, StepRecord


class PriceDispersion(Observer):
    """Price dispersion across sellers: the mean and last-100-step mean of max − min and of the
    coefficient of variation of posted prices (a standard measure of how competitive a market is)."""

    name = "price_dispersion"

    def __init__(self, tail: int = 100) -> None:
        if tail < 1:
            raise ValueError(f"tail must be >= 1, got {tail}")
        self.tail = tail
        self.spread: list[float] = []
        self.cv: list[float] = []

    def on_step(self, record: StepRecord) -> None:
        prices = np.asarray(record.prices)
        self.spread.append(float(prices.max() - prices.min()))
        self.cv.append(float(prices.std() / prices.mean()) if prices.mean() > 0 else 0.0)

    def finish(self) -> Mapping[str, Any]:
        if not self.spread:
            return {}
        return {
            "mean_spread": float(np.mean(self.spread)),
            "mean_cv": float(np.mean(self.cv)),
            f"last{self.tail}_spread": float(np.mean(self.spread[-self.tail :])),
            f"last{self.tail}_cv": float(np.mean(self.cv[-self.tail :])),
        }


@hookimpl
def register_choice_models(register: Callable[[type], None]) -> None:
    """The multinomial logit (with its mu = 0 limit: best value wins)."""
    register(Logit)


@hookimpl
def register_observers(register: Callable[[type], None]) -> None:
    """Built-in metrics."""
    register(PriceDispersion)
