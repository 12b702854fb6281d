"""Run one scenario to the end and write its run folder (the public "run one market" function).

A run folder holds the resolved scenario and its hash, ``summary.json``, ``steps.csv`` and plots.
It is written by ``marketsim.outputs``: to a temporary sibling moved into place, never over a user's folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from marketsim.config.scenario import Scenario
from marketsim.exceptions import StopRun
from marketsim.market.economics import Benchmarks, hhi
from marketsim.market.model import MarketModel, StrategyError
from marketsim.outputs import output_folder
from marketsim.registry import Registry
from marketsim.strategy import Reporting


@dataclass(frozen=True)
class SellerSummary:
    """One seller's results over the run (means are per step)."""

    name: str
    strategy: str
    mean_price: float
    mean_units: float
    share: float
    profit: float
    mean_profit: float
    profit_gain: float
    report: dict = field(default_factory=dict)  # the strategy's own metrics (``Reporting``), if it has any


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced: per-step records, per-seller summaries and the market's benchmarks."""

    scenario: Scenario
    benchmarks: Benchmarks
    steps: pd.DataFrame
    sellers: list[SellerSummary]
    consumer_surplus: float  # mean per step
    hhi: float  # of total units over the run
    converged: bool | None = None  # None when no seller reports convergence (no learners)
    observers: dict[str, dict] = field(default_factory=dict)  # each observer's closing metrics
    stopped: str | None = None  # why a strategy ended the run early (``StopRun``); None when it ran its course
    provenance: dict[str, dict] = field(default_factory=dict)  # kind → name → the distribution that provided it

    def summary(self) -> dict:
        """The content of summary.json."""
        return {
            "scenario": self.scenario.name,
            "scenario_hash": self.scenario.digest(),
            "seed": self.scenario.seed,
            "steps": self.scenario.steps,
            "steps_run": len(self.steps),
            "converged": self.converged,
            "demand_mode": self.scenario.demand.mode,
            "benchmarks": {"nash": self.benchmarks.nash.as_dict(), "monopoly": self.benchmarks.monopoly.as_dict()},
            "sellers": [_seller_dict(s) for s in self.sellers],
            "consumer_surplus": self.consumer_surplus,
            "hhi": self.hhi,
            "buyers_per_step": float(self.steps["buyers"].mean()),
            "observers": self.observers,
            "provenance": self.provenance,
            **({"stopped": self.stopped} if self.stopped is not None else {}),
        }


def _seller_dict(seller: SellerSummary) -> dict:
    """A seller's summary as JSON data; the ``report`` key only for strategies that report metrics."""
    d = _jsonable(asdict(seller))
    if not d["report"]:
        del d["report"]
    return d


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def simulate(
    scenario: Scenario,
    registry: Registry | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Build the model, step it ``scenario.steps`` times and summarise; ``progress(k)`` after each step."""
    model = MarketModel(scenario, registry)
    stopped = None
    try:
        while model.running and model.steps < scenario.steps:
            model.step()
            if progress is not None:
                progress(model.steps)
    except StrategyError as exc:  # a strategy may end the run cleanly (StopRun); anything else is a failure
        if not isinstance(exc.error, StopRun):
            raise
        stopped = f"seller {exc.seller!r} ended the run at step {exc.step}: {exc.error}"
    steps = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    return replace(summarise(model, steps), stopped=stopped)


def summarise(model: MarketModel, steps: pd.DataFrame) -> RunResult:
    """Per-seller means, profit gain against the benchmarks, surplus and concentration."""
    names = [s.name for s in model.sellers]
    mean_profit = np.array([steps[f"{n}.profit"].mean() for n in names])
    gains = model.benchmarks.profit_gain(mean_profit)
    shoppers = float(steps["shoppers"].sum())
    sellers = [
        SellerSummary(
            name=n,
            strategy=s.strategy.name,
            mean_price=float(steps[f"{n}.price"].mean()),
            mean_units=float(steps[f"{n}.units"].mean()),
            share=float(steps[f"{n}.units"].sum() / shoppers) if shoppers else 0.0,
            profit=float(steps[f"{n}.profit"].sum()),
            mean_profit=float(mean_profit[i]),
            profit_gain=float(gains[i]),
            report=dict(s.strategy.report()) if isinstance(s.strategy, Reporting) else {},
        )
        for i, (n, s) in enumerate(zip(names, model.sellers))
    ]
    total_units = [steps[f"{n}.units"].sum() for n in names]
    converged = (not model.running) if model.learners else None
    return RunResult(
        model.config,
        model.benchmarks,
        steps,
        sellers,
        float(steps["consumer_surplus"].mean()),
        hhi(total_units),
        converged,
        model.finish_observers(),
        provenance=model.registry.scenario_provenance(model.config),
    )


def write_run(result: RunResult, out_dir: str | Path, force: bool = False) -> Path:
    """Write the run folder atomically (see ``marketsim.outputs``): scenario, its hash, summary, steps, plots."""
    with output_folder(out_dir, "run", force) as tmp:
        scenario = result.scenario.model_dump(mode="json", by_alias=True, exclude_defaults=False)
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
        (tmp / "scenario.sha256").write_text(result.scenario.digest() + "\n")
        (tmp / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
        result.steps.to_csv(tmp / "steps.csv", index=False)
        plot_run(result, tmp)
    return Path(out_dir)


def plot_run(result: RunResult, out: Path) -> list[Path]:
    """Write prices.png, shares.png and profits.png into ``out``; returns their paths."""
    from marketsim.market.plots import plt, smooth  # matplotlib is only needed when writing

    steps = result.steps
    names = [s.name for s in result.sellers]
    window = max(1, len(steps) // 50)
    written = []
    for metric, title, ylabel in (
        ("price", "Posted prices", "price"),
        ("share", f"Market shares (rolling mean over {window} steps)", "share of shoppers"),
        ("profit", f"Profit per step (rolling mean over {window} steps)", "profit"),
    ):
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        for i, name in enumerate(names):
            series = steps[f"{name}.{metric}"]
            ax.plot(steps["step"], series if metric == "price" else smooth(series, window), label=name, lw=1.3)
            if metric == "price":
                color = ax.lines[-1].get_color()
                ax.axhline(result.benchmarks.nash.prices[i], color=color, ls=":", lw=0.9)
                ax.axhline(result.benchmarks.monopoly.prices[i], color=color, ls="--", lw=0.9)
        if metric == "price":
            ax.plot([], [], color="grey", ls=":", label="Nash (dotted)")
            ax.plot([], [], color="grey", ls="--", label="monopoly (dashed)")
        ax.set(title=f"{result.scenario.name}: {title}", xlabel="step", ylabel=ylabel)
        ax.legend(loc="best", fontsize="small", ncol=2)
        ax.grid(alpha=0.3)
        path = out / f"{metric}s.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
