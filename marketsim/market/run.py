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

from marketsim.config.scenario import Scenario
from marketsim.exceptions import StopRun
from marketsim.market.economics import Benchmarks, hhi
from marketsim.market.model import MarketModel, StrategyError
from marketsim.outputs import output_folder, scenario_record
from marketsim.registry import Registry
from marketsim.strategy import Reporting
from marketsim.tables import write_csv


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

    def to_pandas(self) -> pd.DataFrame:
        """One row per step (``steps.csv``): each seller's price, units, revenue and profit, and the market's."""
        return self.steps

    def sellers_frame(self) -> pd.DataFrame:
        """One row per seller: its means beside the market's Nash and monopoly prices (the CLI's summary table)."""
        rows = [
            {
                "seller": s.name,
                "strategy": s.strategy,
                "mean_price": s.mean_price,
                "nash_price": float(self.benchmarks.nash.prices[i]),
                "monopoly_price": float(self.benchmarks.monopoly.prices[i]),
                "share": s.share,
                "mean_units": s.mean_units,
                "mean_profit": s.mean_profit,
                "profit": s.profit,
                "profit_gain": s.profit_gain,
            }
            for i, s in enumerate(self.sellers)
        ]
        return pd.DataFrame(rows)

    def write(self, folder: str | Path, force: bool = False) -> Path:
        """Write the run folder ``marketsim run`` writes (``write_run``)."""
        return write_run(self, folder, force)

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
            **({"warnings": self.warnings()} if self.warnings() else {}),
        }

    def warnings(self) -> list[str]:
        """What a reader of the numbers must know: learners that never converged, a run a strategy cut short."""
        found = []
        if self.converged is False:
            found.append(
                f"the learners had not converged when the run ended ({len(self.steps):,} steps): prices and Δ "
                "are averages over learning, not over converged play"
            )
        if self.stopped is not None:
            found.append(f"stopped early after {len(self.steps):,} of {self.scenario.steps:,} steps: {self.stopped}")
        return found


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
    with output_folder(out_dir, "run", force, [scenario_record(result.scenario)]) as tmp:
        (tmp / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
        write_csv(result.steps, tmp / "steps.csv")
        plot_run(result, tmp)
    return Path(out_dir)


def plot_run(result: RunResult, out: Path) -> list[Path]:
    """Write prices.png, shares.png and profits.png into ``out``; returns their paths."""
    from marketsim.market.plots import save  # matplotlib is only needed when writing

    return [save(fig, out / f"{name}.png") for name, fig in run_figures(result).items()]


ZOOM_FROM = 200  # a run at least this long gets a second price panel with its last ZOOM_STEPS steps
ZOOM_STEPS = 60


def run_figures(result: RunResult) -> dict:
    """The run's figures by file stem (prices, shares, profits), each headed by the run's warnings."""
    window = max(1, len(result.steps) // 50)
    return {
        "prices": _prices_figure(result),
        "shares": _series_figure(result, "share", f"Market shares (rolling mean over {window} steps)", window),
        "profits": _series_figure(result, "profit", f"Profit per step (rolling mean over {window} steps)", window),
    }


def _prices_figure(result: RunResult):
    """Posted prices with the Nash and monopoly prices; long runs get a zoom on the last steps, where cycles show."""
    from marketsim.market.plots import headline, legend_below, line_style, not_enough_data, plt, plural

    steps, names = result.steps, [s.name for s in result.sellers]
    zoom = len(steps) >= ZOOM_FROM
    fig, axes = plt.subplots(2 if zoom else 1, 1, figsize=(10, 7 if zoom else 4.5), layout="constrained", squeeze=False)
    headline(fig, f"{result.scenario.name}: posted prices", result.warnings())
    if len(steps) < 2:
        not_enough_data(axes[0, 0], f"{plural(len(steps), 'step')} recorded; a price path needs at least 2")
        return fig
    parts = [(axes[0, 0], steps, "the whole run")]
    if zoom:
        parts.append((axes[1, 0], steps.iloc[-ZOOM_STEPS:], f"zoom: the last {ZOOM_STEPS} steps"))
    for k, (ax, part, title) in enumerate(parts):
        for i, name in enumerate(names):
            ax.plot(part["step"], part[f"{name}.price"], label=name if k == 0 else None, **line_style(i, len(part)))
        _benchmark_lines(ax, result, [line.get_color() for line in ax.lines], legend=k == 0)
        ax.set(title=title, xlabel="step", ylabel="price")
        ax.grid(alpha=0.3)
    legend_below(fig, len(axes[0, 0].get_legend_handles_labels()[0]))
    return fig


def _benchmark_lines(ax, result: RunResult, colors: list, legend: bool) -> None:
    """Nash (dotted) and monopoly (dashed) prices: one black line when all sellers share it, else one per seller."""
    names = [s.name for s in result.sellers]
    for kind, ls, prices in (
        ("Nash", ":", np.asarray(result.benchmarks.nash.prices, float)),
        ("monopoly", "--", np.asarray(result.benchmarks.monopoly.prices, float)),
    ):
        if not np.isfinite(prices).all():
            continue
        if np.allclose(prices, prices[0], rtol=1e-9, atol=1e-12):
            ax.axhline(prices[0], color="black", ls=ls, lw=1.1, label=f"{kind} price" if legend else None)
            continue
        for name, price, color in zip(names, prices, colors):
            ax.axhline(price, color=color, ls=ls, lw=1.1, label=f"{kind} price of {name}" if legend else None)


def _series_figure(result: RunResult, metric: str, title: str, window: int):
    """One line per seller of ``metric`` (shares or profits), smoothed over ``window`` steps."""
    from marketsim.market.plots import headline, legend_below, line_style, not_enough_data, plt, plural, smooth

    steps = result.steps
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    headline(fig, f"{result.scenario.name}: {title}", result.warnings())
    if len(steps) < 2:
        not_enough_data(ax, f"{plural(len(steps), 'step')} recorded; a curve needs at least 2")
        return fig
    for i, seller in enumerate(result.sellers):
        series = smooth(steps[f"{seller.name}.{metric}"], window)
        ax.plot(steps["step"], series, label=seller.name, **line_style(i, len(steps)))
    ax.set(xlabel="step", ylabel="share of shoppers" if metric == "share" else metric)
    ax.grid(alpha=0.3)
    legend_below(fig, len(result.sellers))
    return fig
