"""The strategy contract (``marketsim.strategy``) and a conformance run over every registered strategy.

The first half tests the contract's own pieces (frozen data, parameters, classifier, price checks).
The second half runs the shipped conformance kit (``marketsim.testing``) over *every* name in
``default_registry()``: built-ins and any installed third-party plugin alike must pass it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from marketsim.market.economics import ExpectedDemand
from marketsim.market.step import observation
from marketsim.market.step import outcome as step_outcome
from marketsim.registry import default_registry
from marketsim.strategy import (
    DEFAULT_CLASSIFIER,
    STRATEGY_API_VERSION,
    InvalidPriceError,
    MarketInfo,
    Observation,
    Parameter,
    Strategy,
    checked_price,
    parameters,
)
from marketsim.testing import assert_conforms

# Calvano et al. (2020) logit duopoly: quality 2, cost 1, outside option 0, mu 0.25.
NASH, MONOPOLY = 1.4729, 1.9249
DEMAND = ExpectedDemand(
    quality=np.array([2.0, 2.0]),
    costs=np.array([1.0, 1.0]),
    outside=0.0,
    mu=0.25,
    wtp=np.array([0.0]),
    mass=np.array([1.0]),
)


def logit_market(index: int = 0, price_min: float = 0.0, price_max: float = 3.0) -> MarketInfo:
    return MarketInfo(
        index=index,
        n_sellers=2,
        costs=(1.0, 1.0),
        price_min=price_min,
        price_max=price_max,
        nash_prices=(NASH, NASH),
        monopoly_prices=(MONOPOLY, MONOPOLY),
        expected_profit=DEMAND.profits,
    )


def an_observation(**changes: Any) -> Observation:
    base = observation(
        step=3,
        own_price=1.5,
        cost=1.0,
        last_units=4.0,
        last_profit=2.0,
        competitor_prices=(1.6,),
        price_min=0.0,
        price_max=3.0,
    )
    return dataclasses.replace(base, **changes)


# --- frozen data ---------------------------------------------------------------------------------------


def test_observation_is_frozen() -> None:
    obs = an_observation()
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.own_price = 2.0  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        obs.extra = 1  # type: ignore[attr-defined]
    assert obs == an_observation() and hash(obs) == hash(an_observation())


def test_outcome_is_frozen() -> None:
    outcome = step_outcome(
        step=0,
        price=1.5,
        units=2.0,
        cost=1.0,
        profit=1.0,
        competitor_prices=(1.6,),
        next_observation=an_observation(step=1),
    )
    assert (outcome.revenue, outcome.variable_cost, outcome.holding_cost) == (3.0, 2.0, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.profit = 99.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.next_observation.step = 7  # type: ignore[misc]


def test_market_info_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        logit_market().index = 1  # type: ignore[misc]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_own_profit_inserts_own_price_at_index(index: int) -> None:
    seen: list[np.ndarray] = []

    def profit(prices: np.ndarray) -> np.ndarray:
        seen.append(np.array(prices))
        return np.asarray(prices, dtype=float) * 10

    market = MarketInfo(index, 3, (1.0,) * 3, 0.0, 5.0, (1.0,) * 3, (2.0,) * 3, profit)
    value = market.own_profit(9.0, (1.0, 2.0))
    expected = [1.0, 2.0]
    expected.insert(index, 9.0)
    assert seen[0].tolist() == expected
    assert value == 90.0 and type(value) is float


def test_own_profit_on_the_logit_duopoly() -> None:
    left, right = logit_market(0), logit_market(1)
    assert left.own_profit(1.5, (1.7,)) == pytest.approx(DEMAND.profits(np.array([1.5, 1.7]))[0])
    assert right.own_profit(1.5, (1.7,)) == pytest.approx(DEMAND.profits(np.array([1.7, 1.5]))[1])
    # the Calvano Nash profit
    assert left.own_profit(NASH, (NASH,)) == pytest.approx(0.2229, abs=1e-4)


# --- parameters, params, classifier ----------------------------------------------------------------


class Tuned(Strategy):
    """A test strategy with a spread of parameter kinds."""

    name = "tuned"
    classifier: ClassVar[Mapping[str, Any]] = {"learns": True, "observes": ("own", "competitors")}

    def __init__(self, alpha: float = 0.1, grid: int = 5, label: str | None = None, *, tag: str = "x") -> None:
        self.alpha = alpha
        self.grid = grid
        self.label = label
        self.tag = tag

    def price(self, obs: Observation) -> float:
        return obs.price_min


class Subtuned(Tuned):
    """Inherits everything."""

    name = "subtuned"


class NeedsArg(Strategy):
    """Has a required parameter and swallows extras."""

    name = "needs_arg"

    def __init__(self, level: float, *args: Any, **kwargs: Any) -> None:
        self.level = level

    def price(self, obs: Observation) -> float:
        return self.level


def test_parameters_reads_names_defaults_and_annotations() -> None:
    assert parameters(Tuned) == [
        Parameter("alpha", 0.1, float, False),
        Parameter("grid", 5, int, False),
        Parameter("label", None, str | None, False),
        Parameter("tag", "x", str, False),
    ]
    assert parameters(NeedsArg) == [Parameter("level", None, float, True)]
    assert parameters(Strategy) == []


FUTURE_MODULE = '''\
from __future__ import annotations

from typing import Literal

from marketsim.strategy import Strategy


class Future(Strategy):
    """String annotations everywhere."""

    name = "future"

    def __init__(
        self,
        rate: float = 0.5,
        mode: Literal["a", "b"] = "a",
        cap: int | None = None,
        broken: NoSuchType = 1,
        bare=2,
    ) -> None:
        self.rate = rate
        self.mode = mode
        self.cap = cap
        self.broken = broken
        self.bare = bare

    def price(self, obs):
        return self.rate
'''


@pytest.fixture
def future_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = tmp_path / "fake_future_strategy.py"
    path.write_text(FUTURE_MODULE)
    spec = importlib.util.spec_from_file_location("fake_future_strategy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fake_future_strategy", module)
    spec.loader.exec_module(module)
    return module


def test_parameters_resolves_string_annotations(future_module: Any) -> None:
    from typing import Literal

    params = {p.name: p for p in parameters(future_module.Future)}
    assert list(params) == ["rate", "mode", "cap", "broken", "bare"]
    assert params["rate"].annotation is float
    assert params["mode"].annotation == Literal["a", "b"]
    assert params["cap"].annotation == int | None
    # one unresolvable annotation costs only itself its type
    assert params["broken"].annotation is Any
    assert params["bare"].annotation is Any
    assert [p.default for p in params.values()] == [0.5, "a", None, 1, 2]
    assert not any(p.required for p in params.values())


def test_params_round_trip() -> None:
    s = Tuned(alpha=0.3, grid=9, label="hi", tag="y")
    assert s.params == {"alpha": 0.3, "grid": 9, "label": "hi", "tag": "y"}
    assert Tuned(**s.params).params == s.params
    assert Tuned().params == {"alpha": 0.1, "grid": 5, "label": None, "tag": "x"}
    assert repr(s) == "Tuned(alpha=0.3, grid=9, label='hi', tag='y')"
    assert NeedsArg(2.0).params == {"level": 2.0}


def test_classifier_is_merged_over_the_defaults() -> None:
    assert dict(Strategy.classifier) == dict(DEFAULT_CLASSIFIER)
    assert Tuned.classifier == {**DEFAULT_CLASSIFIER, "learns": True, "observes": ("own", "competitors")}
    assert Subtuned.classifier == Tuned.classifier
    assert NeedsArg.classifier == dict(DEFAULT_CLASSIFIER)
    assert DEFAULT_CLASSIFIER == {
        "learns": False,
        "stochastic": False,
        "needs_torch": False,
        "observes": ("own",),
        "reactive": False,
    }
    assert Tuned.api_version == STRATEGY_API_VERSION


def test_base_class_defaults() -> None:
    s = NeedsArg(1.0)
    market, rng = logit_market(), np.random.default_rng(0)
    s.setup(market, rng)
    assert s.market is market and s.rng is rng
    assert s.learn(None) is None  # type: ignore[arg-type]  # rule-based strategies ignore outcomes
    assert s.state_dict() == {}
    s.load_state_dict({})
    with pytest.raises(ValueError, match="needs_arg"):
        s.load_state_dict({"q": [1.0]})
    with pytest.raises(NotImplementedError):
        Strategy().price(an_observation())


# --- checked_price -----------------------------------------------------------------------------------------

GOOD_PRICES = [
    (0, 0.0),
    (0.0, 0.0),
    (1, 1.0),
    (1.5, 1.5),
    (1e300, 1e300),
    (np.float64(2.5), 2.5),
    (np.float32(1.25), 1.25),
    (np.float16(0.5), 0.5),
    (np.int64(3), 3.0),
    (np.int32(0), 0.0),
    (np.uint8(7), 7.0),
    (Fraction(3, 2), 1.5),
]

BAD_PRICES = [
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -1e-12,
    True,
    False,
    None,
    "1.5",
    b"1.5",
    [1.5],
    (1.5,),
    1 + 0j,
    np.nan,
    np.inf,
    np.float64("nan"),
    np.float32("-inf"),
    np.float64(-0.5),
    np.int64(-1),
    np.bool_(True),
    10**400,  # an int too large for a float
]


@pytest.mark.parametrize(("value", "expected"), GOOD_PRICES, ids=repr)
def test_checked_price_accepts_finite_non_negative_reals(value: object, expected: float) -> None:
    price = checked_price("tuned", value)
    assert type(price) is float
    assert price == expected


def test_checked_price_normalises_negative_zero() -> None:
    assert math.copysign(1.0, checked_price("tuned", -0.0)) == 1.0


@pytest.mark.parametrize("value", BAD_PRICES, ids=repr)
def test_checked_price_rejects_invalid_prices(value: object) -> None:
    with pytest.raises(InvalidPriceError) as info:
        checked_price("my_strategy", value, step=12)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.strategy == "my_strategy" and err.step == 12 and err.value is value
    assert "'my_strategy'" in str(err) and "step 12" in str(err)


def test_invalid_price_message_without_step_and_short_for_huge_values() -> None:
    with pytest.raises(InvalidPriceError) as info:
        checked_price("s", 10**400)
    assert "step" not in str(info.value)
    assert len(str(info.value)) < 300


# --- the contract: the shipped conformance kit over every registered strategy ------------------------------

REGISTRY = default_registry()
#: Run with the kit elsewhere, with what they need: sb3_policy plays a saved policy file whose input size is fixed by
#: the market it was trained on (tests/test_sb3.py gives one file per kit market); llm_pricer needs an endpoint
#: (tests/test_llm_pricer.py runs the kit against the loopback stub server).
ELSEWHERE = {"sb3_policy", "llm_pricer"}
NAMES = [n for n in REGISTRY.names() if n not in ELSEWHERE]
STEPS = 50


def _kit_case(name: str) -> object:
    """Torch learners take seconds each through the kit (a3c ~19 s): they run with the slow suite."""
    slow = REGISTRY.get(name).cls.classifier["needs_torch"]
    return pytest.param(name, marks=pytest.mark.slow) if slow else name


@pytest.mark.parametrize("name", [_kit_case(n) for n in NAMES])
def test_every_registered_strategy_passes_the_conformance_kit(name: str) -> None:
    cls = REGISTRY.get(name).cls
    if cls.classifier["needs_torch"] and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch, which is not installed")
    assert cls.name == name  # registered under its own name
    report = assert_conforms(cls, steps=STEPS)
    assert report.seconds_per_decision > 0
