"""Every bundled scenario runs; run folders are complete, atomic and reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import marketsim_rules
from marketsim.config.scenario import Scenario
from marketsim.config.validate import load_scenario
from marketsim.exceptions import StopRun
from marketsim.market.run import simulate, write_run
from marketsim.meta.tasks import is_family_file
from marketsim.registry import load_registry
from marketsim.strategy import Strategy
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


class _Budgeted(Strategy):
    """Test strategy: a fixed price that reports its 'spending' and stops the run once it passes a budget."""

    name = "budgeted"

    def __init__(self, budget: int = 5) -> None:
        self.budget, self.spent = budget, 0

    def price(self, obs):
        if self.spent >= self.budget:
            raise StopRun(f"budget of {self.budget} requests spent")
        self.spent += 1
        return 1.6

    def report(self):
        return {"requests": self.spent, "budget": self.budget}


def test_a_strategy_can_stop_the_run_cleanly_and_report_its_metrics(tmp_path) -> None:
    registry = load_registry(plugins=[("rules", marketsim_rules)], entry_points=False)
    registry.register(_Budgeted, "tests")
    scenario = Scenario.model_validate(
        {
            "name": "budget",
            "steps": 20,
            "consumers": {"size": 200},
            "sellers": [{"name": "llm", "strategy": "budgeted"}, {"name": "f", "strategy": "fixed_price"}],
        }
    )
    result = simulate(scenario, registry)
    assert (
        len(result.steps) == 5 and result.stopped == "seller 'llm' ended the run at step 5: budget of 5 requests spent"
    )
    folder = write_run(result, tmp_path / "run")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["stopped"] == result.stopped and summary["steps_run"] == 5
    assert summary["sellers"][0]["report"] == {"requests": 5, "budget": 5} and "report" not in summary["sellers"][1]
    assert len(pd.read_csv(folder / "steps.csv")) == 5  # only the completed steps
