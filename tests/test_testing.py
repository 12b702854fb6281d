"""The conformance kit passes every built-in strategy and catches one broken strategy per check."""

from __future__ import annotations

import time

import numpy as np
import pytest

from marketsim.registry import default_registry
from marketsim.strategy import Strategy
from marketsim.testing import assert_conforms, check_strategy


@pytest.mark.parametrize("name", default_registry().names())
def test_every_builtin_strategy_conforms(name: str) -> None:
    report = assert_conforms(default_registry().get(name).cls, steps=120)
    assert report.seconds_per_decision > 0


class NoDocstring(Strategy):
    name = "kit_no_doc"

    def price(self, obs):
        return 1.5


class NanLater(Strategy):
    """Returns NaN from step 5."""

    name = "kit_nan"

    def price(self, obs):
        return float("nan") if obs.step >= 5 else 1.5


class ClockNoise(Strategy):
    """Prices depend on the wall clock: not reproducible."""

    name = "kit_clock"

    def price(self, obs):
        return 1.5 + (time.perf_counter_ns() % 1000) / 1e4


class SharedMemory(Strategy):
    """Keeps its history in a class attribute shared by every instance."""

    name = "kit_shared"
    history: list = []

    def price(self, obs):
        self.history.append(obs.step)
        return 1.5 + 0.0001 * len(self.history)


class ForgetsState(Strategy):
    """Counts steps but load_state_dict ignores what it is given."""

    name = "kit_forgets"

    def setup(self, market, rng):
        super().setup(market, rng)
        self.count = 0

    def price(self, obs):
        self.count += 1
        return 1.5

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        pass


class GlobalRandom(Strategy):
    """Draws from numpy's global generator."""

    name = "kit_global"
    classifier = {"stochastic": True}

    def price(self, obs):
        return 1.4 + 0.2 * np.random.random()


@pytest.mark.parametrize(
    ("cls", "failing"),
    [
        (NoDocstring, "has a name, docstring"),
        (NanLater, "posts valid prices"),
        (ClockNoise, "is reproducible"),
        (SharedMemory, "keeps no state shared"),
        (ForgetsState, "round-trips"),
        (GlobalRandom, "leaves the global random state alone"),
    ],
)
def test_each_check_catches_its_broken_strategy(cls: type[Strategy], failing: str) -> None:
    report = check_strategy(cls, steps=60)
    failed = [c.name for c in report.checks if not c.passed]
    assert any(failing in name for name in failed), str(report)
    with pytest.raises(AssertionError, match="FAIL"):
        assert_conforms(cls, steps=60)
