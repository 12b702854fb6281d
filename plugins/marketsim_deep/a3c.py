"""Asynchronous advantage actor-critic (A3C, Mnih et al. 2016) as a pricing strategy.

The pieces, in the order the algorithm uses them:

* ``ActorCritic`` — a shared MLP trunk with a policy head (logits over the price grid, or the mean of a
  Gaussian over the continuous price range with a learned log-std) and a value head.
* ``Rollout`` / ``a3c_loss`` — the n-step advantage actor-critic loss of one rollout: returns
  ``R_t = r_t + γ r_{t+1} + … + γ^{n−t} V(s_n)`` bootstrapped from the value of the state after the
  rollout (pricing is a continuing task: there are no terminal states, the bootstrap is never zeroed),
  policy loss ``−log π(a_t|s_t)·(R_t − V(s_t))``, value loss ``½(R_t − V(s_t))²`` and an entropy bonus.
* ``SharedAdam`` — Adam whose moments and step counter are plain tensors that can live in shared memory,
  so that every worker process updates the same optimiser statistics.
* ``apply_update`` — one A3C update: gradients of the loss on the worker's local copy, clipped, handed to
  the shared model, one optimiser step on the shared parameters (lock-free, Hogwild).
* ``A3C`` — the strategy. Inside ``marketsim run`` it samples prices from its policy (the arg-max when not
  training) and, in ``mode: train``, learns online from its own rollouts: the one-worker, synchronous case
  (A2C). As a ``ParallelTrainable`` learner (``share_model``, ``attach_worker``, ``finish_workers``) it is
  also trained by the host's worker processes (``marketsim train --workers N``), all updating one shared model.

This module imports torch only where it is used (``ActorCritic`` and ``SharedAdam``, which subclass torch
classes, live in ``a3c_nets`` and are still importable from here), so discovering the plugin loads no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from marketsim.strategy import MarketInfo, Observation, Outcome

from .base import DeepLearner, Mode

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .a3c_nets import ActorCritic, SharedAdam

PolicyKind = Literal["categorical", "gaussian"]


def __getattr__(name: str) -> Any:
    """``ActorCritic`` and ``SharedAdam``, defined in ``a3c_nets``: importing them from here loads torch then."""
    if name in ("ActorCritic", "SharedAdam"):
        from . import a3c_nets

        return getattr(a3c_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------- the loss


@dataclass(frozen=True)
class Rollout:
    """n consecutive transitions and the state after them.

    ``features`` has n + 1 rows: the n states acted in, then the bootstrap state s_n. ``actions`` are grid
    indices (categorical) or unclipped samples in price-range units (Gaussian); ``rewards`` the scaled profits.
    """

    features: np.ndarray  # (n + 1, d) float32
    actions: np.ndarray  # (n,)
    rewards: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.rewards)


def n_step_returns(rewards: np.ndarray, bootstrap: float, gamma: float) -> np.ndarray:
    """``R_t = r_t + γ R_{t+1}`` with ``R_n = bootstrap`` (a continuing task: never cut at the end)."""
    out = np.empty(len(rewards), dtype=np.float32)
    running = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def a3c_loss(
    net: ActorCritic, rollout: Rollout, gamma: float, entropy_coef: float, value_coef: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """The n-step advantage actor-critic loss of one rollout (one batched forward pass over all its states)."""
    import torch

    head, values = net(torch.from_numpy(rollout.features))
    returns = torch.from_numpy(n_step_returns(rollout.rewards, values[-1].item(), gamma))  # V(s_n): no gradient
    values = values[:-1]
    advantage = returns - values
    if net.gaussian:
        dist = net.distribution(head[:-1])
        log_prob = dist.log_prob(torch.as_tensor(rollout.actions, dtype=torch.float32))
        entropy = dist.entropy().mean()
    else:  # the categorical case by hand: torch.distributions' argument checks cost more than the maths
        log_p = torch.log_softmax(head[:-1], dim=-1)
        log_prob = log_p.gather(1, torch.as_tensor(rollout.actions, dtype=torch.int64)[:, None]).squeeze(1)
        entropy = -(log_p.exp() * log_p).sum(dim=-1).mean()
    policy_loss = -(log_prob * advantage.detach()).mean()
    value_loss = 0.5 * advantage.pow(2).mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}
    return loss, stats


# ---------------------------------------------------------------------------------------------- one update


def push_gradients(local: nn.Module, shared: nn.Module) -> None:
    """Hand the local copy's gradients to the shared model's parameters.

    Assigned afresh on EVERY update. The classic A3C code did ``if shared.grad is not None: return;
    shared._grad = local.grad`` once, relying on the local ``.grad`` tensor being zeroed in place and reused
    forever; since PyTorch 2.0 ``zero_grad()`` sets gradients to None, each ``backward`` makes a new tensor,
    and that pattern silently keeps feeding the optimiser a stale (or, with ``set_to_none=False`` on the
    shared side, an accumulating) gradient. ``.grad`` is a per-process attribute, so the assignment does not
    race with other workers; the clone decouples it from the local tensor.
    """
    for lp, sp in zip(local.parameters(), shared.parameters()):
        sp.grad = None if lp.grad is None else lp.grad.clone()


def sync_weights(local: nn.Module, shared: nn.Module) -> None:
    """Copy the shared weights into the local copy (before each rollout)."""
    import torch

    with torch.no_grad():
        for lp, sp in zip(local.parameters(), shared.parameters()):
            lp.copy_(sp)


def apply_update(
    local: ActorCritic,
    shared: ActorCritic,
    optimizer: SharedAdam,
    rollout: Rollout,
    gamma: float,
    entropy_coef: float,
    value_coef: float,
    max_grad_norm: float | None,
) -> dict[str, float]:
    """One A3C update: loss and gradients on ``local``, clipped, handed to ``shared``, one optimiser step.

    With ``local is shared`` (a single, synchronous learner) the gradients are already where the
    optimiser looks.
    """
    from torch import nn

    loss, stats = a3c_loss(local, rollout, gamma, entropy_coef, value_coef)
    local.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm:
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(local.parameters(), max_grad_norm))
    if local is not shared:
        push_gradients(local, shared)
    optimizer.step()
    return stats


# ---------------------------------------------------------------------------------------------- strategy


class A3C(DeepLearner):
    """Advantage actor-critic pricing (A3C: Mnih et al. 2016, "Asynchronous Methods for Deep RL", ICML).

    An MLP with a policy head over the price grid (the tabular learners' grid: ``grid_size`` prices from
    Nash − ξ·span to monopoly + ξ·span, or an explicit ``grid``) — or, with ``policy: gaussian``, a normal
    distribution over [price_min, price_max] with a learned mean and log-std — and a value head, on the
    encoded last ``history`` observations (own and rivals' prices, own sales). It posts a price sampled
    from its policy (the most likely one when not training) and in ``mode: train`` learns online by n-step
    advantage actor-critic with an entropy bonus: every ``n_step`` steps one Adam update on
    ``−log π(a|s)·A − entropy_coef·H + value_coef·½A²`` with ``A = R − V(s)``, returns bootstrapped from
    ``V(s_{t+n})`` (a continuing task). Rewards are profits scaled to the profit gain
    ``(π − π_Nash)/(π_monopoly − π_Nash)``. Alone, inside ``marketsim run``, this is synchronous A2C;
    ``marketsim train --workers N`` is the asynchronous algorithm: N worker processes update one shared model
    lock-free (Hogwild, Recht et al. 2011) with a shared Adam (the ``ParallelTrainable`` capability).
    """

    name = "a3c"

    def __init__(  # noqa: PLR0913  the keyword parameters are the strategy's public API (scenario params)
        self,
        grid_size: int = 15,
        xi: float = 0.1,
        grid: list[float] | None = None,
        policy: PolicyKind = "categorical",
        n_step: int = 8,
        gamma: float = 0.95,
        lr: float = 1e-3,
        entropy_coef: float = 0.01,
        value_coef: float = 0.5,
        max_grad_norm: float | None = 1.0,
        hidden: Sequence[int] = (64, 64),
        history: int = 1,
        period: int | None = None,
        device: str = "auto",
        checkpoint: str | None = None,
        mode: Mode = "train",
    ) -> None:
        if policy not in ("categorical", "gaussian"):
            raise ValueError(f"policy must be 'categorical' or 'gaussian', got {policy!r}")
        if n_step < 1:
            raise ValueError(f"n_step must be at least 1, got {n_step}")
        if not 0 <= gamma < 1:
            raise ValueError(f"gamma must lie in [0, 1) (a continuing task needs discounting), got {gamma}")
        if lr <= 0 or entropy_coef < 0 or value_coef < 0:
            raise ValueError("lr must be positive, entropy_coef and value_coef non-negative")
        if history < 1 or not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError("history must be at least 1 and hidden a non-empty list of positive widths")
        self.grid_size, self.xi, self.grid, self.policy = grid_size, xi, grid, policy
        self.n_step, self.gamma, self.lr = int(n_step), float(gamma), float(lr)
        self.entropy_coef, self.value_coef, self.max_grad_norm = float(entropy_coef), float(value_coef), max_grad_norm
        self.hidden, self.history, self.period = tuple(int(h) for h in hidden), int(history), period
        self.device, self.checkpoint, self.mode = device, checkpoint, mode

    # --- set-up -------------------------------------------------------------------------------------

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Grid, encoder, network, optimiser, reward scale; then ``checkpoint`` and ``mode`` (see DeepLearner)."""
        self.t = 0  # environment steps learned from
        self.updates = 0  # optimiser updates applied by this learner
        self._reset_rollout()
        self._shared: ActorCritic | None = None  # the shared model, when a worker of parallel training
        self._on_update: Callable[[], None] | None = None
        i = market.index
        nash = float(market.expected_profit(np.asarray(market.nash_prices, float))[i])
        monopoly = float(market.expected_profit(np.asarray(market.monopoly_prices, float))[i])
        gap = monopoly - nash
        self.reward_offset = nash
        self.reward_scale = gap if abs(gap) > 1e-6 * max(1.0, abs(monopoly)) else max(abs(nash), 1e-6)
        super().setup(market, rng)

    def build(self) -> None:
        """The actor-critic network and its (not yet shared) Adam."""
        from .a3c_nets import ActorCritic, SharedAdam

        self.low, self.high = float(self.market.price_min), float(self.market.price_max)
        self.net = ActorCritic(self.encoder.size, len(self.prices), self.hidden, self.policy).to(self.torch_device)
        self.optimizer = SharedAdam(self.net.parameters(), lr=self.lr)
        self._views: list[tuple[np.ndarray, np.ndarray]] | None = None

    def to_cpu(self) -> None:
        """Move the network and optimiser to the CPU (A3C's shared model lives there)."""
        import torch

        from .a3c_nets import SharedAdam

        self.torch_device = torch.device("cpu")
        state = self.optimizer.state_dict()
        self.net.to(self.torch_device)
        self.optimizer = SharedAdam(self.net.parameters(), lr=self.lr)
        self.optimizer.load_state_dict({k: _to_cpu(v) for k, v in state.items()})

    def attach(self, shared: ActorCritic, optimizer: SharedAdam, on_update: Callable[[], None] | None = None) -> None:
        """Make this learner a worker of ``shared``: sync before each rollout, push gradients to it."""
        self.to_cpu()
        self._shared, self.optimizer, self._on_update = shared, optimizer, on_update
        sync_weights(self.net, shared)

    # --- acting -------------------------------------------------------------------------------------

    def _reset_rollout(self) -> None:
        self._features: list[np.ndarray] = []
        self._actions: list[float] = []
        self._rewards: list[float] = []
        self._pending: tuple[np.ndarray, float] | None = None  # (features, action) awaiting its outcome

    def set_training(self, training: bool) -> None:
        """Entering or leaving training drops the unfinished rollout."""
        if training != self.training:
            self._reset_rollout()
        super().set_training(training)

    def price(self, obs: Observation) -> float:
        """Update once a rollout is complete (bootstrapping from this state), then act in it.

        Samples from the policy while learning; otherwise (not training, or ``mode: eval``) acts greedily.
        """
        x = self.encoder.encode(obs)
        learning = self.training and self.mode == "train"
        if learning and len(self._rewards) >= self.n_step:
            self._update(x)
        head = self.policy_head(x[None])[0]
        if self.policy == "gaussian":
            mean = float(head)
            action = mean + self.net.std().item() * float(self.rng.standard_normal()) if learning else mean
            price = self.low + (self.high - self.low) * min(max(action, 0.0), 1.0)
        else:
            logits = head.astype(np.float64)
            if learning:
                p = np.exp(logits - logits.max())
                cdf = np.cumsum(p)
                action = int(min(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"), len(p) - 1))
            else:
                action = int(logits.argmax())
            price = float(self.prices[action])
        if learning:
            self._pending = (x, action)
        return price

    def learn(self, outcome: Outcome) -> None:
        """Store the transition; the update happens at the next ``price`` call, which sees s_{t+1}."""
        if not (self.training and self.mode == "train") or self._pending is None:
            return
        x, action = self._pending
        self._pending = None
        self._features.append(x)
        self._actions.append(action)
        self._rewards.append((outcome.profit - self.reward_offset) / self.reward_scale)
        self.t += 1

    def _update(self, bootstrap: np.ndarray) -> None:
        rollout = Rollout(
            features=np.stack([*self._features, bootstrap]).astype(np.float32),
            actions=np.asarray(self._actions),
            rewards=np.asarray(self._rewards, dtype=np.float32),
        )
        self._features, self._actions, self._rewards = [], [], []
        shared = self._shared if self._shared is not None else self.net
        apply_update(
            self.net,
            shared,
            self.optimizer,
            rollout,
            self.gamma,
            self.entropy_coef,
            self.value_coef,
            self.max_grad_norm,
        )
        self.updates += 1
        if self._on_update is not None:
            self._on_update()
        if self._shared is not None:
            sync_weights(self.net, self._shared)  # the next rollout acts with the latest shared weights

    # --- evaluation -----------------------------------------------------------------------------------

    def policy_head(self, features: np.ndarray) -> np.ndarray:
        """The policy head for a batch of states: logits (k, actions), or Gaussian means (k,) in [0, 1].

        On the CPU this is numpy over views of the network's parameters (they share memory, so they always
        show the current weights): for one state per step it costs a fraction of a torch forward pass.
        """
        if self.torch_device.type != "cpu":
            import torch

            with torch.no_grad():
                head, _ = self.net(torch.as_tensor(features, dtype=torch.float32, device=self.torch_device))
            return head.cpu().numpy()
        if self._views is None or self._views_ptr != self.net.policy.weight.data_ptr():
            from torch import nn

            linears = [m for m in self.net.trunk if isinstance(m, nn.Linear)] + [self.net.policy]
            self._views = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]
            self._views_ptr = self.net.policy.weight.data_ptr()
        h = np.asarray(features, dtype=np.float32)
        for w, b in self._views[:-1]:
            h = np.tanh(h @ w + b)
        w, b = self._views[-1]
        out = h @ w + b
        return 1.0 / (1.0 + np.exp(-out[:, 0])) if self.policy == "gaussian" else out

    def greedy_actions(self, features: np.ndarray) -> np.ndarray:
        """Most likely grid action in each state (Gaussian policy: the grid price nearest its mean)."""
        head = self.policy_head(np.asarray(features, np.float32))
        if self.policy == "gaussian":
            means = self.low + (self.high - self.low) * head
            return np.abs(means[:, None] - self.prices[None, :]).argmin(axis=1)
        return head.argmax(axis=1)

    # --- state ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Network, optimiser (step and moments), counters and the unfinished rollout."""
        d = self.encoder.size
        return {
            "network": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "optimizer": {k: _to_cpu(v) for k, v in self.optimizer.state_dict().items()},
            "steps": int(self.t),
            "updates": int(self.updates),
            "rollout": {
                "features": np.array(self._features, dtype=np.float32).reshape(-1, d),
                "actions": np.array(self._actions, dtype=np.float64),
                "rewards": np.array(self._rewards, dtype=np.float64),
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned (after ``setup``), copying into the existing tensors."""
        import torch

        self.net.load_state_dict({k: torch.as_tensor(v) for k, v in state["network"].items()})
        self.optimizer.load_state_dict(state["optimizer"])
        self.t, self.updates = int(state["steps"]), int(state["updates"])
        self._reset_rollout()
        rollout = state.get("rollout") or {}
        cast = float if self.policy == "gaussian" else int
        self._features = [np.asarray(f, np.float32) for f in np.asarray(rollout.get("features", []))]
        self._actions = [cast(a) for a in np.asarray(rollout.get("actions", []))]
        self._rewards = [float(r) for r in np.asarray(rollout.get("rewards", []))]

    # --- asynchronous training (ParallelTrainable) ----------------------------------------------------------

    def share_model(self) -> tuple[ActorCritic, dict[str, Any]]:
        """Move the network and the Adam statistics (moments, step counter) to shared memory, on the CPU.

        Returns the handle a worker attaches to: the shared network and the optimiser's shared state.
        """
        self.to_cpu()  # the shared model lives on the CPU
        self.net.share_memory()
        self.optimizer.share_memory()
        return self.net, self.optimizer.shared_state()

    def attach_worker(self, shared: tuple[ActorCritic, dict[str, Any]], on_update: Callable[[], None]) -> None:
        """Train the shared model from this worker: one torch thread, a shared Adam, sync before each rollout.

        After each rollout the n-step advantage gradients computed on the local copy are assigned to the
        shared parameters (``push_gradients``) and the shared Adam steps, without any lock (Hogwild).
        """
        import torch

        from .a3c_nets import SharedAdam

        torch.set_num_threads(1)  # two workers on two cores must not fight over intra-op threads
        net, optimizer_state = shared
        self.set_training(True)
        self.mode = "train"
        self.attach(net, SharedAdam(net.parameters(), lr=self.lr, state=optimizer_state), on_update)

    def finish_workers(self, steps: int, updates: int) -> int:
        """Count the workers' environment steps and updates as this learner's; the shared Adam's step count."""
        self.t, self.updates = steps, updates
        return self.optimizer.steps


def _to_cpu(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value
