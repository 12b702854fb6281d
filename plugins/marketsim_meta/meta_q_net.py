"""``MetaQNet``, the torch network of ``meta_q``: a GRU context encoder and a Q head over the price grid.

It subclasses torch's ``nn.Module``, so defining it imports torch; it lives apart from the strategy (``meta_q.py``)
so that discovering the plugin does not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class MetaQNet(nn.Module):
    """ReLU input layer → GRU cell (the task's context, read from its history) → ReLU layer → a Q value per price."""

    def __init__(self, n_in: int, hidden: int, m: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.gru = nn.GRUCell(hidden, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.q = nn.Linear(hidden, m)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.gru(functional.relu(self.inp(x)), h)
        return self.q(functional.relu(self.mid(h))), h

    def unroll(self, x: torch.Tensor) -> torch.Tensor:
        """Q values (B, H, m) of whole episodes ``x`` (B, H, F), the context built step by step from zero."""
        h = torch.zeros(x.shape[0], self.gru.hidden_size, device=x.device)
        out = []
        for t in range(x.shape[1]):
            q, h = self(x[:, t], h)
            out.append(q)
        return torch.stack(out, 1)


__all__ = ["MetaQNet"]
