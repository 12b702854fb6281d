"""`marketsim sweep`: points keyed and seeded independently of order and workers, the same results on every backend
and after `kill -9` and `--resume`, sweeps over a tournament and a task family, and the results folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from markets import duopoly_dict
from marketsim.cli.app import main
from marketsim.config.sweep import load_sweep
from marketsim.sweep.points import point_key, schedule

ROOT = Path(__file__).resolve().parents[1]
SMALL = """\
name: small
base: q.yaml
seed: 3
repetitions: 2
axes:
  consumers.mu: [0.1, 0.25]
  sellers[0].params.price: {low: 1.5, high: 2.5, num: 3}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small duopoly (a fixed price against an undercutter, expected demand) as q.yaml, the sweep as s.yaml."""
    market = duopoly_dict({"strategy": "fixed_price", "params": {"price": 1.8}}, {"strategy": "undercut"}, steps=20)
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(market, sort_keys=False))
    (tmp_path / "s.yaml").write_text(SMALL)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sweep(folder: Path, args: list[str], name: str) -> pd.DataFrame:
    assert main(["sweep", "s.yaml", "--quiet", "--out", name, *args]) == 0
    return pd.read_csv(folder / name / "points.csv")


def test_a_point_s_key_and_seed_do_not_depend_on_axis_order_design_order_or_workers(folder: Path) -> None:
    tasks = schedule(load_sweep("s.yaml"))
    swapped = SMALL.replace(
        "  consumers.mu: [0.1, 0.25]\n  sellers[0].params.price: {low: 1.5, high: 2.5, num: 3}\n",
        "  sellers[0].params.price: {low: 1.5, high: 2.5, num: 3}\n  consumers.mu: [0.1, 0.25]\n",
    )
    (folder / "swapped.yaml").write_text(swapped)
    other = load_sweep("swapped.yaml")
    reordered = schedule(other, list(reversed(other.spec.points())))
    assert {t.key: t.seed for t in tasks} == {t.key: t.seed for t in reordered}
    assert len({t.key for t in tasks}) == len({t.seed for t in tasks}) == 6
    assert point_key({"a": 1, "b": 2.0}) == point_key({"b": 2.0, "a": 1}) != point_key({"a": 1, "b": 2.5})


def test_serial_and_process_backends_give_the_same_points(folder: Path) -> None:
    serial = _sweep(folder, ["--backend", "serial"], "serial")
    pooled = _sweep(folder, ["--backend", "process", "--workers", "2"], "pooled")
    pd.testing.assert_frame_equal(serial, pooled)
    assert (folder / "serial" / "points.csv").read_bytes() == (folder / "pooled" / "points.csv").read_bytes()
    assert list(serial["status"]) == ["ok"] * 6 and serial["delta_n"].eq(2).all()
    assert (serial["delta_ci_low"] <= serial["delta"]).all() and (serial["delta"] <= serial["delta_ci_high"]).all()


@pytest.mark.slow  # a local Ray cluster starts (about 15 s)
def test_the_ray_backend_gives_the_same_points(folder: Path) -> None:
    pytest.importorskip("ray")
    serial = _sweep(folder, ["--backend", "serial"], "serial")
    ray = _sweep(folder, ["--backend", "ray", "--workers", "2"], "ray")
    pd.testing.assert_frame_equal(serial, ray)


def test_the_results_folder_has_the_table_plots_summary_and_report(folder: Path) -> None:
    frame = _sweep(folder, ["--backend", "serial"], "out")
    out = folder / "out"
    assert {"consumers.mu", "sellers[0].params.price", "delta", "delta_ci_low", "mean_price_ci_high"} <= set(frame)
    assert frame[["consumers.mu", "sellers[0].params.price"]].values.tolist() == [
        [0.1, 1.5], [0.1, 2.0], [0.1, 2.5], [0.25, 1.5], [0.25, 2.0], [0.25, 2.5],
    ]  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["digest"] == load_sweep("s.yaml").digest() and summary["points"] == summary["ok"] == 6
    points = summary["provenance"]["points"]
    assert [p["key"] for p in points] == list(frame["key"]) and all(len(p["seeds"]) == 2 for p in points)
    assert all(p["scenario"] for p in points) and summary["provenance"]["base"]["strategies"]
    assert (out / "sweep_delta.png").stat().st_size > 10_000 and (out / "sweep_mean_price.png").is_file()
    page = (out / "report.html").read_text()
    assert "Sweep small" in page and "sweep_delta.png" in page and "Best points" in page
    assert (out / "sweep.yaml").is_file() and (out / "sweep.sha256").read_text().startswith(summary["digest"][:12])


def test_one_axis_draws_lines_with_bands_and_three_axes_facets(folder: Path) -> None:
    (folder / "s.yaml").write_text(
        SMALL.replace("  consumers.mu: [0.1, 0.25]\n", "").replace("repetitions: 2", "repetitions: 3")
    )
    frame = _sweep(folder, ["--backend", "serial"], "one")
    assert len(frame) == 3 and (folder / "one" / "sweep_delta.png").is_file()
    three = SMALL + "  consumers.arrival: [0.5, 1.0]\n"
    (folder / "s.yaml").write_text(three.replace("repetitions: 2", "repetitions: 1"))
    frame = _sweep(folder, ["--backend", "serial"], "three")
    assert len(frame) == 12 and frame["delta_ci_low"].isna().all()  # one repetition: no interval
    assert (folder / "three" / "sweep_delta.png").is_file()


def test_a_resumed_store_of_another_sweep_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sweep(folder, ["--backend", "serial"], "out")
    assert main(["sweep", "s.yaml", "--quiet", "--out", "out"]) == 2  # exists: needs --resume or --force
    assert "pass --resume" in capsys.readouterr().err
    (folder / "s.yaml").write_text(SMALL.replace("seed: 3", "seed: 4"))
    assert main(["sweep", "s.yaml", "--quiet", "--out", "out", "--resume"]) == 2
    assert "a different sweep" in capsys.readouterr().err


def _stored(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # three processes, two of them killed mid-way (about 30 s)
def test_killed_twice_with_kill_minus_nine_and_resumed_equals_an_uninterrupted_sweep(folder: Path) -> None:
    text = (folder / "q.yaml").read_text().replace("steps: 20", "steps: 4000")
    (folder / "q.yaml").write_text(text)
    whole = _sweep(folder, ["--backend", "serial"], "whole")
    command = [sys.executable, "-m", "marketsim", "sweep", "s.yaml", "--quiet", "--backend", "process",
               "--workers", "2", "--out", "killed"]  # fmt: skip
    store = folder / "killed" / "points.sqlite"
    for kill in (1, 3):  # killed once the store holds a point, then again later
        resume = ["--resume"] if store.exists() else []
        process = subprocess.Popen(command + resume, start_new_session=True)
        deadline = time.monotonic() + 120
        while _stored(store) < kill and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert 1 <= _stored(store) < 6
    assert subprocess.run(command + ["--resume"], check=False).returncode == 0
    pd.testing.assert_frame_equal(whole, pd.read_csv(folder / "killed" / "points.csv"))


def test_a_sweep_over_a_tournament_runs_its_matches_at_each_point(folder: Path) -> None:
    tournament = """\
name: tiny
seed: 5
market: q.yaml
entrants:
  - {name: steady, strategy: fixed_price, params: {price: 1.8}}
  - {name: cutter, strategy: undercut, params: {step: 0.05, floor_margin: 0.1}}
repetitions: 1
phases: {train_steps: 5, eval_steps: 5}
"""
    (folder / "t.yaml").write_text(tournament)
    (folder / "s.yaml").write_text("name: ts\nbase: t.yaml\nmetrics: [mean_profit, mean_delta]\naxes:\n"
                                   "  entrants[0].params.price: [1.6, 2.0]\n")  # fmt: skip
    frame = _sweep(folder, ["--backend", "serial"], "out")
    assert list(frame["entrants[0].params.price"]) == [1.6, 2.0]
    assert {"mean_profit.steady", "mean_profit.cutter", "mean_delta"} <= set(frame)
    assert frame["mean_profit.steady"].iloc[0] != frame["mean_profit.steady"].iloc[1]


@pytest.mark.slow  # the baselines are fitted to the family's training tasks at each point (about 10 s)
def test_a_sweep_over_a_task_family_evaluates_the_baselines_at_each_point(folder: Path) -> None:
    shutil.copy(ROOT / "scenarios" / "meta_pricing.yaml", folder / "f.yaml")
    (folder / "s.yaml").write_text("name: fs\nbase: f.yaml\nrepetitions: 2\nmetrics: [regret_10]\naxes:\n"
                                   "  family.horizon: [20, 30]\n")  # fmt: skip
    frame = _sweep(folder, ["--backend", "serial"], "out")
    columns = [c for c in frame.columns if c.startswith("regret_10.") and not c.endswith(("_ci_low", "_ci_high", "_n"))]
    assert "regret_10.thompson_pricing" in columns and len(columns) >= 3
    assert frame[columns].notna().all().all() and list(frame["family.horizon"]) == [20, 30]


SEARCH = """\
name: tune
base: q.yaml
seed: 5
repetitions: 1
metrics: [mean_price, delta]
axes:
  sellers[0].params.price: {low: 1.2, high: 2.6}
search: {metric: mean_price, trials: 16, parallel: 2}
"""


@pytest.mark.slow  # sixteen trials, the last six proposed by TPE (about 10 s)
def test_a_search_reports_its_best_trial_and_finds_the_top_of_a_monotone_metric(folder: Path) -> None:
    pytest.importorskip("optuna")
    (folder / "s.yaml").write_text(SEARCH)
    serial = _sweep(folder, ["--backend", "serial"], "serial")
    assert len(serial) == 16 and list(serial["index"]) == list(range(16))
    summary = json.loads((folder / "serial" / "summary.json").read_text())
    best = summary["search"]
    assert best["metric"] == "mean_price" and best["at"]["sellers[0].params.price"] > 2.4  # the range tops at 2.6
    tpe = serial["sellers[0].params.price"].iloc[10:]  # after Optuna's 10 random start-up trials, TPE's proposals
    assert tpe.mean() > serial["sellers[0].params.price"].iloc[:10].mean()
    assert best["value"] == pytest.approx(serial["mean_price"].max(), rel=1e-12)  # the CSV keeps 15 digits


class _StopAfter:
    """An executor that plays ``n`` points serially, then stops as a Ctrl-C would."""

    def __init__(self, n: int) -> None:
        self.left = n

    def run(self, tasks, runner, on_result) -> None:
        for task in tasks:
            if self.left == 0:
                raise KeyboardInterrupt
            on_result(runner(task, None))
            self.left -= 1


def test_an_interrupted_search_resumes_to_the_same_trials(folder: Path) -> None:
    pytest.importorskip("optuna")
    from marketsim.sweep.search import run_search
    from marketsim.tournament.executors import SerialExecutor
    from marketsim.tournament.play import TournamentInterrupted

    (folder / "s.yaml").write_text(SEARCH.replace("trials: 16", "trials: 6"))
    sweep = load_sweep("s.yaml")
    whole = run_search(sweep, folder / "whole.sqlite", SerialExecutor(in_process=True))
    with pytest.raises(TournamentInterrupted):
        run_search(sweep, folder / "cut.sqlite", _StopAfter(3))
    resumed = run_search(sweep, folder / "cut.sqlite", SerialExecutor(in_process=True), resume=True)
    assert [(p.key, p.metrics) for p in resumed] == [(p.key, p.metrics) for p in whole]


@pytest.mark.slow  # the process pool starts once per round of proposals (about 15 s)
def test_a_search_gives_the_same_trials_on_the_process_backend(folder: Path) -> None:
    pytest.importorskip("optuna")
    (folder / "s.yaml").write_text(SEARCH)
    serial = _sweep(folder, ["--backend", "serial"], "serial")
    pooled = _sweep(folder, ["--backend", "process", "--workers", "2"], "pooled")
    pd.testing.assert_frame_equal(serial, pooled)


@pytest.mark.parametrize(
    ("name", "points"),
    [
        ("calvano_alpha_beta", 100),
        ("calvano_delta", 20),
        pytest.param("calvano_firms", 3, marks=pytest.mark.slow),  # four firms: 15^4-state Q tables (about 15 s)
    ],
)
def test_each_bundled_sweep_schedules_every_point_and_runs_one(name: str, points: int) -> None:
    from dataclasses import replace

    from marketsim.sweep.run import run_point

    tasks = schedule(load_sweep(ROOT / "scenarios" / "sweeps" / f"{name}.yaml"))  # every point's file validated
    assert len(tasks) == points and len({t.seed for t in tasks}) == points
    first = tasks[-1]  # the largest values of every axis
    short = replace(first, repetitions=2, base_text=re.sub(r"\nsteps: \d+", "\nsteps: 300", first.base_text))
    result = run_point(short)
    assert result.status == "ok" and set(result.metrics) == {"delta", "convergence_steps", "converged_share"}
    assert result.metrics["convergence_steps"]["mean"] == 300  # capped: no session converges in 300 steps
