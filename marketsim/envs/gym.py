"""One seller's view of the market as a Gymnasium ``Env``: the other sellers play their scenario strategies
(learners keep learning unless ``freeze_rivals``). Registered under ``marketsim/<Name>-v0`` ids for the
bundled scenarios (``marketsim.envs.registration``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.envs.core import first_seller, load
from marketsim.envs.parallel import parallel_env
from marketsim.registry import Registry

__all__ = ["MarketEnv", "gym_env"]


class MarketEnv(gymnasium.Env):
    """A single seller's pricing problem: observation, action and reward as in the parallel env."""

    metadata = {"render_modes": ["human", "ansi"]}

    def __init__(self, parallel: Any, seller: str) -> None:
        self.parallel, self.seller = parallel, seller
        self.observation_space = parallel.observation_space(seller)
        self.action_space = parallel.action_space(seller)
        self.render_mode = parallel.render_mode

    @property
    def core(self) -> Any:
        """The seated market underneath (its ``market``, ``layouts``, ``actions``)."""
        return self.parallel.core

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Open the market from ``seed``; the seller's first observation and the market info."""
        super().reset(seed=seed)
        observations, infos = self.parallel.reset(seed=seed, options=options)
        return observations[self.seller], infos[self.seller]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Post the action's price; the next observation, the reward and whether the episode ended."""
        obs, rewards, terminations, truncations, infos = self.parallel.step({self.seller: action})
        s = self.seller
        return obs[s], rewards[s], terminations[s], truncations[s], infos[s]

    def render(self) -> str | None:
        """The market's line for this step (see ``MarketParallelEnv.render``)."""
        return self.parallel.render()


def gym_env(  # noqa: PLR0913 - the documented keyword options of the environment
    scenario_or_path: Scenario | str | Path,
    *,
    seller: str | None = None,
    action: str = "discrete",
    reward: str = "profit",
    max_steps: int | None = None,
    render_mode: str | None = None,
    grid_size: int = 15,
    xi: float = 0.1,
    freeze_rivals: bool = False,
    registry: Registry | None = None,
) -> MarketEnv:
    """A Gymnasium Env for the seller named ``seller`` (default: the first) of a scenario or YAML path.

    The options mean what they mean for ``marketsim.envs.parallel_env``.
    """
    seller = seller if seller is not None else first_seller(scenario_or_path, registry)
    scenario, registry = load(scenario_or_path, registry, [seller])
    parallel = parallel_env(
        scenario, agents=[seller], action=action, reward=reward, max_steps=max_steps, render_mode=render_mode,
        grid_size=grid_size, xi=xi, freeze_rivals=freeze_rivals, registry=registry,
    )  # fmt: skip
    return MarketEnv(parallel, seller)
