"""The compiled tabular engine (numba kernel) against the numpy engine and the per-step model.

The compiled engine must post the same prices, converge at the same step and end with bit-identical Q tables
as the numpy engine (the reference) and as `marketsim run` (``MarketModel``) on the same seeds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marketsim.cli.app import main
from marketsim.config.scenario import Scenario
from marketsim.learning.experiment import make_plan, resolve_engine, run_block, run_sessions
from marketsim.market.model import MarketModel
from marketsim.registry import default_registry

pytest.importorskip("numba")

GRID = [1.45, 1.6, 1.75, 1.9]  # every seller's grid, so rules and starting prices sit on it exactly
BOUNDS = {"price_min": 1.0, "price_max": 2.5}


def learner(algorithm: str = "q_learning", **params: Any) -> dict:
    return {"strategy": algorithm, "params": {"grid": GRID, "beta": 2e-3, "convergence_steps": 300, **params}}


def market(*sellers: dict, steps: int = 6000, seed: int = 100) -> Scenario:
    """The logit market of tests/markets.py with these sellers (named a, b, c, …), each starting at GRID[2]."""
    spec = {
        "name": "kernel",
        "seed": seed,
        "steps": steps,
        "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
        "demand": {"mode": "expected"},
        "sellers": [
            {"name": chr(ord("a") + i), "initial_price": GRID[2], **BOUNDS, **s} for i, s in enumerate(sellers)
        ],
    }
    return Scenario.model_validate(spec)


LINEAR = {"exploration": "linear", "epsilon": 0.3, "epsilon_min": 0.0, "decay_steps": 1500, "convergence_steps": 150}
FAST = {"beta": 5e-3, "convergence_steps": 100, "alpha": 0.5}
CASES = {  # scenario, seeds (the first two also through the per-step model); most sessions converge before the cap
    "q_learning duopoly": (market(learner(), learner(beta=1.5e-3, q_init="zeros")), [7, 8, 9]),
    "sarsa duopoly": (market(learner("sarsa"), learner("sarsa", beta=1.5e-3, q_init="zeros")), [7, 8, 9]),
    "three firms, two learners and a rule rival": (
        market(learner(**FAST), learner("sarsa", **FAST), {"strategy": "match_lowest"}, steps=4000),
        [1, 3, 2],
    ),
    "three learners (at the cap)": (market(learner(), learner("sarsa"), learner(beta=3e-3), steps=3000), [7, 8]),
    "memory 2": (market(learner(memory=2, **LINEAR), learner("sarsa", memory=2, **LINEAR), steps=4000), [6, 4, 1]),
    "a tabulated rule rival (match_lowest)": (
        market(learner(beta=4e-3, convergence_steps=200), {"strategy": "match_lowest"}, steps=4000),
        [2, 6, 1],
    ),
    "linear and constant epsilon": (
        market(
            learner(exploration="linear", epsilon=0.5, epsilon_min=0.01, decay_steps=1500),
            learner(exploration="constant", epsilon=0.02, convergence_steps=200),
        ),
        [7, 8, 9],
    ),
}


def engine_block(scenario: Scenario, seeds: list[int], engine: str):
    plan = make_plan(scenario, default_registry())
    return plan, run_block(plan, seeds, scenario.steps, trace=True, engine=engine)


def traced_actions(block, k: int) -> np.ndarray:
    """Session k's actions (periods, n) from the block's trace."""
    return np.array([acts[:, list(active).index(k)] for active, acts in block.trace if k in active])


def assert_same_blocks(a, b) -> None:
    for field in ("q", "best", "greedy", "state", "stable", "steps", "converged"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert len(a.trace) == len(b.trace)
    for (active_a, acts_a), (active_b, acts_b) in zip(a.trace, b.trace):
        np.testing.assert_array_equal(active_a, active_b)
        np.testing.assert_array_equal(acts_a, acts_b)


def per_step_model(scenario: Scenario, learners: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """What `marketsim run` does: the posted prices (periods, n) and the learners' final Q tables."""
    model = MarketModel(scenario)
    while model.running and model.steps < scenario.steps:
        model.step()
    names = [f"{s.name}.price" for s in scenario.sellers]
    prices = model.datacollector.get_model_vars_dataframe()[names].to_numpy()
    return prices, [model.sellers[j].strategy.q for j in learners]


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_engine_equals_numpy_engine_and_the_per_step_model(case: str) -> None:
    scenario, seeds = CASES[case]
    plan, compiled = engine_block(scenario, seeds, "compiled")
    _, reference = engine_block(scenario, seeds, "numpy")
    assert compiled.engine == "compiled" and reference.engine == "numpy"
    assert_same_blocks(compiled, reference)
    tables = compiled.tables()
    for k, seed in enumerate(seeds[:2]):  # the per-step model is slow: two seeds are enough
        prices, q = per_step_model(scenario.with_overrides(seed=seed), plan.learners)
        assert len(prices) == compiled.steps[k]  # stopped at the same step
        grid_prices = plan.market.grids[np.arange(plan.n), traced_actions(compiled, k)]
        np.testing.assert_array_equal(prices, grid_prices)
        for i in range(len(plan.learners)):
            np.testing.assert_array_equal(q[i], tables[i, k])


def test_sessions_converging_early_leave_the_others_running() -> None:
    """Small patience: sessions stop at different periods, so the active set shrinks as the run goes."""
    scenario = market(learner(convergence_steps=40, beta=5e-3), learner("sarsa", convergence_steps=60), steps=4000)
    seeds = list(range(20, 32))
    _, compiled = engine_block(scenario, seeds, "compiled")
    _, reference = engine_block(scenario, seeds, "numpy")
    assert compiled.converged.all() and len(set(compiled.steps.tolist())) > 3
    assert_same_blocks(compiled, reference)


def test_a_cap_inside_a_block_and_across_blocks() -> None:
    """Step caps that end mid-way through a block of uniforms, and past several blocks, stop both engines alike."""
    scenario = market(learner(convergence_steps=10**6), learner("sarsa", convergence_steps=10**6))
    plan = make_plan(scenario, default_registry())
    for cap in (1, 777, 2 * 2048 + 5):
        compiled = run_block(plan, [1, 2], cap, engine="compiled")
        reference = run_block(plan, [1, 2], cap, engine="numpy")
        assert not compiled.converged.any() and (compiled.steps == cap).all()
        np.testing.assert_array_equal(compiled.q, reference.q)
        np.testing.assert_array_equal(compiled.state, reference.state)


def test_ties_go_to_the_lowest_index_as_argmax() -> None:
    """Optimistic tables of equal values: every update lowers the greedy action, and its row is re-scanned among
    ties, which must go to the lowest index as ``np.argmax`` sends them (the numpy engine's choice)."""
    plan = make_plan(market(learner("sarsa"), learner()), default_registry())
    plan = dataclasses.replace(plan, q0=tuple(np.full_like(q0, 100.0) for q0 in plan.q0))
    compiled = run_block(plan, [1, 2], 3000, engine="compiled")
    reference = run_block(plan, [1, 2], 3000, engine="numpy")
    for field in ("q", "greedy", "best", "stable", "steps", "state"):
        np.testing.assert_array_equal(getattr(compiled, field), getattr(reference, field), err_msg=field)


def test_boltzmann_exploration_runs_on_the_numpy_engine() -> None:
    scenario = market(learner(exploration="boltzmann", temperature=0.5), learner())
    plan = make_plan(scenario, default_registry())
    assert resolve_engine(plan, "compiled") == "numpy"
    assert run_block(plan, [1], 50, engine="compiled").engine == "numpy"
    assert resolve_engine(make_plan(market(learner(), learner()), default_registry())) == "compiled"


@pytest.mark.slow  # two worker processes (a few seconds to start)
def test_compiled_results_do_not_depend_on_worker_count() -> None:
    scenario = market(learner(convergence_steps=200), learner("sarsa", convergence_steps=200), steps=20_000)
    plan = make_plan(scenario, default_registry())
    seeds = [1, 2, 3, 4, 5]
    one = run_sessions(plan, seeds, scenario.steps, workers=1, engine="compiled")
    two = run_sessions(plan, seeds, scenario.steps, workers=2, engine="compiled")
    assert one.engine == two.engine == "compiled"
    for field in ("q", "state", "steps", "converged"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))


def test_cli_engines_write_the_same_sessions_csv(tmp_path: Path) -> None:
    path = tmp_path / "market.yaml"
    path.write_text(
        """
name: small
seed: 5
steps: 8000
consumers: {size: 1, wtp: {distribution: constant, value: 0}, mu: 0.25}
demand: {mode: expected}
sellers:
  - {name: f, count: 2, strategy: q_learning, params: {grid_size: 5, beta: 2.0e-3, convergence_steps: 300},
     price_min: 1, price_max: 2.5}
"""
    )
    tables = {}
    for engine in ("numpy", "compiled"):
        out = tmp_path / engine
        assert main(["experiment", str(path), "--sessions", "4", "--engine", engine, "--out", str(out), "--quiet"]) == 0
        tables[engine] = (out / "sessions.csv").read_text()
        assert f'"engine": "{engine}"' in (out / "summary.json").read_text()
    assert tables["numpy"] == tables["compiled"]
