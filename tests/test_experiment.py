"""The experiment command and the collusion diagnostics (limit cycle, deviation, best responses)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from marketsim.cli.app import main
from marketsim.config.scenario import Scenario
from marketsim.hookspecs import hookimpl
from marketsim.learning import collusion
from marketsim.learning.experiment import ExperimentError, make_plan
from marketsim.market import oracle
from marketsim.market.consumers import Logit
from marketsim.market.model import expected_demand
from marketsim.market.run import simulate
from marketsim.registry import UnknownStrategyError, default_registry, load_registry

GRID = [1.5, 1.9]  # low, high


def market(a: dict, b: dict, **over) -> Scenario:
    bounds = {"price_min": 1.0, "price_max": 2.5}
    spec = {
        "name": "tiny",
        "seed": 3,
        "steps": 20_000,
        "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
        "demand": {"mode": "expected"},
        "sellers": [{"name": "a", **bounds, **a}, {"name": "b", **bounds, **b}],
        **over,
    }
    return Scenario.model_validate(spec)


def q_from_policy(policies: list[np.ndarray], m: int = 2) -> np.ndarray:
    """Q tables (L, 1 session, states, m) whose greedy actions are the given policies."""
    return np.stack([np.eye(m)[p][None] for p in policies])


LEARNER = {"strategy": "q_learning", "params": {"grid": GRID}}


def test_one_period_punishment_then_return() -> None:
    plan = make_plan(market(LEARNER, LEARNER), default_registry())
    # states: joint(a, b) = 2a + b; (l,l)=0, (l,h)=1, (h,l)=2, (h,h)=3
    forgiving = np.array([1, 0, 0, 1])  # high after (h,h) or (l,l); low right after a one-sided cut
    q = q_from_policy([forgiving, forgiving])
    cycle = collusion.limit_cycle(plan, q, np.array([0]))
    assert cycle.length[0] == 1 and cycle.state[0] == 3
    np.testing.assert_allclose(cycle.prices[0], [1.9, 1.9])
    imp = collusion.impulse_response(plan, q, cycle, deviator=0, pre=2, after=6)
    at = list(imp.periods).index(0)
    np.testing.assert_allclose(imp.prices[0, :, at], [1.5, 1.9])  # the deviation: static best response is low
    np.testing.assert_allclose(imp.prices[0, :, at + 1], [1.5, 1.5])  # both punish
    np.testing.assert_allclose(imp.prices[0, :, at + 2], [1.9, 1.9])  # and forgive
    assert imp.immediate_gain[0] > 0
    assert imp.punishment_depth[0] == pytest.approx(0.4)
    assert imp.punishment_length[0] == 2 and imp.returns[0]


def test_never_forgiving_rivals_do_not_return() -> None:
    plan = make_plan(market(LEARNER, LEARNER), default_registry())
    grim = np.array([0, 0, 0, 1])  # high only after (h,h): a single cut means low forever
    q = q_from_policy([grim, grim])
    cycle = collusion.limit_cycle(plan, q, np.array([3]))
    imp = collusion.impulse_response(plan, q, cycle, deviator=0, pre=1, after=5)
    assert not imp.returns[0] and imp.punishment_length[0] == 6


def test_best_response_check_against_the_oracle() -> None:
    plan = make_plan(market(LEARNER, {"strategy": "fixed_price", "params": {"price": 1.9}}), default_registry())
    best = oracle.solve(plan.market, 0, plan.reactions, 0.95).policy
    good = collusion.best_responses(
        plan, q_from_policy([best]), collusion.limit_cycle(plan, q_from_policy([best]), np.array([3]))
    )
    assert good.on_path[0, 0] and good.all_states[0, 0] == 1.0 and good.one_shot_on_path[0, 0]
    worst = 1 - best  # the other price in every state
    q = q_from_policy([worst])
    bad = collusion.best_responses(plan, q, collusion.limit_cycle(plan, q, np.array([3])))
    assert not bad.on_path[0, 0] and bad.all_states[0, 0] == 0.0 and not bad.one_shot_on_path[0, 0]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"demand": {"mode": "agents"}}, "demand.mode must be 'expected'"),
        ({"consumers": {"size": 1, "shocks": [{"kind": "step", "at": 3}]}}, "no demand shocks"),
    ],
)
def test_unsupported_markets_are_refused_with_a_reason(over, message) -> None:
    with pytest.raises(ExperimentError, match=message):
        make_plan(market(LEARNER, LEARNER, **over), default_registry())


class SharpLogit(Logit):
    """A logit with half the taste noise: a choice model only a plugin registers."""

    name = "sharp_logit"

    def __init__(self, mu: float = 0.25) -> None:
        super().__init__(mu / 2)


def test_a_choice_model_registered_only_in_the_passed_registry_drives_the_plan() -> None:
    """Bug (b) of issue 12: make_plan looked the choice model up in the default registry, not the one passed."""
    module = types.ModuleType("sharp_plugin")

    @hookimpl
    def register_choice_models(register):
        register(SharpLogit)

    module.register_choice_models = register_choice_models
    registry = load_registry(plugins=[("sharp_plugin", module)])
    consumers = {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25}
    scenario = market(
        LEARNER, {"strategy": "match_lowest"}, consumers={**consumers, "choice": {"model": "sharp_logit"}}
    )
    with pytest.raises(UnknownStrategyError, match="sharp_logit"):
        make_plan(scenario, default_registry())  # the default registry does not know it
    simulate(scenario.model_copy(update={"steps": 3}), registry)  # the per-step model finds it in the registry passed
    plan = make_plan(scenario, registry)
    demand = expected_demand(scenario, registry)
    np.testing.assert_array_equal(plan.market.profits[:, 0], demand.profits(plan.market.grids[:, 0]))
    logit = make_plan(market(LEARNER, {"strategy": "match_lowest"}), registry)
    assert not np.array_equal(plan.market.profits, logit.market.profits)  # a different model, different profits


def test_stochastic_rivals_cannot_be_tabulated() -> None:
    with pytest.raises(ExperimentError, match="cannot be tabulated"):
        make_plan(market(LEARNER, {"strategy": "random_price"}), default_registry())
    with pytest.raises(ExperimentError, match="no tabular learner"):
        make_plan(market({"strategy": "fixed_price"}, {"strategy": "undercut"}), default_registry())


def test_experiment_command_writes_summary_and_plots(tmp_path: Path, capsys) -> None:
    path = tmp_path / "market.yaml"
    path.write_text(
        """
name: small
seed: 5
steps: 60000
consumers: {size: 1, wtp: {distribution: constant, value: 0}, mu: 0.25}
demand: {mode: expected}
sellers:
  - name: f
    count: 2
    strategy: q_learning
    params: {beta: 2.0e-4, convergence_steps: 2000}
    price_min: 1
    price_max: 2.5
"""
    )
    out = tmp_path / "exp"
    assert main(["experiment", str(path), "--sessions", "6", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sessions"] == 6
    for key in ("converged_share", "mutual_best_response_share", "no_profitable_one_shot_deviation_share"):
        assert 0.0 <= summary[key] <= 1.0
    for key in ("profit_gain", "steps_to_convergence", "prices"):
        assert {"mean", "sd"} <= set(summary[key])
    assert summary["converged_share"] > 0.5
    assert {"histograms.png", "impulse_response.png", "sessions.csv", "summary.json"} <= {p.name for p in out.iterdir()}
    rows = (out / "sessions.csv").read_text().splitlines()
    assert len(rows) == 7 and "f_1.profit_gain" in rows[0] and "punishment_depth" in rows[0]


def test_experiment_command_reports_unsupported_scenarios(tmp_path: Path, capsys) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "name: a\nsellers:\n  - {name: f, count: 2, strategy: q_learning}\n",
    )
    assert main(["experiment", str(path), "--sessions", "2", "--out", str(tmp_path / "o")]) == 2
    assert "demand.mode must be 'expected'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
