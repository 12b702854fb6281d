"""The conformance kit catches one broken strategy, observer or choice model per check, each failure under the
check's name (test_strategy.py runs the strategy kit over every registered strategy)."""

from __future__ import annotations

import re
import time
import typing

import broken_extensions as bad
import numpy as np
import pytest
from broken_strategies import ForgetfulAnchor, ForgetfulQLearning, MisnamedParameter

from marketsim.builtins import PriceDispersion
from marketsim.market.consumers import Logit
from marketsim.strategy import Strategy
from marketsim.testing import (
    FAST_STEPS,
    Report,
    assert_choice_model_conforms,
    assert_conforms,
    assert_observer_conforms,
    check_choice_model,
    check_observer,
    check_strategy,
    json_problem,
)


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
        (ForgetfulQLearning, "round-trips"),
        (ForgetfulAnchor, "round-trips"),
        (MisnamedParameter, "parameters read back"),
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
    assert report.seconds_per_decision > 0 and len(report.checks) == 9
    assert str(report).startswith("conformance of 'kit_steady': PASS")
    fast = assert_conforms(Steady, fast=True)
    assert fast.fast and "fast mode" in str(fast).splitlines()[0] and len(fast.checks) == 9


def _failure(report: Report, check: str) -> str:
    """The report's text, asserted to show ``check`` failed (the check's name is in the failure message)."""
    text = str(report)
    assert not report.ok and any(check in c.name for c in report.failed), text
    assert f"[FAIL] {next(c.name for c in report.failed if check in c.name)}" in text
    return text


def test_a_state_dict_that_omits_the_q_table_fails_the_round_trip_even_in_fast_mode() -> None:
    """Exploration hides the Q table while it continues the run; acting greedily on what it saw shows it."""
    for report in (check_strategy(ForgetfulQLearning, steps=60), check_strategy(ForgetfulQLearning, fast=True)):
        text = _failure(report, "state_dict / load_state_dict round-trips")
        assert "state_dict leaves out something it learned" in text and len(report.failed) == 1


def test_a_parameter_stored_under_another_name_fails_naming_the_parameter() -> None:
    text = _failure(check_strategy(MisnamedParameter, fast=True), "parameters read back through `params`")
    assert "parameter 'markup'" in text and "(the default)" in text


def test_parameters_get_values_of_their_type_the_strategy_accepts() -> None:
    """A Literal picks another choice, None-defaulted lists get a grid, a refused value is skipped, not failed."""
    seen: dict[str, object] = {}

    class Picky(Strategy):
        """Refuses most values; records what the kit built it with."""

        name = "kit_picky"

        def __init__(self, mode: typing.Literal["a", "b"] = "a", grid: list[float] | None = None, odd: int = 1):
            if odd % 2 == 0:
                raise ValueError("odd must be odd")
            self.mode, self.grid, self.odd = mode, grid, odd
            seen.update({k: v for k, v in (("mode", mode), ("grid", grid), ("odd", odd)) if v not in ("a", None, 1)})

        def price(self, obs):
            return obs.price_min

    report = check_strategy(Picky, fast=True)
    assert report.ok, str(report)
    assert seen["mode"] == "b" and seen["grid"] == [1.0, 1.5, 2.0] and seen["odd"] == 3


@pytest.mark.parametrize(
    ("cls", "failing", "says"),
    [
        (bad.NanResult, "finish() returns a mapping of strict JSON", "is nan"),
        (bad.NumpyResult, "finish() returns a mapping of strict JSON", "numpy.int64"),
        (bad.ListResult, "finish() returns a mapping of strict JSON", "returned a list"),
        (bad.Crashes, "watches runs", "failed at step 3: RuntimeError: disk full"),
        (bad.EmptyRunCrashes, "finish() works when the run stopped before its first step", "ZeroDivisionError"),
        (bad.ClassLevelHistory, "keeps no state between instances", "not in class attributes"),
        (bad.GlobalSampler, "leaves the global random state alone", "np.random"),
    ],
)
def test_each_observer_check_catches_its_broken_observer(cls: type, failing: str, says: str) -> None:
    text = _failure(check_observer(cls), failing)
    assert says in text and text.startswith(f"conformance of observer {cls.name!r}: FAIL")
    with pytest.raises(AssertionError, match=re.escape(failing)):
        assert_observer_conforms(cls)


def test_sound_observers_pass() -> None:
    assert_observer_conforms(PriceDispersion, {"tail": 5})
    report = assert_observer_conforms(bad.MeanPrice, {"seller": 1}, steps=10)
    assert len(report.checks) == 6 and "time per decision" not in str(report)


def test_an_observer_is_refused_a_builtin_name_it_does_not_own() -> None:
    class Impostor(bad.MeanPrice):
        """Takes the built-in observer's name."""

        name = "price_dispersion"

    assert "taken" not in str(check_observer(PriceDispersion))
    assert "is the built-in observer" in _failure(check_observer(Impostor), "has a name and docstring")


SUMS = "probabilities of the sellers and the outside option sum to 1"


@pytest.mark.parametrize(
    ("cls", "failing", "says"),
    [
        (bad.BinaryLogits, SUMS, "> 1"),
        (bad.NoOutsideOption, SUMS, "outside option is missing"),
        (bad.IgnoresMask, "(`allowed`) gets probability 0", "`allowed` hides"),
        (bad.Transposed, "probabilities have shape (J, n)", "expected (J, n)"),
        (bad.PriceLovers, "own probability does not rise with its own price", "rose from"),
        (bad.GreedySampler, "sampling (choose, reroute) agrees with probabilities", "frequencies"),
        (bad.ShiftsInPlace, "is a pure function of its arguments", "wrote into its arguments"),
    ],
)
def test_each_choice_model_check_catches_its_broken_model(cls: type, failing: str, says: str) -> None:
    text = _failure(check_choice_model(cls), failing)
    assert says in text and text.startswith(f"conformance of choice model {cls.name!r}: FAIL")


def test_probabilities_that_do_not_sum_to_one_fail_assert_choice_model_conforms() -> None:
    with pytest.raises(AssertionError, match=re.escape(f"[FAIL] {SUMS}")):
        assert_choice_model_conforms(bad.BinaryLogits)


def test_sound_choice_models_pass() -> None:
    for cls, params in ((Logit, {}), (bad.GoodShares, {"outside_weight": 0.8})):  # Logit mu=0: its Nash takes seconds
        report = assert_choice_model_conforms(cls, params)
        assert len(report.checks) == 11


def test_a_choice_model_that_cannot_be_built_fails_once_and_skips_the_rest() -> None:
    report = check_choice_model(bad.GoodShares, {"outside_weigth": 0.8})
    assert report.failed[0].name == "is built as cls(mu=..., **params)" and "outside_weigth" in report.failed[0].detail
    assert all(c.detail == "not run: the model could not be built" for c in report.failed[1:-1])


def test_json_problem_accepts_json_and_names_the_first_offender() -> None:
    assert json_problem({"a": [1, 2.5, None, True, "x", {"b": np.float64(0.5)}]}) is None
    assert json_problem({"a": [1, float("inf")]}) == "result['a'][1] is inf, not JSON (write None for a missing value)"
    assert "has the key 1 (int)" in json_problem({1: 2})
    assert "numpy.ndarray" in json_problem({"a": np.zeros(2)})


def test_fast_mode_runs_short_and_still_catches_the_mistakes_it_is_for() -> None:
    for cls, failing in ((NanLater, "posts valid prices"), (SharedMemory, "keeps no state shared")):
        report = check_strategy(cls, fast=True)
        assert report.fast and any(failing in c.name for c in report.failed), str(report)
    assert FAST_STEPS <= 30
