"""Where the actors run: in this process (``serial``), in a local pool of processes or on Ray, behind one interface.

Every actor process holds the family's training pool (rebuilt there once from the family, so nothing big
travels) and the learner's ``Actor``; it plays ``Piece`` after ``Piece`` with the weights sent along. The
weights of one update are shared once (``share``: a Ray object, or the plain arrays a process pool pickles
with each piece) and used by every piece acted with them. A Ray session already open in this process is used
as it is; one the fleet started is shut down when it closes, as for tournaments (``RayExecutor``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from marketsim.meta.batch import TaskBatch
from marketsim.meta.distributed.contract import Actor
from marketsim.meta.distributed.schedule import Piece
from marketsim.meta.tasks import Family, sample_tasks
from marketsim.processes import die_with_parent
from marketsim.registry import Registry
from marketsim.tournament.executors import RAY_MISSING, ExecutorUnavailable, connect_ray

Backend = Literal["serial", "process", "ray"]

__all__ = ["ActorError", "ActorSpec", "ActorWorker", "Backend", "Fleet", "make_fleet"]


class ActorError(RuntimeError):
    """An actor process died or its backend failed; the run's last checkpoint resumes it."""


@dataclass(frozen=True)
class ActorSpec:
    """What an actor process is built from: the family and the size of its training pool, the actor, and the
    host's registry (it pickles by reference to its classes), so the actors' markets are the host's."""

    family: Family
    pool: int
    actor: Actor
    registry: Registry | None = None  # None: the installed plugins' (``default_registry``)

    def build_pool(self) -> TaskBatch:
        """The training pool, exactly the host's (task k of the train split is the same wherever it is drawn)."""
        from marketsim.registry import default_registry

        registry = self.registry if self.registry is not None else default_registry()
        return TaskBatch.from_tasks(sample_tasks(self.family, "train", self.pool), registry)


class ActorWorker:
    """One actor: its training pool and the learner's actor; plays pieces."""

    def __init__(self, spec: ActorSpec, env: TaskBatch | None = None) -> None:
        self.actor = spec.actor
        self.env = env if env is not None else spec.build_pool()

    def play(self, piece: Piece, weights: Any) -> Any:
        """The experience of ``piece``: its tasks and all its randomness come from its own seed."""
        rng = np.random.default_rng(piece.seed)
        tasks = rng.integers(0, len(self.env), piece.episodes)
        return self.actor.act(weights, self.env.subset(tasks), rng)


class Fleet(Protocol):
    """Actors playing pieces somewhere; results are asked for by the handle ``submit`` returned."""

    workers: int

    def share(self, weights: Any) -> Any:
        """The weights of one update in the form ``submit`` sends (once per update, for every piece)."""
        ...

    def submit(self, piece: Piece, weights: Any) -> Any:
        """Start ``piece`` with shared ``weights``; a handle for ``result``."""
        ...

    def result(self, handle: Any) -> Any:
        """The experience of a submitted piece (waits for it); ``ActorError`` if its actor died."""
        ...

    def close(self) -> None:
        """Stop every actor (nothing keeps running after the run ends or fails)."""
        ...


class SerialFleet:
    """The actor in this process, playing each piece when it is submitted: the reference, and for debugging."""

    workers = 1

    def __init__(self, spec: ActorSpec, env: TaskBatch | None = None) -> None:
        self.worker = ActorWorker(spec, env)

    def share(self, weights: Any) -> Any:
        return weights

    def submit(self, piece: Piece, weights: Any) -> Any:
        return self.worker.play(piece, weights)

    def result(self, handle: Any) -> Any:
        return handle

    def close(self) -> None:
        pass


# --- a local pool of actor processes ---------------------------------------------------------------------

_WORKER: ActorWorker | None = None  # the actor of this pool process, built by ``_start_actor``


def _start_actor(spec: ActorSpec, parent: int) -> None:
    """A pool process's initializer: die with the coordinator, leave Ctrl-C to it, build the actor."""
    global _WORKER
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with suppress(ImportError):
        import torch

        torch.set_num_threads(1)
    _WORKER = ActorWorker(spec)


def _play(piece: Piece, weights: Any) -> Any:
    """A pool task: play ``piece`` in this process's actor."""
    assert _WORKER is not None, "the actor process was not initialised"
    return _WORKER.play(piece, weights)


class ProcessFleet:
    """``workers`` spawned actor processes (spawn: safe with torch and threads, the same on every platform)."""

    def __init__(self, spec: ActorSpec, workers: int) -> None:
        self.workers = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=_start_actor,
            initargs=(spec, os.getpid()),
        )

    def share(self, weights: Any) -> Any:
        return weights

    def submit(self, piece: Piece, weights: Any) -> Future:
        return self.pool.submit(_play, piece, weights)

    def result(self, handle: Future) -> Any:
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            raise ActorError(f"an actor process died ({exc})") from None

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)  # waits only for the pieces being played (< 1 s)


# --- Ray -------------------------------------------------------------------------------------------------


class RayFleet:
    """``workers`` Ray actors (one CPU each) on the cluster at ``address``, or on a local Ray started here."""

    def __init__(self, spec: ActorSpec, workers: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorUnavailable(RAY_MISSING) from exc
        self.ray, self.workers, self.actors, self.sent = ray, workers, [], 0
        self.started = connect_ray(ray, address, workers)
        try:
            remote = ray.remote(num_cpus=1, max_restarts=0)(ActorWorker)
            self.actors = [remote.remote(spec) for _ in range(workers)]
        except Exception as exc:  # Ray's own errors (and a spec it cannot ship): the user's line, Ray stopped
            self.close()
            raise ExecutorUnavailable(f"cannot start the Ray actors ({type(exc).__name__}: {exc})") from None

    def share(self, weights: Any) -> Any:
        return self.ray.put(weights)

    def submit(self, piece: Piece, weights: Any) -> Any:
        actor = self.actors[self.sent % self.workers]  # pieces are alike: round robin keeps the actors even
        self.sent += 1
        return actor.play.remote(piece, weights)

    def result(self, handle: Any) -> Any:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as exc:
            raise ActorError(f"a Ray actor failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None

    def close(self) -> None:
        for actor in self.actors:
            with suppress(Exception):
                self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()


def make_fleet(
    backend: Backend, workers: int, spec: ActorSpec, address: str | None = None, env: TaskBatch | None = None
) -> Fleet:
    """The actors of a backend: ``serial`` plays in this process (on ``env``, the host's pool, when given)."""
    if backend == "serial":
        return SerialFleet(spec, env)
    if backend == "process":
        return ProcessFleet(spec, workers)
    if backend == "ray":
        return RayFleet(spec, workers, address)
    raise ValueError(f"unknown backend {backend!r}: choose serial, process or ray")
