"""Deep-RL sellers: DQN learning steps per second, A3C environment steps per second with 1 and 2 workers.

Measured side by side in one run, on the learning tests' market: the Calvano et al. (2020) logit duopoly
(expected demand, mu 0.25, bounds 1.0–2.5, a 15-price grid) with the learner at seat 0 against a rival that
matches its last price (match_lowest).
  * DQN (plugins/marketsim_deep/dqn.py) inside the market loop (act → outcome → store → one gradient step
    per step, batch 64), after its `learning_starts` warm-up, in one process; with torch's default number
    of threads and with one.
  * A3C (plugins/marketsim_deep/a3c.py) trained by the host's worker processes
    (`marketsim.learning.parallel.train_workers`) with 1 and with 2 workers,
    the same number of environment steps per worker; the rate counts the steps of all workers over the
    training loop (the workers are released together once all have started; start-up — spawning a
    process and importing torch — is shown apart). Each configuration runs `--repeats` times, alternating,
    and the best run is kept: on a shared machine the best run is the one least disturbed by other work.
Target: A3C with 2 workers ≥ 1.6× one worker on a 2-core machine.

    python benchmarks/rl.py [--steps 20000] [--dqn-steps 5000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from rich.console import Console
from rich.table import Table

from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel


def duopoly(strategy: str, params: dict | None = None, seed: int = 1) -> Scenario:
    """The logit duopoly with ``strategy`` at seat 0 against a price matcher."""
    bounds = {"price_min": 1.0, "price_max": 2.5}
    learner = {"name": "learner", "strategy": strategy, "params": {"device": "cpu", **(params or {})}, **bounds}
    return Scenario.model_validate(
        {
            "name": "rl-benchmark",
            "seed": seed,
            "steps": 10,
            "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
            "demand": {"mode": "expected"},
            "sellers": [learner, {"name": "matcher", "strategy": "match_lowest", **bounds}],
        }
    )


class _NoCollector:
    def collect(self, model: MarketModel) -> None:
        pass


def dqn_rate(steps: int, threads: int, max_seconds: float = 30.0) -> tuple[float, float] | str:
    """(gradient steps per second, environment steps per second) of DQN learning in the market loop.

    Stops early after ``max_seconds`` (two torch threads on a busy two-core machine can be very slow).
    """
    try:
        from marketsim_deep.dqn import DQN  # noqa: F401  (written alongside; may not be there yet)
    except Exception as exc:  # pragma: no cover - depends on the tree
        return f"DQN not available: {type(exc).__name__}: {exc}"
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = MarketModel(duopoly("dqn"))
        model.datacollector = _NoCollector()  # no per-step table: measure the learner, not the bookkeeping
        learner = model.sellers[0].strategy
        while learner.updates < 1:  # past learning_starts: every step now trains
            model.step()
        updates = learner.updates
        start = time.perf_counter()
        done = 0
        while done < steps and (done % 100 or time.perf_counter() - start < max_seconds):
            model.step()
            done += 1
        seconds = time.perf_counter() - start
        return (learner.updates - updates) / seconds, done / seconds
    finally:
        torch.set_num_threads(before)


def a3c_rate(steps_per_worker: int, workers: int) -> tuple[float, float, float, float]:
    """(env steps per second of all workers, per worker CPU second, start-up seconds, wall seconds)."""
    from marketsim.learning.parallel import ScenarioMarkets, train_workers
    from marketsim.registry import default_registry

    start = time.perf_counter()
    stats = train_workers(
        ScenarioMarkets(duopoly("a3c"), default_registry()), 0, steps_per_worker * workers, workers
    ).stats
    wall = time.perf_counter() - start
    return stats.env_steps_per_second, stats.env_steps_per_cpu_second, stats.startup_seconds, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="A3C environment steps per worker")
    parser.add_argument("--dqn-steps", type=int, default=5_000, help="DQN learning steps measured")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each A3C configuration (best kept)")
    args = parser.parse_args()
    console = Console(width=120)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(
        f"{os.cpu_count()} CPU cores (load average {load} before the run), torch {torch.__version__}, "
        f"default torch threads {torch.get_num_threads()}"
    )

    dqn = {}
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
        with console.status(f"DQN, {threads} torch thread(s) …"):
            dqn[threads] = dqn_rate(args.dqn_steps, threads)
    a3c: dict[int, tuple[float, float, float, float]] = {}
    for r in range(args.repeats):
        for workers in (1, 2):
            with console.status(f"A3C, {workers} worker(s), run {r + 1}/{args.repeats} …"):
                result = a3c_rate(args.steps, workers)
            if workers not in a3c or result[0] > a3c[workers][0]:
                a3c[workers] = result

    table = Table(title="Deep-RL sellers vs a price matcher (logit duopoly)")
    for col in ("learner", "rate", "unit", "notes"):
        table.add_column(col, justify="right")
    for threads, result in dqn.items():
        if isinstance(result, str):
            table.add_row(f"DQN, {threads} torch thread(s)", "—", "", result)
        else:
            updates, env = result
            table.add_row(
                f"DQN, {threads} torch thread(s)", f"{updates:,.0f}", "learning steps / s", f"{env:,.0f} env steps / s"
            )
    for workers, (rate, per_cpu, startup, wall) in a3c.items():
        table.add_row(
            f"A3C, {workers} worker process{'es' if workers > 1 else ''}",
            f"{rate:,.0f}",
            "env steps / s",
            f"{args.steps * workers:,} steps; {per_cpu:,.0f} / CPU-s; start-up {startup:.1f} s; wall {wall:.1f} s",
        )
    console.print(table)
    ratio = a3c[2][0] / a3c[1][0]
    wall_ratio = (2 * args.steps / a3c[2][3]) / (args.steps / a3c[1][3])
    console.print(
        f"A3C 2 workers / 1 worker: {ratio:.2f}× env steps per second over the training loop (target ≥ 1.6×); "
        f"{wall_ratio:.2f}× including process start-up; per worker CPU second {a3c[2][1] / a3c[1][1]:.2f}× "
        "(≈ 1 when the workers do not slow each other down; wall-clock scaling then needs a free core each)"
    )


if __name__ == "__main__":
    main()
