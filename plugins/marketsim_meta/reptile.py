"""Reptile-initialised DQN: a Q-network whose starting weights are meta-learned across a family's markets,
then fine-tuned online in a new market while it prices.

Nichol, Achiam & Schulman (2018), "On first-order meta-learning algorithms" (Reptile). For each sampled
training task: copy the initialisation θ, adapt it with the DQN's own online learning for the task's H
steps (ε-greedy acting, replay, a gradient step per step), and move the initialisation toward the adapted
weights, θ ← θ + ε (θ′ − θ) (averaged over a meta-batch of tasks, ε annealed). The naive baseline,
*model averaging*, trains a copy of the same random initialisation separately on each of many tasks and
takes the mean of the trained weights; ``meta_train`` writes it beside the Reptile checkpoint
(``averaged.pt``). A randomly initialised ``reptile_dqn`` (no checkpoint) is the control.

The features are the family-agnostic ones of ``rl2``: own and (sorted, padded, masked) rivals' last prices
on the grid's [0, 1] scale, last units and profit over fixed scales, and the step over the horizon, so one
network fits every task of the family whatever its number of rivals; the reward is profit /
``profit_scale``. Nothing here reads the market's demand model or its Nash/monopoly benchmarks when a
grid is given (the family's grid, from the checkpoint).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from marketsim.learning.tabular import seller_grid
from marketsim.learning.torchkit import CheckpointError, load_owned_checkpoint, pick_device, seeded
from marketsim.market.step import observation, outcome, rivals_of
from marketsim.strategy import MarketInfo, MetaCheckpoint, MetaSetup, Observation, Strategy
from marketsim_deep.dqn import DQN, Exploration

from .rl2 import sorted_rivals

if TYPE_CHECKING:  # torch itself is imported where it is used, so discovering the plugin does not load it
    import torch


class PaddedEncoder:
    """Fixed-length features of one observation, the same size in every market (rivals padded, masked)."""

    def __init__(self, grid: np.ndarray, max_rivals: int, horizon: int, unit_scale: float, profit_scale: float) -> None:
        self.low, self.span = float(grid.min()), float(max(grid.max() - grid.min(), 1e-9))
        self.max_rivals, self.horizon = max_rivals, horizon
        self.unit_scale, self.profit_scale = unit_scale, profit_scale
        self.n_rivals = 2 * max_rivals + 1  # so that DQN.state_dict's frame shape (n_rivals + 4) fits
        self.stock_scale: float | None = None
        self.frames: deque[np.ndarray] = deque(maxlen=1)  # memory-1 features: nothing is remembered
        self.history, self.period = 1, None

    @property
    def size(self) -> int:
        return 2 * self.max_rivals + 4

    def frame(self, obs: Observation) -> np.ndarray:
        rivals = sorted_rivals(obs.competitor_prices, self.max_rivals)
        mask = np.isfinite(rivals)
        out = np.zeros(self.size, np.float32)
        out[0] = (obs.own_price - self.low) / self.span
        r = self.max_rivals
        out[1 : 1 + r] = np.where(mask, (np.nan_to_num(rivals) - self.low) / self.span, 0.0)
        out[1 + r : 1 + 2 * r] = mask
        out[1 + 2 * r] = obs.last_units / self.unit_scale
        out[2 + 2 * r] = obs.last_profit / self.profit_scale
        out[3 + 2 * r] = min(obs.step / self.horizon, 1.0)
        return out

    def encode(self, obs: Observation, remember: bool = True) -> np.ndarray:
        return self.frame(obs)

    steady = encode


class ReptileDQN(DQN):
    """DQN pricing whose initial Q-network is meta-learned with Reptile (Nichol et al. 2018).

    In a market it is an ordinary online DQN (``marketsim_deep.dqn.DQN``: replay, Double-DQN targets,
    Polyak target updates, ε-greedy) with hyper-parameters for adapting within one short task: learning
    starts after ``learning_starts`` steps, a gradient step per step, ε decaying over ``decay_steps``.
    ``checkpoint`` supplies the initial weights (the Reptile or the model-averaged initialisation written
    by ``marketsim meta-train FAMILY --strategy reptile_dqn``) and the family's grid; without one the network
    is randomly initialised (the control). ``finetune`` (default on) keeps learning online even with
    ``mode: eval`` — fine-tuning in the new task is the method; the checkpoint on disk is never changed.
    ``finetune: false`` with ``mode: eval`` acts greedily with the initialisation, frozen.
    """

    name = "reptile_dqn"

    def __init__(  # noqa: PLR0913 - a strategy's parameters are its keyword arguments (the contract)
        self,
        grid_size: int = 15,
        xi: float = 0.1,
        grid: list[float] | None = None,
        hidden: list[int] | tuple[int, ...] = (64, 64),
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        gamma: float = 0.5,
        batch_size: int = 16,
        buffer_size: int = 1_000,
        learning_starts: int = 8,
        train_every: int = 1,
        target_update: int = 20,
        tau: float | None = 0.1,
        double: bool = True,
        n_step: int = 1,
        exploration: Exploration = "exponential",
        epsilon: float = 0.3,
        epsilon_min: float = 0.02,
        decay_steps: int = 12,
        max_grad_norm: float = 10.0,
        max_rivals: int = 2,
        horizon: int | None = None,
        unit_scale: float = 100.0,
        profit_scale: float = 100.0,
        finetune: bool = True,
        device: str = "auto",
        checkpoint: str | None = None,
        mode: str = "eval",
    ) -> None:
        super().__init__(
            grid_size=grid_size,
            xi=xi,
            grid=grid,
            history=1,
            period=None,
            hidden=hidden,
            lr=lr,
            weight_decay=weight_decay,
            gamma=gamma,
            batch_size=batch_size,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            train_every=train_every,
            target_update=target_update,
            tau=tau,
            double=double,
            n_step=n_step,
            exploration=exploration,
            epsilon=epsilon,
            epsilon_min=epsilon_min,
            decay_steps=decay_steps,
            max_grad_norm=max_grad_norm,
            reward_scale=1.0 / profit_scale,
            center_rewards=False,
            device=device,
            checkpoint=checkpoint,
            mode=mode,
        )
        if not (isinstance(max_rivals, int) and max_rivals >= 0):
            raise ValueError(f"max_rivals must be an integer >= 0, got {max_rivals!r}")
        if horizon is not None and horizon <= 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        if not (unit_scale > 0 and profit_scale > 0):
            raise ValueError("unit_scale and profit_scale must be > 0")
        self.max_rivals, self.horizon = max_rivals, horizon
        self.unit_scale, self.profit_scale, self.finetune = float(unit_scale), float(profit_scale), bool(finetune)

    @property
    def params(self) -> dict[str, Any]:
        out = super().params
        for hidden_only in ("history", "period", "reward_scale", "center_rewards", "center_rate"):
            out.pop(hidden_only, None)
        return out

    # --- set-up ------------------------------------------------------------------------------------

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Counters, the family grid and padded encoder, networks; then the checkpoint's initial weights."""
        import torch

        Strategy.setup(self, market, rng)
        self.reward_offset, self.reward_factor = 0.0, 1.0 / self.profit_scale
        self.t = self.updates = self.transitions = 0
        self.state: np.ndarray | None = None
        self.action = 0
        self.pending: deque = deque()
        self.next_features = None
        self.last_loss = float("nan")
        self.reward_mean = 0.0
        init, config = None, {}
        if self.checkpoint:
            init, config = _read_init(self.checkpoint, self.name)
        grid = self.grid if self.grid is not None else config.get("grid")
        self.prices = seller_grid(market, self.grid_size, self.xi, grid)
        horizon = self.horizon or int(config.get("horizon", 50))
        self.encoder = PaddedEncoder(self.prices, self.max_rivals, horizon, self.unit_scale, self.profit_scale)
        self.torch_device = pick_device(self.device)
        if self.torch_device.type == "cpu" and torch.get_num_threads() > 1:
            torch.set_num_threads(1)  # tiny networks: one thread is fastest (as marketsim_deep does)
        seed = int(rng.integers(2**63 - 1))
        self.generator = torch.Generator().manual_seed(seed)
        with seeded(seed):
            self.build()
        if init is not None:
            self.load_init(init)
        if self.mode == "eval":
            self.set_training(self.finetune)

    def load_init(self, weights: Mapping[str, Any]) -> None:
        """Start from ``weights`` (online and target networks)."""
        import torch

        try:
            state = {k: torch.as_tensor(v) for k, v in weights.items()}
            self.online.load_state_dict(state)
            self.target.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"initial weights do not fit this network (grid, hidden): {exc}") from None

    def load_checkpoint(self, path: str) -> None:
        init, _ = _read_init(path, self.name)
        self.load_init(init)

    def init_weights(self) -> dict[str, torch.Tensor]:
        """The online network's weights (detached CPU copies)."""
        return {k: v.detach().cpu().clone() for k, v in self.online.state_dict().items()}

    # --- meta-training -----------------------------------------------------------------------------

    @classmethod
    def meta_learner(cls, setup: MetaSetup, **options: Any) -> ReptileMetaLearner:
        """Reptile's meta-training (capability ``MetaTrainable``), with model averaging as the extra checkpoint."""
        return ReptileMetaLearner(cls, setup, **options)


class ReptileMetaLearner:
    """Reptile over meta-batches of ``meta_batch`` training tasks (the host's loop drives it); also model averaging.

    Outer step size ε anneals linearly from ``outer_lr[0]`` to ``outer_lr[1]``. The curve records the
    fine-tuned DQN's expected-profit regret on ``validation`` held-aside training tasks. The model-averaged
    initialisation (the mean of ``average_tasks`` copies of the same random initialisation, each trained
    on its own task) is returned as the extra checkpoint ``averaged``. Other options are the strategy's parameters.
    """

    iterations = 300

    def __init__(
        self,
        cls: type[ReptileDQN],
        setup: MetaSetup,
        meta_batch: int = 4,
        outer_lr: tuple[float, float] = (1.0, 0.1),
        average_tasks: int = 200,
        pool: int = 4096,
        validation: int = 32,
        log_every: int = 50,
        **params: Any,
    ) -> None:
        self.cls, self.setup = cls, setup
        self.meta_batch, self.outer_lr, self.average_tasks = meta_batch, outer_lr, average_tasks
        self.pool, self.validation, self.log_every = pool, validation, log_every
        self.dev = str(pick_device(setup.device))
        self.params = {"grid": list(setup.grid), "horizon": setup.horizon, **params, "device": self.dev}

    def make(self) -> ReptileDQN:
        """A fresh learner in training mode."""
        return self.cls(**self.params, mode="train")

    def begin(self, env: Any) -> None:
        """The random initialisation θ₀ (a learner set up in the first training task)."""
        probe = self.make()
        probe.setup(_blind_market(env, 0), np.random.default_rng(self.setup.seed))
        self.theta = probe.init_weights()
        self.theta0 = copy.deepcopy(self.theta)

    def update(self, iteration: int, iterations: int, env: Any, rng: np.random.Generator) -> dict[str, float]:
        """One Reptile step: adapt θ in ``meta_batch`` tasks, move it toward the mean adapted weights."""
        import torch

        theta = self.theta
        eps = self.outer_lr[0] + (self.outer_lr[1] - self.outer_lr[0]) * (iteration - 1) / max(iterations - 1, 1)
        delta = {k: torch.zeros_like(v) for k, v in theta.items()}
        for b in rng.integers(0, len(env), self.meta_batch):
            adapted, _ = play(self.make(), env, int(b), theta, rng)
            for k in delta:
                delta[k] += (adapted[k] - theta[k]) / self.meta_batch
        self.theta = {k: theta[k] + eps * delta[k] for k in theta}
        return {"outer_lr": eps}

    def validate(self, env: Any, weights: Mapping[str, torch.Tensor] | None = None) -> np.ndarray:
        """Expected profits (tasks, H) of the DQN fine-tuned from ``weights`` (default θ) in every task of ``env``."""
        weights = self.theta if weights is None else weights
        vrng = np.random.default_rng(20_000 + self.setup.seed)
        return np.array([play(self.make(), env, b, weights, vrng)[1] for b in range(len(env))])

    def finish(
        self,
        iterations: int,
        env: Any,
        validation: Any,
        rng: np.random.Generator,
        regret: Callable[[np.ndarray], np.ndarray],
    ) -> MetaCheckpoint:
        """θ, and the naive baseline: the same random init trained separately on many tasks, weights averaged."""
        import torch

        total = {k: torch.zeros_like(v) for k, v in self.theta0.items()}
        for b in rng.integers(0, len(env), self.average_tasks):
            adapted, _ = play(self.make(), env, int(b), self.theta0, rng)
            for k in total:
                total[k] += adapted[k] / self.average_tasks
        config = {"grid": list(self.setup.grid), "horizon": self.setup.horizon}
        kept = {k: v for k, v in self.params.items() if k not in ("device",)}
        averaged_regret = regret(self.validate(validation, total))
        info = {
            "device": self.dev,
            "meta_batch": self.meta_batch,
            "outer_lr": list(self.outer_lr),
            "tasks_seen": iterations * self.meta_batch,
            "average_tasks": self.average_tasks,
            "averaged_val_regret_25": float(averaged_regret[:, min(25, averaged_regret.shape[1]) - 1].mean()),
            "method": "reptile",
        }
        averaged = ({"init": total, "config": config, "method": "model_averaging"}, {"method": "model_averaging"})
        return MetaCheckpoint(
            state={"init": self.theta, "config": config, "method": "reptile"},
            params=kept,
            info=info,
            extra={"averaged": averaged},
        )


def _read_init(path: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(initial weights, config) from a reptile_dqn checkpoint (also a full DQN state's online net)."""
    state, _ = load_owned_checkpoint(path, name)
    if "init" in state:
        return dict(state["init"]), dict(state.get("config", {}))
    if "online" in state:
        return dict(state["online"]), dict(state.get("config", {}))
    raise CheckpointError(f"checkpoint {path} holds no reptile_dqn weights")


def _no_demand_model(prices: np.ndarray) -> np.ndarray:
    raise RuntimeError("a meta-learner must not read the market's demand model")


def _blind_market(env: Any, b: int) -> MarketInfo:
    """The learner's MarketInfo in task ``b`` of a TaskBatch, without the demand model or benchmarks."""
    n = int(env.present[b].sum())
    return MarketInfo(
        index=0,
        n_sellers=n,
        costs=tuple(float(c) for c in env.cost[b, :n]),
        price_min=float(env.pmin[b, 0]),
        price_max=float(env.pmax[b, 0]),
        nash_prices=(math.nan,) * n,
        monopoly_prices=(math.nan,) * n,
        expected_profit=_no_demand_model,
    )


def play(
    strategy: Strategy,
    env: Any,
    b: int,
    init: Mapping[str, torch.Tensor] | None,
    rng: np.random.Generator,
) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Run a ReptileDQN through task ``b`` of ``env`` (sampled sales), learning online from ``init``.

    Returns (the adapted online weights, the expected profit of each step's price).
    """
    one = env.subset([b])
    strategy.setup(_blind_market(env, b), rng)
    if init is not None:
        strategy.load_init(init)
    last = one.reset_episode(rng)
    n = int(one.present[0].sum())
    cost, lo, hi = float(one.cost[0, 0]), float(one.pmin[0, 0]), float(one.pmax[0, 0])
    bounds = {"cost": cost, "price_min": lo, "price_max": hi}
    obs = observation(step=0, own_price=float(last[0, 0]), competitor_prices=rivals_of(last[0, :n], 0), **bounds)
    expected = np.empty(one.horizon)
    for t in range(one.horizon):
        s = one.step(last, np.array([float(strategy.price(obs))]), rng)
        units, profit = float(s.units[0]), float(s.profit[0])
        expected[t] = s.expected_profit[0]
        posted = s.prices[0]
        after = rivals_of(posted[:n], 0)
        obs = observation(
            step=t + 1,
            own_price=float(posted[0]),
            competitor_prices=after,
            last_units=units,
            last_profit=profit,
            **bounds,
        )
        strategy.learn(
            outcome(
                step=t,
                price=float(posted[0]),
                units=units,
                cost=cost,
                profit=profit,
                competitor_prices=after,
                next_observation=obs,
            )
        )
        last = s.prices
    return strategy.init_weights(), expected


__all__ = ["PaddedEncoder", "ReptileDQN", "ReptileMetaLearner", "play"]
