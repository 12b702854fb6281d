"""A Stable-Baselines3 policy as a seller: ``sb3_policy`` plays a policy trained on ``marketsim.envs`` greedily.

Registered through the ``marketsim`` entry-point group like any plugin. The plugin itself imports without
torch or Stable-Baselines3 (the ``sb3`` extra, ``pip install -e '.[sb3]'``), so discovery never fails on them;
a seller that uses ``sb3_policy`` without them fails its setup with a ``MissingExtraError`` naming the extra.
"""

from __future__ import annotations

from collections.abc import Callable

from marketsim.hookspecs import hookimpl

from .policy import PolicyFileError, Sb3Policy

__all__ = ["PolicyFileError", "Sb3Policy", "register_strategies"]

MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand the host's registry the ``sb3_policy`` seller."""
    register(Sb3Policy)
