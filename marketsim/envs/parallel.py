"""The market as a PettingZoo ``ParallelEnv``: every agent prices at once, the other sellers play their
scenario strategies; the AEC form comes from PettingZoo's own ``parallel_to_aec``.

Pricing is a continuing task: an episode ends by truncation at ``max_steps`` (the scenario's ``steps`` by
default); an agent is terminated only when its stock has run out for good (finite, empty, never restocked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from marketsim.config.scenario import Scenario
from marketsim.envs.core import EnvOptions, Episodes, SeatedMarket, load
from marketsim.envs.render import RENDER_MODES, render_line
from marketsim.registry import Registry

__all__ = ["MarketParallelEnv", "aec_env", "parallel_env"]


class MarketParallelEnv(ParallelEnv):
    """A scenario's market with the sellers in ``options.agents`` acting (see ``parallel_env``)."""

    metadata = {"name": "marketsim_v0", "render_modes": list(RENDER_MODES), "is_parallelizable": True}

    def __init__(self, scenario: Scenario, registry: Registry, options: EnvOptions, render_mode: str | None = None):
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {RENDER_MODES} or None; got {render_mode!r}")
        self.core = SeatedMarket(scenario, registry, options)
        self.render_mode = render_mode
        self.possible_agents = list(self.core.agents)
        self.agents: list[str] = []
        self.observation_spaces = {a: spaces.Box(*self.core.bounds(a), dtype=np.float32) for a in self.possible_agents}
        self.action_spaces = {a: self.core.actions[a].space() for a in self.possible_agents}
        self._episodes = Episodes(scenario.seed)

    def observation_space(self, agent: str) -> spaces.Space:
        """The agent's observation space (a Box over the vector ``marketsim.envs.layout`` documents)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """The agent's action space: Discrete over its price grid, or a Box on its price range."""
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Open the market (rivals rebuilt, consumers drawn from the seed); every agent's first observation."""
        episode = self._episodes.next(seed)
        for k, agent in enumerate(self.possible_agents):  # spaces sample reproducibly after a seeded reset
            self.action_spaces[agent].seed(episode + k)
        self.core.reset(episode)
        self.agents = list(self.possible_agents)
        info = self.core.info(None)
        return {a: self.core.observe(a) for a in self.agents}, {a: dict(info) for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Every live agent's action in, the market cleared once; observations, rewards, ends and infos out."""
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for agent(s) {missing}: step needs one for every live agent")
        prices = {a: self.core.actions[a].price(actions[a]) for a in self.agents}
        result = self.core.step(prices)
        info = self.core.info(result)
        live = list(self.agents)
        truncated = self.core.market.t >= self.core.max_steps
        observations = {a: self.core.observe(a) for a in live}
        rewards = {a: self.core.reward(a, result) for a in live}
        terminations = {a: self.core.sold_out(a) for a in live}
        truncations = {a: truncated and not terminations[a] for a in live}
        infos = {a: dict(info) for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        if self.render_mode == "human":
            print(self.render())
        return observations, rewards, terminations, truncations, infos

    def render(self, mode: str | None = None) -> str | None:
        """One line per step: the step and every seller's price and units ('ansi' returns it, 'human' prints).

        ``mode`` is ignored (the env's ``render_mode`` decides); RLlib's PettingZoo wrapper passes one.
        """
        if self.render_mode is None:
            return None
        return render_line(self.core)

    def state(self) -> np.ndarray:
        """The global state: every seller's last price, units, profit and stock (inf shown as 0)."""
        s = self.core.market.state
        stock = np.where(np.isfinite(s.inventory), s.inventory, 0.0)
        return np.concatenate([s.prices, s.units, s.profits, stock]).astype(np.float32)

    def close(self) -> None:
        """Nothing to release."""


def parallel_env(  # noqa: PLR0913 - the documented keyword options of the environment
    scenario_or_path: Scenario | str | Path,
    *,
    agents: list[str] | None = None,
    action: str = "discrete",
    reward: str = "profit",
    max_steps: int | None = None,
    render_mode: str | None = None,
    grid_size: int = 15,
    xi: float = 0.1,
    freeze_rivals: bool = False,
    registry: Registry | None = None,
) -> MarketParallelEnv:
    """A PettingZoo ParallelEnv over a scenario (a ``Scenario`` or a YAML path).

    ``agents``: the sellers the caller prices (default all; the others keep their scenario strategies).
    ``action``: ``discrete`` (an index into the seller's price grid of ``grid_size`` points widened by ``xi``,
    the tabular and deep learners' grid) or ``continuous`` (a price in ``[price_min, price_max]``).
    ``reward``: ``profit`` or ``profit_gain`` (Δ = (π − π_Nash)/(π_monopoly − π_Nash) for the step).
    ``freeze_rivals``: the scenario's learners act without learning.
    """
    scenario, registry = load(scenario_or_path, registry, agents if agents is not None else "all")
    options = EnvOptions(
        agents=None if agents is None else tuple(agents), action=action, reward=reward, max_steps=max_steps,
        grid_size=grid_size, xi=xi, freeze_rivals=freeze_rivals,
    )  # fmt: skip
    return MarketParallelEnv(scenario, registry, options, render_mode)


def aec_env(scenario_or_path: Scenario | str | Path, **kwargs: Any):  # noqa: ANN201 - PettingZoo's AECEnv wrapper
    """The same market as an AEC env (agents act in turn), through PettingZoo's own ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(scenario_or_path, **kwargs))
