"""Torch helpers for learner plugins (a documented extension module): device choice, seeded construction,
and loading a checkpoint only when it was written for the strategy that loads it.

torch is imported inside each function: importing this module costs nothing, so plugin discovery stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from marketsim.learning.checkpoint import CheckpointError, load_checkpoint

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

__all__ = ["CheckpointError", "load_owned_checkpoint", "pick_device", "seeded", "seeded_build"]


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else the CPU; anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (e.g. building a network) under ``seed`` without touching torch's global generator."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def seeded_build(seed: int, build: Callable[[], T]) -> T:
    """``build()`` under ``seed`` (see ``seeded``) and return what it built."""
    with seeded(seed):
        return build()


def load_owned_checkpoint(path: str | Path, strategy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint, refusing one whose sidecar says another strategy wrote it."""
    state, meta = load_checkpoint(path)
    if meta.get("strategy", strategy) != strategy:
        raise CheckpointError(f"checkpoint {path} was written by {meta['strategy']!r}, not {strategy!r}")
    return state, meta
