"""Tests of the example plugin, run with its own suite (``python -m pytest plugins/econometric_pricer``).

They need the plugin installed (``pip install ./plugins/econometric_pricer``): the registry test checks
that marketsim finds it through the entry point with no other step.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel
from marketsim.registry import load_registry
from marketsim.testing import assert_conforms
from marketsim_econometric import EconometricPricer
from marketsim_econometric.pricer import fit_demand, optimal_price


def market(rival: dict | None, seed: int, mode: str = "expected") -> Scenario:
    """The logit duopoly of Calvano et al. (2020) (or its monopoly) with the pricer in seat 0."""
    bounds = {"price_min": 1.0, "price_max": 2.5}
    sellers = [{"name": "me", "strategy": "econometric_pricer", **bounds}]
    if rival is not None:
        sellers.append({"name": "rival", **bounds, **rival})
    size = 1 if mode == "expected" else 5000
    return Scenario.model_validate(
        {
            "name": "econometric",
            "seed": seed,
            "steps": 400,
            "consumers": {"size": size, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
            "demand": {"mode": mode},
            "sellers": sellers,
        }
    )


def settled_price(scenario: Scenario, steps: int = 400) -> tuple[float, MarketModel]:
    """Mean of the pricer's last 100 prices."""
    model = MarketModel(scenario)
    prices = []
    for _ in range(steps):
        model.step()
        prices.append(model.sellers[0].price)
    return float(np.mean(prices[-100:])), model


def best_response(model: MarketModel, rival_prices: tuple[float, ...]) -> float:
    info = model.sellers[0].strategy.market
    return minimize_scalar(lambda p: -info.own_profit(p, rival_prices), bounds=(1.0, 2.5), method="bounded").x


def test_marketsim_finds_the_plugin_through_its_entry_point() -> None:
    registry = load_registry()
    entry = registry.get("econometric_pricer")
    assert entry.cls is EconometricPricer
    assert entry.distribution == "marketsim-econometric"


def test_conforms_to_the_strategy_contract() -> None:
    assert_conforms(EconometricPricer)


def test_fit_recovers_a_semilog_slope_and_its_optimum() -> None:
    prices = np.linspace(1.0, 2.0, 20)
    units = np.exp(3.0 - 2.0 * prices)
    slope = fit_demand(prices, units, np.empty(0), "semilog")
    assert slope == pytest.approx(-2.0)
    assert optimal_price(slope, 1.0, "semilog") == pytest.approx(1.5)  # cost − 1/b


def test_fit_recovers_a_constant_elasticity() -> None:
    prices = np.linspace(1.0, 2.0, 20)
    rivals = np.linspace(1.5, 1.2, 20) ** 2
    units = 5.0 * prices**-3.0 * rivals**0.5
    assert fit_demand(prices, units, rivals, "loglog") == pytest.approx(-3.0)
    assert optimal_price(-3.0, 1.0, "loglog") == pytest.approx(1.5)  # cost·b/(1+b)
    assert optimal_price(-0.5, 1.0, "loglog") is None  # inelastic: no finite optimum


@pytest.mark.parametrize("mode", ["expected", "agents"])
@pytest.mark.parametrize("rival_price", [1.47, 1.8])
def test_settles_on_the_best_response_to_a_fixed_rival(mode: str, rival_price: float) -> None:
    rival = {"strategy": "fixed_price", "params": {"price": rival_price}}
    for seed in range(3):
        price, model = settled_price(market(rival, seed, mode))
        assert price == pytest.approx(best_response(model, (rival_price,)), abs=0.02)


def test_a_monopolist_finds_the_monopoly_price() -> None:
    price, model = settled_price(market(None, 1))
    assert price == pytest.approx(best_response(model, ()), abs=0.02)


def test_seeded_runs_repeat() -> None:
    a = settled_price(market({"strategy": "match_lowest"}, 5), steps=100)[0]
    b = settled_price(market({"strategy": "match_lowest"}, 5), steps=100)[0]
    assert a == b
