"""Deep reinforcement-learning sellers on PyTorch: ``dqn`` and ``a3c``.

Registered through the ``marketsim`` entry-point group like any plugin. torch comes with the ``deep``
extra (``pip install -e ".[deep]"``); without it this plugin is listed by ``marketsim plugins`` as
failed to load, with that reason, and every other strategy keeps working.

Discovery only checks that torch is installed; the strategies import it when a seller first uses them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from marketsim.exceptions import MissingExtraError

if importlib.util.find_spec("torch") is None:  # listed by the registry as unavailable, not as a fault
    raise MissingExtraError("the deep-RL strategies (dqn, a3c) need torch: pip install 'marketsim[deep]'")

from marketsim.hookspecs import hookimpl

from .a3c import A3C
from .dqn import DQN

__all__ = ["A3C", "DQN", "register_strategies"]

MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand the deep-RL strategies to the host's registry."""
    register(DQN)
    register(A3C)
