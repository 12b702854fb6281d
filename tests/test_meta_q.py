"""meta_q: Q values conditioned on a learned encoding of the task's history, meta-trained from a shared replay pool.

The replayed context is the acting context (each stored transition carries its task's history), the double-DQN
targets, the strategy in a real market, its checkpoints, and — slow — that meta-training lowers the regret.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the meta plugin needs the deep extra

from marketsim.meta.batch import TaskBatch  # noqa: E402
from marketsim.meta.evaluate import run_agent  # noqa: E402
from marketsim.meta.loop import MetaRun, run_meta_training  # noqa: E402
from marketsim.meta.tasks import load_family, sample_tasks  # noqa: E402
from marketsim.registry import default_registry  # noqa: E402
from marketsim.strategy import MetaSetup  # noqa: E402
from marketsim_meta.meta_q import MetaQ, MetaQLearner, make_net, play, targets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"


@pytest.fixture(scope="module")
def family():
    return load_family(BUNDLED, default_registry())


@pytest.fixture(scope="module")
def env(family) -> TaskBatch:
    return TaskBatch.from_tasks(sample_tasks(family, "train", 6), default_registry())


def _learner(family, **options) -> MetaQLearner:
    setup = MetaSetup(grid=family.grid, horizon=family.horizon, seed=0, device="cpu")
    return MetaQLearner(setup, hidden=16, batch=4, sample=4, **options)


def test_replaying_an_episode_rebuilds_the_context_it_was_played_with(family, env) -> None:
    learner = _learner(family)
    played = play(learner.net, env, learner.cfg, np.random.default_rng(1), learner.dev, eps=0.0)
    assert played["features"].shape[:2] == played["actions"].shape == (6, family.horizon)
    with torch.no_grad():
        q = learner.net.unroll(torch.as_tensor(played["features"]))
    assert np.array_equal(q.argmax(dim=2).numpy(), played["actions"])  # greedy then, greedy on the replayed context


def test_exploration_follows_epsilon_and_the_pool_keeps_the_newest_episodes(family, env) -> None:
    learner = _learner(family, capacity=10)
    rng = np.random.default_rng(2)
    random_play = play(learner.net, env, learner.cfg, rng, learner.dev, eps=1.0)
    greedy_play = play(learner.net, env, learner.cfg, rng, learner.dev, eps=0.0)
    assert len(np.unique(random_play["actions"])) > len(np.unique(greedy_play["actions"]))
    for it in range(1, 5):
        metrics = learner.update(it, 100, env, rng)
        assert np.isfinite(metrics["loss"]) and 0.05 <= metrics["epsilon"] <= 1.0
    assert len(learner.replay) == 10 and learner.steps == 4
    assert learner._epsilon(1, 100) == 1.0 and learner._epsilon(100, 100) == pytest.approx(0.05)


def test_double_dqn_targets_on_a_hand_made_episode() -> None:
    q = torch.tensor([[[0.0, 0.0], [1.0, 5.0], [7.0, 2.0]]])  # online: picks price 1 at t=1, price 0 at t=2
    q_target = torch.tensor([[[0.0, 0.0], [10.0, 20.0], [30.0, 40.0]]])  # target: values them 20 and 30
    y = targets(q, q_target, torch.tensor([[1.0, 2.0, 3.0]]), gamma=0.5)
    assert y.tolist() == [[1.0 + 0.5 * 20.0, 2.0 + 0.5 * 30.0, 3.0]]  # no future after the last step


def test_the_strategy_runs_in_a_market_reproducibly_and_refuses_another_strategys_checkpoint(family) -> None:
    from marketsim.market.model import StrategyError

    registry = default_registry()
    task = sample_tasks(family, "test", 1)[0]
    runs = [run_agent(task, ("meta_q", {"hidden": 16}), registry) for _ in range(2)]
    assert np.array_equal(runs[0].prices, runs[1].prices) and set(runs[0].prices) <= set(np.round(family.grid, 12))
    with pytest.raises(StrategyError, match="written by 'rl2', not 'meta_q'"):
        run_agent(task, ("meta_q", {"checkpoint": str(ROOT / "tests" / "data" / "rl2_meta_pricing.pt")}), registry)
    with pytest.raises(ValueError, match="epsilon must be in"):
        MetaQ(epsilon=2.0)


def test_make_net_sizes_follow_the_config(family) -> None:
    net = make_net({"grid": list(family.grid), "hidden": 8, "max_rivals": 2})
    assert net.q.out_features == len(family.grid) and net.gru.hidden_size == 8


@pytest.mark.slow  # 300 meta-iterations on small batches: about 15 s on one core
def test_meta_training_lowers_the_regret_on_held_aside_tasks(family) -> None:
    from marketsim.meta.loop import build_learner, meta_bench, regret_metrics

    run = MetaRun(family=family, cls=MetaQ, registry=default_registry(), iterations=300, seed=0, device="cpu",
                  options={"batch": 32, "sample": 32, "pool": 512, "validation": 64, "log_every": 100})  # fmt: skip
    untrained = build_learner(run)
    bench = meta_bench(run, untrained)  # the same held-aside tasks the run validates on
    before = regret_metrics(bench.regret(untrained.validate(bench.held)))["val_regret_25"]
    after = run_meta_training(run).curve[-1]["val_regret_25"]
    assert after < 0.4 * before, (before, after)  # measured: 2,860 -> 630


@pytest.mark.slow  # 60 test tasks, two learners and the oracle: about 30 s on 2 cores
def test_the_bundled_meta_q_beats_reptile_at_r25_paired_over_the_same_tasks(family) -> None:
    from scipy import stats

    from marketsim.meta.evaluate import evaluate

    data = ROOT / "tests" / "data"
    agents = {
        "meta_q": ("meta_q", {"checkpoint": str(data / "meta_q_meta_pricing.pt")}),
        "reptile_dqn": ("reptile_dqn", {"checkpoint": str(data / "reptile_dqn_meta_pricing.pt"), "mode": "eval"}),
    }
    tasks = evaluate(family, agents, 60, "test", default_registry(), workers=2).tasks_table()
    ours, theirs = tasks["meta_q.regret_25"], tasks["reptile_dqn.regret_25"]
    assert stats.wilcoxon(ours, theirs, alternative="less").pvalue < 0.01
    assert ours.mean() < 0.5 * theirs.mean()
