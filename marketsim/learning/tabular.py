"""Tabular Q-learning and SARSA as in Calvano et al. (2020): price grid, state encoding, exploration,
Q initialisation and the temporal-difference updates, shared by the per-step strategies (plugins) and
the batched experiment engine so both follow exactly the same arithmetic and random draws.

A learner's random numbers come in blocks of ``UNIFORM_BLOCK`` rows of two uniforms drawn from its
own generator: row t holds (explore?, which action) for its t-th decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from marketsim.strategy import MarketInfo

UNIFORM_BLOCK = 2048  # rows of uniforms a learner draws at a time (part of the reproducibility contract)

ExplorationKind = Literal["exponential", "constant", "linear", "boltzmann"]
QInit = Literal["random_rivals", "zeros"]
Algorithm = Literal["q_learning", "sarsa"]


@dataclass(frozen=True)
class TabularConfig:
    """Everything that defines a tabular learner's behaviour, independent of how it is run."""

    algorithm: Algorithm
    grid_size: int = 15
    xi: float = 0.1
    grid: tuple[float, ...] | None = None
    memory: int = 1
    alpha: float = 0.15
    delta: float = 0.95
    exploration: ExplorationKind = "exponential"
    beta: float = 4e-6
    epsilon: float = 0.1
    epsilon_min: float = 0.0
    decay_steps: int = 1_000_000
    temperature: float = 1.0
    q_init: QInit = "random_rivals"
    convergence_steps: int = 100_000

    def validate(self) -> None:
        """Raise ValueError on inconsistent settings (checked when a strategy is built)."""
        checks = [
            (self.grid_size >= 2, f"grid_size must be >= 2, got {self.grid_size}"),
            (self.xi >= 0, f"xi must be >= 0, got {self.xi}"),
            (self.grid is None or len(self.grid) >= 2, "an explicit grid needs at least two prices"),
            (self.memory >= 1, f"memory must be >= 1, got {self.memory}"),
            (0 < self.alpha <= 1, f"alpha must be in (0, 1], got {self.alpha}"),
            (0 <= self.delta < 1, f"delta must be in [0, 1), got {self.delta}"),
            (self.beta >= 0, f"beta must be >= 0, got {self.beta}"),
            (0 <= self.epsilon_min <= self.epsilon <= 1, "need 0 <= epsilon_min <= epsilon <= 1"),
            (self.decay_steps > 0, "decay_steps must be > 0"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.convergence_steps > 0, "convergence_steps must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def m(self) -> int:
        """Number of prices on the grid."""
        return len(self.grid) if self.grid is not None else self.grid_size


def price_grid(config: TabularConfig, nash: float, monopoly: float) -> np.ndarray:
    """The seller's price grid: explicit, or m points on [p_N − ξ(p_M − p_N), p_M + ξ(p_M − p_N)]."""
    if config.grid is not None:
        return np.array(config.grid, dtype=float)
    span = monopoly - nash
    return np.linspace(nash - config.xi * span, monopoly + config.xi * span, config.grid_size)


def seller_grid(
    market: MarketInfo,
    grid_size: int = 15,
    xi: float = 0.1,
    grid: Sequence[float] | None = None,
    seat: int | None = None,
) -> np.ndarray:
    """The price grid of seat ``seat`` (default: the strategy's own) in ``market``: ``grid`` when given, else
    ``grid_size`` points spanning its Nash to monopoly price widened by ξ on each side. The one grid builder
    every grid learner (tabular, deep, bandits, meta) uses; ValueError on a bad size, ξ or grid."""
    config = TabularConfig("q_learning", grid_size=grid_size, xi=xi, grid=None if grid is None else tuple(grid))
    config.validate()
    i = market.index if seat is None else seat
    return price_grid(config, market.nash_prices[i], market.monopoly_prices[i])


def nearest(grid: np.ndarray, price: float) -> int:
    """Index of the grid point nearest to ``price`` (ties to the lower one)."""
    return int(np.argmin(np.abs(grid - price)))


def joint_index(actions: Sequence[int] | np.ndarray, m: int) -> int | np.ndarray:
    """Joint action index, seller 0 the most significant digit: Σ a_j m^(n−1−j)."""
    actions = np.asarray(actions)
    n = actions.shape[-1]
    return (actions * m ** np.arange(n - 1, -1, -1)).sum(axis=-1)


def advance_state(state: int | np.ndarray, joint: int | np.ndarray, m: int, n: int, memory: int):
    """State after a period: the newest joint action first, older ones shifted, the oldest dropped."""
    block = m**n
    return joint + block * (state % block ** (memory - 1)) if memory > 1 else joint


def initial_state(joint: int, m: int, n: int, memory: int) -> int:
    """State whose whole memory repeats the starting joint action."""
    state = joint
    for _ in range(memory - 1):
        state = advance_state(state, joint, m, n, memory)
    return state


def n_states(m: int, n: int, memory: int) -> int:
    """Number of states: (m^n)^memory."""
    return (m**n) ** memory


def epsilon(config: TabularConfig, t: int) -> float:
    """Exploration probability at decision t (0-based) for ε-greedy schedules."""
    if config.exploration == "exponential":
        return max(math.exp(-config.beta * t), config.epsilon_min)
    if config.exploration == "constant":
        return config.epsilon
    if config.exploration == "linear":
        frac = min(t / config.decay_steps, 1.0)
        return config.epsilon + (config.epsilon_min - config.epsilon) * frac
    return 0.0


def temperature(config: TabularConfig, t: int) -> float:
    """Boltzmann temperature at decision t: τ exp(−β t), floored to stay positive."""
    return max(config.temperature * math.exp(-config.beta * t), 1e-12)


def table_bytes(config: TabularConfig, n_sellers: int) -> float:
    """Estimated bytes of a learner's tables: Q (states, m) and profits (n, m^n), in float64 (inf if vast).

    Computed in logarithms, so ``memory: 40`` or ``grid_size: 10**9`` gives a huge number, not an
    OverflowError or a long wait for the exact integer.
    """
    log_joint = n_sellers * math.log(config.m)  # log of m^n joint actions
    logs = (config.memory * log_joint + math.log(config.m * 8), log_joint + math.log(n_sellers * 8))
    return float(sum(math.exp(x) if x < 700 else math.inf for x in logs))


def initial_q(config: TabularConfig, own_profits: np.ndarray, n_sellers: int) -> np.ndarray:
    """Q table (states, m): zeros, or each action's discounted payoff against uniformly random rivals.

    ``own_profits`` is the learner's one-period profit laid out (rivals' joint action, own action),
    as ``own_axis`` returns it.
    """
    states = n_states(config.m, n_sellers, config.memory)
    if config.q_init == "zeros":
        return np.zeros((states, config.m))
    row = own_profits.mean(axis=0) / (1.0 - config.delta)
    return np.tile(row, (states, 1))


def profit_table(expected_profit, grids: np.ndarray) -> np.ndarray:
    """Every seller's one-period profit (n, m^n) for every joint action on the grids (seller 0 most significant)."""
    n, m = grids.shape
    joint = np.indices((m,) * n).reshape(n, -1)  # (n, m^n) action of each seller, row-major
    prices = grids[np.arange(n)[:, None], joint]
    return np.column_stack([expected_profit(prices[:, k]) for k in range(m**n)])


def q_target(config: TabularConfig, reward, next_row: np.ndarray, next_action=None):
    """TD target: r + δ max_a Q(s', a) for Q-learning, r + δ Q(s', a') for SARSA."""
    if config.algorithm == "q_learning":
        return reward + config.delta * next_row.max(axis=-1)
    return reward + config.delta * np.take_along_axis(next_row, np.asarray(next_action)[..., None], -1)[..., 0]


def td_step(config: TabularConfig, q_sa, target):
    """The updated value Q(s, a) + α (target − Q(s, a))."""
    return q_sa + config.alpha * (target - q_sa)


def own_axis(profits: np.ndarray, index: int, m: int, n: int) -> np.ndarray:
    """Reshape one seller's (m^n,) joint profits to (m^(n−1), m): rivals' joint action × own action."""
    cube = profits.reshape((m,) * n)
    return np.moveaxis(cube, index, -1).reshape(-1, m)


def choose(config: TabularConfig, q_row: np.ndarray, t: int | np.ndarray, u: np.ndarray) -> np.ndarray | int:
    """Action(s) from Q rows (..., m) at decision t with uniforms u (..., 2): ε-greedy or Boltzmann."""
    m = q_row.shape[-1]
    if config.exploration == "boltzmann":
        tau = temperature(config, int(t))
        logits = (q_row - q_row.max(axis=-1, keepdims=True)) / tau
        cum = np.cumsum(np.exp(logits), axis=-1)
        pick = (cum < (u[..., 1] * cum[..., -1])[..., None]).sum(axis=-1)
        return np.minimum(pick, m - 1)
    return epsilon_greedy(config, q_row.argmax(axis=-1), m, t, u)


def epsilon_greedy(config: TabularConfig, greedy, m: int, t: int, u: np.ndarray):
    """The greedy action(s), or with probability ε_t a uniform one: row (explore?, which action) of ``u``."""
    explore = u[..., 0] < epsilon(config, int(t))
    return np.where(explore, np.minimum((u[..., 1] * m).astype(np.int64), m - 1), greedy)
