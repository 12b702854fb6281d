"""``meta_q`` (the seed design's Meta-Q): a Q-learner meta-trained across a family's tasks from one shared replay pool.

The network reads the same inputs as ``rl2`` each step (its last price, its rivals' last prices, its previous action,
its last units and profit, the step) and keeps a GRU state over the task's history: a learned encoding of the task,
the *context* its Q values are conditioned on. Meta-training fills a replay pool with whole episodes of many training
tasks (ε-greedy, in the batched task market with sampled sales); each stored transition carries its task's context
because the context is rebuilt from the stored history when the episode is replayed. Learning is double DQN (van
Hasselt et al. 2016) with a target network and the Huber loss, through the GRU over whole episodes (as R2D2, Kapturowski
et al. 2019, without burn-in: an episode is only H steps). In a new task the learner adapts online as its context
fills with that task's sales: it acts greedily on Q(history, price); no gradient step is taken inside a market.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from marketsim.learning.torchkit import CheckpointError, load_owned_checkpoint, pick_device, seeded_build
from marketsim.strategy import MarketInfo, MetaCheckpoint, MetaSetup, Observation, Outcome, Strategy

from .rl2 import batch_rivals, features, n_features, sorted_rivals

if TYPE_CHECKING:
    import torch

    from .meta_q_net import MetaQNet


#: What a checkpoint's ``config`` holds beside the weights.
CONFIG_KEYS = ("grid", "hidden", "max_rivals", "horizon", "unit_scale", "profit_scale")


def make_net(cfg: Mapping[str, Any]) -> MetaQNet:
    """The network a config describes."""
    from .meta_q_net import MetaQNet

    return MetaQNet(n_features(len(cfg["grid"]), int(cfg["max_rivals"])), int(cfg["hidden"]), len(cfg["grid"]))


def feature_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with what ``features`` reads: the grid's low end, span and size."""
    grid = np.asarray(cfg["grid"], float)
    return {**cfg, "low": float(grid.min()), "span": float(max(grid.max() - grid.min(), 1e-9)), "m": len(grid)}


class MetaQ(Strategy):
    """Meta-Q pricing: Q values conditioned on a learned encoding of the task's history, meta-trained across tasks.

    It posts the grid price with the highest Q value given what it has seen of this market (``epsilon`` > 0 explores
    that often at random). The grid and network sizes come from the checkpoint; without one the network is untrained
    (seeded from the strategy's generator).
    """

    name = "meta_q"
    classifier: ClassVar[Mapping[str, Any]] = {
        "learns": True,
        "stochastic": True,  # its untrained network, and epsilon > 0, depend on the seed
        "needs_torch": True,
        "observes": ("own", "competitors"),
    }

    def __init__(  # noqa: PLR0913 - a strategy's parameters are its keyword arguments (the contract)
        self,
        checkpoint: str | None = None,
        grid: Sequence[float] | None = None,
        hidden: int = 64,
        max_rivals: int = 2,
        horizon: int | None = None,
        unit_scale: float = 100.0,
        profit_scale: float = 100.0,
        epsilon: float = 0.0,
        device: str = "auto",
    ) -> None:
        checks = [
            (isinstance(hidden, int) and hidden > 0, f"hidden must be a positive integer, got {hidden!r}"),
            (isinstance(max_rivals, int) and max_rivals >= 0, f"max_rivals must be >= 0, got {max_rivals!r}"),
            (horizon is None or horizon > 0, f"horizon must be > 0, got {horizon}"),
            (unit_scale > 0 and profit_scale > 0, "unit_scale and profit_scale must be > 0"),
            (0 <= epsilon <= 1, f"epsilon must be in [0, 1], got {epsilon}"),
            (grid is None or len(grid) >= 2, "an explicit grid needs at least two prices"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.checkpoint, self.hidden, self.max_rivals, self.horizon = checkpoint, hidden, max_rivals, horizon
        self.grid = None if grid is None else tuple(float(p) for p in grid)
        self.unit_scale, self.profit_scale, self.epsilon, self.device = unit_scale, profit_scale, epsilon, device

    def config(self, market: MarketInfo | None = None) -> dict[str, Any]:
        """Grid, sizes and scales of the network (what a checkpoint stores beside the weights)."""
        if self.grid is not None:
            grid = list(self.grid)
        else:
            assert market is not None
            grid = [float(p) for p in np.linspace(market.price_min, market.price_max, 15)]
        return {"grid": grid, "hidden": self.hidden, "max_rivals": self.max_rivals, "horizon": self.horizon or 50,
                "unit_scale": self.unit_scale, "profit_scale": self.profit_scale}  # fmt: skip

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        import torch

        super().setup(market, rng)
        self.dev = pick_device(self.device)
        if self.dev.type == "cpu" and torch.get_num_threads() > 1:
            torch.set_num_threads(1)
        cfg, weights = self.config(market), None
        if self.checkpoint:
            state, _ = load_owned_checkpoint(self.checkpoint, self.name)
            if "net" not in state or "config" not in state:
                raise CheckpointError(f"checkpoint {self.checkpoint} holds no meta_q network")
            cfg.update({k: v for k, v in dict(state["config"]).items() if k != "grid" or self.grid is None})
            weights = state["net"]
        seed = int(rng.integers(2**63 - 1))
        self.net = seeded_build(seed, lambda: make_net(cfg)).to(self.dev)
        if weights is not None:
            try:
                self.net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
            except RuntimeError as exc:
                raise CheckpointError(f"checkpoint {self.checkpoint} does not fit the meta_q network: {exc}") from None
        self.net.eval()
        self.cfg = feature_config(cfg)
        self.prices = np.asarray(cfg["grid"], float)
        self.h = torch.zeros(1, int(cfg["hidden"]), device=self.dev)
        self.action, self.t = -1, 0

    def price(self, obs: Observation) -> float:
        import torch

        rivals = sorted_rivals(obs.competitor_prices, int(self.cfg["max_rivals"]))[None]
        x = features(np.array([obs.own_price]), rivals, np.array([self.action]), np.array([obs.last_units]),
                     np.array([obs.last_profit]), self.t, self.cfg)  # fmt: skip
        with torch.no_grad():
            q, self.h = self.net(torch.as_tensor(x, device=self.dev), self.h)
        action = int(q.argmax(dim=1)[0])
        if self.epsilon > 0 and self.rng.random() < self.epsilon:
            action = int(self.rng.integers(len(self.prices)))
        self.action, self.t = action, self.t + 1
        return float(min(max(self.prices[action], obs.price_min), obs.price_max))

    def learn(self, outcome: Outcome) -> None:
        """Nothing: it adapts through its context (read from the next observation), never by gradients in a market."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "config": {k: self.cfg[k] for k in CONFIG_KEYS},
            "memory": self.h.detach().cpu().numpy().copy(),
            "action": self.action,
            "t": self.t,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        self.net.load_state_dict({k: torch.as_tensor(v) for k, v in state["net"].items()})
        self.h = torch.as_tensor(np.asarray(state["memory"], np.float32), device=self.dev)
        self.action, self.t = int(state["action"]), int(state["t"])

    @classmethod
    def meta_learner(cls, setup: MetaSetup, **options: Any) -> MetaQLearner:
        """Meta-Q's meta-training (capability ``MetaTrainable``): double DQN over a shared replay pool of episodes."""
        return MetaQLearner(setup, **options)


class MetaQLearner:
    """Double DQN through the context encoder, on whole episodes from a replay pool shared by every training task.

    Each iteration plays ``batch`` training tasks for one episode with the current network (ε-greedy, ε annealed
    linearly from ``epsilon[0]`` to ``epsilon[1]`` over the first ``explore`` share of the iterations), adds the
    episodes to the pool (the newest ``capacity`` kept), then takes ``updates`` gradient steps on ``sample`` episodes
    drawn from it. Rewards are profits / ``reward_scale``, discounted by ``gamma``; the target network follows every
    ``target_every`` steps. The curve records the greedy policy's regret on held-aside training tasks.
    """

    iterations = 1200

    def __init__(  # noqa: PLR0913 - meta-train's hyper-parameters, each a keyword option
        self,
        setup: MetaSetup,
        batch: int = 64,
        sample: int = 64,
        updates: int = 1,
        capacity: int = 4096,
        hidden: int = 64,
        lr: float = 1e-3,
        gamma: float = 0.95,
        epsilon: tuple[float, float] = (1.0, 0.05),
        explore: float = 0.6,
        target_every: int = 50,
        reward_scale: float = 100.0,
        pool: int = 8192,
        validation: int = 128,
        log_every: int = 50,
        max_rivals: int = 2,
    ) -> None:
        import torch

        self.setup, self.batch, self.sample, self.updates, self.capacity = setup, batch, sample, updates, capacity
        self.hidden, self.lr, self.gamma, self.epsilon, self.explore = hidden, lr, gamma, epsilon, explore
        self.target_every, self.reward_scale, self.max_rivals = target_every, reward_scale, max_rivals
        self.pool, self.validation, self.log_every = pool, validation, log_every
        self.dev = pick_device(setup.device)
        if self.dev.type == "cpu":
            torch.set_num_threads(1)
        self.cfg = MetaQ(hidden=hidden, grid=setup.grid, max_rivals=max_rivals, horizon=setup.horizon).config()
        self.net = seeded_build(setup.seed, lambda: make_net(self.cfg)).to(self.dev)
        self.target = seeded_build(setup.seed, lambda: make_net(self.cfg)).to(self.dev)
        self.target.load_state_dict(self.net.state_dict())
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.replay: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (features, actions, rewards) per episode
        self.steps = 0

    def begin(self, env: Any) -> None:
        """Nothing to build from the tasks: the networks and the optimiser exist already."""

    def update(self, iteration: int, iterations: int, env: Any, rng: np.random.Generator) -> dict[str, float]:
        """Play a batch of tasks into the pool, then learn from episodes drawn from it."""
        eps = self._epsilon(iteration, iterations)
        played = play(self.net, env.subset(rng.integers(0, len(env), self.batch)), self.cfg, rng, self.dev, eps)
        for b in range(len(played["actions"])):
            self.replay.append((played["features"][b], played["actions"][b], played["profit"][b] / self.reward_scale))
        del self.replay[: max(0, len(self.replay) - self.capacity)]
        losses = [self._learn(rng) for _ in range(self.updates)]
        return {"batch_profit": float(played["profit"].mean()), "epsilon": eps, "loss": float(np.mean(losses))}

    def _epsilon(self, iteration: int, iterations: int) -> float:
        frac = min((iteration - 1) / max(self.explore * iterations, 1), 1.0)
        return self.epsilon[0] + (self.epsilon[1] - self.epsilon[0]) * frac

    def _learn(self, rng: np.random.Generator) -> float:
        """One double-DQN step on ``sample`` episodes from the pool."""
        import torch
        from torch import nn
        from torch.nn import functional

        idx = rng.integers(0, len(self.replay), min(self.sample, len(self.replay)))
        x = torch.as_tensor(np.stack([self.replay[i][0] for i in idx]), device=self.dev)
        a = torch.as_tensor(np.stack([self.replay[i][1] for i in idx]), device=self.dev)
        r = torch.as_tensor(np.stack([self.replay[i][2] for i in idx]), dtype=torch.float32, device=self.dev)
        q = self.net.unroll(x)
        with torch.no_grad():
            y = targets(q, self.target.unroll(x), r, self.gamma)
        loss = functional.smooth_l1_loss(q.gather(2, a[..., None]).squeeze(2), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.opt.step()
        self.steps += 1
        if self.steps % self.target_every == 0:
            self.target.load_state_dict(self.net.state_dict())
        return float(loss.detach())

    def validate(self, env: Any) -> np.ndarray:
        """The greedy policy's expected profits in every task of ``env``."""
        return play(self.net, env, self.cfg, np.random.default_rng(10_000 + self.setup.seed), self.dev, 0.0)["expected"]

    def finish(
        self,
        iterations: int,
        env: Any,
        validation: Any,
        rng: np.random.Generator,
        regret: Callable[[np.ndarray], np.ndarray],
    ) -> MetaCheckpoint:
        """The network's weights and config, and the run's settings for the sidecar."""
        state = {"net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}, "config": self.cfg}
        params = {"hidden": self.hidden, "grid": self.cfg["grid"], "max_rivals": self.max_rivals,
                  "horizon": self.setup.horizon}  # fmt: skip
        info = {"device": str(self.dev), "batch": self.batch, "episodes": iterations * self.batch, "lr": self.lr,
                "gamma": self.gamma, "epsilon": list(self.epsilon), "capacity": self.capacity, "pool": self.pool,
                "updates": self.steps, "method": "meta_q"}  # fmt: skip
        return MetaCheckpoint(state=state, params=params, info=info)


def targets(q: torch.Tensor, q_target: torch.Tensor, reward: torch.Tensor, gamma: float) -> torch.Tensor:
    """Double-DQN targets (B, H) of whole episodes: r_t + γ Q_target(t+1, argmax_a Q(t+1, a)), and r_H at the end."""
    best = q[:, 1:].argmax(dim=2, keepdim=True)  # the online network picks, the target network values
    y = reward.clone()
    y[:, :-1] += gamma * q_target[:, 1:].gather(2, best).squeeze(2)
    return y


def play(net: MetaQNet, env: Any, cfg: Mapping[str, Any], rng: np.random.Generator, dev: Any, eps: float) -> dict:
    """One ε-greedy episode of every task of ``env`` in lockstep (sampled sales): expected and booked profits (B, H),
    the inputs (B, H, F) and the actions (B, H)."""
    import torch

    cfg = feature_config(cfg)
    grid = np.asarray(cfg["grid"], float)
    B, H, r = len(env), env.horizon, int(cfg["max_rivals"])
    last = env.reset_episode(rng)
    h = torch.zeros(B, int(cfg["hidden"]), device=dev)
    prev, units, profit = np.full(B, -1), np.zeros(B), np.zeros(B)
    out = {"expected": np.empty((B, H)), "profit": np.empty((B, H)), "actions": np.empty((B, H), np.int64)}
    inputs = []
    for t in range(H):
        x = features(last[:, 0], batch_rivals(last, env.present, r), prev, units, profit, t, cfg)
        with torch.no_grad():
            q, h = net(torch.as_tensor(x, device=dev), h)
        action = q.argmax(dim=1).cpu().numpy()
        explore = rng.random(B) < eps
        action[explore] = rng.integers(0, len(grid), int(explore.sum()))
        step = env.step(last, grid[action], rng)
        out["expected"][:, t], out["profit"][:, t], out["actions"][:, t] = step.expected_profit, step.profit, action
        inputs.append(x)
        last, prev, units, profit = step.prices, action, step.units, step.profit
    out["features"] = np.stack(inputs, 1)
    return out


__all__ = ["MetaQ", "MetaQLearner", "play", "targets"]
