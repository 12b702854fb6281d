"""Meta-evaluation: regret arithmetic, the same tasks for every agent, the output folder and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import marketsim.cli.meta as cli_meta
from marketsim.cli.app import main
from marketsim.market.model import MarketModel
from marketsim.meta.evaluate import (
    EvalResult,
    MetaEvalError,
    baseline_agents,
    evaluate,
    fixed_price_share,
    oracle_params,
    run_agent,
    task_params,
    write_eval,
)
from marketsim.meta.tasks import Family, load_family, sample_tasks, with_strategy
from marketsim.registry import Registry, default_registry

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"
AGENT_KEYS = {"regret_10", "regret_25", "regret_H", "last10_oracle_share"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def family(registry: Registry) -> Family:
    return load_family(BUNDLED, registry)


def _result(oracle, agent, horizon: int) -> EvalResult:
    oracle, agent = np.asarray(oracle, float), np.asarray(agent, float)
    return EvalResult(
        family="hand",
        split="test",
        horizon=horizon,
        agents=("a",),
        specs={"a": ("fixed_price", {})},
        tasks=tuple(range(len(oracle))),
        task_params=tuple({} for _ in oracle),
        prices=np.ones((1, *oracle.shape)),
        expected=agent[None],
        oracle_prices=np.ones(oracle.shape),
        oracle=oracle,
    )


def test_regret_arithmetic_on_a_hand_made_case() -> None:
    oracle = [[10.0] * 30, [20.0] * 30]
    agent = [[5.0] * 10 + [10.0] * 15 + [9.0] * 5, [10.0] * 10 + [20.0] * 20]
    result = _result(oracle, agent, 30)
    regret = result.regret()[0]
    assert regret[0, :3].tolist() == [5.0, 10.0, 15.0]
    assert regret[:, 9].tolist() == [50.0, 100.0]  # R(10)
    assert regret[:, 24].tolist() == [50.0, 100.0]  # no regret from step 11 to 25
    assert regret[:, 29].tolist() == [55.0, 100.0]
    row = result.summary()["agents"]["a"]
    assert row["regret_10"] == 75.0 and row["regret_25"] == 75.0 and row["regret_H"] == 77.5
    assert row["regret_H_ci"][0] < 77.5 < row["regret_H_ci"][1]
    # last 10 steps: (5*10 + 5*9 + 10*20) / (10*10 + 10*20)
    assert row["last10_oracle_share"] == pytest.approx((50 + 45 + 200) / 300)
    # a horizon shorter than 25 reports R(H) for regret_25
    short = _result([[2.0] * 5], [[1.0] * 5], 5).summary()["agents"]["a"]
    assert short["regret_10"] == short["regret_25"] == short["regret_H"] == 5.0
    assert short["last10_oracle_share"] == 0.5


def test_run_agent_equals_a_fresh_market_with_the_agent_in_the_seat(family: Family, registry: Registry) -> None:
    task = next(t for t in sample_tasks(family, "test", 20) if t.params["rivals.count"] == 2)
    params = task_params("thompson_pricing", {}, task, registry)
    run = run_agent(task, ("thompson_pricing", {}), registry)
    model = MarketModel(with_strategy(task, "thompson_pricing", params), registry)
    prices = []
    for _ in range(task.horizon):
        model.step()
        prices.append(model.sellers[task.learner].price)
    assert run.prices.tolist() == prices
    assert run.units[-1] == model.sellers[task.learner].units
    posted = np.array([s.price for s in model.sellers])
    assert run.expected_profit[-1] == pytest.approx(model.demand.profits(posted)[task.learner])


def test_the_oracle_has_no_regret_and_agents_share_the_tasks(family: Family, registry: Registry) -> None:
    tasks = sample_tasks(family, "test", 3)
    for task in tasks:
        oracle = run_agent(task, ("clairvoyant", oracle_params(task)), registry)
        again = run_agent(task, ("clairvoyant", oracle_params(task)), registry)
        assert np.array_equal(oracle.expected_profit, again.expected_profit)
        fixed = run_agent(task, ("best_fixed_price", {"price": 2.5}), registry)
        assert fixed.expected_profit.sum() <= oracle.expected_profit.sum() * (1 + 1e-9)


@pytest.fixture(scope="module")
def small_eval(family: Family, registry: Registry) -> EvalResult:
    agents = {"thompson_pricing": ("thompson_pricing", {}), "best_fixed_price": ("best_fixed_price", {"price": 2.4})}
    return evaluate(family, agents, 4, "test", registry, start=2)


def test_evaluate_writes_summary_curves_and_plot(small_eval: EvalResult, tmp_path: Path) -> None:
    folder = write_eval(small_eval, tmp_path / "eval")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["tasks"] == 4 and summary["horizon"] == 50 and summary["split"] == "test"
    assert set(summary["agents"]) == {"thompson_pricing", "best_fixed_price"}
    for row in summary["agents"].values():
        assert AGENT_KEYS <= set(row)
        assert all(isinstance(row[k], float) for k in AGENT_KEYS)
        assert row["regret_10"] <= row["regret_25"] + 1e-9 or row["regret_25"] < row["regret_10"]  # both numbers
    assert 0 < summary["fixed_price_share"] < 1
    assert summary["best_fixed_price"] == 2.4
    curves = pd.read_csv(folder / "curves.csv")
    assert {"t", "agent", "regret", "ci_low", "ci_high"} <= set(curves.columns)
    assert len(curves) == 2 * 50 and curves["t"].min() == 1 and curves["t"].max() == 50
    last = curves[(curves["agent"] == "thompson_pricing") & (curves["t"] == 50)].iloc[0]
    assert last["regret"] == pytest.approx(summary["agents"]["thompson_pricing"]["regret_H"])
    assert last["ci_low"] <= last["regret"] <= last["ci_high"]
    assert (folder / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tasks = pd.read_csv(folder / "tasks.csv")
    assert tasks["task"].tolist() == [2, 3, 4, 5]


@pytest.mark.slow
def test_results_do_not_depend_on_the_worker_count(family: Family, registry: Registry, small_eval: EvalResult) -> None:
    agents = {"thompson_pricing": ("thompson_pricing", {}), "best_fixed_price": ("best_fixed_price", {"price": 2.4})}
    pooled = evaluate(family, agents, 4, "test", registry, workers=2, start=2)
    assert pooled.tasks == small_eval.tasks
    assert np.array_equal(pooled.prices, small_eval.prices)
    assert np.array_equal(pooled.expected, small_eval.expected)
    assert np.array_equal(pooled.oracle, small_eval.oracle)


@pytest.mark.slow
def test_bundled_family_fixed_price_earns_at_most_80_percent_of_the_oracle(family: Family, registry: Registry) -> None:
    share, price = fixed_price_share(family, n_tasks=150, n_train=100, registry=registry)
    assert family.grid[0] < price < family.grid[-1]
    assert share <= 0.8, share


def test_baseline_agents_take_the_best_fixed_price_from_training_tasks(family: Family, registry: Registry) -> None:
    agents = baseline_agents(family, registry, n_train=10)
    assert set(agents) == {"thompson_pricing", "ucb_pricing", "best_fixed_price"}
    price = agents["best_fixed_price"][1]["price"]
    from marketsim.meta.tasks import best_fixed_price

    assert price == best_fixed_price(family, 10, "train", registry=registry)[0]


# --- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def cli_registry(monkeypatch, registry: Registry) -> Registry:
    monkeypatch.setattr(cli_meta, "default_registry", lambda: registry)
    monkeypatch.setattr(
        cli_meta, "baseline_agents", lambda fam, reg: {"best_fixed_price": ("best_fixed_price", {"price": 2.4})}
    )
    return registry


def test_meta_eval_command_writes_the_folder(cli_registry, tmp_path: Path, capsys) -> None:
    out = tmp_path / "me"
    code = main(
        ["meta-eval", str(BUNDLED), "--tasks", "2", "--workers", "1", "--out", str(out), "--strategy", "ucb_pricing"]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["agents"]) == {"best_fixed_price", "ucb_pricing"}
    printed = capsys.readouterr().out
    assert "regret_25" in printed and "meta-eval folder" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml"], "no such file: missing.yaml"),
        ([str(ROOT / "scenarios" / "quickstart.yaml")], "is a scenario file: run it with `marketsim run`"),
        ([str(BUNDLED), "--checkpoint", "nowhere/ckpt.pt"], "does not exist"),
        ([str(BUNDLED), "--strategy", "no_such_strategy"], "unknown strategy 'no_such_strategy'"),
    ],
)
def test_meta_eval_command_refuses_bad_input(cli_registry, tmp_path: Path, capsys, args, message) -> None:
    out = tmp_path / "me"
    assert main(["meta-eval", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_meta_eval_command_reads_the_checkpoint_sidecar(cli_registry, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"not really")
    ckpt.with_suffix(".json").write_text(json.dumps({"params": {}}))
    assert main(["meta-eval", str(BUNDLED), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x")]) == 2
    assert "names no 'strategy'" in capsys.readouterr().err
    ckpt.with_suffix(".json").write_text(json.dumps({"strategy": "fixed_price"}))
    assert main(["meta-eval", str(BUNDLED), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err  # fixed_price takes no checkpoint parameter: one line, nothing written
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# --- issue 18: every slice in one evaluation; the oracle in markets whose demand changes over time ----------


@pytest.mark.parametrize("split", ["regime_change", "seasonal"])
def test_the_clairvoyant_optimises_each_steps_demand(family: Family, registry: Registry, split: str) -> None:
    from marketsim.meta.tasks import fixed_price_profits

    for task in [t for t in sample_tasks(family, split, 30) if not t.rivals()][:3]:
        oracle = run_agent(task, ("clairvoyant", oracle_params(task)), registry)
        grid = np.linspace(family.grid[0], family.grid[-1], 41)
        fixed = fixed_price_profits(task, grid, registry)  # (prices, H) each step's profit of each fixed price
        assert np.all(oracle.expected_profit >= fixed.max(axis=0) - 1e-9)  # the best price of every step, or better
        if split == "regime_change":  # and it moves its price when the shoppers change
            at = task.scenario.consumers.shocks[0].at
            assert abs(oracle.prices[at] - oracle.prices[at - 1]) > 0.01


def test_the_clairvoyant_plans_against_reacting_rivals_under_a_regime_change(
    family: Family, registry: Registry
) -> None:
    task = next(
        t for t in sample_tasks(family, "regime_change", 60)
        if any(s.strategy in ("match_lowest", "undercut") for s in t.scenario.sellers)
    )  # fmt: skip
    oracle = run_agent(task, ("clairvoyant", oracle_params(task)), registry)
    for price in family.grid:  # no fixed grid price earns more over the task than the planner
        fixed = run_agent(task, ("best_fixed_price", {"price": float(price)}), registry)
        assert fixed.expected_profit.sum() <= oracle.expected_profit.sum() * (1 + 1e-9)


def test_meta_eval_all_splits_writes_one_table_and_a_panel_per_split(cli_registry, tmp_path: Path, capsys) -> None:
    out = tmp_path / "me"
    code = main(["meta-eval", str(BUNDLED), "--tasks", "2", "--split", "all", "--strategy", "ucb_pricing", "--out",
                 str(out)])  # fmt: skip
    assert code == 0
    splits = ["test", "ood", "cost_shift", "crowded", "seasonal", "regime_change"]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["splits"]) == splits
    assert all(set(s["agents"]) == {"best_fixed_price", "ucb_pricing"} for s in summary["splits"].values())
    table = pd.read_csv(out / "splits.csv")
    assert list(table["split"].unique()) == splits and len(table) == 2 * len(splits)
    assert {"regret_25", "regret_25_ci", "regret_H", "regret_H_ci"} <= set(table.columns)
    assert list(pd.read_csv(out / "tasks.csv")["split"].unique()) == splits
    assert (out / "regret.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert all(split in printed for split in splits) and "R(25) / R(H)" in printed
    one = summary["splits"]["crowded"]["agents"]["ucb_pricing"]["regret_H"]
    assert main(["meta-eval", str(BUNDLED), "--tasks", "2", "--split", "crowded", "--strategy", "ucb_pricing",
                 "--out", str(tmp_path / "one"), "--quiet"]) == 0  # fmt: skip
    alone = json.loads((tmp_path / "one" / "summary.json").read_text())["agents"]["ucb_pricing"]["regret_H"]
    assert alone == one  # a split's figures are the same evaluated alone or with the others


def test_meta_eval_refuses_a_split_the_family_lacks(cli_registry, tmp_path: Path, capsys) -> None:
    assert main(["meta-eval", str(BUNDLED), "--split", "winter", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no split 'winter'" in err and "seasonal, regime_change, all" in err, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("splits, message", [([], "at least one"), (["test", "test"], "each split once"),
                                             (["test", "winter"], "no split 'winter'")])  # fmt: skip
def test_evaluate_splits_checks_every_split_before_it_evaluates_any(family, registry, monkeypatch, splits, message):
    import marketsim.meta.evaluate as evaluation

    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **kw: pytest.fail("evaluated before checking"))
    with pytest.raises(MetaEvalError, match=message):
        evaluation.evaluate_splits(family, {"fixed": ("fixed_price", {"price": 2.0})}, 2, splits, registry)
