"""Meta-reinforcement-learning sellers: ``rl2`` (a recurrent actor-critic that adapts in its forward pass),
``reptile_dqn`` (a DQN whose initial weights are meta-learned with Reptile, fine-tuned online), ``meta_q`` (Q values
conditioned on a learned encoding of the task's history, meta-trained from a replay pool shared by every task) and
``meta_ts`` (Thompson sampling on a logit demand model whose prior is meta-learned across the family's tasks).

Both are trained across the tasks of a family (``marketsim meta-train FAMILY --strategy rl2|reptile_dqn``)
and evaluated on held-out tasks (``marketsim meta-eval FAMILY --checkpoint …``). Registered through the
``marketsim`` entry-point group like any plugin; torch comes with the ``deep`` extra.

Discovery only checks that torch is installed; the strategies import it when a seller first uses them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from marketsim.exceptions import MissingExtraError

if importlib.util.find_spec("torch") is None:  # listed by the registry as unavailable, not as a fault
    raise MissingExtraError("the meta-RL strategies (rl2, reptile_dqn) need torch: pip install 'marketsim[deep]'")

from marketsim.hookspecs import hookimpl

from .meta_q import MetaQ
from .meta_ts import MetaThompson
from .reptile import ReptileDQN
from .rl2 import RL2

__all__ = ["RL2", "MetaQ", "MetaThompson", "ReptileDQN", "register_strategies"]

MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand the meta-RL strategies to the host's registry."""
    register(RL2)
    register(ReptileDQN)
    register(MetaThompson)
    register(MetaQ)
