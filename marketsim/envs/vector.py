"""N copies of one seller's market stepped as arrays: a Gymnasium ``VectorEnv`` on the batched backend.

``marketsim.market.batched.BatchedLogitMarket`` clears all N markets in one numpy step (the agent's seat in
column 0); each rival is a reactive rule asked for all rows at once through its class's ``price_batch``. The
observation, action and reward of each row are exactly those of ``gym_env`` on the same scenario (the same
``ObservationLayout`` and ``ActionMap``), so a policy moves between the two. Episodes of all rows end together
at ``max_steps`` and reset in the same step (``AutoresetMode.SAME_STEP``: the last observations are in
``infos["final_obs"]``). Markets the batched backend cannot clear (a network, demand shocks, capacities or
stock, a non-logit choice model, rivals that learn or keep state) are refused with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from marketsim.config.scenario import Scenario
from marketsim.envs.core import EnvError, EnvOptions, Episodes, SeatedMarket, first_seller, load
from marketsim.market.batched import BatchedLogitMarket
from marketsim.registry import Registry
from marketsim.seeds import rule_generator
from marketsim.strategy import ObservationBatch, Strategy

__all__ = ["MarketVectorEnv", "vector_env"]


class MarketVectorEnv(VectorEnv):
    """``num_envs`` markets of one scenario, the seller ``options.agents[0]`` acting in each (see module)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, scenario: Scenario, registry: Registry, options: EnvOptions, num_envs: int) -> None:
        if num_envs < 1:
            raise EnvError(f"num_envs must be >= 1; got {num_envs}")
        _check_batchable(scenario)
        self.core = SeatedMarket(scenario, registry, options)
        self.agent = self.core.agents[0]
        seat = self.core.seats[self.agent]
        self.order = [seat, *(k for k in range(self.core.market.n_sellers) if k != seat)]  # column → seat
        self.num_envs = num_envs
        self.batch = BatchedLogitMarket.from_scenarios([scenario] * num_envs, [self.order] * num_envs)
        self.rivals = _rival_rules(self.core, self.order, num_envs)
        self.layout, self.amap = self.core.layouts[self.agent], self.core.actions[self.agent]
        self.single_observation_space = spaces.Box(*self.core.bounds(self.agent), dtype=np.float32)
        self.single_action_space = self.amap.space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.sampled = scenario.demand.mode != "expected"
        start = np.array([s.start_price for s in self.core.market.specs])[self.order]
        self.start = np.tile(start, (num_envs, 1))
        self.bench = self.core.market.benchmarks
        self._episodes = Episodes(scenario.seed)
        self.rng = np.random.default_rng(scenario.seed)
        self.population: np.ndarray | None = None
        self.last, self.t = self.start.copy(), 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Open every market: start prices, no sales; sampled consumers drawn from the episode's seed."""
        episode = self._episodes.next(seed)
        self.rng = np.random.default_rng(episode)
        self.single_action_space.seed(episode)
        self.action_space.seed(episode)
        self.population = self.batch.draw_population(self.rng) if self.sampled else None
        self.last, self.t = self.start.copy(), 0
        zeros = np.zeros(self.num_envs)
        return self._encode(self.last, zeros, zeros), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Every row's action in, all markets cleared in one array step; autoreset at ``max_steps``."""
        prices = self.last.copy()
        prices[:, 0] = self.amap.prices(np.asarray(actions).reshape(self.num_envs, -1)[:, 0])
        for column, (cls, rules) in self.rivals.items():
            prices[:, column] = self._rival_price(column, cls, rules)
        prices = np.minimum(np.maximum(prices, self.batch.pmin), self.batch.pmax)
        if self.population is None:
            units = self.batch.expected_units(prices)
        else:
            units = self.batch.sampled_units(prices, self.population, self.rng)
        profit = self.batch.settle(prices, units, units).profit
        self.last, self.t = prices, self.t + 1
        rewards = self._rewards(profit)
        obs = self._encode(prices, units, profit)
        ended = self.t >= self.core.max_steps
        truncations = np.full(self.num_envs, ended)
        infos: dict[str, Any] = {}
        if ended:
            infos = {"final_obs": obs, "_final_obs": np.ones(self.num_envs, dtype=bool)}
            obs, _ = self.reset()
        return obs, rewards, np.zeros(self.num_envs, dtype=bool), truncations, infos

    def _rival_price(self, column: int, cls: type[Strategy], rules: list[Strategy]) -> np.ndarray:
        """The rule's reaction in every row to last period's prices (its rivals in seat order)."""
        others = sorted((c for c in range(len(self.order)) if c != column), key=lambda c: self.order[c])
        obs = ObservationBatch(
            own_price=self.last[:, column], competitor_prices=self.last[:, others], cost=self.batch.cost[:, column],
            price_min=self.batch.pmin[:, column], price_max=self.batch.pmax[:, column],
        )  # fmt: skip
        return cls.price_batch(rules, obs)

    def _rewards(self, profit: np.ndarray) -> np.ndarray:
        if self.core.options.reward == "profit":
            return profit
        i = self.order[0]
        nash, mono = self.bench.nash.profits[i], self.bench.monopoly.profits[i]
        gap = mono - nash
        return (profit - nash) / gap if abs(gap) > 1e-12 else np.full_like(profit, np.nan)

    def _encode(self, prices: np.ndarray, units: np.ndarray, profit: np.ndarray) -> np.ndarray:
        return self.layout.encode_arrays(prices[:, 0], prices[:, 1:], units, profit, None, self.t)


def _check_batchable(scenario: Scenario) -> None:
    """Raise EnvError unless the batched backend clears this market exactly."""
    reasons = []
    if scenario.network is not None:
        reasons.append("no word-of-mouth network")
    if scenario.consumers.shocks:
        reasons.append("no demand shocks")
    if scenario.consumers.choice.model != "logit":
        reasons.append("the logit choice model")
    if any(s.capacity is not None or s.inventory is not None for s in scenario.sellers):
        reasons.append("no capacities or inventories")
    if reasons:
        raise EnvError(
            "the batched vector env needs "
            + "; ".join(reasons)
            + ": use gymnasium.vector.SyncVectorEnv([lambda: marketsim.envs.gym_env(...)] * N) for this market"
        )


def _rival_rules(core: SeatedMarket, order: list[int], n: int) -> dict[int, tuple[type[Strategy], list[Strategy]]]:
    """Each rival column's rule class and its set-up instance for every row (deterministic reactive rules only)."""
    rivals = {}
    for column, seat in enumerate(order[1:], start=1):
        spec = core.market.specs[seat]
        rule = core.registry.create(spec.strategy, spec.params)
        c = type(rule).classifier
        if c.get("stochastic") or c.get("learns") or not c.get("reactive"):
            raise EnvError(
                f"seller {spec.name!r} ({spec.strategy}) is not a deterministic reactive rule, which the batched "
                "vector env needs: use gymnasium.vector.SyncVectorEnv of gym_env for this market"
            )
        rule.setup(core.market.info(seat), rule_generator())
        rivals[column] = (type(rule), [rule] * n)
    return rivals


def vector_env(  # noqa: PLR0913 - the documented keyword options of the environment
    scenario_or_path: Scenario | str | Path,
    *,
    seller: str | None = None,
    num_envs: int = 1,
    action: str = "discrete",
    reward: str = "profit",
    max_steps: int | None = None,
    grid_size: int = 15,
    xi: float = 0.1,
    registry: Registry | None = None,
) -> MarketVectorEnv:
    """``num_envs`` copies of the seller's market (default: the first seller) as one batched Gymnasium VectorEnv."""
    seller = seller if seller is not None else first_seller(scenario_or_path, registry)
    scenario, registry = load(scenario_or_path, registry, [seller])
    options = EnvOptions(
        agents=(seller,), action=action, reward=reward, max_steps=max_steps, grid_size=grid_size, xi=xi
    )
    return MarketVectorEnv(scenario, registry, options, num_envs)
