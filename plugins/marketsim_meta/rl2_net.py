"""``RL2Net``, the torch network of ``rl2``.

It subclasses torch's ``nn.Module``, so defining it imports torch; it lives apart from the strategy
(``rl2.py``) so that discovering the plugin does not, and loads when an rl2 seller builds its network.
``marketsim_meta.rl2`` still exports the name.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class RL2Net(nn.Module):
    """ReLU input layer → GRU cell (the memory) → policy logits over the grid, and a value."""

    def __init__(self, n_in: int, hidden: int, m: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.gru = nn.GRUCell(hidden, hidden)
        self.pi = nn.Linear(hidden, m)
        self.v = nn.Linear(hidden, 1)
        with torch.no_grad():  # a near-uniform initial policy, as is usual for policy gradients
            self.pi.weight.mul_(0.01)
            self.pi.bias.zero_()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.gru(functional.relu(self.inp(x)), h)
        return self.pi(h), self.v(h).squeeze(-1), h


__all__ = ["RL2Net"]
