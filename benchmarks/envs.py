"""Environment steps per second: the batched vector env against Gymnasium's SyncVectorEnv, and the single env's
step against the Mesa model's step on the same market.

1. ``vector_env`` with N expected-demand duopolies (``scenarios/deep_duopoly.yaml``, the agent against a
   price-matching rival) against ``gymnasium.vector.SyncVectorEnv`` of N ``gym_env`` copies, same actions,
   in the same run. Target: ≥ 50× at N = 1,024.
2. One ``gym_env`` step against one ``MarketModel.step`` (what ``marketsim run`` does per step, its
   DataCollector included) on the same scenario, the model's agent seat played by the fixed-price rule.

    python benchmarks/envs.py [--envs 1024] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np
from rich.console import Console
from rich.table import Table

from marketsim.config.scenario import Scenario
from marketsim.config.validate import load_scenario
from marketsim.envs import gym_env, vector_env
from marketsim.market.model import MarketModel

ROOT = Path(__file__).resolve().parents[1]
DUOPOLY = ROOT / "scenarios" / "deep_duopoly.yaml"
SCENARIOS = {
    "deep_duopoly (expected demand)": ("deep_duopoly.yaml", "learner"),
    "quickstart (20,000 consumers)": ("quickstart.yaml", "oracle"),
}


def per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` rounds of ``calls`` calls (after one warm-up round)."""
    rounds = []
    for k in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if k:
            rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def vector_vs_sync(n: int, repeats: int) -> tuple[float, float]:
    """Env-steps per second of the batched env and of SyncVectorEnv, N duopolies each, random grid actions."""
    actions = np.random.default_rng(0).integers(0, 15, size=n)
    batched = vector_env(DUOPOLY, seller="learner", num_envs=n, max_steps=10**9)
    batched.reset(seed=0)
    sync = gymnasium.vector.SyncVectorEnv([lambda: gym_env(DUOPOLY, seller="learner", max_steps=10**9)] * n)
    sync.reset(seed=0)
    fast = per_call(lambda: batched.step(actions), 200, repeats)
    slow = per_call(lambda: sync.step(actions), 3, repeats)
    return n / fast, n / slow


def env_vs_model(name: str, seller: str, repeats: int) -> tuple[float, float]:
    """Microseconds per step of the single env and of the Mesa model (the agent's seat a fixed price there)."""
    env = gym_env(ROOT / "scenarios" / name, seller=seller, max_steps=10**9)
    env.reset(seed=0)
    scenario = load_scenario(ROOT / "scenarios" / name)
    data = scenario.model_dump(by_alias=True)
    data["sellers"] = [s.model_dump(by_alias=True) for s in scenario.expanded_sellers()]
    for s in data["sellers"]:
        if s["name"] == seller:
            s["strategy"], s["params"] = "fixed_price", {"price": float(env.core.actions[seller].grid[7])}
    model = MarketModel(Scenario.model_validate({**data, "steps": 10**9}))
    env_s = per_call(lambda: env.step(7), 300, repeats)
    model_s = per_call(model.step, 300, repeats)
    return env_s * 1e6, model_s * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1024, help="markets per vector env (default 1024)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per figure (default 5)")
    args = parser.parse_args()
    console = Console()
    with console.status(f"vector env vs SyncVectorEnv, {args.envs:,} duopolies…"):
        fast, slow = vector_vs_sync(args.envs, args.repeats)
    table = Table(title=f"{args.envs:,} expected-demand duopolies, env-steps per second")
    for col in ("vector env (batched)", "SyncVectorEnv of gym_env", "ratio (target ≥ 50×)"):
        table.add_column(col, justify="right")
    table.add_row(f"{fast:,.0f}", f"{slow:,.0f}", f"{fast / slow:,.0f}×")
    console.print(table)
    table = Table(title="One step, microseconds (median)")
    for col in ("scenario", "gym_env.step", "MarketModel.step", "env / model"):
        table.add_column(col, justify="right")
    for label, (name, seller) in SCENARIOS.items():
        with console.status(f"single env vs MarketModel on {name}…"):
            env_us, model_us = env_vs_model(name, seller, args.repeats)
        table.add_row(label, f"{env_us:,.1f}", f"{model_us:,.1f}", f"{env_us / model_us:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
