"""Deliberately broken strategies for fault-injection tests, registered as a plugin module."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from marketsim.hookspecs import hookimpl
from marketsim.strategy import Strategy
from marketsim_tabular import QLearning


class _Broken(Strategy):
    """Prices sensibly until ``at_step``, then misbehaves."""

    at_step = 3

    def __init__(self, at_step: int = 3) -> None:
        self.at_step = at_step

    def price(self, obs):
        return self.fail(obs) if obs.step == self.at_step else 1.6

    def fail(self, obs):
        raise NotImplementedError


class NanPrice(_Broken):
    """Returns NaN."""

    name = "broken_nan"

    def fail(self, obs):
        return float("nan")


class InfPrice(_Broken):
    """Returns infinity."""

    name = "broken_inf"

    def fail(self, obs):
        return float("inf")


class NegativePrice(_Broken):
    """Returns a negative price."""

    name = "broken_negative"

    def fail(self, obs):
        return -1.0


class TextPrice(_Broken):
    """Returns a string."""

    name = "broken_text"

    def fail(self, obs):
        return "cheap"


class Raises(_Broken):
    """Raises an exception."""

    name = "broken_raise"

    def fail(self, obs):
        raise RuntimeError("boom at step 3")


class Loops(_Broken):
    """Never returns: sleeps (uses no CPU, so only the wall-clock backstop stops it)."""

    name = "broken_loop"

    def fail(self, obs):
        while True:
            time.sleep(0.01)


class Exits(_Broken):
    """Kills its own process."""

    name = "broken_exit"

    def fail(self, obs):
        os._exit(7)


class Busy(_Broken):
    """Never returns: spins in Python (its CPU-time budget stops it)."""

    name = "broken_busy"

    def fail(self, obs):
        while True:
            pass


class SysExit(_Broken):
    """Calls sys.exit."""

    name = "broken_sysexit"

    def fail(self, obs):
        sys.exit(3)


class Interrupts(_Broken):
    """Raises KeyboardInterrupt itself (not the user's Ctrl-C)."""

    name = "broken_kbint"

    def fail(self, obs):
        raise KeyboardInterrupt


class Hog(_Broken):
    """Allocates memory until it cannot."""

    name = "broken_hog"

    def fail(self, obs):
        hoard = []
        while True:  # address space, not pages: numpy.empty touches no memory, so this costs no CPU time
            hoard.append(np.empty(256 * 2**20, dtype=np.uint8))


class SetupFails(Strategy):
    """Cannot be set up in any market."""

    name = "broken_setup"

    def setup(self, market, rng):
        raise RuntimeError("no market for me")

    def price(self, obs):
        return 1.6


class SetupExits(Strategy):
    """Calls sys.exit while it is set up, before the first step."""

    name = "broken_setup_exit"

    def setup(self, market, rng):
        sys.exit(4)

    def price(self, obs):
        return 1.6


@hookimpl
def register_strategies(register):
    for cls in (
        NanPrice, InfPrice, NegativePrice, TextPrice, Raises, Loops, Exits, SetupFails, Busy, SysExit, Interrupts, Hog,
        SetupExits,
    ):  # fmt: skip
        register(cls)


# --- mistakes the conformance kit must catch (tests/test_testing.py); not registered --------------------------


class ForgetfulQLearning(QLearning):
    """Q-learning whose state_dict leaves out its Q table (a restored copy starts learning afresh)."""

    name = "kit_forgetful_q"

    def state_dict(self):
        state = super().state_dict()
        del state["q"]
        return state

    def load_state_dict(self, state):
        super().load_state_dict({**state, "q": self.q})


class ForgetfulAnchor(Strategy):
    """Learns an anchor from its rivals' prices but saves only how many steps it has seen."""

    name = "kit_forgetful_anchor"
    classifier = {"learns": True, "observes": ("own", "competitors")}

    def setup(self, market, rng):
        super().setup(market, rng)
        self.anchor, self.seen = market.price_max, 0

    def price(self, obs):
        return min(max(self.anchor, obs.price_min), obs.price_max)

    def learn(self, outcome):
        rival = min(outcome.competitor_prices, default=self.anchor)
        self.anchor, self.seen = 0.8 * self.anchor + 0.2 * rival, self.seen + 1

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


class MisnamedParameter(Strategy):
    """Keeps its ``markup`` parameter under ``_markup``, so ``params`` reports the default whatever it was given."""

    name = "kit_misnamed_parameter"

    def __init__(self, markup: float = 0.2) -> None:
        self._markup = markup

    def price(self, obs):
        return min(max(obs.cost * (1 + self._markup), obs.price_min), obs.price_max)
