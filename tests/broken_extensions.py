"""Observers and choice models with one plugin author's mistake each, for the conformance kit's tests.

Each class docstring names the mistake; tests/test_testing.py checks that the kit fails the check named for it.
None of them is registered anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from marketsim.market.consumers import ChoiceModel, Logit
from marketsim.observers import Observer, StepRecord

# --- observers ------------------------------------------------------------------------------------------------


class MeanPrice(Observer):
    """A sound observer: the mean posted price and the number of steps, None before any step."""

    name = "kit_mean_price"

    def __init__(self, seller: int = 0) -> None:
        self.seller, self.prices = seller, []

    def on_step(self, record: StepRecord) -> None:
        self.prices.append(record.prices[self.seller])

    def finish(self) -> Mapping[str, Any]:
        return {"steps": len(self.prices), "mean_price": float(np.mean(self.prices)) if self.prices else None}


class NanResult(MeanPrice):
    """Reports the mean of a list that stays empty: NaN, which is not JSON."""

    name = "kit_nan_result"

    def finish(self) -> Mapping[str, Any]:
        return {"mean_sold_out_price": float(np.mean([p for p in self.prices if p < 0] or [np.nan]))}


class NumpyResult(MeanPrice):
    """Returns numpy integers and arrays, which json.dumps refuses."""

    name = "kit_numpy_result"

    def finish(self) -> Mapping[str, Any]:
        prices = np.array(self.prices)
        return {"steps": np.int64(len(prices)), "prices": prices}


class ListResult(MeanPrice):
    """Returns a list instead of a mapping of metric names."""

    name = "kit_list_result"

    def finish(self) -> Any:
        return list(self.prices)


class Crashes(Observer):
    """Raises at step 3."""

    name = "kit_crashes"

    def on_step(self, record: StepRecord) -> None:
        if record.step == 3:
            raise RuntimeError("disk full")


class EmptyRunCrashes(MeanPrice):
    """Divides by the number of steps, which is zero when a run stops before its first step."""

    name = "kit_empty_run_crashes"

    def finish(self) -> Mapping[str, Any]:
        return {"mean_price": sum(self.prices) / len(self.prices)}


class ClassLevelHistory(Observer):
    """Keeps its records in a class attribute, so a second run counts the first one's steps too."""

    name = "kit_class_history"
    records: list = []

    def on_step(self, record: StepRecord) -> None:
        self.records.append(record.step)

    def finish(self) -> Mapping[str, Any]:
        return {"steps": len(self.records)}


class GlobalSampler(MeanPrice):
    """Subsamples steps with numpy's global generator."""

    name = "kit_global_sampler"

    def on_step(self, record: StepRecord) -> None:
        if np.random.random() < 0.5:
            super().on_step(record)


# --- choice models --------------------------------------------------------------------------------------------


def _weights(w: np.ndarray, x: np.ndarray, a0: float, mu: float, allowed: np.ndarray | None) -> tuple[Any, Any]:
    """Logit weights of the sellers (J, n) and of the outside option (n,), masked by ``allowed``."""
    top = max(float(np.max(x)), 0.0) if len(x) else 0.0
    weights = np.exp((w[None, :] + x[:, None] - a0 - top) / mu)
    return (weights if allowed is None else weights * allowed), np.exp(-top / mu) * np.ones(len(w))


class BinaryLogits(ChoiceModel):
    """One binary logit per seller (buy from j or not), so with several sellers the probabilities sum past 1."""

    name = "kit_binary_logits"

    def __init__(self, mu: float = 0.25) -> None:
        self.mu = mu

    def probabilities(self, w, x, a0, allowed=None):
        weights, outside = _weights(w, x, a0, self.mu, allowed)
        return weights / (outside + weights)


class NoOutsideOption(BinaryLogits):
    """Shares among the sellers only: everyone buys, however bad the offers."""

    name = "kit_no_outside"

    def probabilities(self, w, x, a0, allowed=None):
        weights = np.exp((x[:, None] - np.max(x)) / self.mu) * np.ones((1, len(w)))  # w and a0 cancel out
        weights = weights if allowed is None else weights * allowed
        return weights / np.maximum(weights.sum(axis=0), 1e-300)


class IgnoresMask(BinaryLogits):
    """The logit, computed as if every consumer knew every seller."""

    name = "kit_ignores_mask"

    def probabilities(self, w, x, a0, allowed=None):
        return Logit(self.mu).probabilities(w, x, a0)


class Transposed(BinaryLogits):
    """The logit laid out consumer-major, (n, J), instead of (J, n)."""

    name = "kit_transposed"

    def probabilities(self, w, x, a0, allowed=None):
        return Logit(self.mu).probabilities(w, x, a0, allowed).T.copy()


class PriceLovers(BinaryLogits):
    """The logit with the sign of value flipped: a dearer seller sells more."""

    name = "kit_price_lovers"

    def probabilities(self, w, x, a0, allowed=None):
        return Logit(self.mu).probabilities(w, -np.asarray(x), a0, allowed)


class GreedySampler(BinaryLogits):
    """Logit probabilities, but ``choose`` always picks the most probable option."""

    name = "kit_greedy_sampler"

    def probabilities(self, w, x, a0, allowed=None):
        return Logit(self.mu).probabilities(w, x, a0, allowed)

    def choose(self, w, x, a0, u, allowed=None):
        p = self.probabilities(w, x, a0, allowed)
        best = p.argmax(axis=0)
        return np.where(p.max(axis=0) > 1 - p.sum(axis=0), best, -1)


class ShiftsInPlace(BinaryLogits):
    """Shifts the WTP array it is handed in place (the caller's consumers get richer every call)."""

    name = "kit_shifts_in_place"

    def probabilities(self, w, x, a0, allowed=None):
        w -= a0 + 0.01
        return Logit(self.mu).probabilities(w, x, 0.0, allowed)


class GoodShares(ChoiceModel):
    """Linear-probability demand: P_j proportional to (w + x_j - a0)+, against an outside weight (a sound model)."""

    name = "kit_good_shares"

    def __init__(self, mu: float = 0.0, outside_weight: float = 0.5) -> None:
        self.outside_weight = outside_weight

    def probabilities(self, w, x, a0, allowed=None):
        gain = np.maximum(w[None, :] + x[:, None] - a0, 0.0)
        if allowed is not None:
            gain = gain * allowed
        return gain / (self.outside_weight + gain.sum(axis=0))
