"""Tournaments: files, schedules and seeds, backends agree, faults are isolated, kill -9 then resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from marketsim.executors import make_executor
from marketsim.tournament import load_tournament, parse_tournament, run_match, run_tournament, schedule, write_outputs
from marketsim.yamlsource import SourceError

ROOT = Path(__file__).parents[1]
MARKET = """
market:
  name: duopoly
  steps: 1
  consumers: {size: 1, wtp: {distribution: constant, value: 0.0}, mu: 0.25}
  demand: {mode: expected}
  sellers:
    - {name: seat, strategy: fixed_price, price_min: 1.0, price_max: 2.5}
"""
SMALL = f"""
name: small
seed: 11
{MARKET}
entrants:
  - {{name: fixed, strategy: fixed_price, params: {{price: 1.8}}}}
  - {{name: undercut, strategy: undercut, params: {{step: 0.05, floor_margin: 0.1}}}}
  - {{name: random, strategy: random_price}}
  - {{name: learner, strategy: q_learning, params: {{beta: 1.0e-2}}}}
repetitions: 2
phases: {{train_steps: 150, eval_steps: 60}}
"""


def small(text: str = SMALL, tmp: Path | None = None):
    return parse_tournament(text, "t.yaml", base_dir=tmp or ROOT)


def test_schedule_formats_keys_and_common_seeds() -> None:
    t = small()
    tasks = schedule(t)
    assert len(tasks) == 2 * (4 + 4 * 3)  # self-play + both seatings of 6 pairs, twice
    assert len({task.key for task in tasks}) == len(tasks)
    assert [task.index for task in tasks] == list(range(len(tasks)))
    assert {task.seed for task in tasks if task.key.endswith("r0")} == {tasks[0].seed}  # common random numbers
    assert tasks[0].seed != tasks[-1].seed
    again = schedule(small())
    assert [(a.key, a.seed) for a in again] == [(a.key, a.seed) for a in tasks]
    field = small(
        SMALL.replace(
            "repetitions: 2", "repetitions: 1\nformat: vs_field\nfield:\n  - {name: rival, strategy: cost_plus}"
        )
    )
    assert [task.seats for task in schedule(field)] == [
        (e, "rival") for e in ("fixed", "undercut", "random", "learner")
    ]
    everyone = small(SMALL.replace("repetitions: 2", "repetitions: 1\nformat: all_play_all"))
    assert [task.seats for task in schedule(everyone)] == [("fixed", "undercut", "random", "learner")]


@pytest.mark.parametrize(
    ("change", "line", "text"),
    [
        (("strategy: random_price", "strategy: randm_price"), 16, "unknown strategy 'randm_price'"),
        (("params: {step: 0.05", "params: {stepp: 0.05"), 15, "unknown parameter 'stepp'"),
        (("repetitions: 2", "repetitions: 0"), 18, "repetitions"),
        (("mu: 0.25", "mu: -1"), 8, "market.consumers.mu"),
        (("repetitions: 2", "repetitions: 2\nformat: vs_field"), 2, "needs a non-empty 'field'"),
    ],
)
def test_malformed_tournaments_name_the_line(change, line, text) -> None:
    with pytest.raises(SourceError) as caught:
        small(SMALL.replace(*change))
    problem = caught.value.problems[0]
    assert problem.line == line and text in str(problem), str(problem)


def test_names_that_would_break_match_keys_and_unusable_checkpoints_are_refused() -> None:
    with pytest.raises(SourceError, match="may not contain"):
        small(SMALL.replace("name: random,", "name: 'random,a',"))
    with pytest.raises(SourceError, match=r"unknown parameter 'checkpoint'") as caught:
        small(SMALL.replace("params: {beta: 1.0e-2}}", "params: {beta: 1.0e-2}, checkpoint: q.npz}"))
    assert caught.value.problems[0].line == 17


def test_market_from_a_scenario_file(tmp_path: Path) -> None:
    loaded = parse_tournament(SMALL.replace(MARKET, "\nmarket: scenarios/calvano2020.yaml\n"), "t.yaml", base_dir=ROOT)
    assert loaded.market.name == "calvano2020"
    with pytest.raises(SourceError, match="not found"):
        parse_tournament(SMALL.replace(MARKET, "\nmarket: nowhere.yaml\n"), "t.yaml", base_dir=tmp_path)


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("tournament*.yaml")), ids=lambda p: p.stem)
def test_bundled_tournaments_load_and_play(path: Path) -> None:
    tasks = schedule(load_tournament(path))
    first = tasks[0]
    short = first.__class__(**{**first.__dict__, "train_steps": 20, "eval_steps": 10})
    result = run_match(short)
    assert result.status == "ok" and len(result.results) == 2


def _play(tmp: Path, backend: str, text: str = SMALL, workers: int = 2):
    loaded = small(text)
    results = run_tournament(loaded, tmp / "results.sqlite", make_executor(backend, workers))
    summary, board = write_outputs(results, loaded, tmp)
    return results, board, pd.read_csv(tmp / "matches.csv")


def test_backends_give_identical_results(tmp_path: Path) -> None:
    serial = _play(tmp_path / "serial", "serial")
    process = _play(tmp_path / "process", "process")
    pd.testing.assert_frame_equal(serial[1], process[1])
    pd.testing.assert_frame_equal(serial[2], process[2])
    for name in ("matches.csv", "faults.csv", "leaderboard.csv", "report.html", "payoff_heatmap.png"):
        assert (tmp_path / "serial" / name).exists(), name
    board = serial[1]
    assert {"entrant", "rank", "mean_profit", "ci_low", "ci_high", "win_rate"} <= set(board.columns)
    assert (board["ci_low"] <= board["mean_profit"]).all() and (board["mean_profit"] <= board["ci_high"]).all()


@pytest.mark.slow
def test_ray_backend_gives_identical_results(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    serial = _play(tmp_path / "serial", "serial")
    ray = _play(tmp_path / "ray", "ray")
    pd.testing.assert_frame_equal(serial[1], ray[1])
    pd.testing.assert_frame_equal(serial[2], ray[2])


FAULTY = f"""
name: faulty
seed: 5
plugins: [broken_strategies]
{MARKET}
format: vs_field
field:
  - {{name: rival, strategy: cost_plus, params: {{markup: 0.6}}}}
entrants:
  - {{name: good_a, strategy: fixed_price, params: {{price: 1.7}}}}
  - {{name: not_a_number, strategy: broken_nan}}
  - {{name: inf, strategy: broken_inf}}
  - {{name: negative, strategy: broken_negative}}
  - {{name: text, strategy: broken_text}}
  - {{name: raise, strategy: broken_raise}}
  - {{name: loop, strategy: broken_loop}}
  - {{name: exit, strategy: broken_exit}}
  - {{name: setup, strategy: broken_setup}}
  - {{name: good_b, strategy: undercut}}
repetitions: 1
time_limit: 4
phases: {{train_steps: 0, eval_steps: 20}}
"""


def test_faults_are_recorded_and_isolated(tmp_path: Path) -> None:
    results, board, rows = _play(tmp_path / "faulty", "process", FAULTY)
    faults = pd.read_csv(tmp_path / "faulty" / "faults.csv")
    kinds = dict(zip(faults["entrant"], faults["kind"]))
    assert kinds == {
        "not_a_number": "invalid_price", "inf": "invalid_price", "negative": "invalid_price", "text": "invalid_price",
        "raise": "exception", "loop": "timeout", "exit": "crash", "setup": "exception",
    }  # fmt: skip
    assert (faults.set_index("entrant").loc[["not_a_number", "raise", "loop", "exit"], "step"] == 3).all()
    assert "boom at step 3" in faults.set_index("entrant").loc["raise", "message"]
    # the good entrants' matches are exactly what they are without the broken ones
    clean = FAULTY.replace("plugins: [broken_strategies]", "")
    clean = "\n".join(line for line in clean.splitlines() if "broken_" not in line)
    _, _, clean_rows = _play(tmp_path / "clean", "serial", clean)
    good = rows[rows["entrant"].isin(["good_a", "good_b"])].drop(columns=["index"]).reset_index(drop=True)
    expected = (
        clean_rows[clean_rows["entrant"].isin(["good_a", "good_b"])].drop(columns=["index"]).reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(good, expected)
    forfeits = rows[rows["faulted"]]
    assert (
        set(forfeits["entrant"]) == set(kinds) and (forfeits["mean_profit"] == 0).all() and (forfeits["win"] == 0).all()
    )


def test_kill_minus_nine_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(SMALL.replace("eval_steps: 60", "eval_steps: 400"))
    full, cut = tmp_path / "full", tmp_path / "cut"
    cmd = [sys.executable, "-m", "marketsim", "tournament", str(path), "--workers", "2", "--quiet", "--out"]
    subprocess.run([*cmd, str(full)], check=True, capture_output=True)
    proc = subprocess.Popen(
        [*cmd, str(cut)], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = cut / "results.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some, not all, matches are stored
        time.sleep(0.2)
        if store.exists() and _stored(store) >= 5:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= _stored(store) < 32, "the kill should land mid-run"
    resumed = subprocess.run([*cmd, str(cut), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("matches.csv", "leaderboard.csv", "faults.csv"):
        assert (full / name).read_text() == (cut / name).read_text(), name
    refused = subprocess.run([*cmd, str(cut)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr


def _stored(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("select count(*) from matches").fetchone()[0]
    except sqlite3.Error:
        return 0
