"""reptile_dqn: conformance, online fine-tuning from a checkpoint, and acceptance C (a Reptile
initialisation beats a random one at t = 25 on the same tasks, paired test; model averaging beside it).

Uses the committed checkpoints ``tests/data/reptile_dqn_meta_pricing.pt`` and
``tests/data/reptile_dqn_meta_pricing_averaged.pt`` (``marketsim meta-train scenarios/meta_pricing.yaml
--strategy reptile_dqn`` writes ``checkpoint.pt`` and ``averaged.pt``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")


from marketsim.learning.checkpoint import load_checkpoint  # noqa: E402
from marketsim.meta.evaluate import evaluate, run_agent  # noqa: E402
from marketsim.meta.tasks import Family, load_family, sample_tasks  # noqa: E402
from marketsim.registry import Registry, default_registry  # noqa: E402
from marketsim.testing import assert_conforms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"
DATA = ROOT / "tests" / "data"
REPTILE = DATA / "reptile_dqn_meta_pricing.pt"
AVERAGED = DATA / "reptile_dqn_meta_pricing_averaged.pt"
N_TASKS = 100


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def family(registry: Registry) -> Family:
    return load_family(BUNDLED, registry)


def test_conforms_untrained_and_from_checkpoint() -> None:
    from marketsim_meta import ReptileDQN

    assert_conforms(ReptileDQN, {"device": "cpu"}, steps=60)
    assert_conforms(ReptileDQN, {"device": "cpu", "checkpoint": str(REPTILE)}, steps=60)


def test_fine_tunes_online_from_the_checkpoint_and_leaves_it_alone(family: Family, registry: Registry) -> None:
    before = REPTILE.read_bytes()
    strategy = registry.create("reptile_dqn", {"checkpoint": str(REPTILE), "mode": "eval", "device": "cpu"})
    task = sample_tasks(family, "test", 1)[0]
    run_agent(task, strategy, registry)
    assert strategy.updates > 0 and strategy.training  # it learned while it priced
    init, _ = load_checkpoint(REPTILE)
    moved = sum(float((strategy.online.state_dict()[k] - v).abs().sum()) for k, v in init["init"].items())
    assert moved > 0
    assert REPTILE.read_bytes() == before
    frozen = registry.create("reptile_dqn", {"checkpoint": str(REPTILE), "mode": "eval", "finetune": False})
    run_agent(task, frozen, registry)
    assert frozen.updates == 0


def test_refuses_another_strategys_checkpoint(tmp_path: Path, family: Family, registry: Registry) -> None:
    from marketsim.learning.checkpoint import CheckpointError, save_checkpoint
    from marketsim.meta.tasks import task_market

    save_checkpoint(tmp_path / "x.pt", {"net": {}}, {"strategy": "rl2"})
    market, _ = task_market(sample_tasks(family, "test", 1)[0], registry)
    with pytest.raises(CheckpointError, match="not 'reptile_dqn'"):
        registry.create("reptile_dqn", {"checkpoint": str(tmp_path / "x.pt")}).setup(market, np.random.default_rng(0))


@pytest.mark.slow
def test_acceptance_c_reptile_init_beats_random_init(family: Family, registry: Registry) -> None:
    from scipy import stats

    agents = {
        "reptile_dqn": ("reptile_dqn", {"checkpoint": str(REPTILE), "device": "cpu"}),
        "random_init_dqn": ("reptile_dqn", {"device": "cpu"}),
        "model_averaged_dqn": ("reptile_dqn", {"checkpoint": str(AVERAGED), "device": "cpu"}),
    }
    result = evaluate(family, agents, N_TASKS, "test", registry)
    r25 = result.regret()[:, :, 24]  # (agents, tasks)
    reptile, random_init, averaged = r25
    test = stats.wilcoxon(reptile, random_init, alternative="less")
    print(
        f"regret_25 on {N_TASKS} tasks: reptile {reptile.mean():.0f}, random init {random_init.mean():.0f}, "
        f"model averaging {averaged.mean():.0f}; Wilcoxon W = {test.statistic:.0f}, p = {test.pvalue:.2g}"
    )
    assert reptile.mean() < random_init.mean()
    assert test.pvalue < 0.01
