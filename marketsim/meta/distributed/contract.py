"""What a meta-learner offers to be trained by actor processes: the ``DistributedMetaLearner`` capability.

The host (``marketsim.meta.distributed.run``) sends the learner's ``Actor`` to every actor process once, and
with every piece of work the weights to act with; the actor plays a batch of tasks without gradients and
returns its experience, which the learner turns into an update with an off-policy correction (its weights
have moved on since the actor acted). A learner without this capability trains in one process only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from marketsim.strategy import MetaLearner


@runtime_checkable
class Actor(Protocol):
    """Plays episodes for a learner in an actor process. Pickled to every process: keep it small (no network)."""

    def act(self, weights: Any, env: Any, rng: np.random.Generator) -> Any:
        """One episode of every task of ``env`` (a ``TaskBatch``) with ``weights``, drawing from ``rng`` only;
        the experience (picklable) the learner's ``learn`` takes."""
        ...


@runtime_checkable
class DistributedMetaLearner(MetaLearner, Protocol):
    """Capability: a ``MetaLearner`` whose experience actor processes gather (IMPALA-style actor/learner split).

    ``episodes`` tasks make one update's batch. ``weights()`` is what actors act with (plain, picklable,
    on the CPU); ``learn`` takes the experience of one batch, in piece order, acted by weights that may be a
    few updates old, and corrects for it. ``training_state``/``load_training_state`` carry everything a
    resumed run needs to continue exactly where it stopped (plain data and tensors).
    """

    episodes: int

    def actor(self) -> Actor:
        """The actor every actor process runs."""
        ...

    def weights(self) -> Any:
        """The current policy's weights, to send to the actors."""
        ...

    def learn(self, iteration: int, iterations: int, experience: Sequence[Any]) -> Mapping[str, float]:
        """One update from the actors' experience of one batch; the metrics a logged curve row shows."""
        ...

    def training_state(self) -> dict[str, Any]:
        """Weights, optimiser and generators: plain data and tensors."""
        ...

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a ``training_state()``."""
        ...
