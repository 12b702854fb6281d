"""Tabular learners of the algorithmic-pricing literature: Q-learning and SARSA over a price grid.

Registered through the ``marketsim`` entry-point group like any plugin. The arithmetic lives in
``marketsim.learning.tabular`` so that ``marketsim experiment`` can run thousands of sessions of these same
learners in lockstep and reproduce this per-step path price for price. Each learner is a
``TabularQLearner`` (what the batched engine runs), ``GreedyTabulable`` (what ``marketsim train`` scores)
and ``Converging`` (what lets ``marketsim run`` stop early), the capabilities of ``marketsim.strategy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marketsim.hookspecs import hookimpl
from marketsim.learning import tabular
from marketsim.strategy import MarketInfo, Observation, Outcome, Strategy


class TabularLearner(Strategy):
    """Common machinery of Q-learning and SARSA: grid, state, ε-greedy choice, TD update, convergence."""

    algorithm: ClassVar[tabular.Algorithm]
    classifier = {"learns": True, "stochastic": True, "observes": ("own", "competitors", "demand_model")}

    def __init__(  # noqa: PLR0913  the keyword parameters are the strategy's public API (scenario params)
        self,
        grid_size: int = 15,
        xi: float = 0.1,
        grid: list[float] | None = None,
        memory: int = 1,
        alpha: float = 0.15,
        delta: float = 0.95,
        exploration: tabular.ExplorationKind = "exponential",
        beta: float = 4e-6,
        epsilon: float = 0.1,
        epsilon_min: float = 0.0,
        decay_steps: int = 1_000_000,
        temperature: float = 1.0,
        q_init: tabular.QInit = "random_rivals",
        convergence_steps: int = 100_000,
    ) -> None:
        self.grid_size, self.xi, self.grid, self.memory = grid_size, xi, grid, memory
        self.alpha, self.delta, self.exploration, self.beta = alpha, delta, exploration, beta
        self.epsilon, self.epsilon_min, self.decay_steps = epsilon, epsilon_min, decay_steps
        self.temperature, self.q_init, self.convergence_steps = temperature, q_init, convergence_steps
        self.config = tabular.TabularConfig(
            algorithm=self.algorithm,
            grid_size=grid_size,
            xi=xi,
            grid=None if grid is None else tuple(float(p) for p in grid),
            memory=memory,
            alpha=alpha,
            delta=delta,
            exploration=exploration,
            beta=beta,
            epsilon=epsilon,
            epsilon_min=epsilon_min,
            decay_steps=decay_steps,
            temperature=temperature,
            q_init=q_init,
            convergence_steps=convergence_steps,
        )
        self.config.validate()

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Build every seller's grid (for the state), the profit table and the initial Q table."""
        super().setup(market, rng)
        cfg, n = self.config, market.n_sellers
        self.grids = np.array(
            [tabular.seller_grid(market, grid_size=cfg.grid_size, xi=cfg.xi, grid=cfg.grid, seat=j) for j in range(n)]
        )
        self.prices = self.grids[market.index]  # its own grid (GreedyTabulable)
        own = tabular.profit_table(market.expected_profit, self.grids)[market.index]
        self.q = tabular.initial_q(cfg, tabular.own_axis(own, market.index, cfg.m, n), n)
        self.t = 0  # decisions taken
        self.stable = 0  # consecutive updates that left every greedy action unchanged
        self.state: int | None = None
        self.action = 0
        self.awaiting_outcome = False  # priced, and no learn() moved the state since: evaluation without learning
        self.pending: tuple[int, int, float, int] | None = None  # SARSA: (s, a, r, s') awaiting a'
        self._uniforms = np.empty((0, 2))

    def state_bytes(self, n_sellers: int) -> float:
        """Estimated bytes of the Q and profit tables in a market of ``n_sellers`` (see ``SizedState``)."""
        return tabular.table_bytes(self.config, n_sellers)

    @property
    def converged(self) -> bool:
        """Every greedy action unchanged for ``convergence_steps`` consecutive updates."""
        return self.stable >= self.config.convergence_steps

    @property
    def exploration_rate(self) -> float:
        """ε at the next decision; under Boltzmann the chance of a non-greedy action in the current state."""
        if not self.training:
            return 0.0
        t, state = getattr(self, "t", 0), getattr(self, "state", None)  # before setup: the first decision's
        if self.config.exploration != "boltzmann":
            return tabular.epsilon(self.config, t)
        if state is None:
            return 1.0 - 1.0 / self.config.m
        row = self.q[state]
        weights = np.exp((row - row.max()) / tabular.temperature(self.config, t))
        return float(1.0 - weights.max() / weights.sum())

    @property
    def greedy_price(self) -> float | None:
        """The arg-max of the Q row of the state the next decision starts from (None before the first)."""
        if getattr(self, "state", None) is None:
            return None
        return float(self.grids[self.market.index][int(self.q[self.state].argmax())])

    def _joint(self, own_price: float, competitor_prices: tuple[float, ...]) -> int:
        prices = np.insert(np.asarray(competitor_prices, float), self.market.index, own_price)
        actions = [tabular.nearest(self.grids[j], p) for j, p in enumerate(prices)]
        return int(tabular.joint_index(actions, self.config.m))

    def _draw(self) -> np.ndarray:
        if self.t % tabular.UNIFORM_BLOCK == 0:
            self._uniforms = self.rng.random((tabular.UNIFORM_BLOCK, 2))
        return self._uniforms[self.t % tabular.UNIFORM_BLOCK]

    def price(self, obs: Observation) -> float:
        """ε-greedy (or Boltzmann) choice in the state of the last ``memory`` periods' prices."""
        cfg, n = self.config, self.market.n_sellers
        joint = self._joint(obs.own_price, obs.competitor_prices)  # last period's prices
        if self.state is None:
            self.state = tabular.initial_state(joint, cfg.m, n, cfg.memory)
        elif self.awaiting_outcome:  # frozen (no learn() call): the state still follows the prices observed
            self.state = int(tabular.advance_state(self.state, joint, cfg.m, n, cfg.memory))
        self.awaiting_outcome = True
        if self.training:
            self.action = int(tabular.choose(cfg, self.q[self.state], self.t, self._draw()))
        else:  # evaluation: the greedy policy, no exploration
            self.action = int(self.q[self.state].argmax())
        if self.pending is not None:  # SARSA: the update needs the action just chosen in s'
            s, a, reward, s_next = self.pending
            self._update(s, a, tabular.q_target(cfg, reward, self.q[s_next], self.action))
            self.pending = None
        self.t += self.training
        return float(self.grids[self.market.index][self.action])

    def learn(self, outcome: Outcome) -> None:
        """Move to the next state; Q-learning updates now, SARSA once it has chosen its next action."""
        cfg = self.config
        self.awaiting_outcome = False
        joint = self._joint(outcome.price, outcome.competitor_prices)
        s_next = int(tabular.advance_state(self.state, joint, cfg.m, self.market.n_sellers, cfg.memory))
        if cfg.algorithm == "q_learning":
            self._update(self.state, self.action, tabular.q_target(cfg, outcome.profit, self.q[s_next]))
        else:
            self.pending = (self.state, self.action, outcome.profit, s_next)
        self.state = s_next

    def _update(self, s: int, a: int, target: float) -> None:
        before = int(self.q[s].argmax())
        self.q[s, a] = tabular.td_step(self.config, self.q[s, a], target)
        self.stable = self.stable + 1 if int(self.q[s].argmax()) == before else 0

    @property
    def discount(self) -> float:
        """The discount factor δ (GreedyTabulable)."""
        return self.config.delta

    @property
    def grid_params(self) -> Mapping[str, Any]:
        """The parameters that rebuild this learner's grid: ``{"grid"}`` when explicit, else ``{"grid_size", "xi"}``."""
        if self.grid is not None:
            return {"grid": [float(p) for p in self.grid]}
        return {"grid_size": self.grid_size, "xi": self.xi}

    def greedy_table(self, grids: np.ndarray) -> np.ndarray:
        """The greedy action in every memory-1 state (its Q table's arg-max; ``grids`` are its own grids).

        A learner with a longer memory has no memory-1 policy: ValueError.
        """
        if self.config.memory != 1:
            raise ValueError(f"{self.name} with memory {self.config.memory} has no memory-1 greedy table")
        return self.q.argmax(axis=1)

    def state_dict(self) -> dict[str, Any]:
        """Q table, clock, state, convergence counter and the unread part of the uniform block."""
        return {
            "q": self.q.copy(),
            "t": self.t,
            "stable": self.stable,
            "state": -1 if self.state is None else self.state,
            "action": self.action,
            "pending": None if self.pending is None else list(self.pending),
            "awaiting_outcome": self.awaiting_outcome,
            "uniforms": self._uniforms.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (after ``setup``)."""
        self.q = np.array(state["q"], dtype=float)
        self.t, self.stable, self.action = int(state["t"]), int(state["stable"]), int(state["action"])
        self.state = None if int(state["state"]) < 0 else int(state["state"])
        self.pending = None if state["pending"] is None else tuple(state["pending"])
        self.awaiting_outcome = bool(state.get("awaiting_outcome", False))  # absent in older checkpoints
        self._uniforms = np.array(state["uniforms"], dtype=float).reshape(-1, 2)


class QLearning(TabularLearner):
    """Tabular Q-learning (Watkins 1989) as in Calvano, Calzolari, Denicolò & Pastorello (2020, AER).

    State: the last ``memory`` periods' grid prices of all sellers; update
    Q(s,a) ← Q(s,a) + α (π + δ max_a' Q(s',a') − Q(s,a)); exploration ε_t = exp(−β t) by default.
    """

    name = "q_learning"
    algorithm = "q_learning"


class Sarsa(TabularLearner):
    """On-policy SARSA (Rummery & Niranjan 1994): Q(s,a) ← Q(s,a) + α (π + δ Q(s',a') − Q(s,a)).

    Needs exploration that fades to zero (the default ε_t = exp(−β t), or ``linear`` to 0) to learn
    the greedy policy's values.
    """

    name = "sarsa"
    algorithm = "sarsa"


MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register) -> None:
    """Register the tabular learners."""
    register(QLearning)
    register(Sarsa)
