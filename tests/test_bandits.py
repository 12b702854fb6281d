"""The bandit baselines and the clairvoyant oracle: conformance, learning, and exact optima."""

from __future__ import annotations

import math

import numpy as np
import pytest

import marketsim_bandits
from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel, expected_demand
from marketsim.market.oracle import DiscreteMarket, match_reaction, solve
from marketsim.meta.evaluate import run_agent
from marketsim.meta.tasks import Task, expected_rollout
from marketsim.registry import default_registry
from marketsim.strategy import MarketInfo, Observation
from marketsim.testing import assert_conforms
from marketsim_bandits import BestFixedPrice, Clairvoyant, ThompsonPricing, UCBPricing

GRID = tuple(float(p) for p in np.linspace(1.1, 3.0, 15))


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (ThompsonPricing, {}),
        (ThompsonPricing, {"grid": GRID, "prior_units": 50.0}),
        (UCBPricing, {}),
        (BestFixedPrice, {"price": 1.8}),
        (Clairvoyant, {}),
        (Clairvoyant, {"grid": GRID, "horizon": 30}),
    ],
    ids=["thompson", "thompson_grid", "ucb", "best_fixed", "clairvoyant", "clairvoyant_grid"],
)
def test_baselines_conform(cls, params) -> None:
    assert_conforms(cls, params, steps=60)


def test_plugin_registers_every_baseline() -> None:
    registry = default_registry()
    assert {"thompson_pricing", "ucb_pricing", "best_fixed_price", "clairvoyant"} <= set(registry.names())
    assert marketsim_bandits.MARKETSIM_API == ">=1,<2"


def _market(rival: dict, mode: str = "agents", steps: int = 50, size: int = 300) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "bandit_test",
            "seed": 11,
            "steps": steps,
            "demand": {"mode": mode, "quadrature": 16},
            "consumers": {"size": size, "wtp": {"distribution": "normal", "mean": 0.0, "sd": 0.2}, "mu": 0.3},
            "sellers": [
                {
                    "name": "me",
                    "strategy": "fixed_price",
                    "cost": 1.0,
                    "quality": 2.5,
                    "price_min": 0.5,
                    "price_max": 6.0,
                    "initial_price": 2.0,
                },
                {"name": "rival", "cost": 1.0, "quality": 2.0, "price_min": 0.5, "price_max": 6.0, **rival},
            ],
        }  # fmt: skip
    )


def _task(scenario: Scenario) -> Task:
    return Task(index=0, split="test", scenario=scenario, learner=0, params={}, grid=GRID)


def _oracle(task: Task) -> dict:
    from marketsim.meta.evaluate import oracle_params

    return oracle_params(task)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["thompson_pricing", "ucb_pricing"])
def test_bandits_reach_ninety_percent_of_the_clairvoyant(name: str) -> None:
    """Learning from its own noisy sales only, over a long task each bandit ends near the oracle's profit."""
    registry = default_registry()
    task = _task(_market({"strategy": "fixed_price", "params": {"price": 1.9}}, steps=400))
    learner = run_agent(task, (name, {"grid": GRID}), registry)
    oracle = run_agent(task, ("clairvoyant", _oracle(task)), registry)
    share = learner.expected_profit[-100:].sum() / oracle.expected_profit[-100:].sum()
    assert share >= 0.9, share
    first = learner.expected_profit[:15].sum() / oracle.expected_profit[:15].sum()
    assert first < share  # it did learn: exploration costs at first


def test_thompson_posterior_follows_the_sales() -> None:
    registry = default_registry()
    task = _task(_market({"strategy": "fixed_price", "params": {"price": 1.9}}, mode="expected"))
    strategy = registry.create("thompson_pricing", {"grid": GRID})
    expected_rollout(task, strategy, registry)
    assert strategy.pulls.sum() == task.horizon
    demand = expected_demand(task.scenario, registry)
    for a in np.flatnonzero(strategy.pulls):  # noise-free sales: the posterior's data are the true units
        units = demand.units(np.array([GRID[a], 1.9]))[0]
        assert strategy.sales[a] == pytest.approx(units * strategy.pulls[a])
    strategy.set_training(False)  # greedy on the posterior mean
    shape, rate = strategy._posterior()
    obs = Observation(0, 2.0, 1.0, 0.0, 0.0, math.inf, math.inf, (1.9,), 0.5, 6.0)
    assert strategy.price(obs) == GRID[int(np.argmax((np.array(GRID) - 1.0) * shape / rate))]


def test_clairvoyant_is_the_myopic_optimum_against_a_fixed_rival() -> None:
    registry = default_registry()
    task = _task(_market({"strategy": "fixed_price", "params": {"price": 1.9}}, mode="expected"))
    prices, profits = expected_rollout(task, registry.create("clairvoyant", _oracle(task)), registry)
    demand = expected_demand(task.scenario, registry)
    fine = np.linspace(1.0, 6.0, 50_001)
    best = max(fine, key=lambda p: demand.profits(np.array([p, 1.9]))[0])
    assert prices == pytest.approx(np.full(task.horizon, best), abs=2e-4)  # step 0 too: it predicts the rival
    myopic = MarketModel(task.scenario.model_copy(update={"sellers": (
        task.scenario.sellers[0].model_copy(update={"strategy": "myopic_best_response", "params": {}}),
        task.scenario.sellers[1],
    )}))  # fmt: skip
    myopic.step()
    myopic.step()
    assert prices[1] == pytest.approx(myopic.sellers[0].price, abs=1e-6)
    grid_best = max(demand.profits(np.array([p, 1.9]))[0] for p in GRID)
    assert profits.min() >= grid_best  # better than any grid price: the oracle is not limited to the grid


def test_clairvoyant_is_the_value_iteration_optimum_against_a_matching_rival() -> None:
    registry = default_registry()
    scenario = _market({"strategy": "match_lowest", "cost": 0.9}, mode="expected")
    demand = expected_demand(scenario, registry)
    grids = np.array([GRID, GRID])  # the rival's cost is below the grid: matching stays on it
    market = DiscreteMarket.from_profit_function(grids, demand.profits)
    solution = solve(market, 0, {1: match_reaction(market, 1, 0)}, delta=0.95)
    info = MarketInfo(0, 2, (1.0, 0.9), 0.5, 6.0, (math.nan,) * 2, (math.nan,) * 2, demand.profits)
    rival = {"strategy": "match_lowest", "params": {}, "cost": 0.9, "price_min": 0.5, "price_max": 6.0}
    oracle = Clairvoyant(rivals=[rival], grid=GRID, delta=0.95)
    oracle.setup(info, np.random.default_rng(0))
    for mine in range(len(GRID)):
        for theirs in (0, 7, 14):  # the rival will match my last price whatever it posted itself
            obs = Observation(1, GRID[mine], 1.0, 0.0, 0.0, math.inf, math.inf, (GRID[theirs],), 0.5, 6.0)
            want = GRID[solution.policy[market.joint(np.array([mine, theirs]))]]
            assert oracle.price(obs) == pytest.approx(want), (mine, theirs)
    # over a finite horizon it maximises the task's total expected profit: no fixed grid price does better
    task = _task(scenario)
    _, profits = expected_rollout(task, registry.create("clairvoyant", _oracle(task)), registry)
    for p in GRID:
        fixed = expected_rollout(task, registry.create("fixed_price", {"price": p}), registry)[1]
        assert profits.sum() >= fixed.sum() - 1e-9
    _, stationary = expected_rollout(task, Clairvoyant(rivals=[rival], grid=GRID, delta=0.95), registry)
    assert profits.sum() >= stationary.sum() - 1e-9


def test_clairvoyant_refuses_a_wrong_number_of_rivals() -> None:
    task = _task(_market({"strategy": "fixed_price"}, mode="expected"))
    with pytest.raises(ValueError, match="2 rivals for a market of 2 sellers"):
        rival = {"strategy": "fixed_price", "params": {}, "cost": 1.0, "price_min": 0.5, "price_max": 6.0}
        expected_rollout(task, Clairvoyant(rivals=[rival, rival]), default_registry())


def test_best_fixed_price_posts_its_price_and_ucb_tries_every_price_first() -> None:
    registry = default_registry()
    task = _task(_market({"strategy": "fixed_price", "params": {"price": 1.9}}, mode="expected"))
    prices, _ = expected_rollout(task, registry.create("best_fixed_price", {"price": 2.2}), registry)
    assert set(prices) == {2.2}
    prices, _ = expected_rollout(task, registry.create("ucb_pricing", {"grid": GRID}), registry)
    assert sorted(prices[: len(GRID)]) == pytest.approx(sorted(GRID))
