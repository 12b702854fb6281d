"""The ``marketsim`` command line: schema, plugins, validate and run (with its run folder)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketsim.cli.app import main
from marketsim.config.validate import load_scenario
from marketsim.registry import PluginProblem, load_registry
from optional import HAS_TORCH, TORCH_STRATEGIES, unexpected

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def _marketsim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m marketsim ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "marketsim", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _run(tmp_path: Path, name: str, scenario: str, *extra: str) -> Path:
    """``marketsim run`` in-process into ``tmp_path/name``; return the run folder."""
    out = tmp_path / name
    assert main(["run", str(SCENARIOS / scenario), "--out", str(out), "--quiet", *extra]) == 0
    return out


def test_schema_prints_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Scenario"
    assert "sellers" in schema["properties"]


def test_schema_to_file(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path / "schema.json")]) == 0
    assert "sellers" in json.loads((tmp_path / "schema.json").read_text())["properties"]


def test_plugins_table_lists_the_built_in_strategies() -> None:
    result = _marketsim("plugins", env={"COLUMNS": "240"})
    assert result.returncode == 0, result.stderr
    for name in ("fixed_price", "undercut", "myopic_best_response", "cost_plus"):
        assert name in result.stdout


def test_plugins_json_lists_strategies_with_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in listing["strategies"]}
    assert {"fixed_price", "myopic_best_response", "undercut"} <= set(rows)
    assert rows["fixed_price"]["parameters"] == {"price": 1.5}
    assert "step" in rows["undercut"]["parameters"]
    assert isinstance(rows["myopic_best_response"]["parameters"], dict)
    for row in rows.values():
        assert {"learns", "stochastic", "needs_torch", "observes"} <= set(row["classifier"])
        assert row["summary"]
    assert unexpected(listing["problems"]) == []


def shipped() -> list[Path]:
    """Every bundled file this environment can load (torch scenarios need the deep extra)."""
    return [p for p in sorted(SCENARIOS.glob("*.yaml")) if HAS_TORCH or not TORCH_STRATEGIES.search(p.read_text())]


def test_validate_shipped_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in shipped()]
    assert main(["validate", *files]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("ok") == len(files)
    assert captured.err == ""


def test_validate_through_python_m() -> None:
    result = _marketsim("validate", *[str(p.relative_to(ROOT)) for p in shipped()])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_run_writes_the_run_folder(tmp_path: Path) -> None:
    out = _run(tmp_path, "calvano", "calvano2020.yaml", "--steps", "20")
    for name in ("summary.json", "steps.csv", "prices.png", "shares.png", "profits.png", "scenario.yaml"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["scenario"] == "calvano2020"
    nash, monopoly = summary["benchmarks"]["nash"]["prices"], summary["benchmarks"]["monopoly"]["prices"]
    assert nash == pytest.approx([1.4729, 1.4729], abs=1e-3)  # Calvano et al. (2020)
    assert monopoly == pytest.approx([1.9250, 1.9250], abs=1e-3)
    assert [s["name"] for s in summary["sellers"]] == ["firm_1", "firm_2"]
    for seller in summary["sellers"]:
        assert seller["strategy"] == "q_learning"
        for key in ("mean_price", "profit", "profit_gain"):
            assert isinstance(seller[key], float), key
        assert 1.42 < seller["mean_price"] < 1.98  # on the learner's grid around Nash and monopoly

    with (out / "steps.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert [int(r["step"]) for r in rows] == list(range(20))
    assert {"firm_1.price", "firm_2.price"} <= set(rows[0])


def test_run_folder_scenario_round_trips(tmp_path: Path) -> None:
    out = _run(tmp_path, "calvano", "calvano2020.yaml", "--steps", "3")
    written = load_scenario(out / "scenario.yaml")
    assert written.steps == 3
    assert written.digest() == (out / "scenario.sha256").read_text().strip()
    assert written.digest() == json.loads((out / "summary.json").read_text())["scenario_hash"]


def test_same_seed_gives_identical_steps(tmp_path: Path) -> None:
    first = _run(tmp_path, "a", "quickstart.yaml", "--steps", "5", "--seed", "3")
    second = _run(tmp_path, "b", "quickstart.yaml", "--steps", "5", "--seed", "3")
    assert (first / "steps.csv").read_bytes() == (second / "steps.csv").read_bytes()
    other = _run(tmp_path, "c", "quickstart.yaml", "--steps", "5", "--seed", "4")
    assert (first / "steps.csv").read_bytes() != (other / "steps.csv").read_bytes()


def test_run_through_python_m_prints_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _marketsim("run", "scenarios/calvano2020.yaml", "--steps", "5", "--out", str(out), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "firm_1" in result.stdout and "Nash" in result.stdout
    assert str(out) in result.stdout
    assert (out / "summary.json").is_file()


def test_run_of_a_missing_file_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"no such file: {tmp_path / 'nope.yaml'}; bundled files it runs: ")
    assert not (tmp_path / "out").exists()


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_plugins_show_one_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "show", "undercut"]) == 0
    shown = capsys.readouterr().out
    assert "Edgeworth" in shown and "reset_price" in shown and "reactive=True" in shown
    assert main(["plugins", "show", "undercutt"]) == 2
    assert "nothing is registered as 'undercutt' (did you mean 'undercut'?)" in capsys.readouterr().err
    assert main(["plugins", "frobnicate"]) == 2


@pytest.mark.parametrize(
    ("name", "kind", "fragment"), [("logit", "choice model", "consumers.mu"), ("price_dispersion", "observer", "tail")]
)
def test_plugins_show_knows_choice_models_and_observers(
    capsys: pytest.CaptureFixture[str], name: str, kind: str, fragment: str
) -> None:
    assert main(["plugins", "show", name]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"{name} {kind} from marketsim" in shown and f"qualified: marketsim:{name}" in shown and fragment in shown


def test_plugins_check_passes_here_and_fails_on_a_problem(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    assert main(["plugins", "--check"]) == 0
    assert "plugins ok" in capsys.readouterr().out
    registry = load_registry()
    registry.problems.append(PluginProblem("acme", "import failed: boom"))
    monkeypatch.setattr("marketsim.cli.plugins.default_registry", lambda: registry)
    assert main(["plugins", "--check"]) == 1
    assert "problem in plugin 'acme': import failed: boom" in capsys.readouterr().err
    assert main(["plugins"]) == 1  # the listing too, so CI notices
