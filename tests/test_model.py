"""The Mesa market model: phases, settlement invariants, inventories, shocks, reproducibility."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import marketsim_rules
from marketsim.config.scenario import Scenario
from marketsim.market.engine import Market, StepResult
from marketsim.market.model import ConsumerPopulation, MarketModel, Seller, StrategyError
from marketsim.registry import load_registry
from marketsim.strategy import InvalidPriceError, Strategy


def scenario(**over) -> Scenario:
    base = {
        "name": "t",
        "seed": 5,
        "steps": 30,
        "consumers": {"size": 2000, "wtp": {"distribution": "uniform", "low": 0, "high": 1}, "mu": 0.25},
        "sellers": [
            {"name": "a", "strategy": "fixed_price", "params": {"price": 1.6}},
            {"name": "b", "strategy": "undercut", "initial_price": 2.0},
        ],
    }
    base.update(over)
    return Scenario.model_validate(base)


def run(sc: Scenario, registry=None):
    model = MarketModel(sc, registry)
    for _ in range(sc.steps):
        model.step()
    return model, model.datacollector.get_model_vars_dataframe()


class Recorder(Strategy):
    """Test strategy: posts a price that depends on the step and records what it observes."""

    name = "recorder"

    def __init__(self, base: float = 1.5) -> None:
        self.base = base
        self.seen: list = []
        self.outcomes: list = []

    def price(self, obs):
        self.seen.append(obs)
        return self.base + 0.01 * obs.step

    def learn(self, outcome):
        self.outcomes.append(outcome)


class Broken(Strategy):
    """Test strategy: returns NaN at step 3."""

    name = "broken"

    def price(self, obs):
        return float("nan") if obs.step == 3 else 1.5


def registry_with(*classes):
    reg = load_registry(plugins=[("rules", marketsim_rules)], entry_points=False)
    for cls in classes:
        reg.register(cls, "tests")
    return reg


def test_model_is_mesa_with_one_seller_class_and_one_population_agent() -> None:
    model = MarketModel(scenario())
    assert len(model.agents_by_type[Seller]) == 2
    assert len(model.agents_by_type[ConsumerPopulation]) == 1
    assert model.population.wtp.shape == (2000,)


def test_phases_strategies_see_last_prices_and_learn_from_outcomes() -> None:
    reg = registry_with(Recorder)
    sc = scenario(
        sellers=[
            {"name": "r", "strategy": "recorder"},
            {"name": "f", "strategy": "fixed_price", "params": {"price": 1.7}},
        ]
    )
    model, steps = run(sc.with_overrides(steps=5), reg)
    rec = model.sellers[0].strategy
    assert [o.step for o in rec.seen] == [0, 1, 2, 3, 4]
    assert rec.seen[0].own_price == 5.0  # the midpoint of [0, 10] before any price was posted
    assert rec.seen[2].own_price == pytest.approx(1.51) and rec.seen[2].competitor_prices == (1.7,)
    for k, out in enumerate(rec.outcomes):  # outcome = what the market booked that step
        assert out.units == steps["r.units"].iloc[k]
        assert out.profit == pytest.approx((out.price - 1.0) * out.units)
        assert out.next_observation.step == k + 1
        assert out.next_observation.last_units == out.units


def test_invalid_price_raises_naming_the_strategy_and_step() -> None:
    reg = registry_with(Broken)
    sc = scenario(sellers=[{"name": "x", "strategy": "broken"}])
    with pytest.raises(StrategyError, match=r"seller 'x' \(seat 0\).*'broken'.*nan.*step 3") as caught:
        run(sc, reg)
    assert isinstance(caught.value.error, InvalidPriceError) and caught.value.step == 3


def test_prices_are_clipped_to_the_allowed_range() -> None:
    sc = scenario(sellers=[{"name": "a", "strategy": "fixed_price", "params": {"price": 9.0}, "price_max": 3.0}])
    _, steps = run(sc.with_overrides(steps=3))
    assert (steps["a.price"] == 3.0).all()


@st.composite
def sellers(draw):
    out = []
    for j in range(draw(st.integers(1, 4))):
        spec = {
            "name": f"s{j}",
            "strategy": draw(st.sampled_from(["random_price", "undercut", "demand_responsive", "fixed_price"])),
            "cost": draw(st.floats(0.0, 1.5)),
            "price_min": 0.5,
            "price_max": 3.0,
        }
        if draw(st.booleans()):
            spec["capacity"] = draw(st.integers(1, 300))
        if draw(st.booleans()):
            restock = draw(st.sampled_from([None, {"every": 3, "up_to": 200}, {"reorder_point": 20, "up_to": 150}]))
            spec["inventory"] = {"initial": draw(st.integers(0, 400)), "restock": restock, "holding_cost": 0.01}
        out.append(spec)
    return out


@settings(max_examples=25, deadline=None)
@given(sellers(), st.sampled_from(["agents", "expected"]), st.integers(0, 10_000))
def test_settlement_invariants(specs, mode, seed) -> None:
    sc = scenario(sellers=specs, seed=seed, steps=12, demand={"mode": mode})
    model, steps = run(sc)
    shares = np.zeros(len(steps))
    for spec in specs:
        n = spec["name"]
        units, price, inv = steps[f"{n}.units"], steps[f"{n}.price"], steps[f"{n}.inventory"]
        assert (units >= 0).all()
        if "capacity" in spec:
            assert (units <= spec["capacity"] + 1e-9).all()
        assert (inv >= -1e-9).all()  # inventory never negative
        held = spec["inventory"]["holding_cost"] if "inventory" in spec else 0.0
        stock_after_sales = inv if "inventory" not in spec else _before_restock(spec, units, inv)
        expected = (price - spec["cost"]) * units - held * np.where(
            np.isfinite(stock_after_sales), stock_after_sales, 0
        )
        np.testing.assert_allclose(steps[f"{n}.profit"], expected, atol=1e-7)
        shares += steps[f"{n}.share"]
    assert (shares <= 1 + 1e-9).all()
    assert (steps["buyers"] <= steps["shoppers"] + 1e-9).all()


def _before_restock(spec, units, inv):
    """Stock right after each step's sales (the recorded inventory is after restocking)."""
    before = []
    stock = float(spec["inventory"]["initial"])
    rule = spec["inventory"]["restock"]
    for k, q in enumerate(units):
        stock -= q
        before.append(stock)
        if rule and (
            rule.get("every")
            and (k + 1) % rule["every"] == 0
            or "reorder_point" in rule
            and stock <= rule["reorder_point"]
        ):
            stock = max(stock, rule["up_to"])
        assert stock == pytest.approx(inv.iloc[k])
    return np.array(before)


def test_same_seed_same_run_and_different_seed_differs() -> None:
    sc = scenario(steps=15, sellers=[{"name": "r", "strategy": "random_price"}, {"name": "u", "strategy": "undercut"}])
    _, a = run(sc)
    _, b = run(sc)
    _, c = run(sc.with_overrides(seed=6))
    assert a.equals(b)
    assert not a.equals(c)


def test_expected_mode_is_noise_free() -> None:
    sc = scenario(demand={"mode": "expected"}, steps=5)
    _, a = run(sc)
    _, b = run(sc.with_overrides(seed=99))
    assert a.equals(b)
    model = MarketModel(sc)
    model.step()
    units = model.demand.units(np.array([s.price for s in model.sellers]))
    np.testing.assert_allclose([model.sellers[0].units, model.sellers[1].units], units, rtol=1e-9)


def test_demand_shocks_and_seasonality_move_arrivals() -> None:
    shocks = [
        {"kind": "step", "at": 10, "until": 20, "arrival_factor": 0.5},
        {"kind": "sinusoidal", "amplitude": 0.2, "period": 8},
    ]
    sc = scenario(consumers={"size": 20_000, "arrival": 0.8, "mu": 0.25, "shocks": shocks}, steps=30)
    _, steps = run(sc)
    factor = [sc.consumers.arrival_at(k) for k in range(30)]
    np.testing.assert_allclose(steps["shoppers"] / 20_000, factor, atol=0.015)
    assert steps["shoppers"][10:20].mean() < 0.6 * steps["shoppers"][:10].mean()
    wtp = scenario(
        consumers={"shocks": [{"kind": "step", "at": 3, "wtp_shift": -1.0}]}, demand={"mode": "expected"}, steps=6
    )
    _, s2 = run(wtp)
    assert s2["buyers"][3] < 0.5 * s2["buyers"][2]  # a WTP drop cuts purchases


def test_periodic_restock_and_sell_out() -> None:
    spec = {
        "name": "a",
        "strategy": "fixed_price",
        "params": {"price": 1.2},
        "inventory": {"initial": 50, "restock": {"every": 5, "up_to": 50}},
    }
    _, steps = run(scenario(sellers=[spec], steps=10))
    assert steps["a.units"][0] == 50 and steps["a.inventory"][0] == 0
    assert (steps["a.units"][1:5] == 0).all()  # sold out until the restock after step 4
    assert steps["a.inventory"][4] == 50 and steps["a.units"][5] == 50


def test_turned_away_shoppers_buy_from_the_rival() -> None:
    free = run(scenario(steps=3))[1]
    sc = scenario(
        steps=3,
        sellers=[
            {"name": "a", "strategy": "fixed_price", "params": {"price": 1.6}, "capacity": 100},
            {"name": "b", "strategy": "fixed_price", "params": {"price": 1.8}},
        ],
    )
    capped = run(sc)[1]
    unconstrained = run(
        scenario(
            steps=3,
            sellers=[
                {"name": "a", "strategy": "fixed_price", "params": {"price": 1.6}},
                {"name": "b", "strategy": "fixed_price", "params": {"price": 1.8}},
            ],
        )
    )[1]
    assert (capped["a.units"] == 100).all()
    assert (capped["b.units"] > unconstrained["b.units"] + 50).all()
    assert len(free) == 3


def test_network_limits_choice_and_awareness_spreads() -> None:
    net = {"graph": {"kind": "watts_strogatz", "k": 6, "p": 0.1}, "initial_awareness": 0.02, "spread": 0.3}
    model = MarketModel(scenario(network=net, steps=25))
    start = model.population.aware.mean()
    model.step()
    first_buyers = model.population.buyers
    for _ in range(24):
        model.step()
    assert model.population.aware.mean() > 3 * start  # word of mouth spread awareness
    assert model.population.buyers > 2 * first_buyers  # so more consumers found a seller
    assert math.isfinite(model.population.surplus)


# --- the market step API (marketsim.market.engine.Market) that MarketModel drives --------------------------


def test_market_step_api_matches_the_mesa_model_on_the_same_seed() -> None:
    sc = scenario(
        steps=6,
        sellers=[
            {"name": "a", "strategy": "fixed_price", "params": {"price": 1.6}, "capacity": 300},
            {"name": "b", "strategy": "fixed_price", "params": {"price": 1.8}, "inventory": {"initial": 900}},
        ],
    )
    model, steps = run(sc)
    market = Market(sc, load_registry(plugins=[("rules", marketsim_rules)], entry_points=False))
    observations = market.reset(sc.seed)
    assert [o.step for o in observations] == [0, 0] and observations[1].competitor_prices == (
        sc.sellers[0].start_price,
    )
    for k in range(sc.steps):
        result = market.step([1.6, 1.8])
        assert isinstance(result, StepResult)
        assert result.units.tolist() == [steps["a.units"][k], steps["b.units"][k]]
        assert result.inventory.tolist() == [steps["a.inventory"][k], steps["b.inventory"][k]]
        assert result.buyers == steps["buyers"][k] and result.consumer_surplus == steps["consumer_surplus"][k]
        np.testing.assert_array_equal(result.profits, result.revenue - result.variable_cost - result.holding_cost)
    following = market.observations()
    outcomes = market.outcomes(result, following)
    assert [o.step for o in outcomes] == [sc.steps - 1] * 2 and outcomes[0].next_observation is following[0]
    assert following[0].competitor_prices == (1.8,) and following[0].last_units == result.units[0]
    assert model.observations == list(following)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.shoppers = 0.0  # type: ignore[misc]


def test_market_clips_prices_and_needs_a_reset() -> None:
    sc = scenario(demand={"mode": "expected"}, sellers=[{"name": "a", "strategy": "fixed_price", "price_max": 3.0}])
    market = Market(sc, load_registry(entry_points=False))
    with pytest.raises(RuntimeError, match="reset"):
        market.step([1.5])
    market.reset(0)
    assert market.step([9.0]).prices.tolist() == [3.0]
    first = market.step([2.0])
    market.reset(0)
    market.step([9.0])
    assert market.step([2.0]).units.tolist() == first.units.tolist()  # expected mode: seed-free, reset restarts


def test_learners_are_found_by_the_converging_protocol() -> None:
    class Settles(Strategy):
        """Converges after three steps."""

        name = "settles"

        def __init__(self) -> None:
            self.seen = 0

        def price(self, obs):
            self.seen += 1
            return 1.5

        @property
        def converged(self) -> bool:
            return self.seen >= 3

    reg = registry_with(Settles)
    model = MarketModel(scenario(sellers=[{"name": "s", "strategy": "settles"}], steps=10), reg)
    assert [s.name for s in model.learners] == ["s"]
    while model.running and model.steps < 10:
        model.step()
    assert model.steps == 3  # stopped once every learner converged


LOG: list[tuple[str, str, int]] = []


class SlowCaller(Strategy):
    """Test strategy with a slow outside call: ``prefetch`` starts it, ``price`` collects it (logs the order)."""

    name = "slow_caller"

    def __init__(self, price_: float = 1.5) -> None:
        self.price_ = price_
        self.started: dict[int, float] = {}

    def prefetch(self, obs) -> None:
        LOG.append((self.name_in_market, "prefetch", obs.step))
        self.started[obs.step] = self.price_ + 0.01 * obs.step

    def price(self, obs):
        LOG.append((self.name_in_market, "price", obs.step))
        return self.started.pop(obs.step, self.price_ + 0.01 * obs.step)  # same answer without a prefetch

    def setup(self, market, rng) -> None:
        super().setup(market, rng)
        self.name_in_market = f"seat{market.index}"


def test_prefetching_sellers_all_start_their_calls_before_any_price_is_collected() -> None:
    from marketsim.strategy import Prefetching

    assert isinstance(SlowCaller(), Prefetching) and not isinstance(Recorder(), Prefetching)
    reg = registry_with(SlowCaller)
    sellers = [
        {"name": "x", "strategy": "slow_caller"},
        {"name": "f", "strategy": "fixed_price", "params": {"price": 1.7}},
        {"name": "y", "strategy": "slow_caller", "params": {"price_": 1.6}},
    ]
    LOG.clear()
    model, steps = run(scenario(sellers=sellers).with_overrides(steps=3), reg)
    for t in range(3):
        step = [(who, what) for who, what, s in LOG if s == t]
        assert step == [("seat0", "prefetch"), ("seat2", "prefetch"), ("seat0", "price"), ("seat2", "price")]
    assert list(steps["y.price"]) == pytest.approx([1.6, 1.61, 1.62])  # the prefetched answers were posted
