"""rl2: conformance, acceptance A (beats Thompson and the best fixed price early) and B (the ablations),
and a quick retraining from scratch that shows the training code itself learns.

A and B use the committed checkpoint ``tests/data/rl2_meta_pricing.pt`` (``marketsim meta-train
scenarios/meta_pricing.yaml --strategy rl2``); the figures in docs/results.md come from 500 tasks by command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")


from marketsim.meta.evaluate import EvalResult, evaluate, run_agent  # noqa: E402
from marketsim.meta.tasks import Family, best_fixed_price, load_family, sample_tasks  # noqa: E402
from marketsim.registry import Registry, default_registry  # noqa: E402
from marketsim.testing import assert_conforms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"
CHECKPOINT = ROOT / "tests" / "data" / "rl2_meta_pricing.pt"
N_TASKS = 200  # held-out tasks in CI (docs/results.md's table: 500, by command)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def family(registry: Registry) -> Family:
    return load_family(BUNDLED, registry)


def test_conforms_untrained_and_trained() -> None:
    from marketsim_meta import RL2

    assert_conforms(RL2, {"device": "cpu"}, steps=60)
    assert_conforms(RL2, {"device": "cpu", "checkpoint": str(CHECKPOINT), "act": "greedy"}, steps=60)


def test_memory_resets_per_task_and_no_gradients(family: Family, registry: Registry) -> None:
    strategy = registry.create("rl2", {"checkpoint": str(CHECKPOINT), "device": "cpu"})
    task = sample_tasks(family, "test", 1)[0]
    before = {k: v.clone() for k, v in strategy_net(strategy, task, registry).items()}
    first = run_agent(task, strategy, registry)
    assert all(np.array_equal(v, strategy.net.state_dict()[k]) for k, v in before.items())  # no learning
    second = run_agent(task, strategy, registry)  # same seat generator, memory reset by setup
    np.testing.assert_array_equal(first.prices, second.prices)


def strategy_net(strategy, task, registry):
    from marketsim.meta.tasks import task_market

    market, _ = task_market(task, registry)
    strategy.setup(market, np.random.default_rng(0))
    return strategy.net.state_dict()


def test_parameters_are_checked() -> None:
    from marketsim_meta import RL2

    for bad in ({"mode": "learn"}, {"act": "max"}, {"hidden": 0}, {"grid": [1.0]}, {"horizon": 0}):
        with pytest.raises(ValueError):
            RL2(**bad)


@pytest.fixture(scope="module")
def evaluated(family: Family, registry: Registry) -> EvalResult:
    price, _ = best_fixed_price(family, 200, "train", registry=registry)
    ckpt = {"checkpoint": str(CHECKPOINT), "mode": "eval", "device": "cpu"}
    agents = {
        "rl2": ("rl2", ckpt),
        "rl2_blind": ("rl2", {**ckpt, "blind": True}),
        "rl2_amnesic": ("rl2", {**ckpt, "amnesic": True}),
        "thompson_pricing": ("thompson_pricing", {}),
        "best_fixed_price": ("best_fixed_price", {"price": price}),
    }
    return evaluate(family, agents, N_TASKS, "test", registry)


@pytest.mark.slow
def test_acceptance_a_rl2_adapts_faster_than_the_baselines(evaluated: EvalResult) -> None:
    rows = evaluated.summary()["agents"]
    rl2, ts, fixed = rows["rl2"], rows["thompson_pricing"], rows["best_fixed_price"]
    print(
        {
            k: {m: round(v[m], 3) for m in ("regret_10", "regret_25", "regret_H", "last10_oracle_share")}
            for k, v in rows.items()
        }
    )
    assert rl2["regret_25"] <= 0.7 * ts["regret_25"]
    assert rl2["regret_25"] <= 0.7 * fixed["regret_25"]
    assert rl2["last10_oracle_share"] >= fixed["last10_oracle_share"] + 0.08


@pytest.mark.slow
def test_acceptance_b_ablations_at_least_double_the_regret(evaluated: EvalResult) -> None:
    rows = evaluated.summary()["agents"]
    assert rows["rl2_blind"]["regret_H"] >= 2 * rows["rl2"]["regret_H"]
    assert rows["rl2_amnesic"]["regret_H"] >= 2 * rows["rl2"]["regret_H"]


@pytest.mark.slow
def test_training_from_scratch_lowers_the_regret(family: Family, registry: Registry) -> None:
    """The training code itself (not the cached weights) learns: a small budget cuts the regret well down."""
    import torch

    from marketsim.meta.train import TaskBatch, meta_train, oracle_profits
    from marketsim_meta.rl2 import make_net, rollout

    result, seconds = meta_train(
        family, "rl2", 200, seed=0, registry=registry, device="cpu",
        batch=64, hidden=64, pool=1024, validation=32, log_every=200,
    )  # fmt: skip
    tasks = sample_tasks(family, "train", 64, start=5000)  # not in the training pool
    env = TaskBatch.from_tasks(tasks, registry)
    oracle = oracle_profits(tasks, registry)
    cfg = result.state["config"]

    def regret(state) -> float:
        net = make_net(cfg)
        if state is not None:
            net.load_state_dict(state)
        with torch.no_grad():
            roll = rollout(
                net, env, cfg, np.random.default_rng(1), torch.Generator().manual_seed(1), torch.device("cpu")
            )
        return float((oracle - roll["expected"]).sum(axis=1).mean())

    untrained, trained = regret(None), regret(result.state["net"])
    print(f"retrained in {seconds:.1f} s: regret_H {untrained:.0f} -> {trained:.0f}")
    assert trained <= 0.7 * untrained
