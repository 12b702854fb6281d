"""Which tasks each piece of actor work plays, with which weights: a pure function of the seed and the piece.

Update ``u`` learns from one batch of ``episodes`` episodes, cut into pieces of at most ``piece`` episodes.
Piece ``p`` of batch ``u`` draws its tasks from the training pool, its consumers' sales and its actions from
one generator seeded by ``derive(seed, "meta-train", u, p)``, and acts with the weights of update
``u - 1 - staleness`` (the initial ones before that). Neither depends on the actor process that plays it,
so the task streams and the trained weights are the same whatever the number of workers or the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketsim.seeds import derive


@dataclass(frozen=True)
class Piece:
    """One message of work for an actor: ``episodes`` tasks of batch ``iteration``, drawn from ``seed``."""

    iteration: int
    index: int
    episodes: int
    seed: int


def pieces(seed: int, iteration: int, episodes: int, piece: int) -> list[Piece]:
    """The pieces of batch ``iteration``: ``episodes`` cut into runs of at most ``piece``, in order."""
    sizes = [min(piece, episodes - start) for start in range(0, episodes, piece)]
    return [Piece(iteration, p, n, derive(seed, "meta-train", iteration, p)) for p, n in enumerate(sizes)]


def acting_version(iteration: int, staleness: int) -> int:
    """The update whose weights batch ``iteration`` is acted with (0: the initial weights)."""
    return max(0, iteration - 1 - staleness)
