"""The distributed meta-training loop: actor processes gather experience, this process learns from it.

IMPALA-style (Espeholt et al. 2018): the learner's ``Actor`` plays pieces of each update's batch in actor
processes with weights the learner broadcast, without gradients; the learner here takes the pieces of batch
``u`` in order, makes update ``u`` with its off-policy correction, and broadcasts the new weights. The
schedule (``schedule``) fixes which weights each batch is acted with, ``staleness`` updates old, so actors
play the next batch while the learner works and the result is the same whatever the number of workers, the
backend or the timing. The output folder is created once the actors run; the run's state goes there at once and
every ``every`` updates after (``resume``), from which ``--resume`` continues it exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.meta.batch import MetaTrainError
from marketsim.meta.distributed.contract import DistributedMetaLearner
from marketsim.meta.distributed.fleet import ActorSpec, Backend, Fleet, make_fleet
from marketsim.meta.distributed.resume import Snapshot
from marketsim.meta.distributed.resume import load as load_snapshot
from marketsim.meta.distributed.resume import save as save_snapshot
from marketsim.meta.distributed.schedule import acting_version, pieces
from marketsim.meta.loop import MetaBench, MetaRun, MetaTrained, build_learner, meta_bench
from marketsim.outputs import InputRecord, check_output_folder, open_resumable_folder


@dataclass(frozen=True, kw_only=True)
class Checkpointing:
    """Where a distributed run keeps its resumable state, how often, and whether it continues one."""

    folder: Path  # the run's output folder (opened in place: it fills as the run goes)
    every: int = 50  # updates between two saves of the state
    resume: bool = False  # continue the run whose state the folder holds
    force: bool = False  # replace a folder marketsim wrote before (not with ``resume``)
    inputs: tuple[InputRecord, ...] = ()  # what the folder records it was made from (the family)


@dataclass(frozen=True, kw_only=True)
class Distributed:
    """How a meta-training run is spread: its actors, the schedule of their work and its checkpoints.

    ``staleness`` and ``piece`` shape the algorithm (the weights a batch is acted with, the tasks each piece
    draws), so a resumed run must keep them; ``workers``, ``backend`` and ``address`` only say where the
    pieces are played and may change from one part of a run to the next.
    """

    workers: int = 2
    backend: Backend = "process"
    address: str | None = None  # a Ray cluster (ray backend); a local Ray when None
    staleness: int = 1  # batch u is acted with the weights of update u - 1 - staleness
    piece: int = 64  # episodes per actor message (fewer, bigger pieces: less overhead; more: more actors busy)
    checkpoints: Checkpointing | None = None


def single_process(strategy: str) -> str:
    """The refusal for a meta-learner without the ``DistributedMetaLearner`` capability."""
    return f"{strategy} meta-trains in one process only: drop --workers (or pass --workers 1)"


def run_key(run: MetaRun, total: int, dist: Distributed) -> dict[str, Any]:
    """What must match for a run to continue another: everything that changes its numbers (as JSON data),
    the folder's recorded inputs (the family) by their hashes."""
    from marketsim.learning.torchkit import pick_device

    inputs = dist.checkpoints.inputs if dist.checkpoints is not None else ()
    key = {
        "strategy": run.cls.name,
        "device": pick_device(run.device).type,  # the learner's random state is a CPU's or a GPU's
        "inputs": {record.name: record.digest for record in inputs},
        "seed": run.seed,
        "iterations": total,
        "options": dict(run.options),
        "staleness": dist.staleness,
        "piece": dist.piece,
    }
    return json.loads(json.dumps(key, sort_keys=True, default=str))


class Batches:
    """The batches in flight: each is submitted, piece by piece, as soon as the weights it is acted with exist."""

    def __init__(self, fleet: Fleet, run: MetaRun, total: int, episodes: int, dist: Distributed) -> None:
        self.fleet, self.seed, self.total, self.episodes, self.dist = fleet, run.seed, total, episodes, dist
        self.weights: dict[int, Any] = {}  # update -> its weights, as the learner gave them
        self.shared: dict[int, Any] = {}  # update -> its weights, shared with the actors
        self.in_flight: dict[int, list[Any]] = {}  # batch -> handles of its pieces

    def publish(self, version: int, weights: Any) -> None:
        """Share the weights of update ``version``; forget those no batch still to come is acted with."""
        self.weights[version], self.shared[version] = weights, self.fleet.share(weights)
        for old in [v for v in self.weights if v < version - self.dist.staleness]:
            del self.weights[old], self.shared[old]

    def submit(self, iteration: int) -> None:
        """Start batch ``iteration`` (when it is part of the run and not started yet)."""
        if iteration > self.total or iteration in self.in_flight:
            return
        shared = self.shared[acting_version(iteration, self.dist.staleness)]
        work = pieces(self.seed, iteration, self.episodes, self.dist.piece)
        self.in_flight[iteration] = [self.fleet.submit(piece, shared) for piece in work]

    def take(self, iteration: int) -> list[Any]:
        """The experience of batch ``iteration``, in piece order (waits for it)."""
        return [self.fleet.result(handle) for handle in self.in_flight.pop(iteration)]


def run_distributed(run: MetaRun, dist: Distributed) -> MetaTrained:
    """Meta-train ``run.cls`` with actor processes as ``dist`` says; the same result as its serial backend."""
    began = time.perf_counter()
    learner = build_learner(run)
    if not isinstance(learner, DistributedMetaLearner):
        raise MetaTrainError(single_process(run.cls.name))
    total = run.iterations if run.iterations is not None else learner.iterations
    key = run_key(run, total, dist)
    kept, folder, snap = dist.checkpoints, None, None
    if kept is not None and kept.resume:
        folder = open_resumable_folder(kept.folder, "meta-train", resume=True)
        snap = load_snapshot(folder, key)
    elif kept is not None:
        check_output_folder(kept.folder, kept.force)  # refused before any work; created once the actors run
    bench = meta_bench(run, learner)
    learner.begin(bench.env)
    start, curve, earlier = 0, [], 0.0
    if snap is not None:
        _restore(learner, snap, folder)
        start, curve, earlier = snap.iteration, list(snap.curve), snap.seconds
    t0 = began - earlier  # the curve's clock runs on across resumed parts

    def save(iteration: int, batches: Batches) -> None:
        if folder is not None and kept is not None and (iteration % kept.every == 0 or iteration in (0, total)):
            state = learner.training_state()
            seconds = time.perf_counter() - t0
            snapshot = Snapshot(key=key, iteration=iteration, curve=curve, seconds=seconds, learner=state,
                                versions=dict(batches.weights))  # fmt: skip
            save_snapshot(folder, snapshot)

    spec = ActorSpec(run.family, learner.pool, learner.actor(), run.registry)
    fleet = make_fleet(dist.backend, dist.workers, spec, dist.address, bench.env)
    try:
        batches = Batches(fleet, run, total, learner.episodes, dist)
        for version, weights in sorted(snap.versions.items() if snap is not None else [(0, learner.weights())]):
            batches.publish(version, weights)
        if kept is not None and snap is None:  # the actors started: from now on an interruption can be resumed
            folder = open_resumable_folder(kept.folder, "meta-train", kept.force, inputs=kept.inputs)
            save(0, batches)
        _train(run, bench, batches, start, curve, t0, save)
    finally:
        fleet.close()
    seconds = time.perf_counter() - began
    done = learner.finish(total, bench.env, bench.held, np.random.default_rng(run.seed), bench.regret)
    samples = (total - start) * learner.episodes * run.family.horizon
    info = {
        "iterations": total,
        **done.info,
        "actors": dist.workers,
        "backend": dist.backend,
        "off_policy": "v-trace",
        "staleness": dist.staleness,
        "piece": dist.piece,
        "samples_per_second": round(samples / max(seconds, 1e-9), 1),  # this part's, start-up included
    }
    return MetaTrained(
        state=done.state, params=done.params, curve=curve, extra=done.extra, info=info, earlier_seconds=earlier
    )


def _restore(learner: DistributedMetaLearner, snap: Snapshot, folder: Path | None) -> None:
    """Load a snapshot's learner state; a state this learner cannot take is the user's error, in one line."""
    try:
        learner.load_training_state(snap.learner)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise MetaTrainError(f"{folder}: its saved state does not fit this run ({type(exc).__name__}: {exc})") from None


def _train(
    run: MetaRun,
    bench: MetaBench,
    batches: Batches,
    start: int,
    curve: list[dict[str, float]],
    t0: float,
    save: Callable[[int, Batches], None],
) -> None:
    """Updates ``start + 1 … total``: take a batch, learn, broadcast, start the next batch, log, save."""
    learner, total, staleness = bench.learner, bench.total, batches.dist.staleness
    assert isinstance(learner, DistributedMetaLearner)
    for iteration in range(start + 1, start + 2 + staleness):
        batches.submit(iteration)
    for it in range(start + 1, total + 1):
        metrics = learner.learn(it, total, batches.take(it))
        batches.publish(it, learner.weights())
        batches.submit(it + 1 + staleness)  # the actors play it while this process logs and saves
        if bench.logs(it):
            curve.append(bench.row(it, time.perf_counter() - t0, metrics))
        save(it, batches)
        if run.progress is not None:
            run.progress(it, total, curve[-1] if curve else {})
