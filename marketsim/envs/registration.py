"""Gymnasium ids for the bundled scenarios: ``gymnasium.make("marketsim/DeepDuopoly-v0")`` after
``import marketsim.envs``. Each id names a scenario file of the repository's ``scenarios/`` folder and the
seller the agent plays; keyword arguments of ``gymnasium.make`` override the env's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium

__all__ = ["BUNDLED", "bundled_scenario", "register_all"]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

#: id → (scenario file, the agent's seller, whether the batched vector env can run it)
BUNDLED: dict[str, tuple[str, str, bool]] = {
    "marketsim/CalvanoDuopoly-v0": ("calvano2020.yaml", "firm_1", False),  # against a Q-learner that learns
    "marketsim/DeepDuopoly-v0": ("deep_duopoly.yaml", "learner", True),  # against a price-matching rival
    "marketsim/Quickstart-v0": ("quickstart.yaml", "oracle", True),
    "marketsim/SocialNetwork-v0": ("social_network.yaml", "entrant", False),
    "marketsim/Oligopoly-v0": ("oligopoly.yaml", "clearance", False),
}


def bundled_scenario(name: str) -> Path:
    """The path of a bundled scenario file (the repository's ``scenarios/``, found from the package)."""
    path = SCENARIOS / name
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled scenario {name!r} not found at {path}: the gymnasium ids need the repository checkout "
            "(pip install -e .); use marketsim.envs.gym_env(PATH) for a scenario file of your own"
        )
    return path


def make_bundled(scenario: str, seller: str, **kwargs: Any) -> gymnasium.Env:
    """Entry point of the registered ids: the seller's env on the bundled scenario."""
    from marketsim.envs.gym import gym_env

    return gym_env(bundled_scenario(scenario), seller=seller, **kwargs)


def make_bundled_vector(scenario: str, seller: str, num_envs: int = 1, **kwargs: Any) -> gymnasium.vector.VectorEnv:
    """Vector entry point of the registered ids (``gymnasium.make_vec(id, num_envs=N)``): the batched env."""
    from marketsim.envs.vector import vector_env

    return vector_env(bundled_scenario(scenario), seller=seller, num_envs=num_envs, **kwargs)


def register_all() -> None:
    """Register every bundled id with Gymnasium (idempotent)."""
    for env_id, (scenario, seller, batched) in BUNDLED.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="marketsim.envs.registration:make_bundled",
            vector_entry_point="marketsim.envs.registration:make_bundled_vector" if batched else None,
            kwargs={"scenario": scenario, "seller": seller},
            disable_env_checker=False,
        )
