"""The torch classes of ``a3c``: the ``ActorCritic`` network and the ``SharedAdam`` optimiser.

They subclass torch's ``nn.Module`` and ``torch.optim.Optimizer``, so defining them imports torch; they
live apart from the strategy (``a3c.py``) so that discovering the plugin does not, and load when an a3c
seller builds its network. ``marketsim_deep.a3c`` still exports both names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .a3c import PolicyKind

LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0  # the Gaussian policy's std, in units of the price range


# ---------------------------------------------------------------------------------------------- network


class ActorCritic(nn.Module):
    """Shared tanh MLP trunk, a policy head and a value head.

    ``categorical``: the policy head gives logits over ``n_actions`` grid prices. ``gaussian``: it gives the
    mean of a normal distribution over the price range scaled to [0, 1] (through a sigmoid), with a learned,
    state-independent log standard deviation.
    """

    def __init__(self, n_inputs: int, n_actions: int, hidden: Sequence[int], policy: PolicyKind) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.Tanh()]
            width = int(h)
        self.trunk = nn.Sequential(*layers)
        self.gaussian = policy == "gaussian"
        self.policy = nn.Linear(width, 1 if self.gaussian else n_actions)
        self.value = nn.Linear(width, 1)
        with torch.no_grad():  # a near-uniform (or wide) initial policy, as is usual for policy gradients
            self.policy.weight.mul_(0.01)
            self.policy.bias.zero_()
        self.log_std = nn.Parameter(torch.full((1,), math.log(0.3))) if self.gaussian else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy output, value): logits (k, n_actions) or Gaussian means (k,) in [0, 1]; values (k,)."""
        h = self.trunk(x)
        head = self.policy(h)
        if self.gaussian:
            head = torch.sigmoid(head.squeeze(-1))
        return head, self.value(h).squeeze(-1)

    def std(self) -> torch.Tensor:
        """The Gaussian policy's standard deviation (in units of the price range), with gradient."""
        assert self.log_std is not None
        return self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()

    def distribution(self, head: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution for a batch of policy-head outputs."""
        if self.gaussian:
            return torch.distributions.Normal(head, self.std().expand_as(head))
        return torch.distributions.Categorical(logits=head)


# ---------------------------------------------------------------------------------------------- shared Adam


class SharedAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba 2015) whose statistics can live in shared memory, for Hogwild A3C.

    The moments ``exp_avg``/``exp_avg_sq`` are allocated eagerly (a lazily created state would be private
    to the process that created it), and the step count is ONE singleton tensor for the whole optimiser,
    not a Python int: an int would be copied into every worker, which would then each apply their own bias
    correction. ``share_memory()`` moves all of it to shared memory; ``shared_state()`` returns the
    tensors to hand to worker processes, which wrap the shared parameters with ``SharedAdam(..., state=…)``.
    Updates are lock-free: two workers may interleave inside ``step`` and, rarely, one increment of the
    step counter can be lost — the price of Hogwild, measured by the tests (< 1%).

    ``state_dict``/``load_state_dict`` use a plain format of their own: ``{"step", "exp_avg",
    "exp_avg_sq"}`` with the moments keyed by parameter position.
    """

    def __init__(
        self,
        params: Iterator[nn.Parameter] | Sequence[nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(list(params), {"lr": lr, "betas": betas, "eps": eps})
        plist = self._params()
        if state is None:
            self.step_count = torch.zeros((), dtype=torch.float64)
            moments = [(torch.zeros_like(p.data), torch.zeros_like(p.data)) for p in plist]
        else:  # a worker attaching to the parent's shared statistics
            self.step_count = state["step"]
            moments = list(zip(state["exp_avg"], state["exp_avg_sq"]))
            if len(moments) != len(plist):
                raise ValueError("shared optimiser state does not match the parameters")
        for p, (m, v) in zip(plist, moments):
            self.state[p] = {"exp_avg": m, "exp_avg_sq": v}

    def _params(self) -> list[nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def share_memory(self) -> SharedAdam:
        """Move the step counter and moments to shared memory (before starting workers)."""
        self.step_count.share_memory_()
        for p in self._params():
            for t in self.state[p].values():
                t.share_memory_()
        return self

    def shared_state(self) -> dict[str, Any]:
        """The tensors a worker needs to attach to this optimiser's (shared) statistics."""
        plist = self._params()
        return {
            "step": self.step_count,
            "exp_avg": [self.state[p]["exp_avg"] for p in plist],
            "exp_avg_sq": [self.state[p]["exp_avg_sq"] for p in plist],
        }

    @property
    def steps(self) -> int:
        """Optimiser steps applied so far, by every worker together."""
        return int(self.step_count.item())

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """One Adam step on every parameter that has a gradient, in place (so on shared memory too)."""
        self.step_count += 1  # in place on the shared singleton; not atomic across processes (Hogwild)
        t = float(self.step_count.item())
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            torch._foreach_lerp_(m, grads, 1 - b1)  # m ← β1 m + (1 − β1) g
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)  # v ← β2 v + (1 − β2) g²
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, math.sqrt(1 - b2**t))
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, m, denom, value=-lr / (1 - b1**t))

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Step count and moments as plain tensors (copies)."""
        shared = self.shared_state()
        return {
            "step": shared["step"].clone(),
            "exp_avg": {str(k): t.clone() for k, t in enumerate(shared["exp_avg"])},
            "exp_avg_sq": {str(k): t.clone() for k, t in enumerate(shared["exp_avg_sq"])},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # type: ignore[override]
        """Copy a ``state_dict`` into the existing tensors (so shared memory stays shared)."""
        shared = self.shared_state()
        self.step_count.copy_(torch.as_tensor(state["step"], dtype=self.step_count.dtype))
        for key in ("exp_avg", "exp_avg_sq"):
            saved = state[key]
            if len(saved) != len(shared[key]):
                raise ValueError(f"optimiser state has {len(saved)} {key} tensors, expected {len(shared[key])}")
            for k, t in enumerate(shared[key]):
                t.copy_(torch.as_tensor(saved[str(k)]))


__all__ = ["ActorCritic", "SharedAdam"]
