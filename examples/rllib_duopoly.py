"""Train both sellers of the Calvano duopoly as independent PPO policies with RLlib (issue 13, stretch D).

The market is ``marketsim.envs.parallel_env("scenarios/calvano2020.yaml", max_steps=200, reward="profit")``,
a PettingZoo ``ParallelEnv`` in which both sellers (``firm_1``, ``firm_2``) are agents. RLlib sees it through
its ``ParallelPettingZooEnv`` wrapper; each agent maps to its own PPO module (no parameter sharing), and two
env runners collect the episodes. Every iteration prints each agent's mean episode return and the profit gain
Δ = (π − π_Nash)/(π_monopoly − π_Nash) that return amounts to; at the end both greedy policies play a few
evaluation episodes and the script prints their average Δ and whether the sellers ended above Nash (Δ > 0).
For scale: uniformly random play on the 15-price grid already earns Δ ≈ 0.51 (the grid's middle lies above the
Nash price 1.473), so the curve starts there; a falling Δ means the sellers learn to undercut toward Nash.

RLlib pins gymnasium 1.2.2, so it runs from its own virtual environment, with the project on ``PYTHONPATH``
(the strategy plugins are passed to the registry explicitly, as the venv has no ``marketsim`` distribution)::

    python3 -m venv /tmp/rllib-venv
    /tmp/rllib-venv/bin/pip install "ray[rllib]==2.60.0" torch==2.13.0 pettingzoo mesa numpy scipy networkx \
        pluggy packaging pydantic PyYAML matplotlib rich pandas nashpy
    PYTHONPATH=/work/main:/work/main/plugins /tmp/rllib-venv/bin/python examples/rllib_duopoly.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

import marketsim_rules
import marketsim_tabular
from marketsim.envs import MarketParallelEnv, parallel_env
from marketsim.registry import Registry, load_registry

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "calvano2020.yaml"
ENV_NAME = "marketsim_calvano_duopoly"
AGENTS = ("firm_1", "firm_2")
MAX_STEPS = 200


def registry() -> Registry:
    """The strategy registry from the bundled plugin modules (no entry points: the venv lacks the distribution)."""
    return load_registry(plugins=[("rules", marketsim_rules), ("tabular", marketsim_tabular)], entry_points=False)


def market(config: dict[str, Any] | None = None) -> MarketParallelEnv:
    """The duopoly, both sellers agents, profit rewards, 200-step episodes."""
    steps = int((config or {}).get("max_steps", MAX_STEPS))
    return parallel_env(SCENARIO, max_steps=steps, reward="profit", registry=registry())


def gain_of_return(env: MarketParallelEnv, agent: str, episode_return: float) -> float:
    """Δ of an episode's mean profit per step (Δ is linear in profit, so this is the episode's mean Δ)."""
    bench, seat = env.core.market.benchmarks, env.core.seats[agent]
    nash, mono = bench.nash.profits[seat], bench.monopoly.profits[seat]
    return (episode_return / env.core.max_steps - nash) / (mono - nash)


def build_config(seed: int, batch: int) -> PPOConfig:
    """PPO with one module per agent (independent learners) and two env runners."""
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config={"max_steps": MAX_STEPS})
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .multi_agent(policies=set(AGENTS), policy_mapping_fn=lambda agent_id, *args, **kwargs: agent_id)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(rl_module_specs={a: RLModuleSpec() for a in AGENTS}),
            model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]),
        )
        .training(
            gamma=0.95,
            lr=3e-4,
            train_batch_size_per_learner=batch,
            minibatch_size=250,
            num_epochs=5,
            entropy_coeff=0.01,
        )
        .debugging(seed=seed)
    )


def progress(env: MarketParallelEnv, result: dict[str, Any]) -> str:
    """Each agent's mean episode return in a training result, and the Δ it amounts to."""
    returns = result["env_runners"].get("agent_episode_returns_mean", {})
    done = [a for a in AGENTS if a in returns]
    parts = [f"{a} return {returns[a]:7.2f} (Δ {gain_of_return(env, a, returns[a]):+.3f})" for a in done]
    return "  ".join(parts) or "no finished episode yet"


def greedy_play(modules: dict[str, Any], episodes: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Each agent's mean Δ and mean price per step over ``episodes`` episodes of both policies acting greedily."""
    env, gains, prices = market(), {a: [] for a in AGENTS}, {a: [] for a in AGENTS}
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        while env.agents:
            actions = {}
            for agent in env.agents:
                batch = {"obs": torch.as_tensor(obs[agent][None, :])}
                with torch.no_grad():
                    logits = modules[agent].forward_inference(batch)["action_dist_inputs"]
                actions[agent] = int(torch.argmax(logits, dim=-1)[0])
            obs, _, _, _, infos = env.step(actions)
            for agent in AGENTS:
                gains[agent].append(infos[agent]["profit_gain"][agent])
                prices[agent].append(infos[agent]["prices"][agent])
    return {a: float(np.mean(g)) for a, g in gains.items()}, {a: float(np.mean(p)) for a, p in prices.items()}


def main() -> None:
    """Train, print the curve, evaluate greedily, say whether the sellers ended above Nash."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--batch", type=int, default=4000, help="env steps per training iteration")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False)
    register_env(ENV_NAME, lambda config: ParallelPettingZooEnv(market(config)))
    local = market()
    algo = build_config(args.seed, args.batch).build_algo()
    start = time.perf_counter()
    try:
        for it in range(1, args.iterations + 1):
            result = algo.train()
            print(f"iter {it:3d}  {progress(local, result)}  [{time.perf_counter() - start:5.0f}s]")
        modules = {a: algo.get_module(a) for a in AGENTS}
        gains, prices = greedy_play(modules, args.eval_episodes, seed=10_000 + args.seed)
    finally:
        algo.stop()
        ray.shutdown()
    mean = float(np.mean(list(gains.values())))
    each = ", ".join(f"{a} {gains[a]:+.3f} (mean price {prices[a]:.3f})" for a in AGENTS)
    print(f"greedy evaluation, {args.eval_episodes} episodes of {MAX_STEPS} steps: Δ {each}; average Δ {mean:+.3f}")
    verdict = "above Nash (Δ > 0)" if mean > 0 else "not above Nash (Δ <= 0)"
    print(f"the sellers ended {verdict}; wall time {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
