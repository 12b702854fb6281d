"""RL²: a recurrent actor-critic meta-trained across a family's markets; it adapts in its forward pass.

Duan, Schulman, Chen, Bartlett, Sutskever & Abbeel (2016), "RL²: Fast reinforcement learning via slow
reinforcement learning", and Wang, Kurth-Nelson, Tirumala et al. (2016), "Learning to reinforcement learn".

* ``features`` — what the network sees each step: its own last price and its rivals' last prices (sorted,
  padded to ``max_rivals`` with a presence mask), all scaled so the price grid spans [0, 1]; its previous
  action (one-hot); its last units and profit (scaled by ``unit_scale`` / ``profit_scale``; zeroed when
  ``blind``); the step as a share of the horizon and a first-step flag. It never reads the market's
  demand model (``MarketInfo.expected_profit``, Nash/monopoly benchmarks).
* ``RL2Net`` — input layer, a GRU cell whose hidden state is the learner's memory of the task, a policy
  head (logits over the grid) and a value head.
* ``RL2`` — the strategy. The memory is reset in ``setup`` (a new task) and carried from step to step
  (``amnesic`` resets it every step: the ablation); no gradient step is ever taken inside a market.
* ``RL2MetaLearner`` (``RL2.meta_learner``, capability ``MetaTrainable``) — advantage actor-critic with GAE
  (Schulman et al. 2016) on batches of sampled training tasks the host's meta-training loop steps in lockstep
  (sampled sales, rivals' reactions), full backpropagation through the H steps of each task; CUDA when
  present, CPU otherwise.

This module imports torch only where it is used (``RL2Net``, which subclasses ``nn.Module``, lives in
``rl2_net`` and is still importable from here), so discovering the plugin loads no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from marketsim.learning.torchkit import CheckpointError, load_owned_checkpoint, pick_device, seeded_build
from marketsim.strategy import MarketInfo, MetaCheckpoint, MetaSetup, Observation, Outcome, Strategy

if TYPE_CHECKING:
    import torch

    from .rl2_net import RL2Net

Act = Literal["sample", "greedy"]
Mode = Literal["train", "eval"]


def __getattr__(name: str) -> Any:
    """``RL2Net``, defined in ``rl2_net``: importing it from here loads torch then."""
    if name == "RL2Net":
        from .rl2_net import RL2Net

        return RL2Net
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def n_features(m: int, max_rivals: int) -> int:
    """Length of the feature vector for a grid of ``m`` prices."""
    return 1 + 2 * max_rivals + m + 2 + 2


def features(
    own: np.ndarray,
    rivals: np.ndarray,
    prev_action: np.ndarray,
    units: np.ndarray,
    profit: np.ndarray,
    t: int,
    cfg: Mapping[str, Any],
    blind: bool = False,
) -> np.ndarray:
    """(B, n_features) inputs. ``rivals`` (B, max_rivals) sorted ascending, nan where no rival sits;
    ``prev_action`` (B,) grid index, −1 before the first step."""
    low, span = cfg["low"], cfg["span"]
    m, horizon = cfg["m"], cfg["horizon"]
    B = len(own)
    mask = np.isfinite(rivals)
    out = np.zeros((B, n_features(m, rivals.shape[1])), np.float32)
    out[:, 0] = (own - low) / span
    r = rivals.shape[1]
    out[:, 1 : 1 + r] = np.where(mask, (np.nan_to_num(rivals) - low) / span, 0.0)
    out[:, 1 + r : 1 + 2 * r] = mask
    k = 1 + 2 * r
    valid = prev_action >= 0
    out[np.flatnonzero(valid), k + prev_action[valid]] = 1.0
    k += m
    if not blind:
        out[:, k] = units / cfg["unit_scale"]
        out[:, k + 1] = profit / cfg["profit_scale"]
    out[:, k + 2] = min(t / horizon, 1.0)
    out[:, k + 3] = float(t == 0)
    return out


def sorted_rivals(prices: Sequence[float], max_rivals: int) -> np.ndarray:
    """The lowest ``max_rivals`` rival prices, ascending, nan-padded."""
    row = np.full(max_rivals, np.nan)
    low = sorted(float(p) for p in prices)[:max_rivals]
    row[: len(low)] = low
    return row


class RL2(Strategy):
    """RL² pricing (Duan et al. 2016; Wang et al. 2016): a GRU actor-critic meta-trained across markets.

    Each step the network reads its last price, its rivals' last prices (padded, masked), its previous
    action and its last profit and units; its GRU state persists across the steps of one task (reset in
    ``setup``), so it infers the market from what it sees and adapts with no gradient steps. Prices come
    from the family's grid (taken from the checkpoint, or ``grid``; without either, 15 prices between
    the market's price bounds' cost-relative range).

    ``act``: ``sample`` (default) draws each price from the policy, as it was meta-trained to act (its
    exploration is part of the learned strategy); ``greedy`` posts the most likely price. On 500 test
    tasks of ``scenarios/meta_pricing.yaml`` greedy has the lower regret (R(25) 412 vs 455, R(H) 765 vs
    879), but its memoryless ablation then only just doubles the regret (1530 vs 765); sampling keeps
    every acceptance check of the meta-learning evaluation with a margin, so it is the default. ``mode``
    (train/eval) never changes the weights:
    meta-training happens in ``RL2MetaLearner``; a market only runs the forward pass.
    Ablations: ``blind`` zeroes the profit and units inputs, ``amnesic`` resets the memory every step.
    Without a checkpoint the network is untrained (seeded from the strategy's generator).
    """

    name = "rl2"
    classifier: ClassVar[Mapping[str, Any]] = {
        "learns": True,
        "stochastic": True,
        "needs_torch": True,
        "observes": ("own", "competitors"),
    }

    def __init__(  # noqa: PLR0913 - a strategy's parameters are its keyword arguments (the contract)
        self,
        checkpoint: str | None = None,
        mode: Mode = "eval",
        device: str = "auto",
        hidden: int = 128,
        grid: Sequence[float] | None = None,
        max_rivals: int = 2,
        horizon: int | None = None,
        unit_scale: float = 100.0,
        profit_scale: float = 100.0,
        act: Act = "sample",
        blind: bool = False,
        amnesic: bool = False,
    ) -> None:
        checks = [
            (mode in ("train", "eval"), f"mode must be 'train' or 'eval', got {mode!r}"),
            (act in ("sample", "greedy"), f"act must be 'sample' or 'greedy', got {act!r}"),
            (isinstance(hidden, int) and hidden > 0, f"hidden must be a positive integer, got {hidden!r}"),
            (isinstance(max_rivals, int) and max_rivals >= 0, f"max_rivals must be >= 0, got {max_rivals!r}"),
            (horizon is None or horizon > 0, f"horizon must be > 0, got {horizon}"),
            (unit_scale > 0 and profit_scale > 0, "unit_scale and profit_scale must be > 0"),
            (grid is None or len(grid) >= 2, "an explicit grid needs at least two prices"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.checkpoint, self.mode, self.device, self.hidden = checkpoint, mode, device, hidden
        self.grid = None if grid is None else tuple(float(p) for p in grid)
        self.max_rivals, self.horizon = max_rivals, horizon
        self.unit_scale, self.profit_scale = float(unit_scale), float(profit_scale)
        self.act, self.blind, self.amnesic = act, bool(blind), bool(amnesic)

    # --- set-up ------------------------------------------------------------------------------------

    def config(self, market: MarketInfo | None = None) -> dict[str, Any]:
        """Grid, sizes and scales of the network (what a checkpoint stores beside the weights)."""
        if self.grid is not None:
            grid = np.asarray(self.grid, float)
        else:  # no family grid: 15 prices from cost to the top of the allowed range
            assert market is not None
            cost = market.costs[market.index]
            low = max(market.price_min, cost * 1.05)
            high = min(market.price_max, max(low * 1.5, cost * 5.0))
            grid = np.linspace(low, high if high > low else low + 1.0, 15)
        return {
            "grid": [float(p) for p in grid],
            "hidden": self.hidden,
            "max_rivals": self.max_rivals,
            "horizon": self.horizon or 50,
            "unit_scale": self.unit_scale,
            "profit_scale": self.profit_scale,
        }

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        import torch

        super().setup(market, rng)
        self.torch_device = pick_device(self.device)
        if self.torch_device.type == "cpu" and torch.get_num_threads() > 1:
            torch.set_num_threads(1)  # a tiny network: one thread is fastest (as marketsim_deep does)
        weights = None
        cfg = self.config(market)
        if self.checkpoint:
            state, _ = load_owned_checkpoint(self.checkpoint, self.name)
            saved = dict(state.get("config", {}))
            if not saved or "net" not in state:
                raise CheckpointError(f"checkpoint {self.checkpoint} holds no rl2 network")
            if self.grid is not None and len(self.grid) != len(saved["grid"]):
                raise ValueError(f"grid has {len(self.grid)} prices, the checkpoint's network {len(saved['grid'])}")
            cfg.update({k: v for k, v in saved.items() if k != "grid" or self.grid is None})
            if self.horizon is not None:
                cfg["horizon"] = self.horizon
            weights = state["net"]
        seed = int(rng.integers(2**63 - 1))
        self.generator = torch.Generator().manual_seed(seed)
        self.net = seeded_build(seed, lambda: make_net(cfg)).to(self.torch_device)
        if weights is not None:
            try:
                self.net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
            except RuntimeError as exc:
                raise CheckpointError(f"checkpoint {self.checkpoint} does not fit the rl2 network: {exc}") from None
        self.net.eval()
        self.cfg = {**cfg, **_scaled(cfg)}
        self.prices = np.asarray(cfg["grid"], float)
        self.h = torch.zeros(1, int(cfg["hidden"]), device=self.torch_device)
        self.action = -1
        self.t = 0

    # --- acting ------------------------------------------------------------------------------------

    def price(self, obs: Observation) -> float:
        import torch

        x = features(
            np.array([obs.own_price]),
            sorted_rivals(obs.competitor_prices, int(self.cfg["max_rivals"]))[None],
            np.array([self.action]),
            np.array([obs.last_units]),
            np.array([obs.last_profit]),
            self.t,
            self.cfg,
            self.blind,
        )
        if self.amnesic:
            self.h = torch.zeros_like(self.h)
        with torch.no_grad():
            logits, _, self.h = self.net(torch.as_tensor(x, device=self.torch_device), self.h)
            if self.act == "greedy":
                action = int(logits.argmax(dim=1)[0])
            else:
                probs = torch.softmax(logits.double().cpu(), dim=1)
                action = int(torch.multinomial(probs, 1, generator=self.generator)[0, 0])
        self.action, self.t = action, self.t + 1
        return float(min(max(self.prices[action], obs.price_min), obs.price_max))

    def learn(self, outcome: Outcome) -> None:
        """Nothing: RL² adapts through its memory (read from the next observation), never by gradients."""

    # --- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        cfg = {k: self.cfg[k] for k in ("grid", "hidden", "max_rivals", "horizon", "unit_scale", "profit_scale")}
        return {
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "config": cfg,
            "memory": self.h.detach().cpu().numpy().copy(),
            "action": self.action,
            "t": self.t,
            "sampler": self.generator.get_state(),  # where its action sampling stands (continues identically)
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        try:
            self.net.load_state_dict({k: torch.as_tensor(v) for k, v in state["net"].items()})
        except RuntimeError as exc:
            raise ValueError(f"rl2 state does not fit this network: {exc}") from None
        self.h = torch.as_tensor(np.asarray(state["memory"], np.float32), device=self.torch_device)
        self.action, self.t = int(state["action"]), int(state["t"])
        if "sampler" in state:  # absent from meta-trained checkpoints, which start a task afresh
            self.generator.set_state(torch.as_tensor(state["sampler"], dtype=torch.uint8))

    # --- meta-training -----------------------------------------------------------------------------

    @classmethod
    def meta_learner(cls, setup: MetaSetup, **options: Any) -> RL2MetaLearner:
        """RL²'s meta-training (capability ``MetaTrainable``): A2C + GAE on batches of training tasks."""
        return RL2MetaLearner(setup, **options)


class RL2MetaLearner:
    """A2C + GAE over batches of ``batch`` training tasks drawn from a pool of ``pool`` (the host's loop drives it).

    Rewards are profits / ``reward_scale`` (returns of order 1, so the critic's loss does not swamp the
    policy's in the shared GRU), undiscounted (``gamma`` = 1: the H-step total the regret
    measures) with GAE λ = ``lam``; the entropy bonus anneals linearly from ``entropy[0]`` to
    ``entropy[1]``. Every ``log_every`` iterations the curve records the batch's mean profit and the
    sampled policy's expected-profit regret on ``validation`` held-aside training tasks.
    """

    iterations = 1500

    def __init__(  # noqa: PLR0913 - meta-train's hyper-parameters, each a keyword option
        self,
        setup: MetaSetup,
        batch: int = 128,
        hidden: int = 128,
        lr: float = 3e-3,
        gamma: float = 1.0,
        lam: float = 0.9,
        entropy: tuple[float, float] = (0.01, 0.0),
        value_coef: float = 0.25,
        max_grad_norm: float = 5.0,
        reward_scale: float = 1000.0,
        pool: int = 8192,
        validation: int = 128,
        log_every: int = 50,
        max_rivals: int = 2,
    ) -> None:
        import torch

        self.setup, self.batch, self.hidden, self.lr = setup, batch, hidden, lr
        self.gamma, self.lam, self.entropy, self.value_coef = gamma, lam, entropy, value_coef
        self.max_grad_norm, self.reward_scale, self.max_rivals = max_grad_norm, reward_scale, max_rivals
        self.pool, self.validation, self.log_every = pool, validation, log_every
        self.dev = pick_device(setup.device)
        if self.dev.type == "cpu":
            torch.set_num_threads(1)  # small matrices: one thread is fastest, and deterministic
        strategy = RL2(hidden=hidden, grid=setup.grid, max_rivals=max_rivals, horizon=setup.horizon)
        self.cfg = strategy.config()
        self.net = seeded_build(setup.seed, lambda: make_net(self.cfg)).to(self.dev)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.gen = torch.Generator(device=self.dev).manual_seed(setup.seed)

    def begin(self, env: Any) -> None:
        """Nothing to build from the tasks: the network and optimiser exist already."""

    def update(self, iteration: int, iterations: int, env: Any, rng: np.random.Generator) -> dict[str, float]:
        """One A2C step on a batch of tasks drawn from ``env``."""
        from torch import nn

        frac = (iteration - 1) / max(iterations - 1, 1)
        ent_coef = self.entropy[0] + (self.entropy[1] - self.entropy[0]) * frac
        for group in self.opt.param_groups:
            group["lr"] = self.lr * (1.0 - 0.9 * frac)
        sub = env.subset(rng.integers(0, len(env), self.batch))
        how = Rollout(noise=True, train=True, reward_scale=self.reward_scale)
        roll = rollout(self.net, sub, self.cfg, rng, self.gen, self.dev, how)
        loss, stats = a2c_loss(roll, self.gamma, self.lam, self.value_coef, ent_coef)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.max_grad_norm)
        self.opt.step()
        return {"batch_profit": float(roll["profit_np"].mean()), "entropy": stats["entropy"]}

    def validate(self, env: Any) -> np.ndarray:
        """The sampled policy's expected profits in every task of ``env``."""
        import torch

        vrng = np.random.default_rng(10_000 + self.setup.seed)
        with torch.no_grad():
            return rollout(self.net, env, self.cfg, vrng, self.gen, self.dev, Rollout(noise=True))["expected"]

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
        params = {
            "hidden": self.hidden,
            "grid": self.cfg["grid"],
            "max_rivals": self.max_rivals,
            "horizon": self.setup.horizon,
        }
        info = {
            "device": str(self.dev),
            "batch": self.batch,
            "episodes": iterations * self.batch,
            "lr": self.lr,
            "gamma": self.gamma,
            "lam": self.lam,
            "entropy": list(self.entropy),
            "reward_scale": self.reward_scale,
            "pool": self.pool,
        }
        return MetaCheckpoint(state=state, params=params, info=info)


def make_net(cfg: Mapping[str, Any]) -> RL2Net:
    """The network a config describes."""
    from .rl2_net import RL2Net

    return RL2Net(n_features(len(cfg["grid"]), int(cfg["max_rivals"])), int(cfg["hidden"]), len(cfg["grid"]))


def _scaled(cfg: Mapping[str, Any]) -> dict[str, Any]:
    grid = np.asarray(cfg["grid"], float)
    return {"low": float(grid.min()), "span": float(max(grid.max() - grid.min(), 1e-9)), "m": len(grid)}


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """How ``rollout`` runs an episode: sampled sales (``noise``), keeping the loss tensors (``train``), greedy
    actions, the ablations (``blind``, ``amnesic``) and the reward scale of the training loss."""

    noise: bool = True
    train: bool = False
    greedy: bool = False
    blind: bool = False
    amnesic: bool = False
    reward_scale: float = 1000.0


def rollout(
    net: RL2Net,
    env: Any,
    cfg: Mapping[str, Any],
    rng: np.random.Generator,
    gen: torch.Generator,
    dev: torch.device,
    how: Rollout = Rollout(),
) -> dict[str, Any]:
    """Run ``net`` through one episode of every task of ``env`` (a batched task market) in lockstep.

    Returns expected profits (B, H) and, with ``how.train``, the tensors the loss needs.
    """
    import torch
    from torch.nn import functional

    cfg = {**cfg, **_scaled(cfg)}
    grid = np.asarray(cfg["grid"], float)
    B, H = len(env), env.horizon
    r = int(cfg["max_rivals"])
    last = env.reset_episode(rng if how.noise else None)
    h = torch.zeros(B, int(cfg["hidden"]), device=dev)
    prev = np.full(B, -1)
    units, profit = np.zeros(B), np.zeros(B)
    expected = np.empty((B, H))
    got = np.empty((B, H))
    logps, values, ents = [], [], []
    for t in range(H):
        rivals = np.where(env.present[:, 1:], last[:, 1:], np.inf)
        rivals = np.sort(rivals, axis=1)[:, :r]
        if rivals.shape[1] < r:
            rivals = np.pad(rivals, ((0, 0), (0, r - rivals.shape[1])), constant_values=np.inf)
        rivals[~np.isfinite(rivals)] = np.nan
        x = torch.as_tensor(features(last[:, 0], rivals, prev, units, profit, t, cfg, how.blind), device=dev)
        if how.amnesic:
            h = torch.zeros_like(h)
        logits, value, h = net(x, h)
        if how.greedy:
            action = logits.argmax(dim=1)
        else:
            probs = torch.softmax(logits.detach(), dim=1)
            action = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        if how.train:
            logp_all = functional.log_softmax(logits, dim=1)
            logps.append(logp_all.gather(1, action[:, None]).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(dim=1))
            values.append(value)
        a = action.cpu().numpy()
        step = env.step(last, grid[a], rng if how.noise else None)
        expected[:, t], got[:, t] = step.expected_profit, step.profit
        last, prev, units, profit = step.prices, a, step.units, step.profit
    out: dict[str, Any] = {"expected": expected, "profit_np": got}
    if how.train:
        out.update(
            logp=torch.stack(logps, 1),
            value=torch.stack(values, 1),
            entropy=torch.stack(ents, 1),
            reward=torch.as_tensor(got / how.reward_scale, dtype=torch.float32, device=dev),
        )
    return out


def gae(reward: torch.Tensor, value: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates (B, H) of a finite-horizon episode (the value after H is 0)."""
    import torch

    B, H = reward.shape
    adv = torch.zeros_like(reward)
    running = torch.zeros(B, device=reward.device)
    for t in reversed(range(H)):
        next_value = value[:, t + 1] if t + 1 < H else torch.zeros(B, device=reward.device)
        delta = reward[:, t] + gamma * next_value - value[:, t]
        running = delta + gamma * lam * running
        adv[:, t] = running
    return adv


def a2c_loss(
    roll: Mapping[str, Any], gamma: float, lam: float, value_coef: float, ent_coef: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy-gradient loss with normalised GAE advantages, value regression and an entropy bonus."""
    from torch.nn import functional

    value = roll["value"]
    adv = gae(roll["reward"], value.detach(), gamma, lam)
    returns = adv + value.detach()
    norm = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = -(roll["logp"] * norm).mean()
    critic = functional.mse_loss(value, returns)
    ent = roll["entropy"].mean()
    loss = policy + value_coef * critic - ent_coef * ent
    return loss, {"policy": float(policy.detach()), "value": float(critic.detach()), "entropy": float(ent.detach())}


__all__ = ["RL2", "RL2MetaLearner", "RL2Net", "Rollout", "a2c_loss", "features", "gae", "make_net", "rollout"]
