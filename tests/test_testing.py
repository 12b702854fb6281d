"""The conformance kit catches one broken strategy per check (test_strategy.py runs it over every strategy)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from marketsim.strategy import Strategy
from marketsim.testing import assert_conforms, check_strategy


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


class SeedDependent(Strategy):
    """Claims to be deterministic but draws from its generator."""

    name = "kit_seedy"

    def price(self, obs):
        return 1.4 + 0.2 * self.rng.random()


class LearnsSecretly(Strategy):
    """Claims not to learn, but learn() moves its price."""

    name = "kit_secret_learner"

    def setup(self, market, rng):
        super().setup(market, rng)
        self.level = 1.5

    def price(self, obs):
        return self.level

    def learn(self, outcome):
        self.level = min(self.level + 0.001, 2.5)

    def state_dict(self):
        return {"level": self.level}

    def load_state_dict(self, state):
        self.level = state["level"]


class OpaqueState(Strategy):
    """Keeps a function in its state: not plain data."""

    name = "kit_opaque"

    def price(self, obs):
        return 1.5

    def state_dict(self):
        return {"pricer": self.price}


@pytest.mark.parametrize(
    ("cls", "failing"),
    [
        (NoDocstring, "has a name, docstring"),
        (NanLater, "posts valid prices"),
        (ClockNoise, "is reproducible"),
        (SharedMemory, "keeps no state shared"),
        (ForgetsState, "round-trips"),
        (GlobalRandom, "leaves the global random state alone"),
        (SeedDependent, "ignores the seed"),
        (LearnsSecretly, "ignores learn()"),
        (OpaqueState, "round-trips"),
    ],
)
def test_each_check_catches_its_broken_strategy(cls: type[Strategy], failing: str) -> None:
    report = check_strategy(cls, steps=60)
    failed = [c.name for c in report.checks if not c.passed]
    assert any(failing in name for name in failed), str(report)
    with pytest.raises(AssertionError, match="FAIL"):
        assert_conforms(cls, steps=60)


def test_a_sound_strategy_passes_and_reports_its_speed() -> None:
    class Steady(Strategy):
        """Posts the middle of its range."""

        name = "kit_steady"

        def price(self, obs):
            return (obs.price_min + obs.price_max) / 2

    report = assert_conforms(Steady, steps=30)
    assert report.seconds_per_decision > 0 and len(report.checks) == 8
    assert str(report).startswith("conformance of 'kit_steady': PASS")
