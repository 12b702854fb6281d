"""Tabular learners: the maths, the per-step strategies, the batched engine, convergence and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from markets import MONOPOLY, NASH, duopoly
from marketsim.config.scenario import Scenario
from marketsim.learning import tabular
from marketsim.learning.experiment import make_plan, run_block
from marketsim.market import oracle
from marketsim.market.model import MarketModel
from marketsim.registry import default_registry

# --- the maths --------------------------------------------------------------------------------------


def test_default_grid_spans_nash_to_monopoly_with_margin() -> None:
    cfg = tabular.TabularConfig("q_learning")
    grid = tabular.price_grid(cfg, NASH, MONOPOLY)
    span = MONOPOLY - NASH
    assert len(grid) == 15
    assert grid[0] == pytest.approx(NASH - 0.1 * span) and grid[-1] == pytest.approx(MONOPOLY + 0.1 * span)
    explicit = tabular.TabularConfig("q_learning", grid=(1.0, 1.5, 2.0))
    np.testing.assert_array_equal(tabular.price_grid(explicit, NASH, MONOPOLY), [1.0, 1.5, 2.0])


def test_exploration_schedules() -> None:
    exp = tabular.TabularConfig("q_learning", beta=1e-3)
    assert tabular.epsilon(exp, 0) == 1.0 and tabular.epsilon(exp, 1000) == pytest.approx(math.exp(-1))
    lin = tabular.TabularConfig("sarsa", exploration="linear", epsilon=0.4, epsilon_min=0.0, decay_steps=100)
    assert [tabular.epsilon(lin, t) for t in (0, 50, 100, 500)] == pytest.approx([0.4, 0.2, 0.0, 0.0])
    const = tabular.TabularConfig("q_learning", exploration="constant", epsilon=0.07)
    assert tabular.epsilon(const, 10**6) == 0.07
    boltz = tabular.TabularConfig("q_learning", exploration="boltzmann", temperature=2.0, beta=1e-2)
    assert tabular.temperature(boltz, 100) == pytest.approx(2.0 * math.exp(-1))
    # Boltzmann picks by softmax: a dominant action at low temperature, uniform at high temperature
    q = np.array([0.0, 1.0, 0.0])
    cold = tabular.TabularConfig("q_learning", exploration="boltzmann", temperature=1e-3)
    assert tabular.choose(cold, q, 0, np.array([0.5, 0.3])) == 1
    hot = tabular.TabularConfig("q_learning", exploration="boltzmann", temperature=1e6)
    picks = [int(tabular.choose(hot, q, 0, np.array([0.0, u]))) for u in (0.1, 0.5, 0.9)]
    assert picks == [0, 1, 2]


def test_epsilon_greedy_choice() -> None:
    cfg = tabular.TabularConfig("q_learning", exploration="constant", epsilon=0.25)
    q = np.array([[0.0, 3.0, 1.0, 2.0]])
    assert tabular.choose(cfg, q, 0, np.array([[0.3, 0.0]]))[0] == 1  # u0 ≥ ε: greedy
    assert tabular.choose(cfg, q, 0, np.array([[0.2, 0.99]]))[0] == 3  # u0 < ε: floor(u1 · m)


def test_state_encoding_with_memory() -> None:
    m, n = 3, 2
    assert tabular.joint_index([2, 1], m) == 7  # seller 0 most significant
    s = tabular.initial_state(7, m, n, memory=2)
    assert s == 7 + 9 * 7
    s2 = tabular.advance_state(s, 4, m, n, memory=2)
    assert s2 == 4 + 9 * 7  # newest first, oldest dropped
    assert tabular.n_states(m, n, 2) == 81


def test_initial_q_is_payoff_against_uniform_rivals() -> None:
    cfg = tabular.TabularConfig("q_learning", grid=(1.0, 2.0), delta=0.9)
    own = np.array([[1.0, 4.0], [3.0, 0.0]])  # rival action × own action
    q = tabular.initial_q(cfg, own, n_sellers=2)
    np.testing.assert_allclose(q, np.tile([2.0 / 0.1, 2.0 / 0.1], (4, 1)))
    zeros = tabular.TabularConfig("q_learning", grid=(1.0, 2.0), q_init="zeros")
    assert not tabular.initial_q(zeros, own, 2).any()


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        tabular.TabularConfig("q_learning", alpha=0.0).validate()
    with pytest.raises(ValueError, match="delta"):
        tabular.TabularConfig("q_learning", delta=1.0).validate()


# --- the batched engine equals the per-step model ---------------------------------------------------


def _mesa_prices(scenario: Scenario) -> np.ndarray:
    model = MarketModel(scenario)
    while model.running and model.steps < scenario.steps:
        model.step()
    return model.datacollector.get_model_vars_dataframe()[["a.price", "b.price"]].to_numpy()


def _batched_prices(scenario: Scenario, seeds: list[int]) -> list[np.ndarray]:
    plan = make_plan(scenario, default_registry())
    block = run_block(plan, seeds, scenario.steps, trace=True)
    out = []
    for k in range(len(seeds)):
        rows = [acts[:, list(active).index(k)] for active, acts in block.trace if k in active]
        out.append(plan.market.grids[np.arange(2)[:, None], np.array(rows).T].T)
    return out


@pytest.mark.parametrize("algorithm", ["q_learning", "sarsa"])
def test_batched_engine_posts_the_same_prices_as_the_per_step_model(algorithm: str) -> None:
    learner = {"strategy": algorithm, "params": {"beta": 2e-3, "convergence_steps": 300}}
    other = {"strategy": algorithm, "params": {"beta": 1.5e-3, "convergence_steps": 300, "q_init": "zeros"}}
    scenario = duopoly(learner, other, steps=8000)
    batched = _batched_prices(scenario, [7, 8])
    for k, seed in enumerate([7, 8]):
        mesa = _mesa_prices(scenario.with_overrides(seed=seed))
        assert len(mesa) < scenario.steps  # both stopped at convergence, at the same step
        np.testing.assert_array_equal(mesa, batched[k])


def test_batched_engine_matches_per_step_model_against_a_rule_on_the_grid() -> None:
    grid = make_plan(duopoly({"strategy": "q_learning"}, {"strategy": "fixed_price"}), default_registry()).market.grids[
        1
    ]
    learner = {"strategy": "q_learning", "params": {"beta": 1e-3}, "initial_price": float(grid[4])}
    rival = {"strategy": "fixed_price", "params": {"price": float(grid[3])}, "initial_price": float(grid[3])}
    scenario = duopoly(learner, rival, steps=1500)
    np.testing.assert_array_equal(_mesa_prices(scenario), _batched_prices(scenario, [scenario.seed])[0])


@pytest.mark.slow  # worker processes (about 5 s)
def test_results_do_not_depend_on_worker_count() -> None:
    from marketsim.learning.experiment import run_sessions

    scenario = duopoly(
        {"strategy": "q_learning", "params": {"beta": 5e-4, "convergence_steps": 500}},
        {"strategy": "sarsa", "params": {"beta": 5e-4, "convergence_steps": 500}},
    )
    plan = make_plan(scenario, default_registry())
    one = run_sessions(plan, [1, 2, 3], 20_000, workers=1)
    two = run_sessions(plan, [1, 2, 3], 20_000, workers=2)
    np.testing.assert_array_equal(one.q, two.q)
    np.testing.assert_array_equal(one.steps, two.steps)


# --- the convergence rule ----------------------------------------------------------------------------


def test_run_stops_when_no_greedy_action_changed_for_k_steps() -> None:
    k = 400
    learner = {"strategy": "q_learning", "params": {"beta": 3e-3, "convergence_steps": k, "q_init": "zeros"}}
    scenario = duopoly(learner, {"strategy": "fixed_price", "params": {"price": 1.6}}, steps=20_000)
    model = MarketModel(scenario)
    greedy = []
    while model.running and model.steps < scenario.steps:
        model.step()
        greedy.append(model.sellers[0].strategy.q.argmax(axis=1).copy())
    stop = len(greedy)
    assert stop < scenario.steps and model.sellers[0].strategy.converged
    assert all(np.array_equal(greedy[-1], g) for g in greedy[-k:])  # unchanged over the last K steps
    assert not np.array_equal(greedy[-k - 1], greedy[-k - 2])  # and the change just before them counted


def test_step_cap_reports_not_converged() -> None:
    from marketsim.market.run import simulate

    learner = {"strategy": "q_learning", "params": {"convergence_steps": 10_000}}
    result = simulate(duopoly(learner, {"strategy": "fixed_price"}, steps=50))
    assert result.converged is False and len(result.steps) == 50
    assert result.summary()["converged"] is False


def test_state_dict_round_trip_continues_identically() -> None:
    learner = {"strategy": "q_learning", "params": {"beta": 1e-3}}
    scenario = duopoly(learner, {"strategy": "fixed_price"}, steps=10)
    a, b = MarketModel(scenario), MarketModel(scenario)
    for _ in range(2500):
        a.step()
        b.step()
    b.sellers[0].strategy.load_state_dict(a.sellers[0].strategy.state_dict())
    for _ in range(300):
        a.step()
        b.step()
    assert a.sellers[0].price == b.sellers[0].price
    np.testing.assert_array_equal(a.sellers[0].strategy.q, b.sellers[0].strategy.q)


# --- learning: the normalised score S against reactive rivals, 10 seeds each -------------------------

# Learning budgets (the learners never stop early here: they learn for the whole budget). On-policy
# SARSA needs slower exploration decay and a smaller step size than Q-learning to settle on the optimum.
BUDGET = {
    "q_learning": ({"alpha": 0.5, "beta": 3e-5, "convergence_steps": 10**9}, 300_000),
    "sarsa": ({"alpha": 0.3, "beta": 1e-5, "convergence_steps": 10**9}, 900_000),
}
SEEDS = list(range(100, 110))


def _scores(algorithm: str, rival: dict) -> tuple[list[float], float]:
    params, steps = BUDGET[algorithm]
    scenario = duopoly({"strategy": algorithm, "params": params}, rival)
    plan = make_plan(scenario, default_registry())
    block = run_block(plan, SEEDS, steps)
    q = block.tables()
    results = [
        oracle.score(plan.market, 0, q[0, s].argmax(axis=1), plan.reactions, 0.95, start=int(block.state[s]))
        for s in range(len(SEEDS))
    ]
    return [r.score for r in results], results[0].myopic_score


@pytest.mark.slow
def test_q_learning_finds_the_best_response_to_a_rival_fixed_at_nash() -> None:
    scores, _ = _scores("q_learning", {"strategy": "fixed_price", "params": {"price": NASH}})
    assert sum(s >= 0.99 for s in scores) == 10, scores


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["q_learning", "sarsa"])
def test_learners_learn_to_keep_prices_up_against_a_matching_rival(algorithm: str) -> None:
    scores, myopic = _scores(algorithm, {"strategy": "match_lowest"})
    assert sum(s >= 0.95 for s in scores) >= 9, scores
    assert min(scores) > myopic  # every seed beats the myopic best response


@pytest.mark.parametrize("algorithm", ["q_learning", "sarsa"])
def test_a_frozen_learner_still_follows_the_prices_it_observes(algorithm: str) -> None:
    """With learning off (a tournament's evaluation phase) no outcome arrives, yet the state is last period's prices."""
    learner = {"name": "learner", "strategy": algorithm, "params": {"beta": 1e-2}}
    rival = {"name": "rival", "strategy": "random_price", "params": {"low": 1.2, "high": 2.2}}
    model = MarketModel(duopoly(learner, rival, seed=5, steps=400))
    for _ in range(300):
        model.step()
    model.set_learning(False)
    strategy = model.sellers[0].strategy
    states = set()
    for _ in range(60):
        obs = model.observations[0]
        joint = strategy._joint(obs.own_price, obs.competitor_prices)
        expected_state = int(tabular.advance_state(strategy.state, joint, strategy.config.m, 2, strategy.config.memory))
        model.step()
        assert strategy.state == expected_state  # the rival's last price moved it, with no learn() call
        assert model.sellers[0].price == float(strategy.prices[int(strategy.q[expected_state].argmax())])
        states.add(strategy.state)
    assert len(states) > 5  # a random rival takes it through many states, not one frozen state
