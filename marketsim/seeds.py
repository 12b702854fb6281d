"""Every seed marketsim derives, in one place, each keyed by what it seeds.

A run is reproducible from its root seed alone: every other seed is a pure function of the root and of
named keys (a match's market and repetition, a session, a task, a worker). Each derivation below is kept
exactly as earlier releases computed it, so stored results, resumed tournaments and published figures stay
reproducible; new code derives its seeds through ``derive``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "derive",
    "rule_generator",
    "seeds_of",
    "match_seed",
    "session_seed",
    "strategy_generators",
    "task_sequence",
    "worker_seeds",
]


def _key(part: int | str) -> int:
    """A spawn-key entry: an int as it is, a name as the first 8 bytes of its sha256."""
    if isinstance(part, str):
        return int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "little")
    return int(part)


def derive(root: int, *keys: int | str) -> int:
    """A 63-bit seed for the stream named by ``keys`` under ``root`` (independent streams per key)."""
    sequence = np.random.SeedSequence(int(root), spawn_key=tuple(_key(k) for k in keys))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def match_seed(root: int, market_digest: str, repetition: int) -> int:
    """Seed of every match of one tournament repetition on one market (common random numbers across seatings)."""
    sequence = np.random.SeedSequence([int(root), int(market_digest[:16], 16), int(repetition)])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def session_seed(root: int, session: int) -> int:
    """Seed of session ``session`` of an experiment: ``root + session``, so session s equals
    ``marketsim run`` of the same scenario with that seed."""
    return int(root) + int(session)


def strategy_generators(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """The generators handed to ``n`` sellers' strategies, spawned from the market's generator (as Mesa's
    model rng spawns them; the batched engines call this with ``np.random.default_rng(seed)`` to match)."""
    return list(rng.spawn(n))


def task_sequence(root: int, stream: int, k: int) -> np.random.SeedSequence:
    """The seed sequence of task ``k`` of a family's split ``stream``: disjoint from every other task's."""
    return np.random.SeedSequence(int(root), spawn_key=(int(stream), int(k)))


def worker_seeds(root: int, workers: int) -> list[int]:
    """Each training worker's market seed, derived from the scenario seed and the worker index."""
    return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(root).spawn(workers)]


def rule_generator() -> np.random.Generator:
    """The generator handed to a deterministic rule that a batched engine tabulates (it draws nothing)."""
    return np.random.default_rng(0)


def seeds_of(root: int, sessions: int) -> Sequence[int]:
    """The session seeds of an experiment of ``sessions`` sessions."""
    return [session_seed(root, s) for s in range(sessions)]
