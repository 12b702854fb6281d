"""Tournaments: files, schedules and seeds, backends agree, faults are isolated, kill -9 then resume."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from marketsim.cli.app import main
from marketsim.config.tournament import load_tournament, parse_tournament
from marketsim.config.yamlsource import SourceError
from marketsim.tournament.executors import SerialExecutor, make_executor
from marketsim.tournament.matches import MatchResult, MatchTask, SeatResult, fault_result
from marketsim.tournament.play import ResumeError, run_match, run_tournament, schedule
from marketsim.tournament.report import write_outputs
from marketsim.tournament.results import ResultStore, leaderboard, match_rows
from optional import HAS_TORCH, bundled

ROOT = Path(__file__).parents[1]
TESTS = Path(__file__).parent  # holds broken_strategies.py, the plugin module of the faulty tournaments
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
    return parse_tournament(text, "t.yaml", base_dir=tmp or ROOT, plugin_dirs=[TESTS])


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


@pytest.mark.parametrize(
    ("change", "hint", "allowed"),
    [
        (
            ("repetitions: 2", "repetitons: 2"),
            "did you mean 'repetitions'?",
            "name, description, seed, market, entrants",
        ),
        (("train_steps: 150", "train_step: 150"), "did you mean 'train_steps'?", "train_steps, eval_steps"),
    ],
)
def test_a_misspelt_tournament_key_gets_the_tournaments_fields_and_a_suggestion(change, hint, allowed) -> None:
    """Bug (a) of issue 12: the tournament's own schema, not the scenario's, answers a typo in a tournament file."""
    with pytest.raises(SourceError) as caught:
        small(SMALL.replace(*change))
    (problem,) = caught.value.problems
    assert hint in problem.message and f"allowed: {allowed}" in problem.message, problem.message
    assert "consumers" not in problem.message  # a scenario field


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


@pytest.mark.parametrize("path", bundled(sorted((ROOT / "scenarios").glob("tournament*.yaml"))))
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


@pytest.mark.slow  # 16 s: a whole tournament twice; the fast suite checks pooled == serial per match (test_executors)
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


@pytest.mark.slow  # a whole round robin (about 7 s); tests/test_metagame.py checks the equilibria fast
def test_a_round_robin_reports_every_equilibrium_and_the_unique_rankings(tmp_path: Path) -> None:
    _, board, _ = _play(tmp_path, "serial")
    summary = json.loads((tmp_path / "summary.json").read_text())["meta_game"]
    assert summary["count"] == len(summary["equilibria"]) >= 1
    assert abs(sum(e["basin_share"] for e in summary["equilibria"]) + summary["unresolved_share"] - 1) < 1e-9
    for column in ("alpha_rank", "alpha_rank_ci_low", "nash_avg_skill", "nash_avg_skill_ci_high", "moran"):
        assert column in board.columns and board[column].notna().all(), column
    assert board["alpha_rank"].sum() == pytest.approx(1) and board["moran"].sum() == pytest.approx(1)
    assert (board["alpha_rank_ci_low"] <= board["alpha_rank"] + 1e-12).all()
    assert set(summary["alpha_rank"]["ranking"]) == set(board["entrant"])
    html = (tmp_path / "report.html").read_text()
    assert "Symmetric equilibria of the meta-game" in html and "α-Rank" in html and "meta_game.png" in html
    assert (tmp_path / "meta_game.png").stat().st_size > 10_000


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
time_limit: 2
wall_limit: 4
phases: {{train_steps: 0, eval_steps: 20}}
"""


def test_faults_are_recorded_and_isolated(tmp_path: Path) -> None:
    results, board, rows = _play(tmp_path / "faulty", "process", FAULTY)
    faults = pd.read_csv(tmp_path / "faulty" / "faults.csv")
    kinds = dict(zip(faults["entrant"], faults["kind"]))
    assert kinds == {
        "not_a_number": "invalid_price", "inf": "invalid_price", "negative": "invalid_price", "text": "invalid_price",
        "raise": "exception", "loop": "wall_timeout", "exit": "crash", "setup": "exception",
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


@pytest.mark.slow  # a full tournament in subprocesses, run twice
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


# --- one fault model on every backend (issue 11, acceptance C) -----------------------------------------------

MISBEHAVING = f"""
name: misbehaving
seed: 3
plugins: [broken_strategies]
{MARKET}
format: vs_field
field:
  - {{name: rival, strategy: cost_plus, params: {{markup: 0.6}}}}
entrants:
  - {{name: good, strategy: fixed_price, params: {{price: 1.7}}}}
  - {{name: raise, strategy: broken_raise}}
  - {{name: sysexit, strategy: broken_sysexit}}
  - {{name: kbint, strategy: broken_kbint}}
  - {{name: sleep, strategy: broken_loop}}
  - {{name: busy, strategy: broken_busy}}
  - {{name: hard_exit, strategy: broken_exit}}
  - {{name: hog, strategy: broken_hog}}
  - {{name: setup_exit, strategy: broken_setup_exit}}
repetitions: 1
time_limit: 1
wall_limit: 3
memory_limit_mb: 512
phases: {{train_steps: 0, eval_steps: 12}}
"""
EXPECTED_FAULTS = {  # entrant: (kind, seat, step), the same on every backend
    "raise": ("exception", 0, 3),
    "sysexit": ("crash", 0, 3),
    "kbint": ("crash", 0, 3),
    "sleep": ("wall_timeout", 0, 3),
    "busy": ("timeout", 0, 3),
    "hard_exit": ("crash", 0, 3),
    "hog": ("memory", 0, 3),
    "setup_exit": ("crash", 0, 0),  # exits while it is built and set up, before its first price
}


@pytest.mark.parametrize(  # the process pool costs about 6 s more: it runs with Ray in the slow suite
    "backend", ["serial", pytest.param("process", marks=pytest.mark.slow), pytest.param("ray", marks=pytest.mark.slow)]
)
def test_faulty_entrants_get_the_same_faults_and_blame_on_every_backend(tmp_path: Path, backend: str) -> None:
    if backend == "ray":
        pytest.importorskip("ray")
    results, board, rows = _play(tmp_path, backend, MISBEHAVING)
    faults = pd.read_csv(tmp_path / "faults.csv")
    found = {f.entrant: (f.kind, f.seat, f.step) for f in faults.itertuples()}
    assert found == EXPECTED_FAULTS, faults[["entrant", "kind", "seat", "step", "message"]].to_string()
    assert (faults["cpu_seconds"] >= 0).all() or backend == "ray"  # a dead Ray worker's CPU time is unknown
    assert (faults["wall_seconds"] >= 0).all()
    busy = faults.set_index("entrant").loc["busy"]
    assert busy["cpu_seconds"] >= 0.9 * 1  # ran out of its one CPU second
    leaderboard_csv = pd.read_csv(tmp_path / "leaderboard.csv").set_index("entrant")
    assert set(EXPECTED_FAULTS) <= set(leaderboard_csv.index)
    assert (leaderboard_csv.loc[list(EXPECTED_FAULTS), "faults"] == 1).all()
    assert leaderboard_csv.loc["good", "faults"] == 0
    voided = leaderboard(match_rows(results, "void"), n_resamples=100).set_index("entrant")  # void: still listed
    assert (voided.loc[list(EXPECTED_FAULTS), "faults"] == 1).all()


# --- plugins only from an allowed directory, never imported by validate (item 4) ------------------------------

PLUGIN = '''
from pathlib import Path

from marketsim.hookspecs import hookimpl
from marketsim.strategy import Strategy

Path(__file__).with_name("imported.txt").write_text("imported")


class Local(Strategy):
    """Prices at 1.7."""

    name = "local_price"

    def price(self, obs):
        return 1.7


@hookimpl
def register_strategies(register):
    register(Local)
'''


def _plugin_tournament(tmp_path: Path, module: str = "local_plugin") -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "local_plugin.py").write_text(PLUGIN)
    text = SMALL.replace("repetitions: 2", "repetitions: 1").replace("phases: {train_steps: 150, eval_steps: 60}", "")
    text = text.replace("name: small\n", f"name: small\nplugins: [{module}]\n")
    text = text.replace(
        "  - {name: learner, strategy: q_learning, params: {beta: 1.0e-2}}", "  - {name: mine, strategy: local_price}"
    )
    path = tmp_path / "t.yaml"
    path.write_text(text + "phases: {train_steps: 0, eval_steps: 5}\n")
    return path


def _marketsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marketsim", *args], cwd=cwd, capture_output=True, text=True)


def test_validate_never_imports_a_tournaments_plugins(tmp_path: Path) -> None:
    path = _plugin_tournament(tmp_path)
    done = _marketsim("validate", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "plugins" / "imported.txt").exists()


@pytest.mark.slow  # worker processes or full CLI runs: the slow suite keeps the fast one near 5 min
def test_plugins_load_only_from_an_allowed_directory(tmp_path: Path) -> None:
    path = _plugin_tournament(tmp_path)
    env_path = {"PYTHONPATH": str(tmp_path / "plugins")}  # on sys.path, but not allowed: still refused
    refused = subprocess.run(
        [sys.executable, "-m", "marketsim", "tournament", str(path), "--quiet", "--out", str(tmp_path / "a")],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **env_path},
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"{path}:3:") and "plugins[0]" in line and "--plugin-dir" in line, line
    args = ["tournament", str(path), "--quiet", "--plugin-dir", str(tmp_path / "plugins"), "--out", str(tmp_path / "b")]
    ran = _marketsim(*args, "--workers", "1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "mine" in (tmp_path / "b" / "leaderboard.csv").read_text()


def test_a_missing_plugin_module_is_one_located_line(tmp_path: Path) -> None:
    path = _plugin_tournament(tmp_path, module="no_such_plugin")
    done = _marketsim("tournament", str(path), "--plugin-dir", str(tmp_path / "plugins"), "--out", "x", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"{path}:3:") and "plugins[0]" in line and "'no_such_plugin' not found" in line, line
    assert not (tmp_path / "x").exists()


# --- Ctrl-C keeps what is stored; --retry-faults replays faults (items 5, 6) -----------------------------------


@pytest.mark.slow  # a full tournament in subprocesses, run twice
def test_ctrl_c_keeps_the_stored_matches_and_resume_finishes(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(SMALL.replace("eval_steps: 60", "eval_steps: 400"))
    cmd = [sys.executable, "-m", "marketsim", "tournament", str(path), "--workers", "1", "--quiet", "--out"]
    proc = subprocess.Popen([*cmd, str(tmp_path / "cut")], start_new_session=True, stderr=subprocess.PIPE, text=True)
    store = tmp_path / "cut" / "results.sqlite"
    for _ in range(1200):  # until some matches are stored
        time.sleep(0.1)
        if store.exists() and _stored(store) >= 2:
            break
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole foreground group
    _, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    kept = _stored(store)
    assert f"{kept} of 32 matches are kept" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert 2 <= kept < 32
    resumed = subprocess.run([*cmd, str(tmp_path / "cut"), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _stored(store) == 32


@pytest.mark.slow  # worker processes or full CLI runs: the slow suite keeps the fast one near 5 min
def test_retry_faults_replays_only_the_faults_of_that_kind(tmp_path: Path) -> None:
    text = MISBEHAVING.replace("  - {name: sysexit, strategy: broken_sysexit}\n", "")
    keep = ("good", "raise", "busy", "rival")
    text = "\n".join(
        line
        for line in text.splitlines()
        if "strategy: broken_" not in line or any(f"name: {k}," in line for k in keep)
    )
    loaded = small(text)
    store = tmp_path / "results.sqlite"
    first = run_tournament(loaded, store, make_executor("serial"))
    kinds = {r.fault.entrant: r.fault.kind for r in first if r.fault is not None}
    assert kinds == {"raise": "exception", "busy": "timeout"}
    calls: list[list[str]] = []

    class Recording:
        def run(self, tasks, runner, on_result):
            calls.append([t.seats[0] for t in tasks])
            make_executor("serial").run(tasks, runner, on_result)

    with pytest.raises(ResumeError, match="--resume"):
        run_tournament(loaded, store, Recording(), retry_faults="timeout")
    again = run_tournament(loaded, store, Recording(), resume=True, retry_faults="timeout")
    assert calls == [["busy"]]  # only the timed-out match was played again, and replaced
    assert len(again) == len(first) and {r.fault.entrant for r in again if r.fault is not None} == {"raise", "busy"}
    run_tournament(loaded, store, Recording(), resume=True, retry_faults="all")
    assert sorted(calls[1]) == ["busy", "raise"]


# --- results do not depend on the machine's load (acceptance D) -----------------------------------------------


def _reduced_quick(tmp_path: Path) -> Path:
    """scenarios/tournament_quick.yaml's market with five of its entrants (the learners and the myopic best responder,
    its longest matches, among them), one repetition and shorter phases."""
    text = (ROOT / "scenarios" / "tournament_quick.yaml").read_text()
    for dropped in ("cost_plus", "match", "random"):
        text = "".join(
            line for line in text.splitlines(keepends=True) if not line.startswith(f"  - {{name: {dropped},")
        )
    assert text.count("\n  - {name: ") == 5
    text = text.replace("repetitions: 2", "repetitions: 1")
    text = text.replace("phases: {train_steps: 2000, eval_steps: 300}", "phases: {train_steps: 400, eval_steps: 100}")
    text = text.replace("time_limit: 60", f"time_limit: {TIGHT_CPU_BUDGET}")  # its longest match: 1.2-1.4 CPU s
    assert "repetitions: 1" in text and "train_steps: 400" in text and "time_limit: 60" not in text
    path = tmp_path / "quick.yaml"
    path.write_text(text + "wall_limit: 600\n")
    return path


TIGHT_CPU_BUDGET = 2.5  # CPU seconds: ~2x the longest match's CPU time, below its wall time on a saturated machine


def _wall_seconds(store: Path) -> list[float]:
    """The wall-clock seconds each stored match took."""
    with sqlite3.connect(store) as db:
        return [json.loads(row[0])["elapsed"] for row in db.execute("select payload from matches")]


@pytest.mark.slow
def test_quick_tournament_is_identical_on_an_idle_and_a_saturated_machine(tmp_path: Path) -> None:
    path = _reduced_quick(tmp_path)
    cmd = [sys.executable, "-m", "marketsim", "tournament", str(path), "--workers", "2", "--quiet", "--out"]
    idle = subprocess.run([*cmd, str(tmp_path / "idle")], capture_output=True, text=True)
    assert idle.returncode == 0, idle.stderr
    spin = [sys.executable, "-c", "while True: pass"]
    neighbours = [subprocess.Popen(spin) for _ in range(2 * (os.cpu_count() or 2))]  # two busy loops a core
    try:
        loaded = subprocess.run([*cmd, str(tmp_path / "loaded")], capture_output=True, text=True)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()
    assert loaded.returncode == 0, loaded.stderr
    for name in ("matches.csv", "leaderboard.csv", "faults.csv"):
        assert (tmp_path / "idle" / name).read_bytes() == (tmp_path / "loaded" / name).read_bytes(), name
    assert len(pd.read_csv(tmp_path / "loaded" / "faults.csv")) == 0  # nobody forfeits on the busy machine
    # ... although the load was real: the same matches took clearly longer on the wall clock (measured side by side,
    # as a ratio of totals, so the check does not hang on how fast this machine is)
    idle_wall, loaded_wall = (sum(_wall_seconds(tmp_path / run / "results.sqlite")) for run in ("idle", "loaded"))
    assert loaded_wall > 1.3 * idle_wall, (idle_wall, loaded_wall)


@pytest.mark.skipif(HAS_TORCH, reason="checks the install without torch (the Python 3.12 core run)")
def test_without_torch_tournaments_run_and_exploit_is_one_clean_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(SMALL.replace("repetitions: 2", "repetitions: 1").replace("train_steps: 150", "train_steps: 20"))
    assert main(["validate", str(path)]) == 0  # the default best-responder (dqn) is not needed to validate
    assert main(["tournament", str(path), "--exploit", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exploit.strategy: best-responder 'dqn' is not available" in err[0] and "torch" in err[0]
    assert not (tmp_path / "out").exists()


# --- issue 15: self-play faults, observers and provenance in the tournament's outputs -------------------------


def _fake_task(index: int, seats: tuple[str, ...]) -> MatchTask:
    """A task for hand-built results (never played)."""
    return MatchTask(f"k|round_robin|{','.join(seats)}|r0", index, 7, None, seats, 0, 1)


def _won(index: int, seats: tuple[str, str], profits: tuple[float, float]) -> MatchResult:
    """A finished duopoly with the given mean profits."""
    results = tuple(SeatResult(i, name, name, profits[i], 1.5, 1.0, 0.0) for i, name in enumerate(seats))
    return MatchResult(_fake_task(index, seats).key, index, 7, seats, "ok", results, consumer_surplus=1.0)


def test_an_entrant_that_faults_in_self_play_wins_nothing_from_it() -> None:
    """Bug of issue 15: the twin seat of a faulting entrant was credited with the forfeit win."""
    lineups = [("crash", "crash"), ("crash", "good"), ("good", "crash")]
    crash = [fault_result(_fake_task(i, s), "exception", s.index("crash"), 3, "boom") for i, s in enumerate(lineups)]
    results = [*crash, _won(3, ("good", "good"), (1.0, 1.0))]
    rows = match_rows(results)
    self_play = rows[rows["key"] == crash[0].key]
    assert list(self_play["win"]) == [0.0, 0.0] and list(self_play["faulted"]) == [True, False]
    assert self_play["mean_profit"].iloc[0] == 0.0 and pd.isna(self_play["mean_profit"].iloc[1])
    board = leaderboard(rows, n_resamples=50).set_index("entrant")
    assert board.loc["crash", "win_rate"] == 0.0 and board.loc["crash", "faults"] == 3
    assert board.loc["good", "win_rate"] == pytest.approx((1 + 1 + 0.5) / 3)  # its own self-play is a tie
    # a fault blamed on the entrant but no seat (e.g. a worker lost between steps) gives no win to its twin either
    unseated = fault_result(_fake_task(0, ("crash", "crash")), "crash", None, None, "lost")
    unseated = replace(unseated, fault=replace(unseated.fault, entrant="crash"))
    assert list(match_rows([unseated])["win"]) == [0.0, 0.0]


OBSERVED = f"""
name: observed
seed: 4
plugins: [odd_observer]
{MARKET}
  observers: [{{observer: price_dispersion, params: {{tail: 5}}}}]
entrants:
  - {{name: fixed, strategy: fixed_price, params: {{price: 1.8}}}}
  - {{name: cost_plus, strategy: cost_plus, params: {{markup: 0.5}}}}
self_play: false
repetitions: 1
phases: {{train_steps: 5, eval_steps: 10}}
"""
ODD_OBSERVER = '''
from marketsim.hookspecs import hookimpl
from marketsim.observers import Observer


class Odd(Observer):
    """Returns an object that is not JSON data."""

    name = "odd"

    def finish(self):
        return {"what": object()}


@hookimpl
def register_observers(register):
    register(Odd)
'''


@pytest.fixture(scope="module")
def odd_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with the odd observer's plugin module (this process imports it once, from there)."""
    folder = tmp_path_factory.mktemp("odd_plugin")
    (folder / "odd_observer.py").write_text(ODD_OBSERVER)
    return folder


def _observed(tmp_path: Path, plugins: Path, text: str = OBSERVED):
    """The OBSERVED tournament played in this process, its folder written; (results, summary)."""
    loaded = parse_tournament(text, "t.yaml", base_dir=ROOT, plugin_dirs=[plugins])
    results = run_tournament(loaded, tmp_path / "results.sqlite", SerialExecutor(in_process=True))
    return results, write_outputs(results, loaded, tmp_path)[0]


def test_observers_of_a_tournaments_market_reach_its_outputs(tmp_path: Path, odd_plugin_dir: Path) -> None:
    """Bug of issue 15: observers attached to a tournament's market were validated, then their results lost."""
    results, summary = _observed(tmp_path, odd_plugin_dir)
    assert [r.status for r in results] == ["ok", "ok"]
    with ResultStore(tmp_path / "results.sqlite") as store:  # per match, in the store
        assert [r.observers for r in store.results()] == [r.observers for r in results]
    per_match = json.loads((tmp_path / "observers.json").read_text())
    assert [m["seats"] for m in per_match] == [["fixed", "cost_plus"], ["cost_plus", "fixed"]]
    rows = pd.read_csv(tmp_path / "matches.csv")
    spread = abs(rows["mean_price"].iloc[0] - rows["mean_price"].iloc[1])  # both post one price all match long
    for match in per_match:
        metrics = match["observers"]["price_dispersion"]
        assert metrics["mean_spread"] == pytest.approx(spread) and "last5_spread" in metrics
    found = summary["observers"]["price_dispersion"]
    assert found["matches"] == 2 and found["mean"]["mean_spread"] == pytest.approx(spread)
    assert found["by_pairing"]["cost_plus+fixed"]["last5_cv"] == pytest.approx(found["mean"]["last5_cv"])
    assert json.loads((tmp_path / "summary.json").read_text())["observers"]["price_dispersion"] == found
    assert "Observer price_dispersion" in (tmp_path / "report.html").read_text()


def test_an_observer_that_returns_no_json_is_a_fault_of_nobody(tmp_path: Path, odd_plugin_dir: Path) -> None:
    text = OBSERVED.replace("observers: [{", "observers: [{observer: odd}, {")
    results, summary = _observed(tmp_path, odd_plugin_dir, text)  # every match faults: the outputs are still written
    faults = [r.fault for r in results]
    assert all(f is not None and f.entrant is None and f.kind == "exception" for f in faults)
    assert "observer 'odd' failed" in faults[0].message and "not JSON data" in faults[0].message
    assert summary["faults"] == 2 and summary["observers"] == {}


def test_tournament_outputs_record_who_provided_each_strategy_choice_model_and_observer(
    tmp_path: Path, odd_plugin_dir: Path
) -> None:
    _, summary = _observed(tmp_path, odd_plugin_dir)
    version = importlib.metadata.version("marketsim")
    provenance = summary["provenance"]
    assert provenance["entrants"]["fixed"] == {
        "strategy": "fixed_price", "name": "fixed_price", "distribution": "marketsim", "version": version,
        "plugin": "rules",
    }  # fmt: skip
    assert provenance["entrants"]["cost_plus"]["strategy"] == "cost_plus"
    assert provenance["choice_model"]["name"] == "logit"
    assert set(provenance["observers"]) == {"price_dispersion"}
    sidecar = json.loads((tmp_path / "matches.csv-metadata.json").read_text())
    assert sidecar["url"] == "matches.csv" and sidecar["provenance"] == provenance
    assert sidecar["columns"] == list(pd.read_csv(tmp_path / "matches.csv").columns)
