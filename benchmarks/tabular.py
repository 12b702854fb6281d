"""Session-steps per second of the batched tabular engine against one-session-at-a-time loops.

Measured side by side on the Calvano et al. (2020) baseline (scenarios/calvano2020.yaml):
  * one session in a plain loop: the q_learning strategy objects driven directly, profits from the
    same table (no Mesa, no data collection): the fastest way to run sessions one at a time;
  * one session through the Mesa model (`marketsim run`), the per-step path;
  * the batched engine (`marketsim experiment`) with 1000 sessions in lockstep, in one process and
    split over two worker processes.
Target: batched ≥ 20× the one-session loop.

    python benchmarks/tabular.py [--steps 4096]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from marketsim.config.validate import load_scenario
from marketsim.learning import tabular
from marketsim.learning.experiment import make_plan, run_block, run_sessions
from marketsim.market.model import MarketModel
from marketsim.market.step import outcome
from marketsim.registry import default_registry

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "calvano2020.yaml"


def plain_loop(steps: int) -> float:
    """Session-steps per second of one session of two strategy objects in a bare loop."""
    scenario = load_scenario(SCENARIO)
    registry = default_registry()
    plan = make_plan(scenario, registry)
    model = MarketModel(scenario, registry)  # only to set the strategies up exactly as a run would
    learners = [registry.create("q_learning", s.spec.params) for s in model.sellers]
    for i, learner in enumerate(learners):
        learner.setup(model.market.info(i), np.random.default_rng(i))
    obs = list(model.observations)
    start = time.perf_counter()
    for _ in range(steps):
        prices = [learner.price(o) for learner, o in zip(learners, obs)]
        actions = [tabular.nearest(plan.market.grids[j], p) for j, p in enumerate(prices)]
        profits = plan.market.profits[:, int(tabular.joint_index(actions, plan.m))]
        for i, learner in enumerate(learners):
            rivals = (prices[1 - i],)
            nxt = dataclasses.replace(obs[i], own_price=prices[i], competitor_prices=rivals)
            learner.learn(
                outcome(
                    step=0,
                    price=prices[i],
                    units=0.0,
                    cost=0.0,
                    profit=float(profits[i]),
                    competitor_prices=rivals,
                    next_observation=nxt,
                )
            )
            obs[i] = nxt
    return steps / (time.perf_counter() - start)


def mesa_loop(steps: int) -> float:
    """Session-steps per second of one session through MarketModel.step()."""
    model = MarketModel(load_scenario(SCENARIO))
    start = time.perf_counter()
    for _ in range(steps):
        model.step()
    return steps / (time.perf_counter() - start)


def batched(sessions: int, steps: int, workers: int) -> float:
    """Session-steps per second of the lockstep engine (no session converges this early)."""
    plan = make_plan(load_scenario(SCENARIO), default_registry())
    seeds = list(range(sessions))
    start = time.perf_counter()
    if workers == 1:
        run_block(plan, seeds, steps)
    else:
        run_sessions(plan, seeds, steps, workers)
    return sessions * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16384, help="steps per measurement (worker start-up is included)")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions in the batched runs")
    args = parser.parse_args()
    console = Console(width=120)
    rows = []
    with console.status("one session, plain loop …"):
        rows.append(("one session, plain loop of strategy objects", plain_loop(args.steps)))
    with console.status("one session, Mesa model …"):
        rows.append(("one session, Mesa MarketModel.step()", mesa_loop(args.steps)))
    with console.status(f"{args.sessions} sessions batched, 1 process …"):
        rows.append((f"{args.sessions} sessions batched, 1 process", batched(args.sessions, args.steps, 1)))
    with console.status(f"{args.sessions} sessions batched, 2 workers …"):
        rows.append((f"{args.sessions} sessions batched, 2 worker processes", batched(args.sessions, args.steps, 2)))
    base = rows[0][1]
    table = Table(title="Calvano baseline: session-steps per second")
    for col in ("engine", "session-steps / s", "vs plain loop"):
        table.add_column(col, justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / base:,.1f}×")
    console.print(table)
    steps_needed = 1000 * 2.0e6
    console.print(
        f"batched (2 workers) vs one-session loop: {rows[3][1] / base:,.0f}× (target ≥ 20×); "
        f"1000 sessions × 2 million periods at this rate ≈ {steps_needed / rows[3][1] / 60:,.1f} min"
    )


if __name__ == "__main__":
    main()
