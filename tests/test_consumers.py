"""The vectorized choice and clearing kernels: reference equality, invariants, logit limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.config.scenario import Scenario
from marketsim.market import consumers
from marketsim.market.consumers import Draws
from marketsim.market.model import MarketModel
from reference_market import ReferenceMarket


def _scenario(**over) -> Scenario:
    base = {
        "name": "ref",
        "seed": 3,
        "steps": 6,
        "consumers": {"size": 400, "wtp": {"distribution": "uniform", "low": 0.0, "high": 1.0}, "mu": 0.25},
        "sellers": [
            {"name": "a", "strategy": "random_price", "price_min": 1.0, "price_max": 2.5, "capacity": 60},
            {"name": "b", "strategy": "fixed_price", "params": {"price": 1.6}, "inventory": {"initial": 150}},
            {"name": "c", "strategy": "undercut", "price_min": 1.0, "price_max": 3.0, "initial_price": 2.0},
        ],
    }
    base.update(over)
    return Scenario.model_validate(base)


VARIANTS = {
    "logit-capacity": {},
    "deterministic-ties": {
        "consumers": {"size": 300, "wtp": {"distribution": "normal", "mean": 1.0, "sd": 0.5}, "mu": 0.0},
        "sellers": [
            {"name": "a", "strategy": "fixed_price", "params": {"price": 1.5}, "capacity": 40},
            {"name": "b", "strategy": "fixed_price", "params": {"price": 1.5}, "capacity": 70},
            {"name": "c", "strategy": "fixed_price", "params": {"price": 1.7}},
        ],
    },
    "arrivals-shocks": {
        "consumers": {
            "size": 500,
            "wtp": {"distribution": "lognormal", "mean": 0.0, "sigma": 0.5},
            "mu": 0.4,
            "arrival": 0.5,
            "shocks": [{"kind": "step", "at": 2, "arrival_factor": 1.5, "wtp_shift": -0.3}],
        },
    },
    "network": {
        "network": {"graph": {"kind": "watts_strogatz", "k": 4, "p": 0.2}, "initial_awareness": 0.4, "decay": 0.05},
    },
}


@pytest.mark.parametrize(  # mu = 0 makes the Nash benchmark slow (about 8 s): that variant runs in the slow suite
    "variant", [pytest.param(v, marks=pytest.mark.slow) if v == "deterministic-ties" else v for v in VARIANTS]
)
def test_vectorized_clearing_equals_per_consumer_reference(variant: str) -> None:
    scenario = _scenario(**VARIANTS[variant])
    fast, slow = MarketModel(scenario), ReferenceMarket(scenario)
    assert len(slow.population.agents_list) == scenario.consumers.size  # one Mesa agent per consumer
    for _ in range(scenario.steps):
        fast.step()
        slow.step()
    a = fast.datacollector.get_model_vars_dataframe()
    b = slow.datacollector.get_model_vars_dataframe()
    units = [c for c in a.columns if c.endswith((".units", ".price", ".inventory"))] + ["buyers", "shoppers"]
    assert a[units].equals(b[units])
    np.testing.assert_allclose(a["consumer_surplus"], b["consumer_surplus"], rtol=1e-9)
    assert a[units].filter(like=".units").to_numpy().sum() > 0
    if variant == "logit-capacity":  # the capacity really bound, so rationing was exercised
        assert (a["a.units"] == 60).any() or (a["b.inventory"] == 0).any()


@st.composite
def markets(draw):
    n_sellers = draw(st.integers(1, 5))
    n = draw(st.integers(1, 120))
    mu = draw(st.sampled_from([0.0, 0.05, 0.25, 1.0]))
    x = np.array(draw(st.lists(st.floats(-2, 3), min_size=n_sellers, max_size=n_sellers)))
    limit_choices = st.one_of(st.just(np.inf), st.integers(0, 40).map(float), st.floats(0, 40))
    limits = np.array(draw(st.lists(limit_choices, min_size=n_sellers, max_size=n_sellers)))
    seed = draw(st.integers(0, 2**32 - 1))
    masked = draw(st.booleans())
    return n_sellers, n, mu, x, limits, seed, masked


@settings(max_examples=150, deadline=None)
@given(markets())
def test_clearing_invariants(market) -> None:
    n_sellers, n, mu, x, limits, seed, masked = market
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 2, n)
    allowed = rng.random((n_sellers, n)) < 0.6 if masked else None
    order = rng.permutation(n) if np.isfinite(limits).any() else None
    keys = lambda m: consumers.ranking_uniforms(rng, m, n_sellers + 1)  # noqa: E731
    result = consumers.clear_agents(w, x, 0.5, mu, limits, Draws(None, rng.random(n), order), allowed, keys)
    choice = result.choice
    assert choice.shape == (n,)  # one decision per consumer: at most one unit each
    assert np.all((choice >= -1) & (choice < n_sellers))
    np.testing.assert_array_equal(result.units, np.bincount(choice[choice >= 0], minlength=n_sellers))
    assert np.all(result.units <= np.floor(limits))  # never sell past capacity or stock
    assert result.units.sum() <= n
    if allowed is not None:  # nobody buys from a seller they do not know
        bought = choice >= 0
        assert allowed[choice[bought], np.flatnonzero(bought)].all()
    assert np.all(result.surplus >= 0)


@settings(max_examples=60, deadline=None)
@given(markets())
def test_turned_away_shoppers_take_their_next_choice(market) -> None:
    """Rationing never leaves a shopper without a purchase while it still wants an open seller."""
    n_sellers, n, mu, x, limits, seed, _ = market
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 2, n)
    u = rng.random(n)
    order = rng.permutation(n) if np.isfinite(limits).any() else None
    keys = lambda m: consumers.ranking_uniforms(rng, m, n_sellers + 1)  # noqa: E731
    free = consumers.clear_agents(w, x, 0.5, mu, np.full(n_sellers, np.inf), Draws(None, u, None))
    rationed = consumers.clear_agents(w, x, 0.5, mu, limits, Draws(None, u, order), keys=keys)
    # A shopper whose first choice was open (never sold out) keeps it.
    sold_out = rationed.units >= np.floor(limits)
    keeps = (free.choice >= 0) & ~sold_out[np.maximum(free.choice, 0)]
    np.testing.assert_array_equal(rationed.choice[keeps], free.choice[keeps])
    # Nobody who wanted to buy is left empty-handed while sellers with stock remain unless that was its choice.
    assert rationed.units.sum() >= min(free.units.sum(), np.minimum(free.units, np.floor(limits)).sum())


def test_empirical_shares_match_logit_with_200k_consumers() -> None:
    n, mu, a0 = 200_000, 0.25, 0.0
    quality = np.array([2.0, 2.0, 1.8, 2.2])
    prices = np.array([1.5, 1.7, 1.4, 2.0])
    x = quality - prices
    rng = np.random.default_rng(2020)
    w = np.zeros(n)
    result = consumers.clear_agents(w, x, a0, mu, np.full(4, np.inf), Draws(None, rng.random(n), None))
    empirical = result.units / n
    expected = np.exp(x / mu) / (np.exp(x / mu).sum() + np.exp(a0 / mu))
    assert np.max(np.abs(empirical - expected)) < 0.01
    np.testing.assert_allclose(consumers.expected_units(w[:1], np.array([1.0]), x, a0, mu), expected, rtol=1e-12)


def test_explicit_gumbel_draws_agree_with_the_closed_form_sampler() -> None:
    """The categorical draw is the arg-max of Gumbel utilities in distribution (Gumbel-max trick)."""
    n, mu = 200_000, 0.5
    x = np.array([0.3, 0.0, -0.4])
    rng = np.random.default_rng(5)
    w = rng.uniform(0, 1, n)
    utilities = np.column_stack([np.zeros(n), w[:, None] + x[None, :]]) + mu * rng.gumbel(size=(n, 4))
    gumbel = np.bincount(utilities.argmax(axis=1), minlength=4)[1:] / n
    ours = consumers.clear_agents(w, x, 0.0, mu, np.full(3, np.inf), Draws(None, rng.random(n), None)).units / n
    np.testing.assert_allclose(ours, gumbel, atol=0.006)


def test_deterministic_choice_splits_ties_evenly_and_respects_positive_surplus() -> None:
    n = 100_000
    rng = np.random.default_rng(1)
    w = np.linspace(0, 1, n)
    x = np.array([0.5, 0.5, 0.2])
    choice = consumers.choose(w, x, 1.0, 0.0, rng.random(n))
    buys = choice >= 0
    np.testing.assert_array_equal(buys, w + 0.5 > 1.0)  # strictly positive surplus only
    assert not np.any(choice == 2)
    assert abs(np.mean(choice[buys] == 0) - 0.5) < 0.01


def test_expected_clearing_is_the_large_population_limit_of_rationing() -> None:
    n, mu, a0 = 100_000, 0.3, 0.0
    rng = np.random.default_rng(9)
    w = rng.uniform(0, 1, n)
    x = np.array([0.6, 0.4, 0.1])
    limits = np.array([0.25 * n, np.inf, 0.1 * n])
    keys = lambda m: consumers.ranking_uniforms(rng, m, 4)  # noqa: E731
    runs = [
        consumers.clear_agents(w, x, a0, mu, limits, Draws(None, rng.random(n), rng.permutation(n)), keys=keys).units
        for _ in range(3)
    ]
    units, welfare = consumers.clear_expected(w, np.ones(n), x, a0, mu, limits)
    np.testing.assert_allclose(np.mean(runs, axis=0) / n, units / n, atol=0.004)
    assert units[0] == pytest.approx(limits[0]) and units[2] == pytest.approx(limits[2])
    unconstrained = consumers.expected_units(w, np.ones(n), x, a0, mu)
    assert units[1] > unconstrained[1]  # shoppers turned away by sold-out sellers went to the open one
    assert 0 < welfare < consumers.surplus(w, x, a0, mu).sum()


def test_surplus_matches_logit_inclusive_value_and_deterministic_limit() -> None:
    w = np.array([0.0, 1.0])
    x = np.array([0.5, 0.2])
    mu = 0.25
    expected = mu * np.log1p(np.exp((w[:, None] + x[None, :]) / mu).sum(axis=1))
    np.testing.assert_allclose(consumers.surplus(w, x, 0.0, mu), expected)
    np.testing.assert_allclose(consumers.surplus(w, x, 0.0, 1e-6), np.maximum(w + 0.5, 0), atol=1e-4)
    np.testing.assert_allclose(consumers.surplus(w, x, 0.0, 0.0), w + 0.5)
