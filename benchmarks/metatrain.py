"""Samples per second of rl2's meta-training with 1 and with 2 actor processes, side by side in one run.

A sample is one environment step of actor experience (one task, one period). Measured on the bundled family
(scenarios/meta_pricing.yaml) with rl2's default network and batch (128 tasks × H = 50 steps an update):
  * the single-process loop (`marketsim meta-train`, `--workers 1`): A2C, acting and learning in turn;
  * distributed meta-training (`--workers N`, process backend) with 1 and with 2 actor processes feeding
    the V-trace learner in this process: experience learned from per second, after a warm-up;
  * the actors alone (no learner): N actor processes playing pieces with fixed weights, what the actors
    could feed a learner that kept up.
Every figure is a steady state: worker start-up (spawn, torch, the training pool) and the warm-up updates are
left out. Target: 2 actor processes ≥ 1.7× one. On a machine shared with other work the wall-clock figures
move with its load, so the CPU seconds an update costs the actors and the learner (measured in this process,
which a busy machine disturbs far less) are printed too, with the rates they allow on two free cores.

    python benchmarks/metatrain.py [--iterations 60] [--warmup 10] [--pool 1024] [--piece 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from marketsim.meta.distributed import ActorSpec, Distributed, make_fleet, pieces
from marketsim.meta.loop import MetaRun, build_learner
from marketsim.meta.tasks import load_family
from marketsim.meta.train import meta_train
from marketsim.registry import default_registry

FAMILY = Path(__file__).resolve().parents[1] / "scenarios" / "meta_pricing.yaml"


def training(workers: int | None, iterations: int, warmup: int, pool: int, piece: int) -> float:
    """Samples per second learned from after ``warmup`` updates: ``workers`` actor processes, or None for the
    single-process loop."""
    registry = default_registry()
    family = load_family(FAMILY, registry)
    stamps: dict[int, float] = {}
    dist = None if workers is None else Distributed(workers=workers, backend="process", piece=piece)
    result, _ = meta_train(
        family, "rl2", iterations, registry=registry, device="cpu", distributed=dist, pool=pool,
        log_every=10**6, progress=lambda done, total, metrics: stamps.setdefault(done, time.perf_counter()),
    )  # fmt: skip
    samples = (iterations - warmup) * result.info["batch"] * family.horizon
    return samples / (stamps[iterations] - stamps[warmup])


def actors_alone(workers: int, batches: int, pool: int, piece: int) -> float:
    """Samples per second ``workers`` actor processes play, with fixed weights and no learner to wait for."""
    registry = default_registry()
    family = load_family(FAMILY, registry)
    run = MetaRun(family=family, cls=registry.get("rl2").cls, registry=registry, device="cpu", options={"pool": pool})
    learner = build_learner(run)
    fleet = make_fleet("process", workers, ActorSpec(family, pool, learner.actor()))
    try:
        weights = fleet.share(learner.weights())
        warm = [fleet.submit(p, weights) for p in pieces(0, 0, piece * workers, piece)]  # every worker started
        for handle in warm:
            fleet.result(handle)
        work = [p for it in range(1, batches + 1) for p in pieces(0, it, learner.episodes, piece)]
        start = time.perf_counter()
        for handle in [fleet.submit(p, weights) for p in work]:
            fleet.result(handle)
        elapsed = time.perf_counter() - start
    finally:
        fleet.close()
    return sum(p.episodes for p in work) * family.horizon / elapsed


def cpu_split(batches: int, pool: int, piece: int) -> tuple[float, float]:
    """CPU seconds one update costs the actors (its batch, piece by piece) and the learner, median of ``batches``."""
    registry = default_registry()
    family = load_family(FAMILY, registry)
    options = {"pool": pool, "validation": 8}
    learner = build_learner(MetaRun(family=family, cls=registry.get("rl2").cls, registry=registry, device="cpu",
                                    options=options))  # fmt: skip
    fleet = make_fleet("serial", 1, ActorSpec(family, pool, learner.actor()))
    acting, learning = [], []
    for it in range(1, batches + 1):
        start = time.process_time()
        weights = fleet.share(learner.weights())
        played = [fleet.result(fleet.submit(p, weights)) for p in pieces(0, it, learner.episodes, piece)]
        middle = time.process_time()
        learner.learn(it, batches, played)
        acting.append(middle - start)
        learning.append(time.process_time() - middle)
    return float(np.median(acting)), float(np.median(learning))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60, help="updates per training measurement")
    parser.add_argument("--warmup", type=int, default=10, help="updates left out at the start of each")
    parser.add_argument("--pool", type=int, default=1024, help="training tasks (8192 in a real run: slower start-up)")
    parser.add_argument("--piece", type=int, default=Distributed().piece, help="episodes per actor message")
    args = parser.parse_args()
    console = Console(width=120)
    its, warm, pool, piece = args.iterations, args.warmup, args.pool, args.piece
    jobs = [
        ("single process (--workers 1: A2C, act then learn)", lambda: training(None, its, warm, pool, piece)),
        ("1 actor process + V-trace learner", lambda: training(1, its, warm, pool, piece)),
        ("2 actor processes + V-trace learner", lambda: training(2, its, warm, pool, piece)),
        ("1 actor process alone (no learner)", lambda: actors_alone(1, its - warm, pool, piece)),
        ("2 actor processes alone (no learner)", lambda: actors_alone(2, its - warm, pool, piece)),
    ]
    rows = []
    for name, job in jobs:
        with console.status(f"{name} …"):
            rows.append((name, job()))
    with console.status("CPU seconds of an update …"):
        act, learn = cpu_split(max(its - warm, 5), pool, piece)
    table = Table(title=f"rl2 on meta_pricing: samples (task-steps) per second, {its - warm} updates of 128 × 50")
    for col in ("configuration", "samples / s", "vs single process"):
        table.add_column(col, justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / rows[0][1]:,.2f}×")
    console.print(table)
    rate = dict(zip(("single", "one", "two", "alone1", "alone2"), (r for _, r in rows)))
    console.print(
        f"2 vs 1 actor processes: {rate['two'] / rate['one']:,.2f}× training (target ≥ 1.7×), "
        f"{rate['alone2'] / rate['alone1']:,.2f}× the actors alone; {np.round(rate['one'] / rate['single'], 2)}× "
        f"the single-process loop with one actor process"
    )
    samples, two = 128 * 50, max((act + learn) / 2, learn)  # two: an update's seconds at best with 2 actors
    console.print(
        f"CPU seconds an update costs: actors {act:.3f} (pieces of {piece}), learner {learn:.3f}. On two free cores: "
        f"1 actor process ≤ {samples / max(act, learn):,.0f} samples/s, 2 ≤ {samples / two:,.0f} "
        f"(ratio ≤ {max(act, learn) / two:.2f}×: the learner holds a core of its own)"
    )


if __name__ == "__main__":
    main()
