"""The asynchronous A3C trainer: N worker processes, one shared model, lock-free updates.

``train_workers(scenario, seller, steps, workers)`` builds the scenario once in the parent; the chosen
seller's a3c learner there owns the *shared* model: its network and its ``SharedAdam`` statistics (moments
and the singleton step counter) are moved to shared memory. Then ``workers`` processes are started with
the spawn context (no forked torch/OpenMP state; the same code path on Linux, macOS and Windows). Each
worker

* uses one torch thread (two workers on two cores must not fight over intra-op threads),
* builds its own copy of the market from the Scenario with its own seed (``SeedSequence(scenario.seed)
  .spawn(workers)``), in which every other seller plays its own strategy,
* turns its copy of the learner into a worker of the shared model (``A3C.attach``): before each rollout
  it copies the shared weights; after it, it computes the n-step advantage gradients on its local copy and
  assigns them to the shared parameters (``push_gradients``; never the pre-PyTorch-2 "assign once"
  pattern), then steps the shared Adam — without any lock (Hogwild),
* counts its updates on a shared counter (under a lock: bookkeeping only, not the update itself) and
  records (global update number, worker, pid), so the interleaving of workers can be checked afterwards.

``steps`` is the number of environment steps in total, split evenly over the workers, so a run with more
workers sees the same amount of experience in less time. With ``workers=1`` this is synchronous A2C.
Workers start together (they report ready, then the parent releases them) so start-up time, which is
dominated by importing torch, is measured apart from the training loop.
"""

from __future__ import annotations

import os
import queue as queue_module
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel

from .a3c import A3C
from .a3c_nets import ActorCritic, SharedAdam

PROGRESS_CHUNK = 250  # a worker adds its steps to the shared progress counter this often
DEFAULT_LOG_POINTS = 200  # learning-curve rows per worker when log_every is not given


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
    optimizer_steps: int  # the shared Adam's step counter at the end
    startup_seconds: float  # from starting the processes until every worker was ready
    loop_seconds: float  # from releasing the workers until the last one finished its loop
    cpu_seconds: tuple[float, ...]  # CPU time of each worker's loop (its process alone)

    @property
    def total_updates(self) -> int:
        return len(self.updates)

    @property
    def total_env_steps(self) -> int:
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


def worker_seeds(seed: int, workers: int) -> list[int]:
    """Each worker's market seed, derived from the scenario seed and the worker index."""
    return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(workers)]


def _learner(model: MarketModel, seller: int) -> A3C:
    if not 0 <= seller < len(model.sellers):
        raise ValueError(f"seller index {seller} out of range for {len(model.sellers)} sellers")
    strategy = model.sellers[seller].strategy
    if not isinstance(strategy, A3C):
        raise TypeError(f"seller {model.sellers[seller].name!r} plays {strategy.name!r}, not a3c")
    return strategy


class _NoCollector:
    """Training runs keep no per-step table (it would grow by a row per step for the whole run)."""

    def collect(self, model: MarketModel) -> None:
        pass


def train_workers(
    scenario: Scenario,
    seller: int,
    steps: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
    log_every: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], TrainStats]:
    """Train seller ``seller``'s a3c learner with ``workers`` processes for ``steps`` environment steps in total.

    Returns (the trained state dict — network, shared Adam statistics, counters — for
    ``A3C.load_state_dict``; learning-curve rows ``{"step", "worker", "profit", "price"}``, each the mean
    over ``log_every`` steps of one worker ending at that worker's step ``step``; ``TrainStats``).
    ``progress`` is called in the parent with the environment steps done so far by all workers.
    """
    if workers < 1 or steps < 1:
        raise ValueError(f"need at least one worker and one step, got workers={workers}, steps={steps}")
    parent = MarketModel(scenario)
    master = _learner(parent, seller)
    master.to_cpu()  # the shared model lives on the CPU
    master.net.share_memory()
    master.optimizer.share_memory()
    shares = [steps // workers + (w < steps % workers) for w in range(workers)]
    log_every = log_every or max(1, max(shares) // DEFAULT_LOG_POINTS)
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)  # global update number (under its lock)
    done = ctx.Value("q", 0)  # environment steps done, for progress
    start = ctx.Event()
    messages = ctx.Queue()
    seeds = worker_seeds(scenario.seed, workers)
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                w,
                scenario,
                seller,
                shares[w],
                seeds[w],
                log_every,
                master.net,
                master.optimizer.shared_state(),
                counter,
                done,
                start,
                messages,
            ),
            daemon=True,
        )
        for w in range(workers)
    ]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results: dict[int, dict[str, Any]] = {}
    ready = 0
    released = None
    try:
        while len(results) < workers:
            try:
                kind, w, payload = messages.get(timeout=0.1)
            except queue_module.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(f"an a3c worker died (exit code {dead[0].exitcode})") from None
            else:
                if kind == "error":
                    raise RuntimeError(f"a3c worker {w} failed:\n{payload}")
                if kind == "ready":
                    ready += 1
                    if ready == workers:
                        released = time.monotonic()
                        start.set()
                elif kind == "done":
                    results[w] = payload
            if progress is not None and released is not None:
                progress(int(done.value))
    finally:
        if len(results) < workers:
            for p in procs:
                if p.is_alive():
                    p.terminate()
        for p in procs:
            p.join()
    assert released is not None
    finished = max(r["finished"] for r in results.values())
    if progress is not None:
        progress(int(done.value))
    updates = np.concatenate([r["updates"] for r in results.values()]).reshape(-1, 3)
    updates = updates[np.argsort(updates[:, 0], kind="stable")]
    master.t = sum(shares)
    master.updates = len(updates)
    rows = [row for w in range(workers) for row in results[w]["rows"]]
    stats = TrainStats(
        workers=workers,
        parent_pid=os.getpid(),
        pids=tuple(int(results[w]["pid"]) for w in range(workers)),
        env_steps=tuple(shares),
        updates=updates,
        optimizer_steps=master.optimizer.steps,
        startup_seconds=released - t0,
        loop_seconds=finished - released,
        cpu_seconds=tuple(float(results[w]["cpu"]) for w in range(workers)),
    )
    return master.state_dict(), rows, stats


def _worker(
    w: int,
    scenario: Scenario,
    seller: int,
    steps: int,
    seed: int,
    log_every: int,
    shared: ActorCritic,
    optimizer_state: dict[str, Any],
    counter: Any,
    done: Any,
    start: Any,
    messages: Any,
) -> None:
    """One worker process (a top-level function with picklable arguments, as the spawn context needs)."""
    try:
        torch.set_num_threads(1)
        pid = os.getpid()
        model = MarketModel(scenario, seed=seed)
        model.datacollector = _NoCollector()
        learner = _learner(model, seller)
        learner.set_training(True)
        learner.mode = "train"
        optimizer = SharedAdam(shared.parameters(), lr=learner.lr, state=optimizer_state)
        records: list[int] = []

        def on_update() -> None:
            with counter.get_lock():
                counter.value += 1
                records.append(counter.value)

        learner.attach(shared, optimizer, on_update)
        agent = model.sellers[seller]
        messages.put(("ready", w, None))
        start.wait()
        cpu = time.process_time()
        rows: list[dict[str, Any]] = []
        profit = price = 0.0
        window = reported = 0
        for t in range(1, steps + 1):
            model.step()
            profit += agent.profit
            price += agent.price
            window += 1
            if t % log_every == 0 or t == steps:
                rows.append({"step": t, "worker": w, "profit": profit / window, "price": price / window})
                profit = price = 0.0
                window = 0
            if t % PROGRESS_CHUNK == 0 or t == steps:
                with done.get_lock():
                    done.value += t - reported
                reported = t
        finished = time.monotonic()
        cpu = time.process_time() - cpu
        updates = np.array([(k, w, pid) for k in records], dtype=np.int64).reshape(-1, 3)
        messages.put(("done", w, {"pid": pid, "rows": rows, "updates": updates, "finished": finished, "cpu": cpu}))
    except BaseException:
        messages.put(("error", w, traceback.format_exc()))
