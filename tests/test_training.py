"""`marketsim train`: train one seller, write checkpoint + curve, evaluate the checkpoint in a scenario."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml

torch = pytest.importorskip("torch")

from markets import duopoly_dict  # noqa: E402
from marketsim.cli.app import main  # noqa: E402
from marketsim.config.scenario import Scenario  # noqa: E402
from marketsim.config.validate import load_scenario  # noqa: E402
from marketsim.hookspecs import hookimpl  # noqa: E402
from marketsim.learning.checkpoint import load_checkpoint  # noqa: E402
from marketsim.learning.training import TrainError, make_oracle, train, write_training  # noqa: E402
from marketsim.market.model import MarketModel  # noqa: E402
from marketsim.registry import default_registry, load_registry  # noqa: E402
from marketsim.strategy import Strategy  # noqa: E402

SMALL = {"learning_starts": 64, "batch_size": 32, "hidden": [32], "decay_steps": 300}


def scenario_dict(params: dict | None = None, rival: str = "match_lowest", steps: int = 400) -> dict[str, Any]:
    """A small DQN ("learner") against a rule ("rival") in the Calvano duopoly, as YAML data."""
    data = duopoly_dict({"strategy": "dqn", "params": {**SMALL, **(params or {})}}, {"strategy": rival}, 3, steps)
    data["sellers"][0]["name"], data["sellers"][1]["name"] = "learner", "rival"
    return {**data, "name": "small-duopoly"}


def write_scenario(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_train_writes_checkpoint_sidecar_curve_and_plot(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "duopoly.yaml", scenario_dict())
    out = tmp_path / "trained"
    assert main(["train", str(path), "--seller", "learner", "--steps", "600", "--out", str(out), "--quiet"]) == 0
    assert {"checkpoint.pt", "checkpoint.json", "curve.csv", "curve.png", "summary.json"} <= {
        p.name for p in out.iterdir()
    }
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["strategy"] == "dqn" and meta["seller"] == "learner" and meta["steps"] == 600
    assert meta["scenario"] == "small-duopoly" and meta["scenario_hash"] == load_scenario(path).digest()
    assert meta["params"]["hidden"] == [32] and meta["params"]["learning_starts"] == 64
    assert {"torch", "marketsim", "strategy_api"} <= set(meta["versions"])
    curve = pd.read_csv(out / "curve.csv")
    assert list(curve.columns) == ["step", "profit", "moving_average", "price", "S"]
    assert curve["step"].tolist() == list(range(1, 601))
    assert curve["moving_average"].iloc[-1] == pytest.approx(curve["profit"].iloc[-30:].mean())  # window 30
    scored = curve["S"].dropna()
    assert len(scored) == 20 and scored.index[-1] == 599 and (scored <= 1.1).all()  # every 30 steps, and at the end
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state, _ = load_checkpoint(out / "checkpoint.pt")
    assert int(state["counters"]["t"]) == 600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".trained")]  # no temporary left behind


def test_a_scenario_evaluates_the_checkpoint_with_the_same_greedy_prices(tmp_path: Path) -> None:
    train_path = write_scenario(tmp_path / "train.yaml", scenario_dict())
    out = tmp_path / "trained"
    assert main(["train", str(train_path), "--seller", "learner", "--steps", "500", "--out", str(out), "--quiet"]) == 0
    checkpoint = out / "checkpoint.pt"
    stored = checkpoint.read_bytes()
    # the reference: the trained network, loaded by hand and asked for its greedy price
    reference = MarketModel(load_scenario(train_path)).sellers[0].strategy
    reference.load_state_dict(load_checkpoint(checkpoint)[0])
    reference.set_training(False)
    eval_data = scenario_dict({"checkpoint": str(checkpoint), "mode": "eval"}, steps=60)
    model = MarketModel(load_scenario(write_scenario(tmp_path / "eval.yaml", eval_data)))
    dqn = model.sellers[0].strategy
    before = {k: v.clone() for k, v in dqn.online.state_dict().items()}
    for _ in range(60):
        obs = model.observations[0]
        model.step()
        assert model.sellers[0].price == reference.price(obs)
    assert all(torch.equal(before[k], v) for k, v in dqn.online.state_dict().items())  # eval never trains
    assert dqn.updates == reference.updates and dqn.transitions == reference.transitions
    assert checkpoint.read_bytes() == stored


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seller", "nobody"], "no seller named 'nobody'"),
        (["--seller", "rival"], "does not learn"),
        (["--seller", "learner", "--workers", "2"], "one process only"),
    ],
)
def test_bad_requests_fail_with_one_line_and_write_nothing(tmp_path: Path, capsys, argv, message) -> None:
    path = write_scenario(tmp_path / "duopoly.yaml", scenario_dict())
    out = tmp_path / "never"
    assert main(["train", str(path), *argv, "--steps", "50", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["duopoly.yaml"]


def test_a_missing_scenario_file_fails_with_exit_2(tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    assert main(["train", str(tmp_path / "nope.yaml"), "--seller", "x", "--out", str(out), "--quiet"]) == 2
    assert "nope.yaml" in capsys.readouterr().err and not out.exists()


def test_train_summary_is_printed(tmp_path: Path, capsys) -> None:
    path = write_scenario(tmp_path / "duopoly.yaml", scenario_dict())
    assert main(["train", str(path), "--seller", "learner", "--steps", "200", "--out", str(tmp_path / "t")]) == 0
    text = capsys.readouterr().out
    assert "trained learner (dqn)" in text and "score S" in text and "checkpoint.pt" in text


def test_no_oracle_score_where_rivals_cannot_be_tabulated(tmp_path: Path) -> None:
    data = scenario_dict(rival="random_price")
    scenario = Scenario.model_validate(data)
    result = train(scenario, "learner", steps=100)
    assert result.score is None and result.curve["S"].isna().all()
    write_training(result, tmp_path / "t")
    assert (tmp_path / "t" / "curve.png").is_file()


def test_the_oracle_uses_the_learners_own_grid() -> None:
    scenario = Scenario.model_validate(scenario_dict({"grid_size": 7, "xi": 0.2}))
    model = MarketModel(scenario)
    judge = make_oracle(scenario, 0, model.sellers[0].strategy, default_registry())
    assert judge is not None and judge.market.m == 7
    np.testing.assert_allclose(judge.market.grids[0], model.sellers[0].strategy.prices)


def test_a_tabular_learner_trains_through_the_market_loop() -> None:
    data = scenario_dict()
    data["sellers"][0].update(strategy="q_learning", params={"beta": 1e-3})
    result = train(Scenario.model_validate(data), "learner", steps=300)
    assert result.strategy == "q_learning" and result.score is not None and len(result.curve) == 300
    assert result.state["q"].shape == (225, 15)


class ParallelLearner(Strategy):
    """A stand-in for A3C (``ParallelTrainable``): each worker counts its steps as updates of a shared model."""

    name = "parallel_learner"
    classifier: ClassVar[dict[str, Any]] = {"learns": True}

    def __init__(self, level: float = 1.5) -> None:
        self.level = level
        self.value = 0.0
        self.on_update = None

    def price(self, obs):
        return self.level + self.value

    def learn(self, outcome) -> None:
        if self.on_update is not None:
            self.on_update()

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "steps": self.steps, "updates": self.updates}

    def load_state_dict(self, state) -> None:
        self.value = float(state["value"])

    def share_model(self) -> str:
        return "handle"

    def attach_worker(self, shared, on_update) -> None:
        assert shared == "handle"
        self.on_update = on_update

    def finish_workers(self, steps: int, updates: int) -> int:
        self.value, self.steps, self.updates = 0.25, steps, updates
        return updates


class _ParallelPlugin:
    @hookimpl
    def register_strategies(self, register) -> None:
        register(ParallelLearner)


@pytest.mark.slow  # worker processes (about 5 s)
def test_a_parallel_trainable_strategy_is_trained_by_the_host_workers() -> None:
    registry = load_registry(plugins=[("parallel", _ParallelPlugin())])
    data = scenario_dict()
    data["sellers"][0].update(strategy="parallel_learner", params={"level": 1.6})
    seen: list[int] = []
    scenario = Scenario.model_validate(data)
    result = train(scenario, "learner", steps=41, workers=2, registry=registry, progress=seen.append)
    assert seen and seen[-1] == 41 and seen == sorted(seen)
    # the parent's learner was told what the workers did: every step of each worker is one update
    assert result.workers == 2 and result.state == {"value": 0.25, "steps": 41, "updates": 41}
    assert result.params == {"level": 1.6}
    assert list(result.curve.columns) == ["step", "worker", "profit", "moving_average", "price", "S"]
    assert len(result.curve) == 41 and set(result.curve["worker"]) == {0, 1}  # one row per worker step
    assert (result.curve["price"] == 1.6).all()
    assert result.score is None  # not GreedyTabulable: no oracle score
    with pytest.raises(TrainError, match="workers"):
        train(scenario, "learner", steps=40, workers=0, registry=registry)
    assert not math.isnan(result.curve["moving_average"].iloc[-1])
