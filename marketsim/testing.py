"""The conformance kit: checks a strategy class against the strategy contract, for plugin authors.

In a plugin's own test suite::

    from marketsim.testing import assert_conforms
    def test_my_strategy_conforms():
        assert_conforms(MyStrategy)

``check_strategy`` returns a ``Report`` (one line per check, plus the time per decision) instead of
raising. Every strategy runs in small markets of its own: a logit duopoly, a three-seller market
with capacities and stock, and a monopoly, against a fixed-price rival.
"""

from __future__ import annotations

import importlib
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel
from marketsim.registry import Registry, load_registry
from marketsim.strategy import DEFAULT_CLASSIFIER, Strategy, parameters


class _Rival(Strategy):
    """The kit's own opponent: a constant price."""

    name = "_conformance_rival"

    def price(self, obs):
        return 1.7


def _markets(name: str, params: Mapping[str, Any], steps: int, seed: int) -> list[Scenario]:
    """The markets a strategy is tried in (seat 0 is the strategy under test)."""
    base = {"name": "conformance", "seed": seed, "steps": steps, "demand": {"mode": "expected"}}
    me = {"name": "me", "strategy": name, "params": dict(params), "price_min": 1.0, "price_max": 2.5}
    rival = {"name": "rival", "strategy": _Rival.name, "price_min": 1.0, "price_max": 2.5}
    logit = {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25}
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


def _registry_for(cls: type[Strategy]) -> Registry:
    registry = load_registry(entry_points=False)  # the built-in choice models, no other plugin
    registry.register(cls, "conformance")
    registry.register(_Rival, "conformance")
    return registry


def _run(cls: type[Strategy], params: Mapping[str, Any], scenario: Scenario, steps: int) -> tuple[MarketModel, list]:
    model = MarketModel(scenario, _registry_for(cls))
    prices = []
    for _ in range(steps):
        model.step()
        prices.append(model.sellers[0].price)
    return model, prices


def _checks(cls: type[Strategy], params: Mapping[str, Any], steps: int, seed: int) -> list[tuple[str, Callable]]:
    markets = _markets(cls.name, params, steps, seed)

    def metadata() -> str | None:
        missing = [k for k in DEFAULT_CLASSIFIER if k not in cls.classifier]
        if not isinstance(cls.name, str) or not cls.name:
            return "needs a non-empty string `name`"
        if not (cls.__doc__ or "").strip():
            return "needs a docstring saying what it does and where it comes from"
        if missing:
            return f"classifier lacks {missing}"
        required = [p.name for p in parameters(cls) if p.required and p.name not in params]
        return f"parameters without defaults: {required}" if required else None

    def valid_prices() -> str | None:
        for scenario in markets:
            _, prices = _run(cls, params, scenario, steps)  # the model raises on an invalid price
            if not all(np.isfinite(prices)):
                return f"non-finite price in market with {len(scenario.sellers)} seller entries"
        return None

    def reproducible() -> str | None:
        first, second = _run(cls, params, markets[1], steps)[1], _run(cls, params, markets[1], steps)[1]
        return None if first == second else "two runs with the same seed posted different prices"

    def independent() -> str | None:
        alone = _run(cls, params, markets[0], steps)[1]
        _run(cls, params, markets[1], steps)  # another instance in between must not disturb the first
        again = _run(cls, params, markets[0], steps)[1]
        return None if alone == again else "instances share state: a run changed after another instance ran"

    def round_trip() -> str | None:
        model, _ = _run(cls, params, markets[0], max(steps // 2, 1))
        saved = model.sellers[0].strategy.state_dict()
        fresh = MarketModel(markets[0], _registry_for(cls)).sellers[0].strategy
        fresh.load_state_dict(saved)
        return (
            None
            if states_equal(fresh.state_dict(), saved)
            else "load_state_dict(state_dict()) does not restore the state"
        )

    def global_random() -> str | None:
        if cls.classifier.get("needs_torch"):  # loaded before the snapshot: torch strategies import it lazily
            importlib.import_module("torch")
        np_state, py_state, torch_state = np.random.get_state(), random.getstate(), _torch_rng_state()
        _run(cls, params, markets[1], steps)
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

    return [
        ("has a name, docstring, classifier and defaults", metadata),
        ("posts valid prices in several markets (duopoly, stocked triopoly, monopoly)", valid_prices),
        ("is reproducible under a seed", reproducible),
        ("keeps no state shared between instances", independent),
        ("state_dict / load_state_dict round-trips", round_trip),
        ("leaves the global random state alone", global_random),
    ]


def _torch_rng_state() -> Any:
    """torch's global CPU generator state, when torch has been imported (None otherwise)."""
    torch = sys.modules.get("torch")
    return torch.random.get_rng_state() if torch is not None else None


def states_equal(a: Any, b: Any) -> bool:
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


def check_strategy(
    cls: type[Strategy], params: Mapping[str, Any] | None = None, steps: int = 300, seed: int = 0
) -> Report:
    """Run every conformance check on ``cls`` (built with ``params``); never raises for a failing check."""
    params = dict(params or {})
    report = Report(getattr(cls, "name", cls.__name__))
    for name, check in _checks(cls, params, steps, seed):
        try:
            problem = check()
        except Exception as exc:  # a crash is a failed check, with the reason
            problem = f"{type(exc).__name__}: {exc}"
        report.checks.append(Check(name, problem is None, problem or ""))
    try:
        model = MarketModel(_markets(cls.name, params, steps, seed)[0], _registry_for(cls))
        start = time.perf_counter()
        for _ in range(50):
            model.sellers[0].strategy.price(model.observations[0])
        report.seconds_per_decision = (time.perf_counter() - start) / 50
    except Exception:
        pass
    return report


def assert_conforms(cls: type[Strategy], params: Mapping[str, Any] | None = None, **kwargs: Any) -> Report:
    """pytest-friendly: raise AssertionError listing the failed checks, else return the report."""
    report = check_strategy(cls, params, **kwargs)
    assert report.ok, str(report)
    return report
