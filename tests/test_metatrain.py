"""Meta-training: the batched market matches the real one, the command, checkpoints, reproducibility."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from marketsim.cli.meta import cmd_meta_train
from marketsim.cli.parser import build_parser
from marketsim.learning.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from marketsim.meta.evaluate import run_agent
from marketsim.meta.tasks import Family, load_family, sample_tasks
from marketsim.meta.train import (
    MetaTrainError,
    TaskBatch,
    family_hash,
    meta_train,
)
from marketsim.registry import Registry, default_registry
from marketsim.strategy import Observation, Strategy

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def family(registry: Registry) -> Family:
    return load_family(BUNDLED, registry)


class Scripted(Strategy):
    """Posts a given price path (test helper)."""

    name = "scripted"

    def __init__(self, path: tuple[float, ...] = (1.0,)) -> None:
        self.path = tuple(path)

    def price(self, obs: Observation) -> float:
        return float(self.path[obs.step])


def test_batched_market_equals_run_agent_in_expectation(family: Family, registry: Registry) -> None:
    tasks = sample_tasks(family, "test", 24)
    assert {t.params["rivals.count"] for t in tasks} == {0, 1, 2}
    kinds = {s.strategy for t in tasks for s in t.scenario.sellers[1:]}
    assert {"fixed_price", "match_lowest", "undercut"} <= kinds
    rng = np.random.default_rng(3)
    grid = np.array(family.grid)
    paths = grid[rng.integers(0, len(grid), (len(tasks), family.horizon))]
    batch = TaskBatch.from_tasks(tasks, registry)
    mine = batch.rollout_expected(paths)
    real = np.array([run_agent(t, Scripted(tuple(paths[b])), registry).expected_profit for b, t in enumerate(tasks)])
    np.testing.assert_allclose(mine, real, rtol=1e-9, atol=1e-9)


def test_sampled_sales_average_to_the_expected_units(family: Family, registry: Registry) -> None:
    batch = TaskBatch.from_tasks(sample_tasks(family, "train", 16), registry)
    own = np.full(len(batch), 2.5)
    draws = []
    for s in range(300):  # a fresh population and fresh shoppers each time
        rng = np.random.default_rng(s)
        batch.reset_episode(rng)
        step = batch.step(batch.start.copy(), own, rng)
        draws.append(step.units)
    draws = np.array(draws)
    expected = batch.expected_units(step.prices)
    se = draws.std(axis=0) / np.sqrt(len(draws)) + 1e-9
    assert np.all(np.abs(draws.mean(axis=0) - expected) < 5 * se + 0.02 * expected + 0.05)
    assert np.all(draws >= 0) and np.all(draws <= 300)
    assert draws.std(axis=0).max() > 1  # sales are noisy, as in the agent-based market


def test_generic_reactive_rival_goes_through_its_rule(family: Family, registry: Registry) -> None:
    task = sample_tasks(family, "test", 40)
    task = next(t for t in task if t.params["rivals.count"] >= 1)
    sellers = list(task.scenario.sellers)
    sellers[1] = sellers[1].model_copy(update={"strategy": "follow_average", "params": {"weight": 0.5}})
    scenario = task.scenario.model_copy(update={"sellers": tuple(sellers)})
    from dataclasses import replace

    task = replace(task, scenario=scenario)
    path = np.linspace(1.5, 4.0, family.horizon)
    batch = TaskBatch.from_tasks([task], registry)
    assert batch.rules[0, 1].name == "follow_average"
    real = run_agent(task, Scripted(tuple(path)), registry).expected_profit
    np.testing.assert_allclose(batch.rollout_expected(path[None])[0], real, rtol=1e-9, atol=1e-9)


def _args(**kw) -> Namespace:
    base = {"family": str(BUNDLED), "strategy": "rl2", "out": None, "iterations": None, "seed": 0, "device": "cpu"}
    return Namespace(**{**base, "quiet": True, "force": False, **kw})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"strategy": "thompson_pricing"}, "cannot be meta-trained"),
        ({"strategy": "nope"}, "cannot be meta-trained"),
        ({"iterations": 0}, "--iterations must be >= 1"),
        ({"family": "missing.yaml"}, "no such file: missing.yaml"),
        ({"device": "tpu"}, "--device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, registry: Registry, change, message
) -> None:
    monkeypatch.setattr("marketsim.cli.meta.default_registry", lambda: registry)
    out = tmp_path / "out"
    assert cmd_meta_train(_args(out=out, **change)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_parser_is_wired(tmp_path: Path) -> None:
    args = build_parser().parse_args(["meta-train", "f.yaml", "--strategy", "rl2", "--iterations", "3", "--quiet"])
    assert args.iterations == 3 and args.strategy == "rl2" and args.func.resolve() is cmd_meta_train


def test_meta_train_function_refuses_a_non_meta_learner(family: Family, registry: Registry) -> None:
    with pytest.raises(MetaTrainError, match="cannot be meta-trained"):
        meta_train(family, "dqn", 1, registry=registry)


TINY_RL2 = {"batch": 8, "pool": 64, "validation": 8, "log_every": 2, "hidden": 16}


def test_same_seed_same_rl2_checkpoint(family: Family, registry: Registry) -> None:
    a, _ = meta_train(family, "rl2", 3, seed=5, registry=registry, device="cpu", **TINY_RL2)
    b, _ = meta_train(family, "rl2", 3, seed=5, registry=registry, device="cpu", **TINY_RL2)
    c, _ = meta_train(family, "rl2", 3, seed=6, registry=registry, device="cpu", **TINY_RL2)
    for k, v in a.state["net"].items():
        assert np.array_equal(v.numpy(), b.state["net"][k].numpy()), k
    assert any(not np.array_equal(v.numpy(), c.state["net"][k].numpy()) for k, v in a.state["net"].items())
    assert a.curve == b.curve or [r["val_regret_H"] for r in a.curve] == [r["val_regret_H"] for r in b.curve]


def test_same_seed_same_reptile_checkpoint(family: Family, registry: Registry) -> None:
    tiny = {"meta_batch": 2, "pool": 16, "validation": 2, "log_every": 2, "average_tasks": 2, "hidden": [8]}
    a, _ = meta_train(family, "reptile_dqn", 2, seed=1, registry=registry, device="cpu", **tiny)
    b, _ = meta_train(family, "reptile_dqn", 2, seed=1, registry=registry, device="cpu", **tiny)
    for k, v in a.state["init"].items():
        assert np.array_equal(v.numpy(), b.state["init"][k].numpy()), k
    assert set(a.extra) == {"averaged"}


def test_command_writes_checkpoint_sidecar_and_curve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry, family: Family, capsys
) -> None:
    monkeypatch.setattr("marketsim.cli.meta.default_registry", lambda: registry)
    import marketsim.cli.meta as cli_meta

    original = cli_meta.meta_train

    def tiny(*args, **kw):
        return original(*args, **{**kw, **TINY_RL2})

    monkeypatch.setattr(cli_meta, "meta_train", tiny)
    out = tmp_path / "rl2"
    assert cmd_meta_train(_args(out=out, iterations=2, quiet=False)) == 0
    printed = capsys.readouterr().out
    assert "meta-trained" in printed and "checkpoint" in printed
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["strategy"] == "rl2" and meta["family"] == "meta_pricing" and meta["iterations"] == 2
    assert meta["family_hash"] == family_hash(family) and meta["training_seconds"] > 0
    assert {"grid", "hidden", "horizon"} <= set(meta["params"])
    assert (out / "curve.csv").read_text().startswith("iteration,") and (out / "curve.png").stat().st_size > 0
    state, _ = load_checkpoint(out / "checkpoint.pt")  # round trip: the strategy rebuilds from it
    strategy = registry.create("rl2", {"checkpoint": str(out / "checkpoint.pt"), "mode": "eval"})
    task = sample_tasks(family, "test", 1)[0]
    run = run_agent(task, strategy, registry)
    assert np.all(np.isin(np.round(run.prices, 9), np.round(family.grid, 9)))
    assert set(state["net"]) == set(strategy.state_dict()["net"])


def test_pickled_object_checkpoint_is_refused(tmp_path: Path, registry: Registry) -> None:
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"net": Scripted()}, path)  # an arbitrary object: loading it would run code
    path.with_suffix(".json").write_text(json.dumps({"strategy": "rl2"}))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    strategy = registry.create("rl2", {"checkpoint": str(path)})
    from marketsim.meta.tasks import task_market

    family = load_family(BUNDLED, registry)
    market, _ = task_market(sample_tasks(family, "test", 1)[0], registry)
    with pytest.raises(CheckpointError):
        strategy.setup(market, np.random.default_rng(0))
    save_checkpoint(tmp_path / "other.pt", {"x": 1}, {"strategy": "dqn"})
    with pytest.raises(CheckpointError, match="not 'rl2'"):
        registry.create("rl2", {"checkpoint": str(tmp_path / "other.pt")}).setup(market, np.random.default_rng(0))


def test_meta_learners_are_found_by_their_capability(registry: Registry) -> None:
    from marketsim.meta.train import meta_learners
    from marketsim.strategy import MetaTrainable

    assert {"rl2", "reptile_dqn"} <= set(meta_learners(registry))
    assert isinstance(registry.get("rl2").cls, MetaTrainable)
    assert not isinstance(registry.get("thompson_pricing").cls, MetaTrainable)


SIDECARS = sorted((ROOT / "tests" / "data").glob("*_meta_pricing*.json"))


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_each_committed_checkpoint_was_trained_on_the_bundled_family_as_it_stands(sidecar: Path, family) -> None:
    """A checkpoint the tests and the docs' figures rely on is regenerated when the family file changes
    (`marketsim meta-train scenarios/meta_pricing.yaml --strategy NAME`), not left describing an older one."""
    meta = json.loads(sidecar.read_text())
    assert meta["family"] == "meta_pricing" and meta["seed"] == 0
    assert meta["family_hash"] == family_hash(family), f"{sidecar.name}: trained on another version of the family"
