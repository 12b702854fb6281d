"""Deep Q-network seller: an MLP Q-function over the price grid, learned online inside the market loop.

Act → outcome → store → update, as a seller in a live multi-agent market: ``price`` encodes the
observation and acts ε-greedily, ``learn`` stores the (n-step) transition in a replay buffer and takes a
gradient step on a Huber loss against a target network (Double DQN by default).

Pricing is a *continuing* task: a market never ends, and a run's step limit is a time limit, not a
terminal state. The TD target therefore always bootstraps, r + γⁿ Q(s′, ·); nothing here masks it with
a ``done`` flag (Pardo et al. 2018, "Time limits in reinforcement learning").
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from marketsim.strategy import MarketInfo, Observation, Outcome

from .base import DeepLearner, Mode

if TYPE_CHECKING:  # torch itself is imported where it is used, so discovering the plugin does not load it
    import torch
    from torch import nn

Exploration = Literal["exponential", "linear"]


def mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    """A ReLU multilayer perceptron ``n_in → hidden… → n_out``."""
    from torch import nn

    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def td_targets(
    reward: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    gamma_n: float | torch.Tensor,
    double: bool,
) -> torch.Tensor:
    """TD targets r + γⁿ Q̂(s′, a*): a* from the online net (Double DQN) or the target net (plain DQN).

    There is no ``done`` argument on purpose: in a continuing market every target bootstraps.
    """
    if double:
        best = next_q_online.argmax(dim=1, keepdim=True)
        value = next_q_target.gather(1, best).squeeze(1)
    else:
        value = next_q_target.max(dim=1).values
    return reward + gamma_n * value


def n_step_return(rewards: Sequence[float], gamma: float) -> float:
    """Discounted sum Σₖ γᵏ rₖ of the rewards of n consecutive steps."""
    return float(sum(gamma**k * r for k, r in enumerate(rewards)))


def epsilon_at(kind: Exploration, start: float, floor: float, decay_steps: int, t: int) -> float:
    """ε after t training decisions: ``start·exp(−t/decay_steps)`` or linear to ``floor`` at decay_steps."""
    if kind == "exponential":
        return max(start * math.exp(-t / decay_steps), floor)
    return start + (floor - start) * min(t / decay_steps, 1.0)


class ReplayBuffer:
    """A numpy ring buffer of transitions (s, a, R, s′); the oldest are overwritten when full."""

    def __init__(self, capacity: int, size: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, size), np.float32)
        self.next_obs = np.zeros((capacity, size), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.pos = 0  # where the next transition goes
        self.count = 0  # transitions held

    def __len__(self) -> int:
        return self.count

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray) -> None:
        """Store one transition."""
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i], self.next_obs[i] = obs, action, reward, next_obs
        self.pos = (i + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, ...]:
        """``batch`` transitions drawn uniformly with replacement using ``rng``."""
        idx = rng.integers(0, self.count, size=batch)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx]

    def state_dict(self) -> dict[str, Any]:
        """The held transitions (oldest first) as arrays."""
        order = (np.arange(self.count) + (self.pos - self.count)) % self.capacity
        return {
            "obs": self.obs[order].copy(),
            "actions": self.actions[order].copy(),
            "rewards": self.rewards[order].copy(),
            "next_obs": self.next_obs[order].copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Refill from what ``state_dict`` returned (keeping the newest ``capacity`` transitions)."""
        obs = np.asarray(state["obs"], np.float32)[-self.capacity :]
        k = len(obs)
        if obs.ndim != 2 or obs.shape[1] != self.obs.shape[1]:
            raise ValueError(f"replay buffer holds features of shape {obs.shape}, expected (k, {self.obs.shape[1]})")
        self.obs[:k] = obs
        self.actions[:k] = np.asarray(state["actions"], np.int64)[-self.capacity :]
        self.rewards[:k] = np.asarray(state["rewards"], np.float32)[-self.capacity :]
        self.next_obs[:k] = np.asarray(state["next_obs"], np.float32)[-self.capacity :]
        self.count, self.pos = k, k % self.capacity


class DQN(DeepLearner):
    """Deep Q-network pricing (Mnih et al. 2015, Nature) with Double DQN targets (van Hasselt, Guez & Silver 2016).

    An MLP maps the encoded observation (own and rivals' last ``history`` prices, own sales; inventory,
    capacity and, with ``period``, time features) to one Q-value per grid price. Experience replay,
    a target network (hard copy every ``target_update`` gradient steps, or Polyak averaging with ``tau``),
    Huber loss with gradient-norm clipping, ε-greedy exploration (``exponential``: ε·exp(−t/decay_steps),
    or ``linear``) floored at ``epsilon_min``, and optional ``n_step`` returns. Continuing task: targets
    always bootstrap (a step limit is not a terminal state).

    Reward: with ``reward_scale`` null the profit is expressed as per-step profit gain
    (π − π_Nash)/(π_monopoly − π_Nash) of this seller's benchmarks (falling back to π/π_Nash), an affine
    change that leaves the optimal policy unchanged; a number multiplies the raw profit instead. With
    ``center_rewards`` the targets also subtract a running mean of the rewards (rate ``center_rate``), the
    reward centring of Naik et al. (2024) for continuing discounted tasks: it removes the common r̄/(1 − γ)
    from every Q-value, so the network fits the small differences between prices rather than a large
    constant. Decoupled weight decay (AdamW, ``weight_decay``) keeps the greedy policy from swinging in
    states training never visits (e.g. rival prices a fixed rival never posts).

    Defaults learn the logit duopoly's best responses (S ≈ 1 against a matching or a fixed rival) within
    about 10 000 steps; ``tests/test_dqn.py`` checks this.
    """

    name = "dqn"

    def __init__(  # noqa: PLR0913  the keyword parameters are the strategy's public API (scenario params)
        self,
        grid_size: int = 15,
        xi: float = 0.1,
        grid: list[float] | None = None,
        history: int = 1,
        period: int | None = None,
        hidden: list[int] | tuple[int, ...] = (64, 64),
        lr: float = 1e-3,
        weight_decay: float = 1.0,
        gamma: float = 0.95,
        batch_size: int = 64,
        buffer_size: int = 20_000,
        learning_starts: int = 500,
        train_every: int = 1,
        target_update: int = 250,
        tau: float | None = None,
        double: bool = True,
        n_step: int = 1,
        exploration: Exploration = "exponential",
        epsilon: float = 1.0,
        epsilon_min: float = 0.02,
        decay_steps: int = 2_000,
        max_grad_norm: float = 10.0,
        reward_scale: float | None = None,
        center_rewards: bool = True,
        center_rate: float = 0.01,
        device: str = "auto",
        checkpoint: str | None = None,
        mode: Mode = "train",
    ) -> None:
        self.grid_size, self.xi, self.grid, self.history, self.period = grid_size, xi, grid, history, period
        self.hidden, self.lr, self.gamma, self.batch_size = hidden, lr, gamma, batch_size
        self.weight_decay = weight_decay
        self.buffer_size, self.learning_starts, self.train_every = buffer_size, learning_starts, train_every
        self.target_update, self.tau, self.double, self.n_step = target_update, tau, double, n_step
        self.exploration, self.epsilon, self.epsilon_min = exploration, epsilon, epsilon_min
        self.decay_steps, self.max_grad_norm, self.reward_scale = decay_steps, max_grad_norm, reward_scale
        self.center_rewards, self.center_rate = center_rewards, center_rate
        self.device, self.checkpoint, self.mode = device, checkpoint, mode
        self._validate()

    def _validate(self) -> None:
        """Raise ValueError naming the first inconsistent parameter."""
        hidden_ok = isinstance(self.hidden, list | tuple) and all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden
        )
        checks = [
            (self.history >= 1, f"history must be >= 1, got {self.history}"),
            (self.period is None or self.period > 0, f"period must be > 0, got {self.period}"),
            (hidden_ok, f"hidden must be a list of positive layer widths, got {self.hidden!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.gamma < 1, f"gamma must be in [0, 1), got {self.gamma}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.buffer_size >= self.batch_size, "buffer_size must be >= batch_size"),
            (self.learning_starts >= 0, f"learning_starts must be >= 0, got {self.learning_starts}"),
            (self.train_every >= 1, f"train_every must be >= 1, got {self.train_every}"),
            (self.target_update >= 1, f"target_update must be >= 1, got {self.target_update}"),
            (self.tau is None or 0 < self.tau <= 1, f"tau must be in (0, 1] or null, got {self.tau}"),
            (self.n_step >= 1, f"n_step must be >= 1, got {self.n_step}"),
            (self.exploration in ("exponential", "linear"), f"unknown exploration {self.exploration!r}"),
            (0 <= self.epsilon_min <= self.epsilon <= 1, "need 0 <= epsilon_min <= epsilon <= 1"),
            (self.decay_steps > 0, f"decay_steps must be > 0, got {self.decay_steps}"),
            (self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}"),
            (self.reward_scale is None or self.reward_scale > 0, "reward_scale must be > 0 or null"),
            (0 < self.center_rate <= 1, f"center_rate must be in (0, 1], got {self.center_rate}"),
            (self.mode in ("train", "eval"), f"mode must be 'train' or 'eval', got {self.mode!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    # --- set-up ------------------------------------------------------------------------------------

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Reward normalisation, counters and the buffer; then the base class builds the networks."""
        self.reward_offset, self.reward_factor = self._reward_transform(market)
        self.t = 0  # training decisions taken (drives ε)
        self.updates = 0  # gradient steps taken
        self.transitions = 0  # transitions stored
        self.state: np.ndarray | None = None  # features of the observation last priced
        self.action = 0
        self.pending: deque[tuple[np.ndarray, int, float]] = deque()  # n-step: (s, a, r) awaiting s′
        self.next_features: tuple[int, np.ndarray] | None = None  # (step, features) encoded by learn()
        self.last_loss = float("nan")
        self.reward_mean = 0.0  # running mean of rewards, subtracted in targets when center_rewards
        super().setup(market, rng)

    def _reward_transform(self, market: MarketInfo) -> tuple[float, float]:
        """(offset, factor) so that reward = (profit − offset)·factor."""
        if self.reward_scale is not None:
            return 0.0, float(self.reward_scale)
        i = market.index
        nash = float(market.expected_profit(np.asarray(market.nash_prices, float))[i])
        mono = float(market.expected_profit(np.asarray(market.monopoly_prices, float))[i])
        if np.isfinite(mono - nash) and mono - nash > 1e-9 * max(1.0, abs(nash)):
            return nash, 1.0 / (mono - nash)
        return 0.0, 1.0 / nash if np.isfinite(nash) and nash > 1e-12 else 1.0

    def build(self) -> None:
        """Online and target Q-networks, AdamW, and the replay buffer."""
        import torch

        size, m = self.encoder.size, len(self.prices)
        self.online = mlp(size, list(self.hidden), m).to(self.torch_device)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.online.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.buffer = ReplayBuffer(self.buffer_size, size)

    # --- acting ------------------------------------------------------------------------------------

    @property
    def current_epsilon(self) -> float:
        """Exploration probability of the next training decision."""
        return epsilon_at(self.exploration, self.epsilon, self.epsilon_min, self.decay_steps, self.t)

    @property
    def exploration_rate(self) -> float:
        """ε of the next decision while training, 0 in evaluation (``Exploring``)."""
        return self.current_epsilon if self.training else 0.0

    @property
    def greedy_price(self) -> float | None:
        """The greedy price for the observation ``learn`` last encoded (None before the first outcome)."""
        if self.next_features is None:
            return None
        return self.action_price(int(self.greedy_actions(self.next_features[1])[0]))

    def features(self, obs: Observation) -> np.ndarray:
        """Encoded features of ``obs`` (reusing those ``learn`` computed for it)."""
        if self.next_features is not None and self.next_features[0] == obs.step:
            features = self.next_features[1]
        else:
            features = self.encoder.encode(obs)
        self.next_features = None
        return features

    def q_values(self, features: np.ndarray) -> np.ndarray:
        """Online Q-values (k, m) of feature rows (k, encoder.size)."""
        import torch

        with torch.no_grad():
            x = torch.as_tensor(np.atleast_2d(features), dtype=torch.float32, device=self.torch_device)
            return self.online(x).cpu().numpy()

    def greedy_actions(self, features: np.ndarray) -> np.ndarray:
        """Greedy action of each feature row (ties to the lowest index)."""
        return self.q_values(features).argmax(axis=1)

    def price(self, obs: Observation) -> float:
        """ε-greedy grid price while training, the greedy one otherwise."""
        self.state = self.features(obs)
        if self.training and self.rng.random() < self.current_epsilon:
            self.action = int(self.rng.integers(len(self.prices)))
        else:
            self.action = int(self.greedy_actions(self.state)[0])
        self.t += self.training
        return self.action_price(self.action)

    # --- learning ----------------------------------------------------------------------------------

    def reward(self, profit: float) -> float:
        """The learning signal of a step's profit (see the class docstring)."""
        return (profit - self.reward_offset) * self.reward_factor

    def learn(self, outcome: Outcome) -> None:
        """Store the step's transition (n-step once n rewards are in) and train every ``train_every`` steps."""
        if self.state is None or not self.training:  # nothing priced yet, or frozen (mode: eval)
            return
        next_state = self.encoder.encode(outcome.next_observation)
        self.next_features = (outcome.next_observation.step, next_state)
        reward = self.reward(outcome.profit)
        self.reward_mean += self.center_rate * (reward - self.reward_mean)
        self.pending.append((self.state, self.action, reward))
        if len(self.pending) == self.n_step:
            s, a, _ = self.pending[0]
            ret = n_step_return([r for _, _, r in self.pending], self.gamma)
            self.buffer.add(s, a, ret, next_state)
            self.transitions += 1
            self.pending.popleft()
        if self.ready and self.transitions % self.train_every == 0:
            self.train_step()

    @property
    def ready(self) -> bool:
        """Whether gradient steps have begun: ``learning_starts`` transitions and a full batch stored."""
        return self.transitions >= max(self.learning_starts, 1) and len(self.buffer) >= self.batch_size

    def train_step(self) -> float:
        """One gradient step on a replayed batch; returns the Huber loss."""
        import torch
        from torch import nn
        from torch.nn import functional

        obs, actions, rewards, next_obs = (
            torch.as_tensor(x, device=self.torch_device) for x in self.buffer.sample(self.rng, self.batch_size)
        )
        target = self.targets(rewards, next_obs)
        q = self.online(obs).gather(1, actions[:, None]).squeeze(1)
        loss = functional.smooth_l1_loss(q, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self.update_target()
        self.last_loss = float(loss.detach())
        return self.last_loss

    def targets(self, rewards: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """TD targets of stored n-step rewards (centred when ``center_rewards``) and next features."""
        import torch

        with torch.no_grad():
            next_online = self.online(next_obs) if self.double else next_obs.new_zeros(0)
            next_target = self.target(next_obs)
            if self.center_rewards:
                rewards = rewards - self.reward_mean * sum(self.gamma**k for k in range(self.n_step))
            return td_targets(rewards, next_online, next_target, self.gamma**self.n_step, self.double)

    def update_target(self) -> None:
        """Polyak-average toward the online net (``tau``), or copy it every ``target_update`` steps."""
        if self.tau is not None:
            import torch

            with torch.no_grad():
                for t, o in zip(self.target.parameters(), self.online.parameters()):
                    t.lerp_(o, self.tau)
        elif self.updates % self.target_update == 0:
            self.sync_target()

    def sync_target(self) -> None:
        """Hard update: the target network becomes a copy of the online one."""
        self.target.load_state_dict(self.online.state_dict())

    # --- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, counters, replay buffer, pending n-step rewards and encoder memory (copies)."""
        frames = list(self.encoder.frames)
        return {
            "online": _cloned(self.online.state_dict()),
            "target": _cloned(self.target.state_dict()),
            "optimizer": _string_keys(copy.deepcopy(self.optimizer.state_dict())),
            "counters": {"t": self.t, "updates": self.updates, "transitions": self.transitions},
            "reward_mean": self.reward_mean,
            "action": self.action,
            "state": np.zeros(0, np.float32) if self.state is None else self.state.copy(),
            "next_features": None if self.next_features is None else [self.next_features[0], self.next_features[1]],
            "buffer": self.buffer.state_dict(),
            "pending": {
                "obs": np.array([s for s, _, _ in self.pending], np.float32).reshape(-1, self.encoder.size),
                "actions": np.array([a for _, a, _ in self.pending], np.int64),
                "rewards": np.array([r for _, _, r in self.pending], np.float64),
            },
            "encoder": {
                "frames": np.array(frames, np.float32).reshape(len(frames), self.encoder.n_rivals + 4),
                "stock_scale": -1.0 if self.encoder.stock_scale is None else float(self.encoder.stock_scale),
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned, also after a round trip through a checkpoint file."""
        try:
            self.online.load_state_dict(state["online"])
            self.target.load_state_dict(state["target"])
        except RuntimeError as exc:
            raise ValueError(f"dqn state does not fit this network (grid, history, hidden): {exc}") from None
        opt = dict(state["optimizer"])
        opt["state"] = {int(k): v for k, v in opt["state"].items()}  # a checkpoint stores keys as strings
        self.optimizer.load_state_dict(opt)
        counters = state["counters"]
        self.t, self.updates = int(counters["t"]), int(counters["updates"])
        self.transitions = int(counters["transitions"])
        self.reward_mean, self.action = float(state["reward_mean"]), int(state["action"])
        saved = np.asarray(state["state"], np.float32)
        self.state = saved.copy() if saved.size else None
        nf = state["next_features"]
        self.next_features = None if nf is None else (int(nf[0]), np.asarray(nf[1], np.float32))
        self.buffer.load_state_dict(state["buffer"])
        p = state["pending"]
        self.pending = deque(
            (np.asarray(s, np.float32), int(a), float(r)) for s, a, r in zip(p["obs"], p["actions"], p["rewards"])
        )
        enc = state["encoder"]
        self.encoder.frames.clear()
        self.encoder.frames.extend(np.asarray(f, np.float32) for f in enc["frames"])
        self.encoder.stock_scale = None if float(enc["stock_scale"]) < 0 else float(enc["stock_scale"])


def _cloned(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a module's tensors."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _string_keys(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """An optimiser state dict with its per-parameter keys as strings (plain data, as checkpoints store it)."""
    return {**optimizer_state, "state": {str(k): v for k, v in optimizer_state["state"].items()}}
