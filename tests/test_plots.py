"""Plots never mislead: too little data says so, warnings head the figure, lines and scales stay readable (#16).

The figures are inspected as matplotlib objects (texts, lines, colour limits), never as pixels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from marketsim.config.validate import load_scenario
from marketsim.learning.experiment import experiment_figures, run_experiment
from marketsim.learning.plots import curve_figure
from marketsim.market import run as run_module
from marketsim.market.plots import NOT_ENOUGH_DATA, WARNING_COLOR, figure_texts, line_style, plt
from marketsim.market.run import run_figures, simulate, write_run
from marketsim.meta.evaluate import regret_figure
from marketsim.meta.train import meta_curve_figure
from marketsim.tournament.matches import Fault, MatchResult, SeatResult
from marketsim.tournament.plots import (
    FORFEIT_NOTE,
    featured_match,
    forfeited_cells,
    payoff_heatmap_figure,
    price_paths_figure,
)
from marketsim.tournament.results import match_rows, payoff_matrix

SCENARIOS = Path(__file__).parents[1] / "scenarios"


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test's figures are closed, so none piles up across the suite."""
    yield
    plt.close("all")


def says_not_enough_data(fig) -> bool:
    return any(NOT_ENOUGH_DATA in text for text in figure_texts(fig))


def texts(fig) -> str:
    return "\n".join(figure_texts(fig))


# --- a run ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart_run():
    """Five steps of the quickstart: four sellers, two of them undercutters that post the same prices."""
    return simulate(load_scenario(SCENARIOS / "quickstart.yaml").with_overrides(steps=5))


def test_a_one_step_run_says_not_enough_data_in_every_plot() -> None:
    result = simulate(load_scenario(SCENARIOS / "calvano2020.yaml").with_overrides(steps=1))
    figures = run_figures(result)
    assert set(figures) == {"prices", "shares", "profits"}
    for fig in figures.values():
        assert says_not_enough_data(fig) and "1 step recorded" in texts(fig)
        assert all(not ax.lines for ax in fig.axes)


def test_price_lines_stay_apart_and_the_legend_sits_below_the_data(quickstart_run) -> None:
    fig = run_figures(quickstart_run)["prices"]
    (ax,) = fig.axes
    assert not says_not_enough_data(fig)
    assert ax.get_legend() is None and len(fig.legends) == 1  # a figure legend, outside the panel
    sellers = [line for line in ax.lines if line.get_label() in {"steady", "cutter", "rival", "oracle"}]
    assert len(sellers) == 4
    assert len({line.get_marker() for line in sellers}) == 4  # one line on top of another still shows
    assert len({line.get_linewidth() for line in sellers}) == 4
    widths = [line_style(i, 10)["lw"] for i in range(3)]
    assert widths == sorted(widths, reverse=True)  # earlier lines wider: a line drawn on top leaves an outline


def test_reference_lines_have_the_colour_their_legend_entry_shows(quickstart_run) -> None:
    fig = run_figures(quickstart_run)["prices"]
    shown = {text.get_text(): handle for text, handle in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    (ax,) = fig.axes
    for kind in ("Nash price", "monopoly price"):  # symmetric sellers share one benchmark: one black line
        (line,) = [line for line in ax.lines if line.get_label() == kind]
        assert mcolors.same_color(line.get_color(), "black")
        assert mcolors.same_color(shown[kind].get_color(), line.get_color())


def test_asymmetric_benchmarks_get_one_line_per_seller_in_its_colour() -> None:
    fake = SimpleNamespace(
        sellers=[SimpleNamespace(name="a"), SimpleNamespace(name="b")],
        benchmarks=SimpleNamespace(
            nash=SimpleNamespace(prices=[1.0, 1.2]), monopoly=SimpleNamespace(prices=[2.0, 2.0])
        ),
    )
    fig, ax = plt.subplots()
    run_module._benchmark_lines(ax, fake, ["tab:blue", "tab:orange"], legend=True)
    by_label = {line.get_label(): line for line in ax.lines}
    assert mcolors.same_color(by_label["Nash price of a"].get_color(), "tab:blue")
    assert mcolors.same_color(by_label["Nash price of b"].get_color(), "tab:orange")
    assert mcolors.same_color(by_label["monopoly price"].get_color(), "black")


def test_a_long_run_gets_a_zoom_on_its_last_steps(quickstart_run, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "ZOOM_FROM", 4)
    monkeypatch.setattr(run_module, "ZOOM_STEPS", 3)
    whole, zoom = run_figures(quickstart_run)["prices"].axes
    assert "zoom: the last 3 steps" in zoom.get_title()
    assert list(zoom.lines[0].get_xdata()) == [2, 3, 4] and len(whole.lines[0].get_xdata()) == 5


def test_unconverged_learners_warn_in_the_summary_and_on_every_plot() -> None:
    result = simulate(load_scenario(SCENARIOS / "calvano2020.yaml").with_overrides(steps=3))
    assert result.converged is False
    (warning,) = result.summary()["warnings"]
    assert "had not converged" in warning and "not over converged play" in warning
    for fig in run_figures(result).values():
        assert warning[:40] in texts(fig).replace("\n", " ")
        assert mcolors.same_color(fig._suptitle.get_color(), WARNING_COLOR)
    calm = dataclasses.replace(result, converged=None)  # no learners: nothing to warn about
    assert "warnings" not in calm.summary()


def test_run_csv_has_whole_counts_and_no_float_noise(quickstart_run, tmp_path: Path) -> None:
    lines = (write_run(quickstart_run, tmp_path / "run") / "steps.csv").read_text().splitlines()
    header, first = lines[0].split(","), dict(zip(lines[0].split(","), lines[1].split(",")))
    assert first["shoppers"] == "20000" and first["steady.units"] == "1509"  # counts, not 20000.0
    assert first["steady.revenue"] == "2716.2"  # 1509 × 1.8, not 2716.2000000000003
    assert all(len(cell.replace("-", "").replace(".", "").lstrip("0")) <= 15 for cell in first.values()), header


# --- an experiment -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stuck_experiment():
    """Two Calvano sessions stopped at a 50-step cap: neither converges."""
    return run_experiment(load_scenario(SCENARIOS / "calvano2020.yaml"), 2, max_steps=50)


def test_no_converged_session_warns_that_delta_is_not_the_papers_measure(stuck_experiment) -> None:
    summary = stuck_experiment.summary()
    (warning,) = summary["warnings"]
    assert "none of the 2 sessions converged within the cap of 50 steps" in warning and "Calvano" in warning
    assert "profit_gain_converged" not in summary
    histograms = experiment_figures(stuck_experiment)["histograms"]
    assert "none of the 2 sessions converged" in texts(histograms).replace("\n", " ")
    steps_panel = histograms.axes[2]
    assert not steps_panel.patches and NOT_ENOUGH_DATA in "".join(t.get_text() for t in steps_panel.texts)
    labels = [t.get_text() for t in histograms.axes[0].get_legend().get_texts()]
    assert labels == ["not converged, at the cap (2)"]


def test_partly_converged_sessions_are_told_apart(stuck_experiment) -> None:
    mixed = dataclasses.replace(stuck_experiment, converged=np.array([True, False]), steps=np.array([30, 50]))
    summary = mixed.summary()
    assert "1 of 2 sessions did not converge within the cap of 50 steps" in summary["warnings"][0]
    assert summary["profit_gain_converged"]["mean"] == pytest.approx(mixed.profit_gain[0].mean())
    labels = [t.get_text() for t in experiment_figures(mixed)["histograms"].axes[0].get_legend().get_texts()]
    assert labels == ["converged (1)", "not converged, at the cap (1)"]
    done = dataclasses.replace(stuck_experiment, converged=np.array([True, True]), steps=np.array([30, 40]))
    assert "warnings" not in done.summary() and done.warnings() == []


def test_a_single_session_is_not_drawn_as_a_histogram(stuck_experiment) -> None:
    one = dataclasses.replace(
        stuck_experiment,
        seeds=stuck_experiment.seeds[:1],
        converged=stuck_experiment.converged[:1],
        steps=stuck_experiment.steps[:1],
        profit_gain=stuck_experiment.profit_gain[:1],
        cycle=dataclasses.replace(stuck_experiment.cycle, prices=stuck_experiment.cycle.prices[:1]),
    )
    fig = experiment_figures(one)["histograms"]
    assert all(NOT_ENOUGH_DATA in "".join(t.get_text() for t in ax.texts) for ax in fig.axes)
    assert "1 session: Δ = " in texts(fig)


# --- training, meta-training, meta-evaluation ----------------------------------------------------------------


def test_a_one_point_training_curve_says_not_enough_data() -> None:
    curve = pd.DataFrame({"step": [1], "profit": [0.3], "moving_average": [0.3], "price": [1.5], "S": [np.nan]})
    fig = curve_figure(curve, "one step")
    assert says_not_enough_data(fig) and "1 training step logged" in texts(fig) and not fig.axes[0].lines
    two = pd.concat([curve, curve.assign(step=2)], ignore_index=True)
    assert not says_not_enough_data(curve_figure(two, "two steps"))


def test_a_one_row_meta_training_curve_shows_its_values_instead_of_empty_panels() -> None:
    row = {"iteration": 50, "seconds": 22.9, "batch_profit": 130.81, "val_regret_H": 2432.01}
    fig = meta_curve_figure(pd.DataFrame([row]), "rl2 on a family")
    assert len(fig.axes) == 1 and says_not_enough_data(fig)
    shown = texts(fig)
    assert "1 logged iteration (iteration 50)" in shown and "batch_profit 130.8" in shown and "seconds" not in shown
    assert says_not_enough_data(meta_curve_figure(pd.DataFrame([]), "nothing logged"))
    two = meta_curve_figure(pd.DataFrame([row, {**row, "iteration": 100}]), "two rows")
    assert len(two.axes) == 2 and not says_not_enough_data(two)


def test_a_one_step_meta_evaluation_says_not_enough_data() -> None:
    result = SimpleNamespace(family="meta", tasks=[0, 1], split="test", horizon=1)
    fig = regret_figure(result)
    assert all(NOT_ENOUGH_DATA in "".join(t.get_text() for t in ax.texts) for ax in fig.axes)


# --- a tournament --------------------------------------------------------------------------------------------


def finished(index: int, seats: tuple[str, ...], profits: tuple[float, ...], path_length: int = 3) -> MatchResult:
    """A finished match with the given per-seat profits and price paths of ``path_length`` points."""
    key = f"h|round_robin|{','.join(seats)}|r0"
    seat_results = tuple(SeatResult(i, n, n.upper(), p, 1.5, 0.25, 0.5) for i, (n, p) in enumerate(zip(seats, profits)))
    prices = tuple(tuple(1.0 + 0.1 * t + i for t in range(path_length)) for i in range(len(seats)))
    return MatchResult(key, index, 100 + index, seats, "ok", seat_results, 1.0, None, prices, 0.01)


def forfeited(index: int, seats: tuple[str, str], culprit: int) -> MatchResult:
    """A match stopped by the fault of seat ``culprit``."""
    key = f"h|round_robin|{','.join(seats)}|r0"
    fault = Fault(key, "exception", seats[culprit], culprit, 3, "ValueError: boom")
    return MatchResult(key, index, 100 + index, seats, "fault", fault=fault)


def test_the_price_paths_show_the_leaderboards_top_two() -> None:
    results = [
        finished(0, ("fixed", "fixed"), (0.3, 0.3)),
        finished(1, ("fixed", "best"), (0.2, 0.5)),
        finished(2, ("second", "best"), (0.4, 0.45)),
        finished(3, ("best", "second"), (0.45, 0.4)),
    ]
    chosen, why = featured_match(results, ["best", "second", "fixed"])
    assert chosen.seats == ("best", "second") and why == "leaderboard #1 best against #2 second"
    asked, reason = featured_match(results, ["best", "second", "fixed"], match_key=results[0].key)
    assert asked is results[0] and reason == "the match asked for"
    never_met, _ = featured_match(results[:2], ["best", "second", "fixed"])  # the top two never met: #1 vs #3
    assert never_met.seats == ("fixed", "best")
    assert featured_match([], ["best"]) == (None, "")
    fig = price_paths_figure(chosen, why)
    assert "leaderboard #1 best against #2 second" in fig.axes[0].get_title()
    assert {line.get_label() for line in fig.axes[0].lines} == {"seat 0: best", "seat 1: second"}


def test_a_price_path_of_one_point_says_not_enough_data() -> None:
    fig = price_paths_figure(finished(0, ("a", "b"), (0.3, 0.2), path_length=1))
    assert says_not_enough_data(fig) and not fig.axes[0].lines


def test_a_forfeited_cell_does_not_squash_the_heatmaps_colour_scale() -> None:
    results = [
        finished(0, ("a", "b"), (0.30, 0.34)),
        finished(1, ("b", "a"), (0.36, 0.31)),
        finished(2, ("a", "a"), (0.32, 0.32)),
        finished(3, ("b", "b"), (0.33, 0.33)),
        forfeited(4, ("a", "crash"), culprit=1),
        forfeited(5, ("crash", "b"), culprit=0),
    ]
    rows = match_rows(results, "forfeit")
    matrix = payoff_matrix(rows)
    assert forfeited_cells(rows) == {("crash", "a"), ("crash", "b")}
    fig = payoff_heatmap_figure(matrix, forfeited_cells(rows))
    (image,) = fig.axes[0].images
    clean = matrix.loc[["a", "b"], ["a", "b"]].to_numpy()
    assert image.get_clim() == pytest.approx((clean.min(), clean.max()))  # not stretched down to the forfeits' 0
    assert FORFEIT_NOTE in texts(fig)
    assert sum(patch.get_hatch() == "///" for patch in fig.axes[0].patches) == 2
    assert {t.get_text() for t in fig.axes[0].texts} >= {"0", "0.305", "0.35"}  # forfeit cells keep their value
    plain = payoff_heatmap_figure(payoff_matrix(match_rows(results[:4], "forfeit")))
    assert FORFEIT_NOTE not in texts(plain)
