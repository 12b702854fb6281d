"""The conformance kit: the strategy contract as checks, for plugin authors and for marketsim's own tests.

In a plugin's own test suite::

    from marketsim.testing import assert_conforms
    def test_my_strategy_conforms():
        assert_conforms(MyStrategy)

``check_strategy`` returns a ``Report`` (one line per check, plus the time per decision) instead of
raising. Every strategy plays seat 0 of small real markets, stepped through the market step API
(``marketsim.market.engine.Market``): a logit duopoly, a three-seller market of sampled consumers with
capacity and stock, and a monopoly with a narrow price range, against rivals that wander over their range.
marketsim runs this same kit over every registered strategy (tests/test_strategy.py).
"""

from __future__ import annotations

import copy
import importlib
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.market.engine import Market
from marketsim.registry import load_registry
from marketsim.strategy import (
    DEFAULT_CLASSIFIER,
    STRATEGY_API_VERSION,
    Observation,
    Strategy,
    checked_price,
    parameters,
)

OBSERVES = frozenset({"own", "competitors", "demand_model"})  # the parts of an observation a classifier may name
RIVAL_SEED = 20240611  # the rivals' and consumers' draws do not depend on the seed a strategy is given


class _Rival(Strategy):
    """The kit's opponent: wanders over its range (uniform draws, Nash, monopoly, its bounds) so observations vary."""

    name = "_conformance_rival"
    classifier = {"stochastic": True}

    def price(self, obs: Observation) -> float:
        m = self.market
        options = (
            self.rng.uniform(m.price_min, m.price_max),
            m.nash_prices[m.index],
            m.monopoly_prices[m.index],
            m.price_min,
            m.price_max,
        )
        return float(options[int(self.rng.integers(len(options)))])


MARKETS = ("duopoly", "stocked triopoly", "monopoly")


def _markets(name: str, params: Mapping[str, Any], steps: int, seed: int) -> list[Scenario]:
    """The markets a strategy is tried in (seat 0 is the strategy under test), in the order of ``MARKETS``."""
    base = {"name": "conformance", "seed": seed, "steps": steps, "demand": {"mode": "expected"}}
    me = {"name": "me", "strategy": name, "params": dict(params), "price_min": 1.0, "price_max": 2.5}
    rival = {"name": "rival", "strategy": _Rival.name, "price_min": 1.0, "price_max": 2.5}
    logit = {"size": 10, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25}
    stocked = {**me, "capacity": 300, "inventory": {"initial": 5000, "restock": {"every": 20, "up_to": 5000}}}
    return [
        Scenario.model_validate({**base, "consumers": logit, "sellers": [me, rival]}),
        Scenario.model_validate(
            {
                **base,
                "demand": {"mode": "agents"},
                "consumers": {"size": 1000, "wtp": {"distribution": "uniform", "low": 0, "high": 1}, "mu": 0.3},
                "sellers": [stocked, rival, {**rival, "name": "rival2", "quality": 2.2}],
            }
        ),
        Scenario.model_validate({**base, "consumers": logit, "sellers": [{**me, "price_min": 1.2, "price_max": 1.4}]}),
    ]


class Session:
    """One strategy instance in seat 0 of a market, against the kit's rivals, stepped by hand.

    ``step`` asks every seat for a price (finite and >= 0, or ``InvalidPriceError``), clears the market and,
    when ``learn``, hands every strategy its outcome. ``copy.deepcopy`` clones it mid-way.
    """

    def __init__(self, cls: type[Strategy], params: Mapping[str, Any], market: Market, seed: int) -> None:
        self.market = market
        self.rngs = [np.random.default_rng(seed)] + [
            np.random.default_rng(RIVAL_SEED + i) for i in range(1, market.n_sellers)
        ]
        self.strategies: list[Strategy] = [cls(**params)] + [_Rival() for _ in range(1, market.n_sellers)]
        for i, strategy in enumerate(self.strategies):
            strategy.setup(market.info(i), self.rngs[i])
        self.obs = market.reset(RIVAL_SEED)

    @property
    def strategy(self) -> Strategy:
        """The strategy under test."""
        return self.strategies[0]

    def step(self, learn: bool = True) -> float:
        """One market step; returns the tested strategy's price."""
        prices = [checked_price(s.name, s.price(o), o.step) for s, o in zip(self.strategies, self.obs)]
        result = self.market.step(prices)  # a valid price outside the seller's range is clipped to it
        following = self.market.observations()
        if learn:
            for strategy, outcome in zip(self.strategies, self.market.outcomes(result, following)):
                strategy.learn(outcome)
        self.obs = following
        return float(result.prices[0])

    def play(self, steps: int, learn: bool = True) -> list[float]:
        """``steps`` market steps; the tested strategy's prices."""
        return [self.step(learn) for _ in range(steps)]


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class Report:
    """Every check's outcome for one strategy class, and its speed."""

    strategy: str
    checks: list[Check] = field(default_factory=list)
    seconds_per_decision: float = float("nan")

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def __str__(self) -> str:
        lines = [f"conformance of {self.strategy!r}: {'PASS' if self.ok else 'FAIL'}"]
        lines += [
            f"  [{'ok' if c.passed else 'FAIL'}] {c.name}{': ' + c.detail if c.detail else ''}" for c in self.checks
        ]
        lines.append(f"  time per decision: {self.seconds_per_decision * 1e6:,.1f} µs")
        return "\n".join(lines)


def is_plain(value: Any) -> bool:
    """Numbers, strings, None, numpy arrays/scalars, torch tensors and lists/tuples/dicts of them (str keys)."""
    if value is None or isinstance(value, bool | int | float | str | np.ndarray | np.generic):
        return True
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):  # a tensor, without importing torch
        return True
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def _identity_problem(cls: type[Strategy]) -> str | None:
    """Name, base class, API version and docstring."""
    if not isinstance(cls.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name):
        return "needs a non-empty snake_case string `name`"
    if not issubclass(cls, Strategy) or cls.api_version != STRATEGY_API_VERSION:
        return f"must subclass marketsim.Strategy at API version {STRATEGY_API_VERSION}"
    if not (cls.__doc__ or "").strip():
        return "needs a docstring saying what it does and where it comes from"
    return None


def _classifier_problem(cls: type[Strategy]) -> str | None:
    """Every default key, boolean flags, and ``observes`` a tuple of known parts."""
    classifier = cls.classifier
    missing = [k for k in DEFAULT_CLASSIFIER if k not in classifier]
    if missing:
        return f"classifier lacks {missing}"
    flags = [k for k in ("learns", "stochastic", "needs_torch", "reactive") if not isinstance(classifier[k], bool)]
    if flags:
        return f"classifier flags must be True or False: {flags}"
    observes = classifier["observes"]
    if not isinstance(observes, tuple) or not set(observes) <= OBSERVES:
        return f"classifier 'observes' must be a tuple drawn from {sorted(OBSERVES)}, got {observes!r}"
    return None


def _params_problem(cls: type[Strategy], params: Mapping[str, Any]) -> str | None:
    """Defaults for every parameter not given, and ``params`` / ``repr`` that rebuild the instance."""
    required = [p.name for p in parameters(cls) if p.required and p.name not in params]
    if required:
        return f"parameters without defaults: {required}"
    instance = cls(**params)
    if set(instance.params) != {p.name for p in parameters(cls)}:
        return "`params` must name exactly the constructor's keyword parameters"
    if cls(**instance.params).params != instance.params:
        return "cls(**instance.params) does not rebuild the same parameters"
    if not repr(instance).startswith(type(instance).__name__ + "("):
        return "repr should read ClassName(param=value, ...)"
    return None


class _Kit:
    """The checks for one strategy class, sharing the markets (built once: their benchmarks take a while)."""

    def __init__(self, cls: type[Strategy], params: Mapping[str, Any], steps: int, seed: int) -> None:
        self.cls, self.params, self.steps, self.seed = cls, dict(params), steps, seed
        registry = load_registry(entry_points=False)  # the built-in choice models, no other plugin
        self.markets = [Market(s, registry) for s in _markets(cls.name, params, steps, seed)]
        for market in self.markets:
            _ = market.benchmarks  # computed once here, then copied with every session's market

    def session(self, market: int, seed: int | None = None) -> Session:
        """A fresh instance of the strategy in a fresh copy of market ``market``."""
        fresh = copy.deepcopy(self.markets[market])
        return Session(self.cls, self.params, fresh, self.seed if seed is None else seed)

    def play(self, market: int, seed: int | None = None, learn: bool = True) -> list[float]:
        """The tested strategy's prices over a whole run."""
        return self.session(market, seed).play(self.steps, learn)

    def metadata(self) -> str | None:
        return _identity_problem(self.cls) or _classifier_problem(self.cls) or _params_problem(self.cls, self.params)

    def valid_prices(self) -> str | None:
        for k, name in enumerate(MARKETS):
            prices = self.play(k)  # Session.step raises on an invalid price
            if len(prices) != self.steps:
                return f"the {name} did not run to the end"
        return None

    def reproducible(self) -> str | None:
        for k in (0, 1):
            if self.play(k, seed=11) != self.play(k, seed=11):
                return f"two runs with the same seed posted different prices in the {MARKETS[k]}"
        return None

    def seed_free(self) -> str | None:
        if self.cls.classifier["stochastic"]:
            return None  # its prices may depend on the seed
        same = self.play(0, seed=1) == self.play(0, seed=2)
        return None if same else "not classified stochastic, but its prices depend on the seed"

    def learn_free(self) -> str | None:
        if self.cls.classifier["learns"]:
            return None
        same = self.play(1, learn=True) == self.play(1, learn=False)
        return None if same else "not classified as learning, but learn() changed its prices"

    def independent(self) -> str | None:
        alone = self.play(1, seed=5)
        a, b = self.session(1, seed=5), self.session(1, seed=5)  # in lockstep: shared state shows up
        lockstep = [(a.step(), b.step()) for _ in range(self.steps)]
        if [p for p, _ in lockstep] != alone or [q for _, q in lockstep] != alone:
            return "instances share state: two instances stepped side by side differ from one alone"
        again = self.play(1, seed=5)
        return None if again == alone else "instances share state: a run changed after another instance ran"

    def round_trip(self) -> str | None:
        for k in (0, 1):
            problem = self._round_trip(k)
            if problem is not None:
                return f"{problem} (in the {MARKETS[k]})"
        return None

    def _round_trip(self, market: int) -> str | None:
        """Mid-run, a fresh instance given the state (and the generator's state) continues identically."""
        half = max(self.steps // 2, 1)
        session = self.session(market, seed=3)
        session.play(half)
        state = session.strategy.state_dict()
        if not isinstance(state, dict) or not is_plain(state):
            return f"state_dict must be a dict of plain data, got {type(state).__name__}"
        twin = copy.deepcopy(session)  # the same market and rivals from here on
        fresh = self.cls(**self.params)
        rng = np.random.default_rng(999)
        fresh.setup(twin.market.info(0), rng)
        rng.bit_generator.state = session.rngs[0].bit_generator.state  # the generator is the seat's, not state
        fresh.load_state_dict(copy.deepcopy(state))
        twin.strategies[0] = fresh
        if not states_equal(fresh.state_dict(), state):
            return "load_state_dict(state_dict()) does not restore the state"
        if session.play(half) != twin.play(half):
            return "an instance loaded from state_dict() prices differently from the original"
        return None

    def global_random(self) -> str | None:
        if self.cls.classifier.get("needs_torch"):  # loaded before the snapshot: torch strategies import it lazily
            importlib.import_module("torch")
        np_state, py_state, torch_state = np.random.get_state(), random.getstate(), _torch_rng_state()
        for k in range(len(MARKETS)):
            session = self.session(k)
            session.play(self.steps)
            session.strategy.load_state_dict(session.strategy.state_dict())
        same = random.getstate() == py_state and all(
            np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
            for x, y in zip(np.random.get_state(), np_state)
        )
        if not same:
            return "used the global random state (random / np.random)"
        after = _torch_rng_state()
        if torch_state is not None and after is not None and not bool((torch_state == after).all()):
            return "used torch's global random generator (draw from a torch.Generator seeded from self.rng)"
        return None

    def checks(self) -> list[tuple[str, Callable[[], str | None]]]:
        return [
            ("has a name, docstring, classifier and defaults", self.metadata),
            ("posts valid prices in several markets (duopoly, stocked triopoly, monopoly)", self.valid_prices),
            ("is reproducible under a seed", self.reproducible),
            ("ignores the seed unless classified stochastic", self.seed_free),
            ("ignores learn() unless classified as learning", self.learn_free),
            ("keeps no state shared between instances", self.independent),
            ("state_dict / load_state_dict round-trips", self.round_trip),
            ("leaves the global random state alone", self.global_random),
        ]

    def seconds_per_decision(self, decisions: int = 50) -> float:
        """Mean wall time of one ``price`` call on the duopoly's first observation."""
        session = self.session(0)
        start = time.perf_counter()
        for _ in range(decisions):
            session.strategy.price(session.obs[0])
        return (time.perf_counter() - start) / decisions


def _torch_rng_state() -> Any:
    """torch's global CPU generator state, when torch has been imported (None otherwise)."""
    torch = sys.modules.get("torch")
    return torch.random.get_rng_state() if torch is not None else None


def states_equal(a: Any, b: Any) -> bool:  # noqa: C901 - one branch per kind of plain state, kept together
    """Deep equality of plain state (dicts, lists, tuples, numbers, numpy arrays, torch tensors); NaN equals NaN.

    Public so that plugin authors can compare ``state_dict()`` results in their own tests.
    """
    if hasattr(a, "detach") and hasattr(b, "detach"):  # torch tensors, without importing torch
        x, y = a.detach().cpu(), b.detach().cpu()
        return x.shape == y.shape and x.dtype == y.dtype and bool(((x == y) | ((x != x) & (y != y))).all())
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(states_equal(p, q) for p, q in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=True))
        x, y = x.astype(object), y.astype(object)
        return x.shape == y.shape and all(states_equal(p, q) for p, q in zip(x.ravel(), y.ravel()))
    return a == b or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))


def _label(cls: type) -> str:
    """The name a report goes by: the strategy's ``name``, else the class name."""
    name = cls.name if isinstance(cls, type) and issubclass(cls, Strategy) else ""
    return name if isinstance(name, str) and name else cls.__name__


def check_strategy(
    cls: type[Strategy], params: Mapping[str, Any] | None = None, steps: int = 300, seed: int = 0
) -> Report:
    """Run every conformance check on ``cls`` (built with ``params``); never raises for a failing check."""
    params = dict(params or {})
    report = Report(_label(cls))
    try:
        kit = _Kit(cls, params, steps, seed)
    except Exception as exc:  # the markets could not be built around it (a bad name, say)
        report.checks.append(Check("builds the kit's markets around it", False, f"{type(exc).__name__}: {exc}"))
        return report
    for name, check in kit.checks():
        try:
            problem = check()
        except Exception as exc:  # a crash is a failed check, with the reason
            problem = f"{type(exc).__name__}: {exc}"
        report.checks.append(Check(name, problem is None, problem or ""))
    try:
        report.seconds_per_decision = kit.seconds_per_decision()
    except Exception:
        pass
    return report


def assert_conforms(cls: type[Strategy], params: Mapping[str, Any] | None = None, **kwargs: Any) -> Report:
    """pytest-friendly: raise AssertionError listing the failed checks, else return the report."""
    report = check_strategy(cls, params, **kwargs)
    assert report.ok, str(report)
    return report
