"""Train one learner with N worker processes that share its model (the ``ParallelTrainable`` capability: A3C).

The host owns the processes, the markets and the loop; the learner supplies only its algorithm (sharing its
model, attaching a worker to it, updating it as it learns). ``train_workers`` builds the market once in the
parent, where the seat's learner moves its model to shared memory (``share_model``). Then ``workers``
processes are started with the spawn context (no forked torch/OpenMP state; the same code path on Linux,
macOS and Windows). Each worker builds its own market from the factory it is handed, with its own seed
(``marketsim.seeds.worker_seeds``), in which every other seller plays its own strategy; it attaches its copy
of the learner to the shared model (``attach_worker``) and steps its market; the learner updates the shared
model lock-free as it learns and the worker counts each update on a shared counter (under a lock: bookkeeping
only), recording (global update number, worker, pid), so the interleaving of workers can be checked afterwards.

``steps`` is the number of environment steps in total, split evenly over the workers, so a run with more
workers sees the same amount of experience in less time. Workers start together (they report ready, then the
parent releases them) so start-up time, dominated by importing torch, is measured apart from the loop.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel
from marketsim.registry import Registry
from marketsim.seeds import worker_seeds
from marketsim.strategy import ParallelTrainable

__all__ = ["ParallelRun", "ScenarioMarkets", "TrainStats", "train_workers"]

PROGRESS_CHUNK = 250  # a worker adds its steps to the shared progress counter this often
DEFAULT_LOG_POINTS = 200  # learning-curve rows per worker when log_every is not given

Progress = Callable[[int], None]  # environment steps done so far by all workers


@dataclass(frozen=True)
class ScenarioMarkets:
    """The market factory handed to each worker: the scenario's market under a given seed (picklable)."""

    scenario: Scenario
    registry: Registry

    @property
    def seed(self) -> int:
        """The scenario's seed, from which every worker's seed is derived."""
        return self.scenario.seed

    def __call__(self, seed: int | None = None, collect: bool = True) -> MarketModel:
        """A fresh market (seed None: the scenario's own); ``collect=False`` keeps no per-step table."""
        model = MarketModel(self.scenario, self.registry, seed=seed)
        if not collect:
            model.datacollector = _NoCollector()
        return model


class _NoCollector:
    """Training runs keep no per-step table (it would grow by a row per step for the whole run)."""

    def collect(self, model: MarketModel) -> None:
        pass


@dataclass(frozen=True)
class TrainStats:
    """What a parallel run did, for tests and benchmarks.

    ``updates`` has one row per optimiser update: (global update number, worker index, worker pid), sorted
    by the global number, which a shared counter hands out in the order the updates were applied.
    """

    workers: int
    parent_pid: int
    pids: tuple[int, ...]  # pid of each worker
    env_steps: tuple[int, ...]  # environment steps of each worker
    updates: np.ndarray = field(repr=False)  # (U, 3) int64
    optimizer_steps: int  # the shared optimiser's step counter at the end
    startup_seconds: float  # from starting the processes until every worker was ready
    loop_seconds: float  # from releasing the workers until the last one finished its loop
    cpu_seconds: tuple[float, ...]  # CPU time of each worker's loop (its process alone)

    @property
    def total_updates(self) -> int:
        """Updates applied by all workers."""
        return len(self.updates)

    @property
    def total_env_steps(self) -> int:
        """Environment steps of all workers."""
        return sum(self.env_steps)

    @property
    def env_steps_per_second(self) -> float:
        """Environment steps per second of all workers together, start-up excluded."""
        return self.total_env_steps / self.loop_seconds if self.loop_seconds > 0 else float("nan")

    @property
    def env_steps_per_cpu_second(self) -> float:
        """Environment steps per CPU second of a worker: the rate with a free core per worker.

        On a machine busy with other work, wall-clock rates say how much CPU the workers got; this says
        whether the workers slow each other down (it stays flat as workers are added when they do not).
        """
        return self.total_env_steps / sum(self.cpu_seconds) if sum(self.cpu_seconds) > 0 else float("nan")

    def updates_by_worker(self) -> np.ndarray:
        """Number of updates each worker applied."""
        return np.bincount(self.updates[:, 1], minlength=self.workers)

    def worker_switches(self) -> int:
        """How often consecutive updates (in global order) came from different workers."""
        order = self.updates[:, 1]
        return int((order[1:] != order[:-1]).sum())


@dataclass(frozen=True)
class ParallelRun:
    """The result of ``train_workers``: the trained state, the learning-curve rows and the run's statistics.

    ``rows`` are ``{"step", "worker", "profit", "price"}``, each the mean over ``log_every`` steps of one
    worker ending at that worker's step ``step``; ``state`` loads with the learner's ``load_state_dict``.
    """

    state: dict[str, Any]
    rows: list[dict[str, Any]]
    stats: TrainStats


@dataclass(frozen=True, kw_only=True)
class _WorkerJob:
    """Everything one worker process needs (picklable, as the spawn context requires)."""

    index: int
    markets: ScenarioMarkets
    seller: int
    steps: int
    seed: int
    log_every: int
    shared: Any  # the learner's shared-model handle
    counter: Any  # global update number (under its lock)
    done: Any  # environment steps done, for progress
    start: Any  # released when every worker is ready
    messages: Any  # worker → parent: ("ready" | "done" | "error", worker, payload)


@dataclass
class _Gathered:
    """What the parent collects from its workers' messages."""

    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    ready: int = 0
    released: float | None = None


def learner_at(model: MarketModel, seller: int) -> ParallelTrainable:
    """Seat ``seller``'s strategy, which must train across processes (TypeError otherwise)."""
    if not 0 <= seller < len(model.sellers):
        raise ValueError(f"seller index {seller} out of range for {len(model.sellers)} sellers")
    strategy = model.sellers[seller].strategy
    if not isinstance(strategy, ParallelTrainable):
        raise TypeError(
            f"seller {model.sellers[seller].name!r} plays {strategy.name!r}, which does not train across "
            "worker processes (not ParallelTrainable)"
        )
    return strategy


def train_workers(
    markets: ScenarioMarkets,
    seller: int,
    steps: int,
    workers: int,
    progress: Progress | None = None,
    log_every: int | None = None,
) -> ParallelRun:
    """Train seat ``seller``'s learner with ``workers`` processes for ``steps`` environment steps in total.

    ``progress`` is called in the parent with the environment steps done so far by all workers.
    """
    if workers < 1 or steps < 1:
        raise ValueError(f"need at least one worker and one step, got workers={workers}, steps={steps}")
    master = learner_at(markets(), seller)
    shared = master.share_model()
    shares = [steps // workers + (w < steps % workers) for w in range(workers)]
    log_every = log_every or max(1, max(shares) // DEFAULT_LOG_POINTS)
    ctx = mp.get_context("spawn")
    counter, done, start, messages = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event(), ctx.Queue()
    jobs = [
        _WorkerJob(
            index=w,
            markets=markets,
            seller=seller,
            steps=shares[w],
            seed=seed,
            log_every=log_every,
            shared=shared,
            counter=counter,
            done=done,
            start=start,
            messages=messages,
        )
        for w, seed in enumerate(worker_seeds(markets.seed, workers))
    ]
    procs = [ctx.Process(target=_worker, args=(job,), daemon=True) for job in jobs]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    gathered = _gather(procs, messages, start, done, progress)
    assert gathered.released is not None
    results = gathered.results
    if progress is not None:
        progress(int(done.value))
    updates = np.concatenate([r["updates"] for r in results.values()]).reshape(-1, 3)
    updates = updates[np.argsort(updates[:, 0], kind="stable")]
    optimizer_steps = master.finish_workers(sum(shares), len(updates))
    stats = TrainStats(
        workers=workers,
        parent_pid=os.getpid(),
        pids=tuple(int(results[w]["pid"]) for w in range(workers)),
        env_steps=tuple(shares),
        updates=updates,
        optimizer_steps=optimizer_steps,
        startup_seconds=gathered.released - t0,
        loop_seconds=max(r["finished"] for r in results.values()) - gathered.released,
        cpu_seconds=tuple(float(results[w]["cpu"]) for w in range(workers)),
    )
    rows = [row for w in range(workers) for row in results[w]["rows"]]
    return ParallelRun(state=master.state_dict(), rows=rows, stats=stats)


def _gather(procs: list[Any], messages: Any, start: Any, done: Any, progress: Progress | None) -> _Gathered:
    """Read the workers' messages until each is done: release them together once all are ready."""
    gathered = _Gathered()
    try:
        while len(gathered.results) < len(procs):
            try:
                kind, w, payload = messages.get(timeout=0.1)
            except queue_module.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(f"a training worker died (exit code {dead[0].exitcode})") from None
            else:
                _receive(gathered, kind, w, payload, len(procs), start)
            if progress is not None and gathered.released is not None:
                progress(int(done.value))
    finally:
        if len(gathered.results) < len(procs):
            for p in procs:
                if p.is_alive():
                    p.terminate()
        for p in procs:
            p.join()
    return gathered


def _receive(gathered: _Gathered, kind: str, w: int, payload: Any, workers: int, start: Any) -> None:
    """Book one worker message (raising a worker's error in the parent)."""
    if kind == "error":
        raise RuntimeError(f"training worker {w} failed:\n{payload}")
    if kind == "ready":
        gathered.ready += 1
        if gathered.ready == workers:
            gathered.released = time.monotonic()
            start.set()
    elif kind == "done":
        gathered.results[w] = payload


def _worker(job: _WorkerJob) -> None:
    """One worker process (a top-level function with a picklable argument, as the spawn context needs)."""
    try:
        pid = os.getpid()
        model = job.markets(job.seed, collect=False)
        learner = learner_at(model, job.seller)
        records: list[int] = []

        def on_update() -> None:
            with job.counter.get_lock():
                job.counter.value += 1
                records.append(job.counter.value)

        learner.attach_worker(job.shared, on_update)
        job.messages.put(("ready", job.index, None))
        job.start.wait()
        cpu = time.process_time()
        rows = _run_loop(job, model)
        finished = time.monotonic()
        cpu = time.process_time() - cpu
        updates = np.array([(k, job.index, pid) for k in records], dtype=np.int64).reshape(-1, 3)
        payload = {"pid": pid, "rows": rows, "updates": updates, "finished": finished, "cpu": cpu}
        job.messages.put(("done", job.index, payload))
    except BaseException:
        job.messages.put(("error", job.index, traceback.format_exc()))


def _run_loop(job: _WorkerJob, model: MarketModel) -> list[dict[str, Any]]:
    """Step the worker's market ``job.steps`` times; curve rows every ``log_every`` steps, progress in chunks."""
    agent = model.sellers[job.seller]
    rows: list[dict[str, Any]] = []
    profit = price = 0.0
    window = reported = 0
    for t in range(1, job.steps + 1):
        model.step()
        profit += agent.profit
        price += agent.price
        window += 1
        if t % job.log_every == 0 or t == job.steps:
            rows.append({"step": t, "worker": job.index, "profit": profit / window, "price": price / window})
            profit = price = 0.0
            window = 0
        if t % PROGRESS_CHUNK == 0 or t == job.steps:
            with job.done.get_lock():
                job.done.value += t - reported
            reported = t
    return rows
