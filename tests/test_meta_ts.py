"""meta_ts: Thompson sampling on a logit demand model with a meta-learned prior (issue 18's robust meta-learner).

The model fit, the posterior (it finds the optimum, follows a regime change only when old evidence fades, prices
at its own cost), meta-training of the prior, reproducibility, and — slow — the acceptance check of issue 18 on the
bundled family: below the best fixed price and Thompson sampling at R(25) and R(H) on every out-of-distribution
slice, and at most half of Thompson's R(25) on the test tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the meta plugin (and its checkpoints) need the deep extra

from marketsim.meta.evaluate import baseline_agents, evaluate, run_agent  # noqa: E402
from marketsim.meta.tasks import load_family, sample_tasks  # noqa: E402
from marketsim.registry import default_registry  # noqa: E402
from marketsim_meta.meta_ts import MetaThompson, Posterior, fit_task, load_prior, model_units, prior_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"
CHECKPOINT = ROOT / "tests" / "data" / "meta_ts_meta_pricing.pt"
CANDIDATES = np.linspace(1.1, 4.8, 61)


def _wide_prior() -> dict[str, np.ndarray]:
    """A prior like the family's (values 1.2-4, taste scales 0.15-0.6, a reach of 215-240 shoppers a step)."""
    rng = np.random.default_rng(0)
    fitted = np.column_stack([rng.uniform(1.2, 4.0, 300), np.log(rng.uniform(0.15, 0.6, 300)),
                              np.log(rng.uniform(215, 240, 300))])  # fmt: skip
    return prior_grid(fitted, robust=0.15)


def _profit(price: float | np.ndarray, alpha: float, mu: float, reach: float, cost: float) -> np.ndarray:
    return (price - cost) * model_units(price, alpha, np.log(mu), np.log(reach))


def _optimum(alpha: float, mu: float, reach: float, cost: float) -> float:
    return float(CANDIDATES[np.argmax(_profit(CANDIDATES, alpha, mu, reach, cost))])


def _sell(posterior: Posterior, truth: tuple[float, float, float], steps: int, rng: np.random.Generator) -> None:
    alpha, mu, reach = truth
    for _ in range(steps):
        price = posterior.best_price(CANDIDATES, 1.0, rng)
        posterior.observe(price, float(rng.poisson(model_units(price, alpha, np.log(mu), np.log(reach)))))


def test_the_fit_recovers_an_exact_logit_curve() -> None:
    units = model_units(CANDIDATES, 2.7, np.log(0.35), np.log(180.0))
    alpha, log_mu, log_m = fit_task(CANDIDATES, units)
    assert alpha == pytest.approx(2.7, abs=1e-6) and np.exp(log_mu) == pytest.approx(0.35, rel=1e-6)
    assert np.exp(log_m) == pytest.approx(180.0, rel=1e-6)


@pytest.mark.parametrize("truth", [(2.2, 0.2, 235.0), (3.4, 0.5, 225.0), (4.2, 0.9, 230.0)])  # the last: mu off-prior
def test_the_posterior_finds_the_optimal_price_from_noisy_sales(truth: tuple[float, float, float]) -> None:
    posterior = Posterior(_wide_prior(), forget=1.0)
    _sell(posterior, truth, 30, np.random.default_rng(1))
    chosen = posterior.best_price(CANDIDATES, 1.0, None)
    assert _profit(chosen, *truth, cost=1.0) >= 0.98 * _profit(_optimum(*truth, cost=1.0), *truth, cost=1.0)


def test_change_detection_follows_a_regime_change_and_full_memory_does_not() -> None:
    before, after = (3.4, 0.3, 230.0), (2.2, 0.3, 230.0)
    chosen, changes = {}, {}
    for hazard in (0.0, 0.02):
        posterior = Posterior(_wide_prior(), forget=1.0, hazard=hazard)
        rng = np.random.default_rng(2)
        _sell(posterior, before, 40, rng)
        quiet = posterior.changes  # no false alarm while the market stays the same
        _sell(posterior, after, 8, rng)
        chosen[hazard], changes[hazard] = posterior.best_price(CANDIDATES, 1.0, None), (quiet, posterior.changes)
    best = _profit(_optimum(*after, cost=1.0), *after, cost=1.0)
    shares = {hazard: float(_profit(price, *after, cost=1.0) / best) for hazard, price in chosen.items()}
    assert shares[0.02] >= 0.95 and shares[0.0] < 0.9, shares
    assert changes[0.02][0] == 0 and changes[0.02][1] >= 1, changes


def test_the_price_it_posts_rises_with_its_own_cost_for_the_same_beliefs() -> None:
    posterior = Posterior(_wide_prior(), forget=1.0)
    _sell(posterior, (3.0, 0.4, 230.0), 25, np.random.default_rng(3))
    prices = [posterior.best_price(CANDIDATES, cost, None) for cost in (0.8, 1.0, 1.4, 1.8)]
    assert prices == sorted(prices) and prices[-1] > prices[0]
    best = _profit(_optimum(3.0, 0.4, 230.0, cost=1.8), 3.0, 0.4, 230.0, cost=1.8)
    assert _profit(prices[-1], 3.0, 0.4, 230.0, cost=1.8) >= 0.97 * best  # the same demand, priced at the new cost


def test_the_meta_trained_prior_sits_on_the_training_tasks_and_is_reproducible() -> None:
    registry = default_registry()
    family = load_family(BUNDLED, registry)
    prior = load_prior(str(CHECKPOINT))
    state_meta = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    assert state_meta["strategy"] == "meta_ts" and state_meta["tasks_fitted"] == 1024
    log_prior = prior["log_prior"]
    peak = np.unravel_index(np.argmax(log_prior), log_prior.shape)
    assert log_prior[peak] - log_prior[0, 0, 0] > 5  # mass where the training markets are, little at the corner
    assert np.isfinite(log_prior).all()  # the wide component keeps every grid point possible
    task = sample_tasks(family, "test", 1)[0]
    runs = [run_agent(task, ("meta_ts", {"checkpoint": str(CHECKPOINT)}), registry) for _ in range(2)]
    assert np.array_equal(runs[0].prices, runs[1].prices)


def test_a_checkpoint_of_another_strategy_is_refused(tmp_path: Path) -> None:
    from marketsim.market.model import StrategyError

    other = ROOT / "tests" / "data" / "rl2_meta_pricing.pt"
    strategy = MetaThompson(checkpoint=str(other))
    family = load_family(BUNDLED, default_registry())
    with pytest.raises(StrategyError, match="CheckpointError: .* written by 'rl2', not 'meta_ts'"):
        run_agent(sample_tasks(family, "test", 1)[0], strategy, default_registry())


@pytest.mark.slow  # 6 splits x 40 tasks x 4 agents and the oracle: about 2 minutes on 2 cores
def test_meta_ts_beats_the_fixed_price_and_thompson_on_every_slice() -> None:
    registry = default_registry()
    family = load_family(BUNDLED, registry)
    agents = {
        "meta_ts": ("meta_ts", {"checkpoint": str(CHECKPOINT)}),
        **{k: v for k, v in baseline_agents(family, registry).items() if k in ("thompson_pricing", "best_fixed_price")},
    }
    for split in ("test", *family.slices()):
        summary = evaluate(family, agents, 40, split, registry, workers=2).summary()["agents"]
        ours, fixed, thompson = (summary[name] for name in ("meta_ts", "best_fixed_price", "thompson_pricing"))
        if split == "test":
            assert ours["regret_25"] <= 0.5 * thompson["regret_25"], summary
            continue
        for metric in ("regret_25", "regret_H"):
            assert ours[metric] < min(fixed[metric], thompson[metric]), (split, metric, summary)
