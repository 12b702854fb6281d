"""Session-steps per second of the batched tabular engines against one-session-at-a-time loops.

Measured side by side on the Calvano et al. (2020) baseline (scenarios/calvano2020.yaml):
  * one session in a plain loop: the q_learning strategy objects driven directly, profits from the
    same table (no Mesa, no data collection): the fastest way to run sessions one at a time;
  * one session through the Mesa model (`marketsim run`), the per-step path;
  * the batched engine (`marketsim experiment`) with 1000 sessions in lockstep in one process, on the
    numpy engine (the vectorised reference) and on the compiled engine (the numba kernel, identical
    results), and the compiled engine split over two worker processes (their start-up included).
The compiled engine's speed is its steady state (compiled beforehand); the compile itself is timed apart,
in a fresh process, without and with numba's disk cache.
Targets: compiled ≥ 5× numpy (1 process); batched ≥ 20× the one-session loop.

    python benchmarks/tabular.py [--steps 16384] [--sessions 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
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


def batched(sessions: int, steps: int, workers: int, engine: str) -> float:
    """Session-steps per second of the lockstep engine (no session converges this early)."""
    plan = make_plan(load_scenario(SCENARIO), default_registry())
    seeds = list(range(sessions))
    run_block(plan, seeds[:1], 10, engine=engine)  # compiled: load the kernel first (steady state)
    start = time.perf_counter()
    if workers == 1:
        run_block(plan, seeds, steps, engine=engine)
    else:
        run_sessions(plan, seeds, steps, workers, engine=engine)
    return sessions * steps / (time.perf_counter() - start)


_FIRST_CALL = """
import time
start = time.perf_counter()
from marketsim.learning import kernel
loaded = time.perf_counter()
from marketsim.config.validate import load_scenario
from marketsim.learning.experiment import make_plan, run_block
from marketsim.registry import default_registry
plan = make_plan(load_scenario({path!r}), default_registry())
before = time.perf_counter()
run_block(plan, [0], 10, engine="compiled")
print(loaded - start, time.perf_counter() - before)
"""


def compile_times() -> tuple[float, float, float]:
    """(import numba, first call compiling, first call from the disk cache), in fresh processes."""
    code = _FIRST_CALL.format(path=str(SCENARIO))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)]
        runs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True))
    (load, cold), (_, warm) = (map(float, r.stdout.split()) for r in runs)
    return load, cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16384, help="steps per measurement (worker start-up is included)")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions in the batched runs")
    parser.add_argument(
        "--worker-steps", type=int, default=131072, help="steps of the 2-worker run (long enough to amortise start-up)"
    )
    args = parser.parse_args()
    console = Console(width=120)
    batch = f"{args.sessions} sessions batched"
    jobs = [
        ("one session, plain loop of strategy objects", lambda: plain_loop(args.steps)),
        ("one session, Mesa MarketModel.step()", lambda: mesa_loop(args.steps)),
        (f"{batch}, numpy engine, 1 process", lambda: batched(args.sessions, args.steps, 1, "numpy")),
        (f"{batch}, compiled engine, 1 process", lambda: batched(args.sessions, args.steps, 1, "compiled")),
        (
            f"{batch}, compiled engine, 2 worker processes ({args.worker_steps:,} periods, start-up included)",
            lambda: batched(args.sessions, args.worker_steps, 2, "compiled"),
        ),
    ]
    rows = []
    with console.status("compile time …"):
        load, cold, warm = compile_times()
    for name, job in jobs:
        with console.status(f"{name} …"):
            rows.append((name, job()))
    base, numpy_rate = rows[0][1], rows[2][1]
    table = Table(title=f"Calvano baseline: session-steps per second ({args.steps:,} periods per measurement)")
    for col in ("engine", "session-steps / s", "vs plain loop", "vs numpy batched"):
        table.add_column(col, justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / base:,.1f}×", f"{rate / numpy_rate:,.2f}×")
    console.print(table)
    console.print(
        f"compiled vs numpy engine (1 process): {rows[3][1] / numpy_rate:,.1f}× (target ≥ 5×); "
        f"compiled vs one-session loop: {rows[3][1] / base:,.0f}× (target ≥ 20×)"
    )
    console.print(
        f"compile (fresh process): import numba {load:.2f} s; first call {cold:.2f} s without the disk cache, "
        f"{warm:.2f} s with it (numba's cache=True)"
    )
    steps_needed = 1000 * 1.85e6
    console.print(
        f"Calvano baseline, 1000 sessions × 1.85 million periods (its mean to convergence) at the 2-worker compiled "
        f"rate ≈ {steps_needed / rows[4][1] / 60:,.1f} min (an estimate: the speed varies with ε along a session)"
    )


if __name__ == "__main__":
    main()
