"""Meta-training: a batched copy of a task family's markets, and ``marketsim meta-train``.

``TaskBatch`` holds many sampled tasks as arrays and steps them in lockstep (numpy): the learner's price
for every task at once, the rivals' reactions (``fixed_price``, ``match_lowest``, ``undercut`` vectorised;
any other reactive rule through ``marketsim.meta.tasks.RivalRules``), the learner's expected units from each
task's logit demand on the WTP quadrature nodes (exactly ``ExpectedDemand.units``), and — with
``noise=True`` — sales drawn like the agent-based market's: each task's population of ``size`` consumers
with WTPs drawn from its distribution (once per episode), each arriving with probability ``arrival`` and
buying from the learner with its logit probability. ``tests/test_metatrain.py`` checks that the expected
profits equal ``metaeval.run_agent``'s for the same price paths, and the sampled units' mean.

A meta-learning strategy class trains itself: it defines a classmethod
``meta_train(family, iterations, seed, progress, device, registry, **options) -> MetaTrained``; this module
finds it through the registry (the core never imports a strategy module), writes the checkpoint with
``marketsim.learning.checkpoint.save_checkpoint`` — sidecar: strategy, params, family name and hash, iterations,
training seconds — and the training curve (``curve.csv``, ``curve.png``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.market.model import wtp_nodes
from marketsim.meta.tasks import Family, RivalRules, Task, rival_specs, task_market
from marketsim.registry import Registry, default_registry

Progress = Callable[[int, int, Mapping[str, float]], None]  # (iterations done, total, latest metrics)

_EXP_CAP = 700.0  # as marketsim.market.consumers: beyond it the outside option wins with certainty
_KINDS = {"fixed_price": 1, "match_lowest": 2, "undercut": 3}  # 0: the learner / an empty seat; 4: generic


class MetaTrainError(ValueError):
    """Meta-training cannot run as asked (bad family, unknown strategy, bad numbers)."""


def family_hash(family: Family) -> str:
    """sha256 of the family's draws and base scenario: what a checkpoint was trained on."""
    text = json.dumps(family.spec.model_dump(mode="json"), sort_keys=True, default=str) + family.base.digest()
    return hashlib.sha256(text.encode()).hexdigest()


# --- the batched environment -----------------------------------------------------------------------------


@dataclass
class Step:
    """What one lockstep step returns (arrays over tasks)."""

    prices: np.ndarray  # (B, J) posted prices, learner in column 0
    units: np.ndarray  # (B,) learner's units (sampled with noise, expected without)
    profit: np.ndarray  # (B,) learner's booked profit
    expected_profit: np.ndarray  # (B,) learner's expected profit at these prices


@dataclass
class TaskBatch:
    """B tasks as arrays; the learner always sits in column 0, its rivals after it in seat order."""

    tasks: list[Task]
    quality: np.ndarray  # (B, J)
    cost: np.ndarray  # (B, J)
    present: np.ndarray  # (B, J) bool
    start: np.ndarray  # (B, J) prices 'last posted' before step 0
    pmin: np.ndarray  # (B, J)
    pmax: np.ndarray  # (B, J)
    kind: np.ndarray  # (B, J) int rule code
    fixed: np.ndarray  # (B, J) fixed_price's price
    step_size: np.ndarray  # (B, J) undercut's step
    floor: np.ndarray  # (B, J) floor_margin
    reset: np.ndarray  # (B, J) undercut's reset_price (nan: none)
    mu: np.ndarray  # (B,)
    outside: np.ndarray  # (B,)
    nodes: np.ndarray  # (B, K) WTP quadrature nodes
    mass: np.ndarray  # (B, K) consumers per step each node stands for
    size: np.ndarray  # (B,) population size
    arrival: np.ndarray  # (B,)
    wtp: list[Any]  # ('normal', mean, sd), a frozen distribution, or None (a constant)
    wtp_const: np.ndarray  # (B,) the constant WTP where wtp[b] is None
    generic: dict[int, RivalRules] = field(default_factory=dict)  # task b -> rules for kind-4 rivals
    population: np.ndarray | None = None  # (B, N) consumers' WTPs this episode (nan: padding)

    @classmethod
    def from_tasks(cls, tasks: Sequence[Task], registry: Registry | None = None) -> TaskBatch:
        """Arrays of ``tasks`` (logit demand, no shocks, network, capacity or inventory limits)."""
        registry = registry if registry is not None else default_registry()
        if not tasks:
            raise MetaTrainError("no tasks to batch")
        B = len(tasks)
        J = max(len(t.scenario.expanded_sellers()) for t in tasks)
        K = max(
            1 if t.scenario.consumers.wtp.distribution == "constant" else t.scenario.demand.quadrature for t in tasks
        )
        f = lambda v=0.0: np.full((B, J), v, float)  # noqa: E731
        quality, cost, start, pmin, pmax = f(), f(), f(), f(), f(1.0)
        fixed, step_size, floor, reset = f(), f(), f(), f(math.nan)
        present, kind = np.zeros((B, J), bool), np.zeros((B, J), int)
        mu, outside, size, arrival = (np.zeros(B) for _ in range(4))
        nodes, mass = np.zeros((B, K)), np.zeros((B, K))
        wtp, wtp_const, generic = [], np.zeros(B), {}
        for b, task in enumerate(tasks):
            sc = task.scenario
            c = sc.consumers
            sellers = sc.expanded_sellers()
            if (
                sc.network is not None
                or c.shocks
                or any(s.capacity is not None or s.inventory is not None for s in sellers)
            ):
                raise MetaTrainError(f"task {task.index}: the batched market needs no network, shocks or stock limits")
            if c.choice.model != "logit" or c.choice.params or c.mu <= 0:
                raise MetaTrainError(f"task {task.index}: the batched market needs logit demand with mu > 0")
            order = [task.learner, *task.rivals()]
            for col, seat in enumerate(order):
                s = sellers[seat]
                quality[b, col], cost[b, col], start[b, col] = s.quality, s.cost, s.start_price
                pmin[b, col], pmax[b, col], present[b, col] = s.price_min, s.price_max, True
                if col == 0:
                    continue
                kind[b, col] = _KINDS.get(s.strategy, 4)
                p = dict(s.params)
                fixed[b, col] = float(p.get("price", 1.5))
                step_size[b, col] = float(p.get("step", 0.05))
                floor[b, col] = float(p.get("floor_margin", 0.0))
                r = p.get("reset_price")
                reset[b, col] = math.nan if r is None else float(r)
            if (kind[b] == 4).any():
                market, _ = task_market(task, registry)
                generic[b] = RivalRules(rival_specs(sc, task.learner), task.learner, market, registry)
            if c.wtp.distribution == "normal":  # truncated at 0: quantiles in closed form, vectorised
                wtp.append(("normal", c.wtp.mean, c.wtp.sd))
                k = sc.demand.quadrature
                w = _truncnorm_ppf((np.arange(k) + 0.5) / k, c.wtp.mean, c.wtp.sd)
            else:
                dist = c.wtp.frozen()
                wtp.append(dist)
                wtp_const[b] = c.wtp.value if dist is None else 0.0
                w = wtp_nodes(sc)
            nodes[b, : len(w)], mass[b, : len(w)] = w, c.size * c.arrival / len(w)
            if len(w) < K:  # pad with massless nodes
                nodes[b, len(w) :] = w[-1]
            mu[b], outside[b], size[b], arrival[b] = c.mu, c.outside_value, c.size, c.arrival
        return cls(
            list(tasks), quality, cost, present, start, pmin, pmax, kind, fixed, step_size, floor, reset,
            mu, outside, nodes, mass, size, arrival, wtp, wtp_const, generic,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def horizon(self) -> int:
        return self.tasks[0].horizon

    def subset(self, idx: Sequence[int] | np.ndarray) -> TaskBatch:
        """The tasks at ``idx`` (a training batch drawn from a pool)."""
        idx = np.asarray(idx, int)
        arrays = {
            k: getattr(self, k)[idx]
            for k in (
                "quality", "cost", "present", "start", "pmin", "pmax", "kind", "fixed", "step_size", "floor",
                "reset", "mu", "outside", "nodes", "mass", "size", "arrival", "wtp_const",
            )
        }  # fmt: skip
        generic = {n: self.generic[int(b)] for n, b in enumerate(idx) if int(b) in self.generic}
        return TaskBatch(
            tasks=[self.tasks[int(b)] for b in idx], wtp=[self.wtp[int(b)] for b in idx], generic=generic, **arrays
        )

    # --- dynamics ------------------------------------------------------------------------------------

    def rival_prices(self, last: np.ndarray) -> np.ndarray:
        """Every seat's rule applied to last period's prices (column 0, the learner's, is left as it was)."""
        B, J = last.shape
        out = last.copy()
        for j in range(1, J):
            others = self.present.copy()
            others[:, j] = False
            lowest = np.where(others, last, np.inf).min(axis=1)
            has = np.isfinite(lowest)
            own, cost, fm = last[:, j], self.cost[:, j], self.floor[:, j]
            match = np.where(has, lowest, own)
            target = lowest - self.step_size[:, j]
            relent = has & np.isfinite(self.reset[:, j]) & (target < cost + fm)
            under = np.where(has, np.where(relent, self.reset[:, j], target), own)
            k = self.kind[:, j]
            raw = np.where(k == 1, self.fixed[:, j], np.where(k == 2, match, under))
            raw = np.where(k >= 2, np.maximum(raw, cost + fm), raw)  # the rules' cost floor
            price = np.clip(raw, self.pmin[:, j], self.pmax[:, j])  # the rule's clip, then the seller's
            out[:, j] = np.where(self.present[:, j] & (k > 0), price, last[:, j])
        for b, rules in self.generic.items():  # any other reactive rule, one task at a time
            seats = np.flatnonzero(self.present[b])
            nxt = rules.next_prices(_seat_order(last[b, seats], rules.index))
            for col, p in zip(range(1, len(seats)), nxt):
                if self.kind[b, col] == 4:
                    out[b, col] = min(max(p, self.pmin[b, col]), self.pmax[b, col])
        return out

    def _logit(self, prices: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Learner's choice probability for WTPs ``w`` (B, N) at ``prices`` (B, J)."""
        x = np.where(self.present, self.quality - prices, -np.inf)
        shift = x.max(axis=1, keepdims=True)
        eps = np.exp((x - shift) / self.mu[:, None])  # (B, J)
        z = np.exp(np.minimum((self.outside[:, None] - w - shift) / self.mu[:, None], _EXP_CAP))  # (B, N)
        return eps[:, :1] / (z + eps.sum(axis=1, keepdims=True))

    def expected_units(self, prices: np.ndarray) -> np.ndarray:
        """(B,) learner's expected units: ``ExpectedDemand.units`` on the quadrature nodes."""
        return (self._logit(prices, self.nodes) * self.mass).sum(axis=1)

    def draw_population(self, rng: np.random.Generator) -> np.ndarray:
        """Each task's consumers' WTPs (B, max size), nan-padded; normal WTPs drawn vectorised."""
        B, N = len(self), int(self.size.max())
        pop = np.full((B, N), np.nan)
        normal = [b for b, d in enumerate(self.wtp) if isinstance(d, tuple)]
        if normal:
            mean = np.array([self.wtp[b][1] for b in normal])
            sd = np.array([self.wtp[b][2] for b in normal])
            pop[normal] = _truncnorm_ppf(rng.random((len(normal), N)), mean[:, None], sd[:, None])
        for b, dist in enumerate(self.wtp):
            n = int(self.size[b])
            if dist is None:
                pop[b, :n] = self.wtp_const[b]
            elif not isinstance(dist, tuple):
                pop[b, :n] = dist.rvs(size=n, random_state=rng)
            pop[b, n:] = np.nan
        return pop

    def reset_episode(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Start every task: draw its consumers (when ``rng``) and return the start prices (B, J)."""
        self.population = self.draw_population(rng) if rng is not None else None
        return self.start.copy()

    def step(self, last: np.ndarray, own: np.ndarray, rng: np.random.Generator | None = None) -> Step:
        """Rivals react to ``last``; the learner posts ``own``; shoppers buy (sampled when ``rng``)."""
        prices = self.rival_prices(last)
        prices[:, 0] = np.clip(own, self.pmin[:, 0], self.pmax[:, 0])
        expected = self.expected_units(prices)
        if rng is None:
            units = expected
        else:
            if self.population is None:
                self.population = self.draw_population(rng)
            pop = self.population
            valid = np.isfinite(pop)
            p = self._logit(prices, np.where(valid, pop, 0.0)) * self.arrival[:, None]
            units = ((rng.random(pop.shape) < p) & valid).sum(axis=1).astype(float)
        margin = prices[:, 0] - self.cost[:, 0]
        return Step(prices, units, prices[:, 0] * units - self.cost[:, 0] * units, margin * expected)

    def rollout_expected(self, price_paths: np.ndarray) -> np.ndarray:
        """(B, H) expected profits of posting ``price_paths`` (B, H) on the noise-free dynamics."""
        last = self.reset_episode()
        out = np.empty(price_paths.shape)
        for t in range(price_paths.shape[1]):
            s = self.step(last, price_paths[:, t])
            out[:, t], last = s.expected_profit, s.prices
        return out


def _truncnorm_ppf(q: np.ndarray, mean: Any, sd: Any) -> np.ndarray:
    """Quantiles of the normal(mean, sd) truncated at 0 (``NormalWTP``), through the upper tail for accuracy."""
    from scipy.special import ndtr, ndtri

    a = (0.0 - np.asarray(mean, float)) / np.asarray(sd, float)
    return mean + sd * -ndtri((1.0 - q) * ndtr(-a))


def _seat_order(row: np.ndarray, index: int) -> np.ndarray:
    """A learner-first price row back in seat order (the learner at ``index``)."""
    return np.insert(row[1:], index, row[0])


def oracle_profits(tasks: Sequence[Task], registry: Registry | None = None) -> np.ndarray:
    """(n, H) the clairvoyant's expected profit path in each task (noise-free rollout, ~10 ms a task)."""
    from marketsim.meta.evaluate import ORACLE, oracle_params
    from marketsim.meta.tasks import expected_rollout

    registry = registry if registry is not None else default_registry()
    return np.array([expected_rollout(t, registry.create(ORACLE, oracle_params(t)), registry)[1] for t in tasks])


# --- what a meta-learner's training returns ----------------------------------------------------------------


@dataclass
class MetaTrained:
    """A meta-learner's trained state, the parameters to rebuild it, its curve and extra checkpoints."""

    state: dict[str, Any]
    params: dict[str, Any]
    curve: list[dict[str, float]]  # one row per logged iteration (iteration, metrics…)
    extra: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # name -> (state, meta)
    info: dict[str, Any] = field(default_factory=dict)


def meta_train(
    family: Family,
    strategy: str,
    iterations: int | None = None,
    seed: int = 0,
    registry: Registry | None = None,
    progress: Progress | None = None,
    device: str = "auto",
    **options: Any,
) -> tuple[MetaTrained, float]:
    """Train ``strategy`` (a registered class with ``meta_train``) on ``family``; return (result, seconds)."""
    registry = registry if registry is not None else default_registry()
    if strategy not in registry:
        raise MetaTrainError(f"unknown strategy {strategy!r}; available: {', '.join(registry.names())}")
    cls = registry.get(strategy).cls
    if not callable(getattr(cls, "meta_train", None)):
        meta = [n for n in registry.names() if callable(getattr(registry.get(n).cls, "meta_train", None))]
        raise MetaTrainError(f"strategy {strategy!r} cannot be meta-trained; meta-learners: {', '.join(meta) or '-'}")
    if iterations is not None and iterations < 1:
        raise MetaTrainError(f"iterations must be >= 1, got {iterations}")
    began = time.perf_counter()
    kwargs = dict(options)
    if iterations is not None:
        kwargs["iterations"] = iterations
    result = cls.meta_train(family, seed=seed, progress=progress, device=device, registry=registry, **kwargs)
    return result, time.perf_counter() - began


def write_meta_train(
    result: MetaTrained,
    family: Family,
    strategy: str,
    seconds: float,
    out_dir: str | Path,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Write ``checkpoint.pt/.json``, extra checkpoints, ``curve.csv`` and ``curve.png`` into ``out_dir``."""
    import pandas as pd

    from marketsim.learning.checkpoint import save_checkpoint
    from marketsim.outputs import output_folder

    meta = {
        "strategy": strategy,
        "params": result.params,
        "family": family.name,
        "family_hash": family_hash(family),
        "family_source": str(family.source),
        "training_seconds": round(seconds, 2),
        "iterations": result.info.get("iterations"),
        "seed": seed,
        **{k: v for k, v in result.info.items() if k != "iterations"},
    }
    with output_folder(out_dir, "meta-train", force) as tmp:
        save_checkpoint(tmp / "checkpoint.pt", result.state, meta)
        for name, (state, extra_meta) in result.extra.items():
            save_checkpoint(tmp / f"{name}.pt", state, {**meta, **extra_meta})
        curve = pd.DataFrame(result.curve)
        curve.to_csv(tmp / "curve.csv", index=False)
        if len(curve):
            _plot_curve(curve, tmp / "curve.png", f"{strategy} on {family.name} ({seconds:,.0f} s)")
    return Path(out_dir)


def _plot_curve(curve: Any, path: Path, title: str) -> None:
    from marketsim.market.plots import plt

    metrics = [c for c in curve.columns if c not in ("iteration", "seconds")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), layout="constrained", squeeze=False)
    for ax, col in zip(axes[0], metrics):
        ax.plot(curve["iteration"], curve[col], lw=1.4)
        ax.set(title=col, xlabel="iteration")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
