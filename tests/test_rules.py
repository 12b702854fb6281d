"""Behaviour of the built-in rule-based strategies (plugin package ``marketsim_rules``)."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import re
import typing

import numpy as np
import pytest

import marketsim_rules
from marketsim.registry import Registry, load_registry
from marketsim.strategy import (
    DEFAULT_CLASSIFIER,
    MarketInfo,
    Observation,
    Strategy,
    parameters,
)
from marketsim_rules import (
    ALL_STRATEGIES,
    CostPlus,
    DemandResponsive,
    FixedPrice,
    FollowAverage,
    InventoryMarkdown,
    MatchLowest,
    MyopicBestResponse,
    RandomPrice,
    ScheduledPromotions,
    Undercut,
)

# Calvano et al. (2020) logit duopoly: a = 2, a0 = 0, mu = 0.25, c = 1.
A, A0, MU, COST = 2.0, 0.0, 0.25, 1.0
NASH = 1.4729


def logit_profit(prices: np.ndarray) -> np.ndarray:
    prices = np.asarray(prices, dtype=float)
    weights = np.exp((A - prices) / MU)
    return (prices - COST) * weights / (weights.sum() + math.exp(A0 / MU))


def market(index: int = 0, n_sellers: int = 2) -> MarketInfo:
    return MarketInfo(
        index=index,
        n_sellers=n_sellers,
        costs=(COST,) * n_sellers,
        price_min=0.0,
        price_max=3.0,
        nash_prices=(NASH,) * n_sellers,
        monopoly_prices=(1.9249,) * n_sellers,
        expected_profit=logit_profit,
    )


def obs(**changes: object) -> Observation:
    base = Observation(
        step=1,
        own_price=1.5,
        cost=1.0,
        last_units=10.0,
        last_profit=5.0,
        inventory=math.inf,
        capacity=math.inf,
        competitor_prices=(1.6, 1.8),
        price_min=0.0,
        price_max=3.0,
    )
    return dataclasses.replace(base, **changes)


def ready(strategy: Strategy, seed: int = 0, **market_args: int) -> Strategy:
    strategy.setup(market(**market_args), np.random.default_rng(seed))
    return strategy


# --- the contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_STRATEGIES, ids=lambda c: c.name)
def test_contract(cls: type[Strategy]) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.name)
    assert (cls.__doc__ or "").strip()
    assert set(DEFAULT_CLASSIFIER) <= set(cls.classifier)
    assert cls.classifier["learns"] is False and cls.classifier["needs_torch"] is False
    assert "own" in cls.classifier["observes"]
    hints = typing.get_type_hints(cls.__init__)
    for p in parameters(cls):
        assert not p.required and p.name in hints, p.name
    instance = cls()
    assert type(instance)(**instance.params).params == instance.params
    assert set(instance.params) == {p.name for p in parameters(cls)}
    # a default instance posts a valid price on a plain observation
    price = ready(instance).price(obs(step=0))
    assert 0.0 <= price <= 3.0


def test_names_are_unique_and_all_registered() -> None:
    names = [cls.name for cls in ALL_STRATEGIES]
    assert len(set(names)) == len(names) == 10
    registry = Registry()
    marketsim_rules.register_strategies(registry.register)
    assert registry.names() == sorted(names)
    assert all(registry.get(cls.name).cls is cls for cls in ALL_STRATEGIES)


def test_hook_works_through_pluggy() -> None:
    registry = load_registry(plugins=[("rules", marketsim_rules)], entry_points=False)
    assert not registry.problems
    assert set(registry.names()) == {cls.name for cls in ALL_STRATEGIES}
    assert registry.get("undercut").plugin == "rules"
    assert isinstance(registry.create("cost_plus", {"markup": 0.5}), CostPlus)


def test_stochastic_flag_only_where_rng_is_used() -> None:
    stochastic = {cls.name for cls in ALL_STRATEGIES if cls.classifier["stochastic"]}
    assert stochastic == {"random_price"}
    demand_model = {cls.name for cls in ALL_STRATEGIES if "demand_model" in cls.classifier["observes"]}
    assert demand_model == {"myopic_best_response"}


def test_setup_gives_a_clean_run() -> None:
    """Stateful rules start over on setup, so one instance per run is clean."""
    s = ready(DemandResponsive())
    s.price(obs(step=1, last_units=4.0))
    s.price(obs(step=2, last_units=6.0))
    assert s.state_dict() == {"seen": 2, "mean_units": 5.0}
    ready(s)
    assert s.state_dict() == {"seen": 0, "mean_units": 0.0}


# --- one behaviour test per rule ----------------------------------------------------------------


def test_fixed_price() -> None:
    s = ready(FixedPrice(price=1.7))
    assert s.params == {"price": 1.7}
    assert [s.price(obs(step=t, competitor_prices=(t / 10,))) for t in range(5)] == [1.7] * 5
    assert s.price(obs(price_max=1.2)) == 1.2  # clipped into the allowed range
    with pytest.raises(ValueError):
        FixedPrice(price=-1.0)


def test_cost_plus() -> None:
    s = ready(CostPlus(markup=0.3))
    assert s.price(obs(cost=1.2)) == pytest.approx(1.56)
    assert s.price(obs(cost=2.0)) == pytest.approx(2.6)
    assert s.price(obs(cost=2.5)) == 3.0  # clipped at price_max


def test_undercut_posts_lowest_minus_step_and_never_below_cost() -> None:
    s = ready(Undercut(step=0.05))
    assert s.price(obs(competitor_prices=(1.8, 1.6, 2.0))) == pytest.approx(1.55)
    assert s.price(obs(competitor_prices=(1.02,), cost=1.0)) == 1.0
    assert s.price(obs(competitor_prices=(0.5,), cost=1.0)) == 1.0
    margin = ready(Undercut(step=0.05, floor_margin=0.1))
    assert margin.price(obs(competitor_prices=(1.12,))) == pytest.approx(1.1)
    assert ready(Undercut()).price(obs(competitor_prices=())) == 1.5  # a monopolist holds


def test_undercut_relents_to_reset_price_at_the_bottom_of_an_edgeworth_cycle() -> None:
    s = ready(Undercut(step=0.1, reset_price=2.5))
    prices = [1.5]
    for _ in range(10):  # two undercutters chase each other down, then one relents
        prices.append(s.price(obs(competitor_prices=(prices[-1],))))
    assert prices[1:5] == pytest.approx([1.4, 1.3, 1.2, 1.1])
    assert 2.5 in prices  # the jump back up
    assert min(prices) >= 1.0


def test_match_lowest() -> None:
    s = ready(MatchLowest())
    assert s.price(obs(competitor_prices=(1.8, 1.6))) == 1.6
    assert s.price(obs(competitor_prices=(0.8, 1.6), cost=1.0)) == 1.0
    assert s.price(obs(competitor_prices=(), own_price=1.9)) == 1.9


def test_follow_average() -> None:
    s = ready(FollowAverage())
    assert s.price(obs(competitor_prices=(1.6, 1.8, 2.3))) == pytest.approx(1.9)
    half = ready(FollowAverage(weight=0.5))
    assert half.price(obs(own_price=1.5, competitor_prices=(1.6, 1.8))) == pytest.approx(1.6)
    assert s.price(obs(competitor_prices=(0.5, 0.7), cost=1.0)) == 1.0
    assert s.price(obs(competitor_prices=(), own_price=1.3)) == 1.3


def test_markdown_posts_full_price_with_unlimited_inventory() -> None:
    s = ready(InventoryMarkdown(full_price=2.0, floor_price=1.0, horizon=100))
    assert [s.price(obs(step=t, inventory=math.inf)) for t in (0, 50, 99, 150)] == [2.0] * 4


def test_markdown_falls_as_inventory_stays_high_and_time_runs_out() -> None:
    s = ready(InventoryMarkdown(full_price=2.0, floor_price=1.0, horizon=100))
    assert s.price(obs(step=0, inventory=100.0)) == 2.0  # the start sets the reference stock
    assert s.price(obs(step=50, inventory=40.0)) == 2.0  # ahead of pace: full price
    assert s.price(obs(step=50, inventory=50.0)) == 2.0  # exactly on pace
    assert s.price(obs(step=50, inventory=100.0)) == pytest.approx(1.5)  # nothing sold, half time
    stuck = [s.price(obs(step=t, inventory=100.0)) for t in range(0, 101, 10)]
    assert all(a > b for a, b in itertools.pairwise(stuck))  # time runs out: price falls
    more = [s.price(obs(step=60, inventory=i)) for i in (40.0, 60.0, 80.0, 100.0)]
    assert more[0] == 2.0 and all(a > b for a, b in itertools.pairwise(more))
    assert s.price(obs(step=100, inventory=1.0)) == 1.0  # end of the horizon: floor price
    assert s.price(obs(step=100, inventory=0.0)) == 2.0  # sold out: nothing to mark down


def test_markdown_state_round_trips() -> None:
    s = ready(InventoryMarkdown())
    s.price(obs(step=0, inventory=80.0))
    fresh = ready(InventoryMarkdown())
    fresh.load_state_dict(s.state_dict())
    assert fresh.price(obs(step=50, inventory=80.0)) == s.price(obs(step=50, inventory=80.0)) < 2.0


def test_demand_responsive_raises_after_sell_out_and_lowers_after_weak_sales() -> None:
    s = ready(DemandResponsive(up=0.1, down=0.2, weak_share=0.5))
    assert s.price(obs(step=0, own_price=1.7)) == 1.7
    assert ready(DemandResponsive(initial_price=2.2)).price(obs(step=0)) == 2.2
    cap = {"capacity": 10.0, "own_price": 1.5}
    assert s.price(obs(last_units=10.0, **cap)) == pytest.approx(1.65)  # sold out: up
    assert s.price(obs(last_units=3.0, **cap)) == pytest.approx(1.2)  # weak: 3 < 0.5 * 10
    assert s.price(obs(last_units=7.0, **cap)) == 1.5  # in between: hold
    assert s.price(obs(last_units=2.0, inventory=0.0, own_price=1.5)) == pytest.approx(1.65)
    assert s.price(obs(last_units=0.0, own_price=1.1, cost=1.0)) == 1.0  # never below cost


def test_demand_responsive_uses_running_mean_without_capacity() -> None:
    s = ready(DemandResponsive(up=0.1, down=0.2, weak_share=0.5))
    assert s.price(obs(step=1, last_units=10.0)) == 1.5  # first sales: no reference yet, hold
    assert s.price(obs(step=2, last_units=8.0)) == 1.5  # 8 >= 0.5 * 10
    assert s.price(obs(step=3, last_units=4.0)) == pytest.approx(1.2)  # 4 < 0.5 * 9
    assert s.price(obs(step=4, last_units=0.0)) == pytest.approx(1.2)  # nothing sold: weak
    state = s.state_dict()
    assert state == {"seen": 4, "mean_units": pytest.approx(5.5)}
    copy = ready(DemandResponsive(up=0.1, down=0.2, weak_share=0.5))
    copy.load_state_dict(state)
    assert copy.price(obs(step=5, last_units=2.0)) == s.price(obs(step=5, last_units=2.0))


def test_promotions_discount_exactly_inside_windows() -> None:
    s = ready(ScheduledPromotions(regular_price=2.0, discount=0.25, period=20, length=5, offset=3))
    prices = [s.price(obs(step=t)) for t in range(60)]
    promo = [t for t, p in enumerate(prices) if p == pytest.approx(1.5)]
    assert promo == [t for t in range(60) if 3 <= t % 20 < 8]
    assert all(p == 2.0 for t, p in enumerate(prices) if t not in promo)


def test_random_price_bounds_and_reproducibility() -> None:
    draws = [ready(RandomPrice(), seed=7).price(obs(step=t)) for t in range(3)]
    one = ready(RandomPrice(), seed=7)
    same = [one.price(obs(step=t)) for t in range(200)]
    two = ready(RandomPrice(), seed=7)
    assert [two.price(obs(step=t)) for t in range(200)] == same
    other = ready(RandomPrice(), seed=8)
    assert [other.price(obs(step=t)) for t in range(200)] != same
    assert draws[0] == same[0]
    assert all(0.0 <= p <= 3.0 for p in same) and max(same) - min(same) > 2.0
    narrow = ready(RandomPrice(low=1.2, high=1.4), seed=1)
    narrow_draws = [narrow.price(obs(step=t)) for t in range(200)]
    assert all(1.2 <= p <= 1.4 for p in narrow_draws)
    assert ready(RandomPrice(low=5.0, high=6.0)).price(obs()) == 3.0  # clipped into the range


def test_random_price_leaves_global_random_state_alone() -> None:
    before = np.random.get_state()[1].copy()
    ready(RandomPrice(), seed=3).price(obs())
    assert (np.random.get_state()[1] == before).all()


def _grid_best_response(rivals: tuple[float, ...]) -> float:
    """Brute force on a fine grid, with the logit profit written out independently of MarketInfo."""
    grid = np.linspace(COST, 3.0, 2_000_001)
    own = np.exp((A - grid) / MU)
    others = sum(math.exp((A - r) / MU) for r in rivals) + math.exp(A0 / MU)
    return float(grid[np.argmax((grid - COST) * own / (own + others))])


@pytest.mark.parametrize("rival", [NASH, 1.2, 1.7, 1.9249])
def test_myopic_best_response_matches_brute_force(rival: float) -> None:
    s = ready(MyopicBestResponse())
    assert s.price(obs(competitor_prices=(rival,))) == pytest.approx(_grid_best_response((rival,)), abs=1e-4)


def test_myopic_best_response_to_nash_is_nash() -> None:
    s = ready(MyopicBestResponse(), index=1)
    assert round(s.price(obs(competitor_prices=(NASH,))), 3) == pytest.approx(NASH, abs=1e-3)
    # the same holds with the seller in the other slot
    assert ready(MyopicBestResponse()).price(obs(competitor_prices=(NASH,))) == pytest.approx(NASH, abs=1e-3)


def test_myopic_best_response_dynamics_reach_nash() -> None:
    a, b = ready(MyopicBestResponse(), index=0), ready(MyopicBestResponse(), index=1)
    pa, pb = 2.0, 1.1
    for _ in range(30):
        pa, pb = a.price(obs(competitor_prices=(pb,))), b.price(obs(competitor_prices=(pa,)))
    assert pa == pytest.approx(NASH, abs=1e-3) and pb == pytest.approx(NASH, abs=1e-3)


def test_myopic_best_response_monopolist_and_cost_floor() -> None:
    mono = ready(MyopicBestResponse(), n_sellers=1)
    assert mono.price(obs(competitor_prices=())) == pytest.approx(_grid_best_response(()), abs=1e-4)
    s = ready(MyopicBestResponse())
    assert s.price(obs(competitor_prices=(0.5,), cost=1.0)) >= 1.0  # never prices below cost
    assert s.price(obs(competitor_prices=(NASH,), cost=3.5)) == 3.0  # cost above the range


def test_signatures_are_keyword_friendly() -> None:
    for cls in ALL_STRATEGIES:
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            assert p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


# --- price_batch: a batched engine asks the rule itself, and gets the scalar price's floats ---------------------

BATCHED_RULES = [
    (FixedPrice, lambda r: {"price": float(r.uniform(0.0, 4.0))}),
    (CostPlus, lambda r: {"markup": float(r.uniform(-0.5, 1.0))}),
    (MatchLowest, lambda r: {"floor_margin": float(r.uniform(0.0, 0.3))}),
    (FollowAverage, lambda r: {"weight": float(r.uniform(0.0, 1.0))}),
    (
        Undercut,
        lambda r: {
            "step": float(r.uniform(0.0, 0.3)),
            "floor_margin": float(r.uniform(0.0, 0.2)),
            "reset_price": None if r.random() < 0.5 else float(r.uniform(1.0, 3.0)),
        },
    ),
]


@pytest.mark.parametrize("cls, draw", BATCHED_RULES, ids=[c.name for c, _ in BATCHED_RULES])
@pytest.mark.parametrize("seats", [0, 1, 3])
def test_price_batch_gives_the_scalar_prices(cls, draw, seats: int) -> None:
    from marketsim.strategy import ObservationBatch

    assert "price_batch" in vars(cls)  # vectorised, not the default loop
    rng = np.random.default_rng(seats)
    B = 400
    rules = [cls(**draw(rng)) for _ in range(B)]
    for rule in rules:
        rule.setup(market(), np.random.default_rng(0))
    rivals = rng.uniform(0.5, 3.5, (B, seats))
    rivals[rng.random((B, seats)) < 0.3] = np.nan  # empty seats
    low = rng.uniform(0.0, 1.5, B)
    obs = ObservationBatch(
        own_price=rng.uniform(0.5, 3.5, B),
        competitor_prices=rivals,
        cost=rng.uniform(0.5, 1.5, B),
        price_min=low,
        price_max=low + rng.uniform(0.5, 3.0, B),
    )
    batched = cls.price_batch(rules, obs)
    scalar = np.array([rule.price(obs.row(b)) for b, rule in enumerate(rules)])
    assert batched.shape == (B,)
    np.testing.assert_array_equal(batched, scalar)
