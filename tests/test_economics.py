"""Nash and joint-monopoly benchmarks, profit gain, surplus and concentration."""

from __future__ import annotations

import numpy as np
import pytest

from marketsim.market.economics import ExpectedDemand, compute_benchmarks, hhi


def logit(n: int = 2, quality=None, costs=None, mu: float = 0.25, wtp=None, mass=None) -> ExpectedDemand:
    return ExpectedDemand(
        quality=np.full(n, 2.0) if quality is None else np.asarray(quality, float),
        costs=np.full(n, 1.0) if costs is None else np.asarray(costs, float),
        outside=0.0,
        mu=mu,
        wtp=np.array([0.0]) if wtp is None else wtp,
        mass=np.array([1.0]) if mass is None else mass,
    )


def bench(demand: ExpectedDemand, high: float = 5.0):
    n = len(demand.quality)
    return compute_benchmarks(demand, np.zeros(n), np.full(n, high))


def test_calvano_logit_duopoly_benchmarks() -> None:
    b = bench(logit())
    assert [round(p, 4) for p in b.nash.prices] == [1.4729, 1.4729]
    assert [round(p, 4) for p in b.monopoly.prices] == [1.9250, 1.9250]
    assert b.nash.profits[0] == pytest.approx(0.2229, abs=1e-4)
    assert b.monopoly.profits[0] == pytest.approx(0.3375, abs=1e-4)
    assert b.nash.converged and b.monopoly.converged


def test_three_firm_logit_benchmarks() -> None:
    b = bench(logit(3))
    np.testing.assert_allclose(b.nash.prices, 1.3702, atol=1e-4)
    np.testing.assert_allclose(b.monopoly.prices, 2.0, atol=1e-4)


def test_nash_satisfies_first_order_conditions_with_asymmetric_sellers() -> None:
    demand = logit(3, quality=[2.2, 2.0, 1.7], costs=[1.1, 0.9, 1.0])
    b = bench(demand)
    prices = np.array(b.nash.prices)
    for j in range(3):  # no unilateral deviation pays
        for dp in (-1e-3, 1e-3):
            moved = prices.copy()
            moved[j] += dp
            assert demand.profits(moved)[j] <= demand.profits(prices)[j] + 1e-12
    # the better, cheaper brand charges more and earns more
    assert prices[0] > prices[2] and b.nash.profits[0] > b.nash.profits[2]
    # joint monopoly earns more in total and leaves consumers worse off
    assert sum(b.monopoly.profits) > sum(b.nash.profits)
    assert b.monopoly.consumer_surplus < b.nash.consumer_surplus


def test_profit_gain_is_zero_at_nash_and_one_at_monopoly() -> None:
    b = bench(logit())
    np.testing.assert_allclose(b.profit_gain(np.array(b.nash.profits)), 0.0, atol=1e-12)
    np.testing.assert_allclose(b.profit_gain(np.array(b.monopoly.profits)), 1.0, atol=1e-12)
    mid = (np.array(b.nash.profits) + np.array(b.monopoly.profits)) / 2
    np.testing.assert_allclose(b.profit_gain(mid), 0.5)


def test_heterogeneous_wtp_uses_numerical_expectation() -> None:
    nodes = np.linspace(0.005, 0.995, 100)  # uniform WTP on [0, 1]
    demand = logit(wtp=nodes, mass=np.full(100, 0.01))
    prices = np.array([1.5, 1.6])
    direct = np.mean([np.exp((w + 2 - prices) / 0.25) / (np.exp((w + 2 - prices) / 0.25).sum() + 1) for w in nodes], 0)
    np.testing.assert_allclose(demand.units(prices), direct, rtol=1e-12)
    # richer consumers: Nash prices rise above the constant-WTP market's
    assert bench(demand).nash.prices[0] > 1.4729


def test_deterministic_vertical_market_monopoly_price() -> None:
    """mu = 0, one seller, uniform WTP on [0, 1]: demand 1 - (p - a), monopoly price (1 + a + c)/2."""
    k = 4000
    nodes = (np.arange(k) + 0.5) / k
    demand = ExpectedDemand(np.array([0.0]), np.array([0.2]), 0.0, 0.0, nodes, np.full(k, 1 / k), lambda t: 1 - t)
    b = compute_benchmarks(demand, np.zeros(1), np.ones(1))
    assert b.monopoly.prices[0] == pytest.approx(0.6, abs=1e-3)
    assert b.nash.prices[0] == pytest.approx(0.6, abs=1e-3)  # a monopolist's Nash is its monopoly


def test_hhi() -> None:
    assert hhi(np.array([1.0, 0.0])) == pytest.approx(10_000)
    assert hhi(np.array([1.0, 1.0])) == pytest.approx(5_000)
    assert hhi(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(2_500)
    assert hhi(np.zeros(3)) == 0.0
