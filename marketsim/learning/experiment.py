"""Batched experiments: many independent sessions of one tabular-learning market, advanced in lockstep.

Sessions live on a session axis: one Q tensor per learner (sessions × states × actions), vectorized
action choice, profits looked up in a table precomputed from the expected demand, and converged
sessions frozen by a mask. Session ``s`` uses seed ``scenario.seed + s`` and draws its random numbers
exactly as ``marketsim run`` would with that seed, so both paths post identical prices.
Rule-based rivals are tabulated as reactions to last period's grid prices (snapped to the grid).

Two engines run the sessions with bit-identical results: "numpy", the vectorised reference (one period of
every session per step), and "compiled", the numba kernel of ``kernel`` (each session through thousands of
periods per call), the default when numba imports; ``summary.json`` names the one used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from marketsim import seeds as seeding
from marketsim.config.scenario import Scenario
from marketsim.learning import collusion, tabular
from marketsim.learning.collusion import BestResponse, Cycle, ImpulseResponse
from marketsim.learning.plan import ExperimentError, Plan, check_supported, make_plan
from marketsim.outputs import output_folder, scenario_record
from marketsim.registry import Registry, default_registry
from marketsim.tables import write_csv

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ExperimentError", "ExperimentResult", "Plan", "check_supported", "make_plan", "run_experiment"]

Progress = Callable[[int, int], None]  # (session-steps done so far, sessions still learning)
Engine = Literal["compiled", "numpy"]  # the numba kernel (``kernel.advance``), or the vectorised numpy reference


@dataclass
class _Block:
    """Mutable state of a block of sessions run by one worker.

    Q tables are stored flat, row ``session * n_states + state``, with each row's maximum and arg-max
    (lowest index among ties, as ``argmax``) kept up to date, so a step reads single values instead
    of whole rows.
    """

    q: np.ndarray  # (L, S * states, m)
    best: np.ndarray  # (L, S * states) max_a Q
    greedy: np.ndarray  # (L, S * states) argmax_a Q
    state: np.ndarray  # (S,)
    stable: np.ndarray  # (L, S)
    steps: np.ndarray  # (S,) steps taken
    converged: np.ndarray  # (S,) bool
    uniforms: np.ndarray  # numpy engine: (L, UNIFORM_BLOCK, S, 2), row t of every session side by side
    pending: list  # per learner: (s, a, r, s') arrays for SARSA, or None
    trace: list | None = None  # per step: (sessions still active, their actions (n, A)) when tracing
    engine: Engine = "numpy"  # the engine that ran it

    @property
    def n_states(self) -> int:
        return self.q.shape[1] // len(self.state)

    def tables(self) -> np.ndarray:
        """Q tables as (L, S, states, m)."""
        return self.q.reshape(self.q.shape[0], len(self.state), self.n_states, -1)


def default_engine() -> Engine:
    """The engine used when none is named: "compiled" when numba imports, else "numpy"."""
    try:
        import numba  # noqa: F401  (imported here, not at the top: `marketsim --help` never loads it)
    except ImportError:
        return "numpy"
    return "compiled"


def resolve_engine(plan: Plan, engine: Engine | None = None) -> Engine:
    """The engine that will run ``plan``: the one named (default ``default_engine()``), except that Boltzmann
    exploration always runs on the numpy engine (its vectorised softmax is the reference only numpy reproduces)."""
    chosen = engine or default_engine()
    if chosen not in ("compiled", "numpy"):
        raise ValueError(f"engine must be 'compiled' or 'numpy', got {chosen!r}")
    if chosen == "compiled" and any(c.exploration == "boltzmann" for c in plan.configs):
        return "numpy"
    if chosen == "compiled" and default_engine() == "numpy":
        raise ExperimentError("the compiled engine needs numba (pip install numba); use engine 'numpy' without it")
    return chosen


def run_block(
    plan: Plan,
    seeds: list[int],
    max_steps: int,
    progress: Progress | None = None,
    trace: bool = False,
    engine: Engine | None = None,
) -> _Block:
    """Run the sessions with these seeds in lockstep until each converges or ``max_steps``.

    ``engine`` "numpy" is the vectorised reference, "compiled" the numba kernel that gives bit-identical
    results (default: ``default_engine()``; see ``resolve_engine``). With ``trace`` every step's actions are
    kept (for comparing with the per-step model on small runs).
    """
    engine = resolve_engine(plan, engine)
    gens = []
    for seed in seeds:  # each learner draws from the generator ``marketsim run`` would hand it with this seed
        generators = seeding.strategy_generators(np.random.default_rng(seed), plan.n)
        gens.append([generators[j] for j in plan.learners])
    n_sessions, (states, m) = len(seeds), plan.q0[0].shape
    q = np.empty((len(plan.q0), n_sessions * states, m))
    for k, q0 in enumerate(plan.q0):  # every session starts from Q₀: one pass over the memory
        q[k].reshape(n_sessions, states, m)[:] = q0
    block = _Block(
        q=q,
        best=np.stack([np.tile(q0.max(axis=1), n_sessions) for q0 in plan.q0]),
        greedy=np.stack([np.tile(q0.argmax(axis=1), n_sessions) for q0 in plan.q0]),
        state=np.full(n_sessions, plan.start_state, dtype=np.int64),
        stable=np.zeros((len(plan.learners), n_sessions), dtype=np.int64),
        steps=np.zeros(n_sessions, dtype=np.int64),
        converged=np.zeros(n_sessions, dtype=bool),
        uniforms=np.empty(0),
        pending=[None] * len(plan.learners),
        trace=[] if trace else None,
        engine=engine,
    )
    (_run_compiled if engine == "compiled" else _run_numpy)(plan, block, gens, max_steps, progress)
    return block


def _run_numpy(plan: Plan, block: _Block, gens: list, max_steps: int, progress: Progress | None) -> None:
    """The numpy engine: one vectorised period at a time over the sessions still learning."""
    n_sessions = len(gens)
    block.uniforms = np.empty((len(plan.learners), tabular.UNIFORM_BLOCK, n_sessions, 2))
    patience = np.array([c.convergence_steps for c in plan.configs])[:, None]
    active = np.arange(n_sessions)
    done_steps = 0
    for t in range(max_steps):
        if t % tabular.UNIFORM_BLOCK == 0:
            for s in active:
                for k, gen in enumerate(gens[s]):
                    block.uniforms[k, :, s] = gen.random((tabular.UNIFORM_BLOCK, 2))
        _step(plan, block, active, t)
        finished = (block.stable[:, active] >= patience).all(axis=0)
        done_steps += len(active)
        if finished.any():
            block.converged[active[finished]] = True
            block.steps[active[finished]] = t + 1
            active = active[~finished]
        if progress is not None and (t % 1000 == 999 or not active.size):
            progress(done_steps, len(active))
        if not active.size:
            break
    block.steps[active] = max_steps


_SPAN = 8  # uniform blocks per kernel call: a session's tables are loaded into cache once per 16,384 periods
_GROUP = 16  # sessions per kernel call: their draws (512 kB each, drawn just before the call) stay in cache


def _run_compiled(plan: Plan, block: _Block, gens: list, max_steps: int, progress: Progress | None) -> None:
    """The compiled engine: each group of sessions still learning draws its next ``_SPAN`` blocks of uniforms
    (numpy, the same rows the numpy engine draws block by block), then one ``kernel.advance`` call runs the
    group through those periods, session by session, until each converges."""
    from marketsim.learning.kernel import advance  # numba loads only when the compiled engine runs

    learn, play, game = _kernel_arrays(plan, block, max_steps)
    span = _SPAN * tabular.UNIFORM_BLOCK
    uniforms = np.empty((min(len(gens), _GROUP), len(plan.learners), span, 2))  # one session's draws side by side
    active, done_steps = np.arange(len(gens)), 0
    for t0 in range(0, max_steps, span):
        eps = np.array([[tabular.epsilon(c, t) for t in range(t0, t0 + span)] for c in plan.configs])
        for group in np.array_split(active, -(-len(active) // _GROUP)):
            for i, s in enumerate(group):
                for k, gen in enumerate(gens[s]):
                    gen.random(out=uniforms[i, k])  # the same rows as _SPAN draws of gen.random((UNIFORM_BLOCK, 2))
            done_steps += advance(learn, play, game, (uniforms, eps), group, t0, min(t0 + span, max_steps))
            if progress is not None:
                progress(done_steps, int((~block.converged).sum()))
        active = active[~block.converged[active]]
        if not active.size:
            break
    block.steps[active] = max_steps
    if block.trace is not None:  # the numpy engine's layout: per period, the sessions active and their actions
        trace, periods = play[3], int(block.steps.max(initial=0))
        block.trace = [(np.flatnonzero(block.steps > t), trace[block.steps > t, t].T.copy()) for t in range(periods)]


def _kernel_arrays(plan: Plan, block: _Block, max_steps: int) -> tuple[tuple, tuple, tuple]:
    """The kernel's (learn, play, game) arrays (``kernel.advance``); Q tables and session state are the block's."""
    n_learners, n_sessions = len(plan.learners), len(block.state)
    pend, pend_r = np.zeros((n_learners, n_sessions, 3), np.int64), np.zeros((n_learners, n_sessions))
    learners = np.array(
        [(j, c.algorithm == "sarsa", c.convergence_steps) for j, c in zip(plan.learners, plan.configs)], np.int64
    )
    rates = np.array([(c.alpha, c.delta) for c in plan.configs], dtype=float)
    rules = np.array(list(plan.reactions), dtype=np.int64)
    reactions = np.array(list(plan.reactions.values()), dtype=np.int64).reshape(len(rules), plan.m**plan.n)
    profits = np.ascontiguousarray(plan.market.profits, dtype=float)
    trace = np.zeros((n_sessions, max_steps, plan.n) if block.trace is not None else (0, 0, 0), dtype=np.int64)
    learn = (block.q, block.best, block.greedy, block.stable, pend, pend_r)
    play = (block.state, block.converged, block.steps, trace)
    return learn, play, (learners, rates, rules, reactions, profits, plan.memory)


def _step(plan: Plan, block: _Block, active: np.ndarray, t: int) -> None:
    """One period for the active sessions: choose, react, settle from the table, update Q."""
    n, m = plan.n, plan.m
    base = active * block.n_states
    state = block.state[active]
    row = base + state
    actions = np.empty((n, len(active)), dtype=np.int64)
    for k, (j, cfg) in enumerate(zip(plan.learners, plan.configs)):
        u = block.uniforms[k, t % tabular.UNIFORM_BLOCK][active]
        if cfg.exploration == "boltzmann":
            actions[j] = tabular.choose(cfg, block.q[k, row], t, u)
        else:
            actions[j] = tabular.epsilon_greedy(cfg, block.greedy[k, row], m, t, u)  # greedy actions are cached
        if block.pending[k] is not None:  # SARSA: update last period's pair with the action just chosen
            s0, a0, r0, s1 = (x[active] for x in block.pending[k])
            target = r0 + cfg.delta * block.q[k].reshape(-1)[(base + s1) * m + actions[j]]
            _update(block, k, active, base + s0, a0, target, cfg)
    for j, reaction in plan.reactions.items():
        actions[j] = reaction[state % m**n]
    if block.trace is not None:
        block.trace.append((active.copy(), actions.copy()))
    joint = tabular.joint_index(actions.T, m)
    following = tabular.advance_state(state, joint, m, n, plan.memory)
    for k, (j, cfg) in enumerate(zip(plan.learners, plan.configs)):
        reward = plan.market.profits[j, joint]
        if cfg.algorithm == "q_learning":
            target = reward + cfg.delta * block.best[k, base + following]
            _update(block, k, active, row, actions[j], target, cfg)
        else:
            if block.pending[k] is None:
                size = len(block.state)
                block.pending[k] = (
                    np.zeros(size, np.int64),
                    np.zeros(size, np.int64),
                    np.zeros(size),
                    np.zeros(size, np.int64),
                )
            for store, value in zip(block.pending[k], (state, actions[j], reward, following)):
                store[active] = value
    block.state[active] = following


def _update(block: _Block, k: int, active, row, a, target, cfg) -> None:
    """Q(s,a) ← Q(s,a) + α (target − Q(s,a)), keeping each row's max and arg-max current."""
    flat, cell = block.q[k].reshape(-1), row * block.q.shape[2] + a  # 1-D view: one gather, one scatter
    new = tabular.td_step(cfg, flat[cell], target)
    flat[cell] = new
    best, greedy = block.best[k, row], block.greedy[k, row]
    rises = (new > best) | ((new == best) & (a < greedy))
    falls = (a == greedy) & (new < best)  # the arg-max lost value: look at the whole row again
    after = np.where(rises, a, greedy)
    top = np.where(rises, new, best)
    if falls.any():
        rows = block.q[k, row[falls]]
        after[falls] = rows.argmax(axis=1)
        top[falls] = rows.max(axis=1)
    block.best[k, row], block.greedy[k, row] = top, after
    block.stable[k, active] = np.where(after == greedy, block.stable[k, active] + 1, 0)


def _merge(blocks: list[_Block]) -> _Block:
    return _Block(
        q=np.concatenate([b.q for b in blocks], axis=1),
        best=np.concatenate([b.best for b in blocks], axis=1),
        greedy=np.concatenate([b.greedy for b in blocks], axis=1),
        state=np.concatenate([b.state for b in blocks]),
        stable=np.concatenate([b.stable for b in blocks], axis=1),
        steps=np.concatenate([b.steps for b in blocks]),
        converged=np.concatenate([b.converged for b in blocks]),
        uniforms=np.empty(0),
        pending=[None] * len(blocks[0].pending),
        engine=blocks[0].engine,
    )


_PROGRESS = None  # shared counters of a worker process: (session-steps done, sessions active) per worker


def _init_worker(shared) -> None:
    global _PROGRESS
    _PROGRESS = shared


def _worker(plan: Plan, seeds: list[int], max_steps: int, slot: int, engine: Engine) -> _Block:
    def report(done: int, active: int) -> None:
        _PROGRESS[2 * slot], _PROGRESS[2 * slot + 1] = done, active

    block = run_block(plan, seeds, max_steps, report, engine=engine)
    block.uniforms = np.empty(0)  # not needed by the parent; keeps the result small to send back
    return block


def run_sessions(
    plan: Plan,
    seeds: list[int],
    max_steps: int,
    workers: int = 1,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> _Block:
    """Run every session, split over ``workers`` processes; results depend neither on the worker count nor on
    the engine (``run_block``)."""
    engine = resolve_engine(plan, engine)  # here, so a missing numba is reported before any worker starts
    if workers <= 1 or len(seeds) < 2:
        return run_block(plan, seeds, max_steps, progress, engine=engine)
    import multiprocessing as mp
    import time

    ctx = mp.get_context("spawn")
    chunks = [list(c) for c in np.array_split(np.array(seeds), min(workers, len(seeds))) if len(c)]
    shared = ctx.Array("q", [0] * (2 * len(chunks)), lock=False)
    for k, chunk in enumerate(chunks):
        shared[2 * k + 1] = len(chunk)
    with ProcessPoolExecutor(len(chunks), mp_context=ctx, initializer=_init_worker, initargs=(shared,)) as pool:
        futures = [pool.submit(_worker, plan, [int(x) for x in c], max_steps, k, engine) for k, c in enumerate(chunks)]
        while not all(f.done() for f in futures):
            time.sleep(0.25)
            if progress is not None:
                progress(sum(shared[0::2]), sum(shared[1::2]))
        blocks = [f.result() for f in futures]
    if progress is not None:
        progress(sum(shared[0::2]), 0)
    return _merge(blocks)


@dataclass(frozen=True)
class ExperimentResult:
    """Per-session outcomes of an experiment and their collusion diagnostics."""

    plan: Plan
    seeds: list[int]
    converged: np.ndarray  # (S,)
    steps: np.ndarray  # (S,)
    cycle: Cycle  # greedy play after learning
    profit_gain: np.ndarray  # (S, n) Δ on the cycle's mean profit
    impulse: ImpulseResponse | None  # the first learner deviating
    best: BestResponse | None  # memory 1 only
    engine: Engine = "numpy"  # the engine that ran the sessions

    def to_pandas(self) -> pd.DataFrame:
        """One row per session (``sessions.csv``): seed, convergence, limit-cycle prices, profits and Δ, diagnostics."""
        return self.sessions_table()

    def write(self, folder: str | Path, force: bool = False) -> Path:
        """Write the experiment folder ``marketsim experiment`` writes (``write_experiment``)."""
        return write_experiment(self, folder, force)

    def sessions_table(self):
        """One row per session: convergence, cycle prices/profits/Δ per seller, diagnostics."""
        import pandas as pd

        table = {"session": np.arange(len(self.seeds)), "seed": self.seeds, "converged": self.converged}
        table["steps"] = self.steps
        table["cycle_length"] = self.cycle.length
        for j, name in enumerate(self.plan.names):
            table[f"{name}.price"] = self.cycle.prices[:, j]
            table[f"{name}.profit"] = self.cycle.profits[:, j]
            table[f"{name}.profit_gain"] = self.profit_gain[:, j]
        if self.best is not None:
            table["mutual_best_response"] = self.best.on_path.all(axis=1)
            table["no_profitable_one_shot_deviation"] = self.best.one_shot_on_path.all(axis=1)
            for k, j in enumerate(self.plan.learners):
                table[f"{self.plan.names[j]}.best_response_states"] = self.best.all_states[:, k]
        if self.impulse is not None:
            table["deviation_gain"] = self.impulse.immediate_gain
            table["punishment_depth"] = self.impulse.punishment_depth
            table["punishment_length"] = self.impulse.punishment_length
            table["returns_to_pre_deviation"] = self.impulse.returns
        return pd.DataFrame(table)

    def summary(self) -> dict:
        """The content of summary.json."""
        gain = self.profit_gain.mean(axis=1)
        steps = self.steps[self.converged]
        out = {
            "scenario": self.plan.scenario.name,
            "scenario_hash": self.plan.scenario.digest(),
            "sessions": len(self.seeds),
            "engine": self.engine,
            "converged_share": float(self.converged.mean()),
            "profit_gain": _describe(gain),
            "steps_to_convergence": _describe(steps) if steps.size else None,
            "prices": {
                **_describe(self.cycle.prices.mean(axis=1)),
                "by_seller": dict(zip(self.plan.names, self.cycle.prices.mean(axis=0).tolist())),
            },
            "benchmarks": {
                "nash": self.plan.benchmarks.nash.as_dict(),
                "monopoly": self.plan.benchmarks.monopoly.as_dict(),
            },
            "grid": self.plan.market.grids.tolist(),
            "provenance": self.plan.provenance,
        }
        if 0 < self.converged.sum() < len(self.seeds):  # the paper's measure beside the mixed one
            out["profit_gain_converged"] = _describe(gain[self.converged])
        if self.warnings():
            out["warnings"] = self.warnings()
        if self.best is not None:
            out["mutual_best_response_share"] = float(self.best.on_path.all(axis=1).mean())
            out["no_profitable_one_shot_deviation_share"] = float(self.best.one_shot_on_path.all(axis=1).mean())
            out["best_response_share_on_path"] = self.best.on_path.mean(axis=0).tolist()
        if self.impulse is not None:
            imp = self.impulse
            out["impulse_response"] = {
                "deviator": self.plan.names[imp.deviator],
                "immediate_gain": _describe(imp.immediate_gain),
                "punishment_depth": _describe(imp.punishment_depth),
                "punishment_length": _describe(imp.punishment_length),
                "punished_share": float((imp.punishment_depth > 1e-9).mean()),
                "returns_share": float(imp.returns.mean()),
            }
        return out

    def cap(self) -> int | None:
        """The step cap the unconverged sessions ran into (None when every session converged)."""
        return int(self.steps[~self.converged].max()) if not self.converged.all() else None

    def warnings(self) -> list[str]:
        """Sessions that never converged: their Δ is read at the step cap, which is not the paper's measure."""
        stuck, n = int((~self.converged).sum()), len(self.seeds)
        if not stuck:
            return []
        cap = f"within the cap of {self.cap():,} steps"
        who = (
            f"none of the {n} sessions converged {cap}"
            if stuck == n
            else f"{stuck} of {n} sessions did not converge {cap}"
        )
        where = "" if stuck == n else " (summary.json's profit_gain_converged has the converged sessions alone)"
        return [
            f"{who}: their Δ and prices are read from the greedy play at the cap, not at convergence as "
            f"Calvano et al. (2020) measure them{where}"
        ]


def _describe(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=float)
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()),
        "q05": float(q[0]),
        "q25": float(q[1]),
        "median": float(q[2]),
        "q75": float(q[3]),
        "q95": float(q[4]),
        "max": float(values.max()),
    }


def run_experiment(
    scenario: Scenario,
    sessions: int,
    workers: int = 1,
    max_steps: int | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> ExperimentResult:
    """Run ``sessions`` independent sessions (seeds scenario.seed + s) and diagnose the outcomes.

    A public entry point: without ``registry`` the installed plugins' (``default_registry()``); ``engine``
    "compiled" (numba) or "numpy", identical results (default: compiled when numba imports)."""
    plan = make_plan(scenario, registry if registry is not None else default_registry())
    seeds = list(seeding.seeds_of(scenario.seed, sessions))
    block = run_sessions(plan, seeds, max_steps or scenario.steps, workers, progress, engine)
    q = block.tables()
    cycle = collusion.limit_cycle(plan, q, block.state)
    gain = plan.benchmarks.profit_gain(cycle.profits)
    impulse = collusion.impulse_response(plan, q, cycle, plan.learners[0])
    best = collusion.best_responses(plan, q, cycle)
    return ExperimentResult(
        plan=plan,
        seeds=seeds,
        converged=block.converged,
        steps=block.steps,
        cycle=cycle,
        profit_gain=np.atleast_2d(gain),
        impulse=impulse,
        best=best,
        engine=block.engine,
    )


def write_experiment(result: ExperimentResult, out_dir: str | Path, force: bool = False) -> Path:
    """Write the scenario, sessions.csv, summary.json, histograms and the impulse-response plot, atomically."""
    with output_folder(out_dir, "experiment", force, [scenario_record(result.plan.scenario)]) as tmp:
        write_csv(result.sessions_table(), tmp / "sessions.csv")
        (tmp / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
        plot_experiment(result, tmp)
    return Path(out_dir)


def plot_experiment(result: ExperimentResult, out: Path) -> list[Path]:
    """Write histograms.png (Δ, prices, steps to convergence) and impulse_response.png; returns their paths."""
    from marketsim.market.plots import save  # matplotlib is only needed when writing

    return [save(fig, out / f"{name}.png") for name, fig in experiment_figures(result).items()]


def experiment_figures(result: ExperimentResult) -> dict:
    """The experiment's figures by file stem, each headed by the warnings of ``result.warnings()``."""
    figures = {"histograms": _histograms_figure(result)}
    if result.impulse is not None:
        figures["impulse_response"] = _impulse_figure(result)
    return figures


def _histograms_figure(result: ExperimentResult):
    """Δ and the limit-cycle price per session (unconverged sessions stacked apart), and steps to convergence."""
    from marketsim.market.plots import headline, not_enough_data, plt, plural

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    headline(fig, f"{result.plan.scenario.name}: {plural(len(result.seeds), 'session')}", result.warnings())
    gain, converged = result.profit_gain.mean(axis=1), result.converged
    mean = f"mean {gain.mean():.2f}" + (
        f"; converged only {gain[converged].mean():.2f}" if 0 < converged.sum() < len(gain) else ""
    )
    at = " at the step cap" if not converged.any() else ""
    if _split_histogram(axes[0], gain, converged, "Δ", "tab:blue"):
        axes[0].set(ylabel="sessions")
    axes[0].set(title=f"Profit gain Δ{at} ({mean})", xlabel="Δ (0 Nash, 1 monopoly)")
    bench = result.plan.benchmarks
    span = (float(np.mean(bench.nash.prices)), float(np.mean(bench.monopoly.prices)))
    if _split_histogram(axes[1], result.cycle.prices.mean(axis=1), converged, "price", "tab:orange", span):
        axes[1].axvline(np.mean(bench.nash.prices), color="k", ls=":", label="Nash")
        axes[1].axvline(np.mean(bench.monopoly.prices), color="k", ls="--", label="monopoly")
        axes[1].legend(fontsize="small")
    axes[1].set(title=f"Mean price on the limit cycle{at}", xlabel="price")
    steps = result.steps[converged]
    axes[2].set(title=f"Steps to convergence ({converged.mean():.0%} converged)", xlabel="steps")
    if not steps.size:
        not_enough_data(axes[2], f"none of the sessions converged\nwithin the cap of {result.cap():,} steps")
    else:
        _split_histogram(axes[2], steps, np.ones(len(steps), bool), "steps", "tab:green")
    return fig


def _split_histogram(
    ax, values: np.ndarray, converged: np.ndarray, what: str, color: str, span: tuple[float, float] | None = None
) -> bool:
    """A histogram of one value per session, converged sessions in ``color`` and the rest stacked in grey on top.

    The bins cover ``span`` too (the benchmarks a price is judged against), so the bars keep their width beside
    them. Fewer than two sessions get a "not enough data" panel that states the value; returns whether bars were
    drawn.
    """
    from matplotlib.ticker import MaxNLocator

    from marketsim.market.plots import not_enough_data, plural

    if len(values) < 2:
        detail = f"{plural(len(values), 'session')}" + (f": {what} = {values[0]:,.4g}" if len(values) else "")
        not_enough_data(ax, f"{detail}; a histogram needs at least 2")
        return False
    low, high = (
        (min(values.min(), *span), max(values.max(), *span))
        if span and np.isfinite(span).all()
        else (values.min(), values.max())
    )
    bins = np.histogram_bin_edges(values, bins=30, range=(low, high) if high > low else None)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if converged.all():
        ax.hist(values, bins, color=color, alpha=0.85)
        return True
    groups = [
        (values[mask], shade, f"{label} ({int(mask.sum())})")
        for mask, shade, label in ((converged, color, "converged"), (~converged, "0.7", "not converged, at the cap"))
        if mask.any()
    ]
    data, colors, labels = zip(*groups)
    ax.hist(list(data), bins, stacked=True, color=list(colors), alpha=0.85, label=list(labels))
    ax.legend(fontsize="small")
    return True


def _impulse_figure(result: ExperimentResult):
    """Mean prices (and IQR) around a one-period deviation to the static best response by the first learner."""
    from marketsim.market.plots import headline, legend_below, plt

    imp, names, bench = result.impulse, result.plan.names, result.plan.benchmarks
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    title = f"{result.plan.scenario.name}: deviation to the static best response at period 0"
    headline(fig, f"{title} (mean, IQR over {len(imp.prices)} sessions)", result.warnings())
    for j, name in enumerate(names):
        series = imp.prices[:, j, :]
        label = f"{name} (deviates)" if j == imp.deviator else name
        ax.plot(imp.periods, series.mean(axis=0), marker="o", ms=3, label=label)
        ax.fill_between(imp.periods, *np.quantile(series, [0.25, 0.75], axis=0), alpha=0.15)
    ax.axhline(np.mean(bench.nash.prices), color="k", ls=":", lw=0.9, label="Nash")
    ax.axhline(np.mean(bench.monopoly.prices), color="k", ls="--", lw=0.9, label="monopoly")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel="period relative to the deviation", ylabel="price")
    ax.grid(alpha=0.3)
    legend_below(fig, len(names) + 2)
    return fig
