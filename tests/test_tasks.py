"""Task families: loading with located errors, disjoint and stable seed streams, OOD slices, fixed prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marketsim.config.scenario import Scenario
from marketsim.config.yamlsource import SourceError
from marketsim.market.model import expected_demand
from marketsim.meta.tasks import (
    PLACEHOLDER,
    Family,
    best_fixed_price,
    fixed_price_profits,
    is_family_file,
    load_family,
    parse_family,
    sample_task,
    sample_tasks,
    with_strategy,
)
from marketsim.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"


@pytest.fixture(scope="module")
def family() -> Family:
    return load_family(BUNDLED, default_registry())


# A valid family; the malformed ones below are derived from it. Line numbers on the right.
SMALL = """\
family:
  name: small
  seed: 3
  horizon: 20
  learner: me
  grid: {low: 1.2, high: 3.0, size: 10}
  sample:
    consumers.mu: {uniform: [0.2, 0.6]}
    sellers.me.quality: {loguniform: [1.0, 3.0]}
  rivals:
    count: {choice: [0, 1]}
    slots:
      - strategy: {choice: [fixed_price, match_lowest]}
        cost: {uniform: [0.8, 1.2]}
        params:
          fixed_price: {price: {uniform: [1.5, 2.5]}}
  ood:
    sample:
      consumers.mu: {uniform: [0.8, 1.0]}
base:
  name: small_task
  demand: {mode: expected}
  consumers: {size: 100, mu: 0.3}
  sellers:
    - {name: me, strategy: fixed_price, cost: 1.0, price_min: 0.5, price_max: 5.0}
"""


def _parse(text: str) -> Family:
    return parse_family(text, "fam.yaml", default_registry())


def test_small_family_parses_and_samples() -> None:
    fam = _parse(SMALL)
    assert fam.name == "small" and fam.horizon == 20 and len(fam.grid) == 10
    tasks = sample_tasks(fam, "train", 30)
    for task in tasks:
        assert isinstance(task.scenario, Scenario)
        assert task.scenario.steps == 20
        assert task.scenario.sellers[task.learner].name == "me"
        assert task.scenario.sellers[task.learner].strategy == PLACEHOLDER
        assert 0.2 <= task.params["consumers.mu"] <= 0.6
        assert task.scenario.consumers.mu == task.params["consumers.mu"]
        assert task.scenario.sellers[0].quality == task.params["sellers.me.quality"]
        assert len(task.scenario.sellers) == 1 + task.params["rivals.count"]
    assert {t.params["rivals.count"] for t in tasks} == {0, 1}
    assert {t.params.get("rivals[0].strategy") for t in tasks} == {None, "fixed_price", "match_lowest"}
    swapped = with_strategy(tasks[0], "cost_plus", {"markup": 0.5})
    assert swapped.sellers[0].strategy == "cost_plus" and swapped.sellers[0].params == {"markup": 0.5}


BAD = [  # (replace this, with that, expected "line:col: field: reason" fragment)
    (
        "consumers.mu: {uniform: [0.2, 0.6]}",
        "consumers.mu: {normal: [0.2, 0.6]}",
        "fam.yaml:8:19: family.sample.consumers.mu: a distribution is",
    ),
    (
        "consumers.mu: {uniform: [0.2, 0.6]}",
        "consumers.mu: {uniform: [0.6, 0.2]}",
        "fam.yaml:8:19: family.sample.consumers.mu: uniform needs low < high",
    ),
    (
        "sellers.me.quality: {loguniform: [1.0, 3.0]}",
        "sellers.me.quality: {loguniform: [0.0, 3.0]}",
        "fam.yaml:9:25: family.sample.sellers.me.quality: loguniform needs 0 < low",
    ),
    (
        "consumers.mu: {uniform",
        "consumers.nu: {uniform",
        "fam.yaml:8:5: family.sample.consumers.nu: bad path 'consumers.nu'",
    ),
    ("sellers.me.quality", "sellers.you.quality", "fam.yaml:9:5: family.sample.sellers.you.quality: bad path"),
    ("  learner: me", "  learner: him", "fam.yaml:5:12: family.learner: no base seller named 'him'"),
    ("size: 10}", "size: 1}", "fam.yaml:6:37: family.grid.size: should be greater than or equal to 2 (got 1)"),
    (
        "{low: 1.2, high: 3.0",
        "{low: 0.2, high: 3.0",
        "fam.yaml:6:9: family.grid: grid [0.2, 3] leaves the learner's price range",
    ),
    ("consumers: {size: 100, mu: 0.3}", "consumers: {size: 100, mu: -0.3}", "fam.yaml:23:30: base.consumers.mu"),
    (
        "[fixed_price, match_lowest]",
        "[fixed_price, match_lowets]",
        "fam.yaml:13:19: family.rivals.slots[0].strategy: unknown strategy 'match_lowets'",
    ),
    (
        "[fixed_price, match_lowest]",
        "[fixed_price, random_price]",
        "fam.yaml:13:19: family.rivals.slots[0].strategy: rival strategy 'random_price' must be",
    ),
    (
        "count: {choice: [0, 1]}",
        "count: {choice: [0, 2]}",
        "fam.yaml:11:12: family.rivals.count: up to 2 rivals but only 1 slots",
    ),
    ("  horizon: 20", "  horizon: 20\n  colour: red", "fam.yaml:5:3: family.colour: unknown field 'colour'"),
    (
        "price: {uniform: [1.5, 2.5]}",
        "prise: {uniform: [1.5, 2.5]}",
        "family: a drawn train task: unknown parameter 'prise'",
    ),
    (
        "  ood:\n",
        "  slices:\n    test: {sample: {consumers.mu: 0.9}}\n  ood:\n",
        "fam.yaml:18:11: family.slices.test: a slice name is lower-case letters",
    ),
    (
        "  ood:\n",
        "  slices:\n    hot:\n      sample: {consumers.nu: 0.9}\n  ood:\n",
        "fam.yaml:19:16: family.slices.hot.sample.consumers.nu: bad path 'consumers.nu'",
    ),
    (
        "  ood:\n",
        "  slices:\n    waves:\n      shocks: [{kind: sinusoidal, amplitude: {uniform: [1.1, 1.5]}}]\n  ood:\n",
        "fam.yaml:19:7: family.slices.waves: waves task 0 is not a valid market: "
        "consumers.shocks.0.sinusoidal.amplitude",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD, ids=[b[2].split(": ")[1] + "|" + b[1][-12:] for b in BAD])
def test_malformed_family_names_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in SMALL
    with pytest.raises(SourceError) as info:
        _parse(SMALL.replace(old, new, 1))
    assert expected in str(info.value), str(info.value)
    assert all("\n" not in str(p) for p in info.value.problems)


def test_a_scenario_is_not_a_family(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nsellers: [{name: a, strategy: fixed_price}]\n")
    with pytest.raises(SourceError, match="missing required field 'family'"):
        load_family(path, default_registry())
    assert not is_family_file(path) and is_family_file(BUNDLED)


def test_task_k_is_the_same_whatever_n(family: Family) -> None:
    few, many = sample_tasks(family, "test", 4), sample_tasks(family, "test", 40)
    alone = sample_tasks(family, "test", 1, start=3)[0]
    for a, b in ((few[3], many[3]), (few[3], alone), (few[3], sample_task(family, "test", 3))):
        assert a.params == b.params and a.scenario.digest() == b.scenario.digest() and a.index == b.index == 3


def test_train_test_and_ood_streams_are_disjoint(family: Family) -> None:
    draws = {split: sample_tasks(family, split, 300) for split in ("train", "test", "ood")}
    mus = {split: {t.params["consumers.mu"] for t in tasks} for split, tasks in draws.items()}
    seeds = {split: {t.scenario.seed for t in tasks} for split, tasks in draws.items()}
    qualities = {split: {t.params["sellers.learner.quality"] for t in tasks} for split, tasks in draws.items()}
    for a, b in (("train", "test"), ("train", "ood"), ("test", "ood")):
        assert not mus[a] & mus[b], (a, b)
        assert not seeds[a] & seeds[b], (a, b)
    assert not qualities["train"] & qualities["test"]
    assert len(mus["train"]) == 300  # and tasks within a split differ too
    assert draws["train"][5].scenario.digest() != draws["test"][5].scenario.digest()


def test_ood_parameters_lie_outside_the_training_ranges(family: Family) -> None:
    assert family.spec.ood is not None and family.spec.ood.sample
    for path in family.spec.ood.sample:
        low, high = family.spec.sample[path].range()
        values = [t.params[path] for t in sample_tasks(family, "ood", 200)]
        assert all(v < low or v > high for v in values), path
        train = [t.params[path] for t in sample_tasks(family, "train", 200)]
        assert all(low <= v <= high for v in train), path


def test_bundled_family_tasks_are_valid_markets(family: Family) -> None:
    tasks = sample_tasks(family, "test", 50)
    assert family.horizon >= 25 and 10 <= len(family.grid) <= 20
    for task in tasks:
        assert task.scenario.steps == family.horizon
        assert task.scenario.demand.mode == "agents"  # sales are noisy: learners must infer demand
        assert task.grid == family.grid
    assert {t.params["rivals.count"] for t in tasks} == {0, 1, 2}


def test_fixed_price_profits_use_the_task_demand_and_rival_rules() -> None:
    fam = _parse(SMALL)
    tasks = sample_tasks(fam, "train", 40)
    alone = next(t for t in tasks if t.params["rivals.count"] == 0)
    matched = next(t for t in tasks if t.params.get("rivals[0].strategy") == "match_lowest")
    demand = expected_demand(alone.scenario, default_registry())
    profits = fixed_price_profits(alone, [1.5, 2.0], default_registry())
    assert profits.shape == (2, fam.horizon)
    assert profits[1] == pytest.approx(np.full(fam.horizon, demand.profits(np.array([2.0]))[0]))
    # a matching rival copies the learner's price from step 1 on (not below its own cost)
    demand = expected_demand(matched.scenario, default_registry())
    cost = matched.scenario.sellers[1].cost
    start = matched.scenario.sellers[0].start_price
    path = fixed_price_profits(matched, [2.0], default_registry())[0]
    assert path[0] == pytest.approx(demand.profits(np.array([2.0, max(start, cost)]))[0])
    assert path[1:] == pytest.approx(np.full(fam.horizon - 1, demand.profits(np.array([2.0, max(2.0, cost)]))[0]))
    price, value = best_fixed_price(fam, 20, candidates=[1.2, 2.0, 2.5, 3.0])
    assert price in (1.2, 2.0, 2.5, 3.0) and value > 0


# --- issue 18: named out-of-distribution slices (more rivals, a shifted cost, seasonality, a regime change) ------


def test_bundled_slices_are_splits_with_their_own_streams_and_draws(family: Family) -> None:
    assert family.splits == ("train", "test", "ood", "cost_shift", "crowded", "seasonal", "regime_change")
    firsts = {split: sample_task(family, split, 0).scenario.seed for split in family.splits}
    assert len(set(firsts.values())) == len(firsts)  # seven disjoint streams
    for task in sample_tasks(family, "cost_shift", 40):
        assert 1.3 <= task.scenario.sellers[task.learner].cost <= 1.7 and not task.scenario.consumers.shocks
    assert {len(t.rivals()) for t in sample_tasks(family, "crowded", 40)} == {3, 4}
    for task in sample_tasks(family, "seasonal", 40):
        (shock,) = task.scenario.consumers.shocks
        assert shock.kind == "sinusoidal" and 0.3 <= shock.amplitude <= 0.6 and shock.period in (10, 15, 20, 25)
    shifts = set()
    for task in sample_tasks(family, "regime_change", 40):
        (shock,) = task.scenario.consumers.shocks
        assert shock.at in (15, 20, 25, 30, 35) and task.params["shocks[0].at"] == shock.at
        shifts.add(shock.wtp_shift_)
    assert shifts == {-0.6, -0.4, 0.4, 0.6}


def test_adding_slices_leaves_the_other_splits_tasks_unchanged() -> None:
    plain = _parse(SMALL)
    sliced = _parse(
        SMALL.replace("  ood:\n", "  slices:\n    hot: {sample: {consumers.mu: {uniform: [1.5, 2.0]}}}\n  ood:\n")
    )
    for split in ("train", "test", "ood"):
        assert [t.scenario for t in sample_tasks(plain, split, 5)] == [
            t.scenario for t in sample_tasks(sliced, split, 5)
        ]
    assert all(1.5 <= t.scenario.consumers.mu <= 2.0 for t in sample_tasks(sliced, "hot", 10))
    with pytest.raises(ValueError, match="split must be one of train, test, ood, hot, got 'cold'"):
        sample_task(sliced, "cold", 0)


def test_fixed_price_profits_follow_a_regime_change(family: Family) -> None:
    from marketsim.market.model import MarketModel

    task = next(t for t in sample_tasks(family, "regime_change", 40) if not t.rivals())
    (shock,) = task.scenario.consumers.shocks
    profits = fixed_price_profits(task, [2.5], default_registry())[0]
    before, after = profits[: shock.at], profits[shock.at :]
    assert np.ptp(before) < 1e-9 and np.ptp(after) < 1e-9 and abs(after[0] - before[0]) > 1.0
    data = with_strategy(task, "fixed_price", {"price": 2.5}).model_dump(by_alias=True)
    data["demand"]["mode"] = "expected"  # the market itself, noise-free: what it books each step
    model = MarketModel(Scenario.model_validate(data), default_registry())
    booked = []
    for _ in range(task.horizon):
        model.step()
        booked.append(model.sellers[task.learner].profit)
    np.testing.assert_allclose(profits, booked, rtol=1e-12)
