"""Distributed meta-training (``marketsim meta-train --workers N``): actor processes, one learner.

* ``contract`` — the ``DistributedMetaLearner`` capability a meta-learner offers (its ``Actor``, weights,
  ``learn`` with an off-policy correction, a resumable training state);
* ``schedule`` — which tasks each piece of actor work plays and with which weights, from the seed alone;
* ``fleet`` — where the actors run: this process, a local process pool, or Ray (``--address`` for a cluster);
* ``resume`` — the run's resumable state in its output folder, written atomically;
* ``run`` — the loop: submit batches, learn, broadcast, log, save.
"""

from marketsim.meta.distributed.contract import Actor, DistributedMetaLearner
from marketsim.meta.distributed.fleet import ActorError, ActorSpec, ActorWorker, Backend, Fleet, make_fleet
from marketsim.meta.distributed.run import Checkpointing, Distributed, run_distributed
from marketsim.meta.distributed.schedule import Piece, acting_version, pieces

__all__ = [
    "Actor",
    "ActorError",
    "ActorSpec",
    "ActorWorker",
    "Backend",
    "Checkpointing",
    "Distributed",
    "DistributedMetaLearner",
    "Fleet",
    "Piece",
    "acting_version",
    "make_fleet",
    "pieces",
    "run_distributed",
]
