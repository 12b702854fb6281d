"""The Python API (``marketsim.api``): each job equals the command's library call, mistakes get the file's errors,
results are typed and turn into the expected tables, and the tutorial notebook runs."""

from __future__ import annotations

import doctest
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import marketsim as ms
from marketsim import api
from marketsim.cli.app import main
from marketsim.config.tournament import load_tournament, parse_tournament
from marketsim.config.validate import load_scenario
from marketsim.config.yamlsource import SourceError
from marketsim.learning.experiment import ExperimentResult, run_experiment
from marketsim.learning.training import TrainResult
from marketsim.learning.training import train as train_seller
from marketsim.market.run import RunResult, simulate
from marketsim.meta.evaluate import EvalResult, MetaEvalError, evaluate
from marketsim.meta.tasks import load_family
from marketsim.outputs import OutputError
from marketsim.tournament.executors import SerialExecutor
from marketsim.tournament.play import run_tournament
from marketsim.tournament.results import LEADERBOARD_COLUMNS
from optional import HAS_TORCH

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
QUICKSTART = SCENARIOS / "quickstart.yaml"
CALVANO = SCENARIOS / "calvano2020.yaml"
FAMILY = SCENARIOS / "meta_pricing.yaml"
TUTORIAL = ROOT / "docs" / "tutorial.ipynb"
HEAVY = ("mesa", "scipy", "pandas", "matplotlib", "torch")

#: A small round robin, as play_tournament takes it and as a file states it (written by hand, not generated).
ENTRANTS = ["undercut", ("learner", "q_learning", {"beta": np.float64(0.01)})]  # numpy numbers are numbers
SMALL = {"repetitions": 1, "phases": {"train_steps": 60, "eval_steps": 30}, "seed": 5}
SMALL_FILE = """
name: tournament
seed: 5
market:
  name: logit_duopoly
  steps: 1
  consumers: {size: 1, wtp: {distribution: constant, value: 0.0}, mu: 0.25}
  demand: {mode: expected}
  sellers:
    - {name: seat, strategy: fixed_price, cost: 1.0, quality: 2.0, price_min: 1.0, price_max: 2.5}
entrants:
  - {name: undercut, strategy: undercut}
  - {name: learner, strategy: q_learning, params: {beta: 0.01}}
repetitions: 1
phases: {train_steps: 60, eval_steps: 30}
"""


def in_process() -> SerialExecutor:
    """Matches played in this process: the cheap executor (every backend gives the same results)."""
    return SerialExecutor(in_process=True)


# --- run -----------------------------------------------------------------------------------------------------


def test_run_equals_simulate_of_the_scenario_with_the_clis_overrides() -> None:
    result = ms.run(QUICKSTART, steps=20, seed=3)
    reference = simulate(load_scenario(QUICKSTART).with_overrides(steps=20, seed=3))
    assert isinstance(result, RunResult)
    pd.testing.assert_frame_equal(result.to_pandas(), reference.steps)
    assert len(result.to_pandas()) == 20 and result.scenario.seed == 3
    sellers = result.sellers_frame()
    assert list(sellers["seller"]) == ["steady", "cutter", "rival", "oracle"]
    assert list(sellers.columns[:5]) == ["seller", "strategy", "mean_price", "nash_price", "monopoly_price"]
    assert sellers["mean_price"].tolist() == [s.mean_price for s in reference.sellers]
    assert np.allclose(sellers["nash_price"], reference.benchmarks.nash.prices)


def test_run_takes_a_mapping_validated_like_a_file_and_a_scenario_as_it_is() -> None:
    data = yaml.safe_load(QUICKSTART.read_text())
    from_mapping = ms.run(data, steps=10)
    from_scenario = ms.run(load_scenario(QUICKSTART), steps=10)
    pd.testing.assert_frame_equal(from_mapping.to_pandas(), from_scenario.to_pandas())
    data["sellers"][1]["strategy"] = "undercutt"
    with pytest.raises(SourceError) as caught:
        ms.run(data)
    (problem,) = caught.value.problems
    assert (problem.field, problem.line) == ("sellers[1].strategy", 0)
    assert "unknown strategy 'undercutt' (did you mean 'undercut'?)" in problem.message
    assert str(problem).startswith("<scenario mapping>: sellers[1].strategy: unknown strategy")


def test_a_bad_scenario_file_gets_the_same_located_lines_as_the_cli(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICKSTART.read_text().replace("strategy: undercut", "strategy: undercutt", 1))
    with pytest.raises(ms.ScenarioError) as caught:
        ms.run(bad, steps=5)
    assert main(["run", str(bad), "--steps", "5", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    printed = capsys.readouterr().err.strip().splitlines()
    assert printed == [str(p) for p in caught.value.problems]
    assert caught.value.problems[0].line > 0 and caught.value.problems[0].source == str(bad)


def test_a_file_of_another_kind_names_the_function_that_runs_it_and_a_missing_one_the_closest(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    cases = [
        (lambda: ms.run("scenarios/tournament_quick.yaml"), "tournament file: run it with marketsim.play_tournament"),
        (lambda: ms.experiment("scenarios/meta_pricing.yaml", 1), "task-family file: run it with marketsim.meta_eval"),
        (lambda: ms.play_tournament("scenarios/quickstart.yaml"), "scenario file: run it with marketsim.run"),
        (lambda: ms.meta_eval("scenarios/calvano2020.yaml", 1), "scenario file: run it with marketsim.run"),
        (lambda: ms.run("scenarios/quickstat.yaml"), "no such file; closest bundled files: scenarios/quickstart.yaml"),
        (lambda: ms.run("scenarios"), "not a file"),
    ]
    for call, message in cases:
        with pytest.raises(SourceError) as caught:
            call()
        assert message in str(caught.value), str(caught.value)


def test_counts_and_overrides_are_checked_before_anything_runs() -> None:
    with pytest.raises(SourceError, match="steps"):
        ms.run(QUICKSTART, steps=0)
    for call, name in [
        (lambda: ms.experiment(CALVANO, 0), "sessions"),
        (lambda: ms.experiment(CALVANO, 2, max_steps=0), "max_steps"),
        (lambda: ms.meta_eval(FAMILY, 0), "tasks"),
        (lambda: ms.meta_eval(FAMILY, 2, workers=1.5), "workers"),
    ]:
        with pytest.raises(ValueError, match=f"{name} should be a whole number of at least 1"):
            call()


# --- experiment, train, meta-eval ------------------------------------------------------------------------------


def test_experiment_equals_run_experiment_and_its_table_has_a_row_per_session() -> None:
    result = ms.experiment(CALVANO, 2, max_steps=300, seed=11)
    reference = run_experiment(load_scenario(CALVANO).with_overrides(seed=11), 2, 1, 300)
    assert isinstance(result, ExperimentResult) and result.seeds == [11, 12]
    table = result.to_pandas()
    pd.testing.assert_frame_equal(table, reference.sessions_table())
    assert {"session", "seed", "converged", "steps", "firm_1.price", "firm_2.profit_gain"} <= set(table.columns)
    assert result.summary() == reference.summary()


def test_train_is_the_training_function_widened_to_files(tmp_path: Path) -> None:
    result = ms.train(CALVANO, "firm_1", 60)
    reference = train_seller(load_scenario(CALVANO), "firm_1", 60)
    assert isinstance(result, TrainResult) and (result.seller, result.strategy, result.steps) == (
        "firm_1",
        "q_learning",
        60,
    )
    pd.testing.assert_frame_equal(result.to_pandas(), reference.curve)
    assert list(result.to_pandas().columns) == ["step", "profit", "moving_average", "price", "S"]
    old = inspect.signature(train_seller).parameters
    new = inspect.signature(ms.train).parameters
    assert list(new)[: len(old)] == list(old)  # every existing call (positional or keyword) still works
    assert [p.default for p in new.values()][: len(old)] == [p.default for p in old.values()]
    with pytest.raises(ValueError, match="no seller named 'firm_9'"):
        ms.train(CALVANO, "firm_9", 10)


def test_meta_eval_equals_evaluate_and_gives_per_task_and_per_agent_tables(tmp_path: Path) -> None:
    result = ms.meta_eval(FAMILY, 1, strategy="ucb_pricing", baselines=False)
    reference = evaluate(load_family(FAMILY), {"ucb_pricing": ("ucb_pricing", {})}, 1)
    assert isinstance(result, EvalResult) and result.agents == ("ucb_pricing",)
    np.testing.assert_array_equal(result.expected, reference.expected)
    tasks = result.to_pandas()
    assert list(tasks["task"]) == [0] and "ucb_pricing.regret_H" in tasks
    agents = result.agents_frame()
    assert list(agents["agent"]) == ["ucb_pricing"]
    assert {"regret_10", "regret_25", "regret_H", "regret_H_ci", "last10_oracle_share"} <= set(agents.columns)
    with pytest.raises(MetaEvalError, match="does not exist"):
        ms.meta_eval(FAMILY, 1, checkpoint=tmp_path / "nowhere.pt")
    with pytest.raises(MetaEvalError, match="unknown strategy 'ucb'"):
        ms.meta_eval(FAMILY, 1, strategy="ucb")
    with pytest.raises(MetaEvalError, match="no agents to evaluate"):
        ms.meta_eval(FAMILY, 1, baselines=False)


def test_meta_eval_of_every_split_gives_one_result_per_split_equal_to_each_alone(tmp_path: Path) -> None:
    from marketsim.meta.evaluate import SplitsResult

    every = ms.meta_eval(FAMILY, 1, split="all", strategy="ucb_pricing", baselines=False)
    assert isinstance(every, SplitsResult)
    assert list(every.results) == ["test", "ood", "cost_shift", "crowded", "seasonal", "regime_change"]
    alone = ms.meta_eval(FAMILY, 1, split="seasonal", strategy="ucb_pricing", baselines=False)
    np.testing.assert_array_equal(every.results["seasonal"].expected, alone.expected)
    folder = every.write(tmp_path / "all")
    assert {"summary.json", "splits.csv", "curves.csv", "tasks.csv", "regret.png"} <= {p.name for p in folder.iterdir()}


# --- tournaments -----------------------------------------------------------------------------------------------


def test_a_tournament_from_entrants_equals_the_same_tournament_file(tmp_path: Path) -> None:
    result = ms.play_tournament(ENTRANTS, backend=in_process(), **SMALL)
    loaded = parse_tournament(SMALL_FILE, "t.yaml", base_dir=tmp_path, plugin_dirs=[])
    assert result.tournament.digest() == loaded.digest()  # the same spec, market and seeds
    matches = run_tournament(loaded, tmp_path / "results.sqlite", in_process())
    assert [(m.key, m.results) for m in result.matches] == [(m.key, m.results) for m in matches]
    board = result.leaderboard
    assert list(board.columns) == LEADERBOARD_COLUMNS and sorted(board["entrant"]) == ["learner", "undercut"]
    assert len(result.to_pandas()) == 2 * len(matches) == 2 * 4  # a row per match and seat
    assert result.payoff_matrix().shape == (2, 2) and result.faults() == [] and result.name == "tournament"


def test_a_tournament_file_takes_fields_as_keywords_and_a_store_resumes(tmp_path: Path) -> None:
    store = tmp_path / "results.sqlite"
    seen: list[tuple[int, int]] = []
    result = ms.play_tournament(
        SCENARIOS / "tournament_quick.yaml",
        entrants=["undercut", ("fixed", "fixed_price", {"price": 1.8})],
        repetitions=1,
        phases={"train_steps": 0, "eval_steps": 20},
        backend=in_process(),
        store=store,
    )
    spec = result.tournament.spec
    assert (spec.name, spec.repetitions, result.tournament.market.name) == ("tournament_quick", 1, "logit_duopoly")
    assert len(result.matches) == 4  # both self-plays and both seatings
    again = ms.play_tournament(
        SCENARIOS / "tournament_quick.yaml",
        entrants=["undercut", ("fixed", "fixed_price", {"price": 1.8})],
        repetitions=1,
        phases={"train_steps": 0, "eval_steps": 20},
        backend=in_process(),
        store=store,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(4, 4)] and again.matches == result.matches  # everything came from the store


def test_tournament_mistakes_get_the_files_messages_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        ms.play_tournament(["undercutt", "fixed_price"])
    (problem,) = caught.value.problems
    typo = SMALL_FILE.replace("{name: undercut, strategy: undercut}", "{name: undercutt, strategy: undercutt}")
    with pytest.raises(SourceError) as in_file:
        parse_tournament(typo, "t.yaml", base_dir=tmp_path, plugin_dirs=[])
    assert (problem.field, problem.message) == (in_file.value.problems[0].field, in_file.value.problems[0].message)
    assert str(problem).startswith("<play_tournament>: entrants[0].strategy: unknown strategy 'undercutt' (did you")
    for call, field in [
        (lambda: ms.play_tournament(ENTRANTS, repetitions=0), "repetitions"),
        (lambda: ms.play_tournament(ENTRANTS, repetitons=2), "repetitons"),
        (lambda: ms.play_tournament(["undercut", "undercut"]), ""),
        (lambda: ms.play_tournament(ENTRANTS, market={**api.DUOPOLY, "consumers": {"mu": -1}}), "market.consumers.mu"),
    ]:
        with pytest.raises(SourceError) as caught:
            call()
        assert caught.value.problems[0].field == field and caught.value.problems[0].line == 0, str(caught.value)
    broken = tmp_path / "market.yaml"
    broken.write_text(QUICKSTART.read_text().replace("mu: 0.25", "mu: -1"))
    with pytest.raises(SourceError) as caught:
        ms.play_tournament(ENTRANTS, market=broken)
    assert caught.value.problems[0].source == str(broken) and caught.value.problems[0].line > 0  # its own lines


# --- the package's names ---------------------------------------------------------------------------------------


def test_the_api_is_public_and_reaching_it_imports_nothing_heavy() -> None:
    names = ["run", "experiment", "play_tournament", "train", "meta_eval", "TournamentResult"]
    assert set(names) <= set(ms.__all__) and all(getattr(ms, n) is getattr(api, n) for n in names)
    code = "\n".join(
        [
            "import sys, marketsim as ms",
            f"[getattr(ms, n) for n in {names!r}]",
            f"print([m for m in {HEAVY!r} if m in sys.modules])",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- folders, examples and the notebook (slow: each writes plots or starts processes) ---------------------------


@pytest.mark.slow  # ~6 s: writes two run folders with their plots
def test_a_run_writes_the_folder_the_cli_writes(tmp_path: Path) -> None:
    assert main(["run", str(QUICKSTART), "--steps", "30", "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    ms.run(QUICKSTART, steps=30).write(tmp_path / "api")
    cli, mine = (sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("cli", "api"))
    assert mine == cli and "steps.csv" in mine
    for name in ("summary.json", "steps.csv", "scenario.yaml", "scenario.sha256"):
        assert (tmp_path / "api" / name).read_text() == (tmp_path / "cli" / name).read_text(), name
    with pytest.raises(OutputError):
        ms.run(QUICKSTART, steps=5).write(tmp_path / "api")  # the folder policy: no silent overwrite


@pytest.mark.slow  # ~15 s: two meta-eval folders (the command's with its baselines)
def test_a_meta_evaluation_writes_the_folder_the_cli_writes(tmp_path: Path) -> None:
    cli = tmp_path / "cli"
    args = ["meta-eval", str(FAMILY), "--tasks", "1", "--strategy", "ucb_pricing", "--workers", "1", "--out", str(cli)]
    assert main([*args, "--quiet"]) == 0
    mine = ms.meta_eval(FAMILY, 1, strategy="ucb_pricing").write(tmp_path / "api")
    assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in cli.iterdir())
    for name in ("family.yaml", "family.sha256", "tasks.csv"):
        assert (mine / name).read_text() == (cli / name).read_text(), name


@pytest.mark.slow  # ~15 s: the tournament's report (meta-game analysis, plots), then the CLI resumes it
def test_a_written_tournament_is_a_folder_the_cli_resumes(tmp_path: Path) -> None:
    result = ms.play_tournament(ENTRANTS, backend=in_process(), **SMALL)
    folder = result.write(tmp_path / "cup")
    board = pd.read_csv(folder / "leaderboard.csv")
    assert list(board["entrant"]) == list(result.leaderboard["entrant"])
    assert json.loads((folder / "summary.json").read_text())["matches"] == len(result.matches)
    assert (folder / "tournament.sha256").read_text().strip() == result.tournament.digest()  # what it was made from
    spec = tmp_path / "t.yaml"
    spec.write_text(SMALL_FILE)
    assert load_tournament(spec).digest() == result.tournament.digest()
    args = ["tournament", str(spec), "--out", str(folder), "--resume", "--quiet", "--backend", "serial"]
    assert main(args) == 0  # the store is this tournament's and holds every match: nothing left to play
    pd.testing.assert_frame_equal(pd.read_csv(folder / "leaderboard.csv"), board)


@pytest.mark.slow  # ~12 s: every example in marketsim.api's docstrings (one starts a worker process)
def test_the_docstring_examples_run(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples name scenarios/… as a user in the repository's folder would
    found = doctest.testmod(api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert found.attempted >= 5 and found.failed == 0


@pytest.mark.skipif(not HAS_TORCH, reason="checkpoints are written with torch.save")
@pytest.mark.slow  # ~4 s: writes a checkpoint and its curve plot
def test_a_training_writes_a_checkpoint_folder(tmp_path: Path) -> None:
    folder = ms.train(CALVANO, "firm_1", 50).write(tmp_path / "trained")
    assert {"checkpoint.pt", "checkpoint.json", "curve.csv", "summary.json"} <= {p.name for p in folder.iterdir()}


def test_the_tutorial_is_committed_without_outputs_and_its_code_compiles() -> None:
    notebook = json.loads(TUTORIAL.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert len(code) >= 5 and notebook["metadata"]["kernelspec"]["name"] == "python3"
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None
        compile("".join(cell["source"]), "tutorial.ipynb", "exec")
    text = "".join("".join(cell["source"]) for cell in code)
    for job in ("ms.run(", "ms.play_tournament(", "ms.experiment(", "plt."):
        assert job in text, job


@pytest.mark.slow  # ~30 s: a Jupyter kernel runs every cell (a tournament's worker process among them)
def test_the_tutorial_notebook_runs(tmp_path: Path, monkeypatch) -> None:
    import nbclient
    import nbformat

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    notebook = nbformat.read(TUTORIAL, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(TUTORIAL.parent)}}
    )
    client.execute()  # a cell that raises fails the test with its traceback
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs)
    assert "q_learning" in shown and "unknown strategy 'undercutt'" in shown and "firm_1.profit_gain" in shown
