"""Every bundled scenario runs; run folders are complete, atomic and reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketsim.config.validate import load_scenario
from marketsim.market.run import simulate, write_run
from marketsim.meta.tasks import is_family_file
from optional import bundled

SCENARIOS = sorted(
    p
    for p in (Path(__file__).parents[1] / "scenarios").glob("*.yaml")
    if not p.stem.startswith("tournament") and not is_family_file(p)
)


def test_there_are_bundled_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"quickstart", "calvano2020", "oligopoly", "social_network"} <= names


@pytest.mark.parametrize("path", bundled(SCENARIOS))
def test_bundled_scenario_runs(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    short = scenario.with_overrides(steps=min(scenario.steps, 25))
    result = simulate(short)
    assert len(result.steps) == short.steps
    assert all(s.mean_price > 0 for s in result.sellers)
    assert result.steps["buyers"].sum() > 0
    out = write_run(result, tmp_path / "run")
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["benchmarks"]["nash"]["prices"]) == len(result.sellers)
    assert {"prices.png", "shares.png", "profits.png", "steps.csv", "scenario.yaml", "scenario.sha256"} <= {
        p.name for p in out.iterdir()
    }


def test_myopic_best_responders_reach_nash_in_the_calvano_market() -> None:
    calvano = load_scenario(SCENARIOS[0].parent / "calvano2020.yaml")
    sellers = [s.model_copy(update={"strategy": "myopic_best_response", "params": {}}) for s in calvano.sellers]
    result = simulate(calvano.model_copy(update={"sellers": tuple(sellers)}).with_overrides(steps=30))
    last = result.steps.iloc[-1]
    assert last["firm_1.price"] == pytest.approx(1.4729, abs=1e-4)
    assert result.benchmarks.monopoly.prices[0] == pytest.approx(1.9250, abs=1e-4)


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    result = simulate(load_scenario(SCENARIOS[0].parent / "calvano2020.yaml").with_overrides(steps=3))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("marketsim.market.run.plot_run", boom)
    with pytest.raises(RuntimeError):
        write_run(result, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_same_seed_gives_identical_steps_csv(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS[0].parent / "quickstart.yaml").with_overrides(steps=20)
    a = write_run(simulate(scenario), tmp_path / "a")
    b = write_run(simulate(scenario), tmp_path / "b")
    c = write_run(simulate(scenario.with_overrides(seed=8)), tmp_path / "c")
    assert (a / "steps.csv").read_bytes() == (b / "steps.csv").read_bytes()
    assert (a / "steps.csv").read_bytes() != (c / "steps.csv").read_bytes()
