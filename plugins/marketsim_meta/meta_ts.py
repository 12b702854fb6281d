"""``meta_ts``: Thompson sampling on a logit demand model whose prior is meta-learned from a family's training tasks.

The "meta dynamic pricing" of Bastani, Simchi-Levi & Zhu (2022) and meta-Thompson sampling (Kveton et al. 2021):
what transfers across markets is a *prior* over a small demand model, not a policy. The learner's expected sales at
price ``p`` are modelled as ``M · σ((α − p) / μ)`` (a binary logit against everything else: its reach ``M``, the
value ``α`` shoppers put on it against their alternatives, the taste scale ``μ``). Its posterior lives on a fixed
grid over ``(α, log μ, log M)``; each step it samples parameters from the posterior and posts the price that
maximises ``(p − cost) · sales`` under them, then adds the Poisson likelihood of the units it sold.

Why it holds up off its training distribution (``docs/meta.md`` has the figures):

* the model is structural: its own cost enters the price it posts, never the inference, so a seller whose cost
  moves keeps its beliefs about demand; a wider taste scale or more rivals only move the parameters;
* the meta-learned prior is a kernel density over the parameters fitted to training tasks, mixed with a wide
  heavy-tailed component (``robust``), so a market unlike the training ones still has prior mass and the
  likelihood takes over within a few steps;
* old observations fade (``forget``: the likelihood of the ``n``-th latest is raised to ``forget ** (n - 1)``), so a
  market that drifts or jumps is followed. With ``hazard`` > 0 it also drops its evidence when a sale is far likelier
  under the prior than under the posterior (a one-change-point reading of Adams & MacKay 2007): that follows a
  regime change faster but mistakes seasonal swings in arrivals for changes, so it is off by default.

``MetaThompsonLearner`` (capability ``MetaTrainable``) fits the prior: for each training task it fits the model to
the learner's expected sales over the price grid with rivals at their opening prices (scipy's least squares).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from marketsim.learning.torchkit import CheckpointError, load_owned_checkpoint
from marketsim.strategy import MarketInfo, MetaCheckpoint, MetaSetup, Observation, Outcome, Strategy

Act = Literal["sample", "greedy"]

#: Points of the posterior grid along (α, log μ, log M).
SHAPE = (56, 36, 16)


# --- the demand model ----------------------------------------------------------------------------------


def model_units(prices: np.ndarray, alpha: np.ndarray, log_mu: np.ndarray, log_m: np.ndarray) -> np.ndarray:
    """Expected units ``M · σ((α − p) / μ)``, broadcast over prices and parameters."""
    z = (alpha - prices) / np.exp(log_mu)
    return np.exp(log_m) / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def fit_task(prices: np.ndarray, units: np.ndarray) -> np.ndarray:
    """(α, log μ, log M) whose model is closest to ``units`` at ``prices`` (least squares on log units)."""
    from scipy.optimize import least_squares

    keep = units > 1e-6
    p, target = prices[keep], np.log(units[keep])
    top = float(units.max())
    start = np.array([float(p[np.argmin(np.abs(units[keep] - top / 2))]), np.log(0.3), np.log(2 * top)])

    def residual(theta: np.ndarray) -> np.ndarray:
        return np.log(model_units(p, *theta)) - target

    return least_squares(residual, start, method="lm" if len(p) >= 3 else "trf").x


# --- the prior and posterior on a grid ------------------------------------------------------------------


def prior_grid(fitted: np.ndarray, robust: float, shape: Sequence[int] = SHAPE) -> dict[str, np.ndarray]:
    """Axes and log prior on a grid around the fitted training parameters ``fitted`` (n, 3).

    The prior is a Gaussian kernel density of the fitted points (Scott's bandwidth), mixed with weight ``robust``
    with a Student-t (3 degrees of freedom) centred on their mean with twice their spread; the axes reach three
    spreads past the fitted range, so parameters unlike any training task keep prior mass.
    """
    from scipy import stats

    low, high = fitted.min(axis=0), fitted.max(axis=0)
    spread = fitted.std(axis=0) + 1e-3
    axes = [np.linspace(lo - 3 * s, hi + 3 * s, n) for lo, hi, s, n in zip(low, high, spread, shape)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    kde = stats.gaussian_kde(fitted.T)
    wide = stats.multivariate_t(loc=fitted.mean(axis=0), shape=np.diag((2 * spread) ** 2), df=3)
    density = (1 - robust) * kde(points.T) + robust * wide.pdf(points)
    log_prior = np.log(np.maximum(density, 1e-300)).reshape(tuple(shape))
    return {"alpha": axes[0], "log_mu": axes[1], "log_m": axes[2], "log_prior": log_prior}


class Posterior:
    """The posterior over the model's parameters on the prior's grid: old evidence fades by ``forget`` a step, and
    is dropped when a sale is far likelier under the prior than under the posterior (a change of market)."""

    def __init__(self, prior: Mapping[str, np.ndarray], forget: float, hazard: float = 0.0) -> None:
        self.alpha, self.log_mu, self.log_m = np.meshgrid(
            prior["alpha"], prior["log_mu"], prior["log_m"], indexing="ij"
        )
        self.log_prior = np.asarray(prior["log_prior"], float)
        self.log_prior = self.log_prior - _logsumexp(self.log_prior)
        self.loglik = np.zeros_like(self.log_prior)
        self.forget, self.hazard = float(forget), float(hazard)
        self.changes = 0

    def observe(self, price: float, units: float) -> None:
        """Add the Poisson log likelihood of selling ``units`` at ``price``; older evidence fades by ``forget``.

        With ``hazard`` > 0, the market is taken to have changed (and the old evidence dropped) when the sale's
        probability under the prior, times ``hazard``, exceeds its probability under the posterior, times
        ``1 - hazard``: the most likely reading of a one-change-point model (Adams & MacKay 2007).
        """
        rate = np.maximum(model_units(price, self.alpha, self.log_mu, self.log_m), 1e-9)
        new = units * np.log(rate) - rate
        if self.hazard > 0:
            log_post = self.log_prior + self.loglik
            stay = _logsumexp(log_post + new) - _logsumexp(log_post)
            fresh = _logsumexp(self.log_prior + new)
            if np.log(self.hazard) + fresh > np.log1p(-self.hazard) + stay:
                self.loglik = np.zeros_like(self.loglik)
                self.changes += 1
        self.loglik = self.forget * self.loglik + new

    def weights(self) -> np.ndarray:
        """Normalised posterior probabilities of the grid points (flat)."""
        log_post = (self.log_prior + self.loglik).ravel()
        w = np.exp(log_post - log_post.max())
        return w / w.sum()

    def best_price(self, candidates: np.ndarray, cost: float, rng: np.random.Generator | None) -> float:
        """The candidate price maximising expected profit under sampled parameters (``rng``) or the posterior mean
        profit (``rng`` None)."""
        w = self.weights()
        flat = (self.alpha.ravel(), self.log_mu.ravel(), self.log_m.ravel())
        if rng is not None:
            k = int(rng.choice(len(w), p=w))
            units = model_units(candidates, flat[0][k], flat[1][k], flat[2][k])
        else:
            top = np.flatnonzero(w > w.max() * 1e-6)
            grid = model_units(candidates[:, None], *(f[top][None, :] for f in flat))
            units = grid @ (w[top] / w[top].sum())
        return float(candidates[int(np.argmax((candidates - cost) * units))])


def _logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + float(np.log(np.exp(values - top).sum()))


# --- the strategy ----------------------------------------------------------------------------------------


class MetaThompson(Strategy):
    """Thompson sampling on a logit demand model with a meta-learned prior (Bastani, Simchi-Levi & Zhu 2022).

    Each step it samples the demand parameters from its posterior and posts the price in ``candidates`` (``resolution``
    prices across the family's grid) that maximises its expected profit under them at its own cost; ``greedy``
    maximises the posterior-mean profit instead. ``hazard`` is the prior probability a step that the market has
    changed (its evidence is dropped when a sale says so); ``forget`` fades old evidence each step (1: never).
    The prior grid comes from a checkpoint (``robust``, the weight of its wide component, is set at meta-training).
    Without a checkpoint the prior is the wide component alone around a generic market.
    """

    name = "meta_ts"
    classifier: ClassVar[Mapping[str, Any]] = {
        "learns": True,
        "stochastic": True,
        "observes": ("own",),
    }

    def __init__(
        self,
        checkpoint: str | None = None,
        grid: Sequence[float] | None = None,
        resolution: int = 61,
        forget: float = 0.95,
        hazard: float = 0.0,
        act: Act = "sample",
    ) -> None:
        checks = [
            (resolution >= 2, f"resolution must be >= 2, got {resolution}"),
            (0 < forget <= 1, f"forget must be in (0, 1], got {forget}"),
            (0 <= hazard < 1, f"hazard must be in [0, 1), got {hazard}"),
            (act in ("sample", "greedy"), f"act must be 'sample' or 'greedy', got {act!r}"),
            (grid is None or len(grid) >= 2, "an explicit grid needs at least two prices"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.checkpoint, self.resolution, self.act = checkpoint, int(resolution), act
        self.forget, self.hazard = float(forget), float(hazard)
        self.grid = None if grid is None else tuple(float(p) for p in grid)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        super().setup(market, rng)
        prior = load_prior(self.checkpoint) if self.checkpoint else generic_prior(market)
        low, high = (self.grid[0], self.grid[-1]) if self.grid else (market.price_min, market.price_max)
        self.candidates = np.linspace(low, high, self.resolution)
        self.posterior = Posterior(prior, self.forget, self.hazard)

    def price(self, obs: Observation) -> float:
        return self.posterior.best_price(self.candidates, obs.cost, self.rng if self.act == "sample" else None)

    def learn(self, outcome: Outcome) -> None:
        self.posterior.observe(outcome.price, outcome.units)

    def state_dict(self) -> dict[str, Any]:
        return {"loglik": self.posterior.loglik.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.posterior.loglik = np.asarray(state["loglik"], float).copy()

    @classmethod
    def meta_learner(cls, setup: MetaSetup, **options: Any) -> MetaThompsonLearner:
        """Fitting the prior on training tasks (capability ``MetaTrainable``)."""
        return MetaThompsonLearner(setup, **options)


def load_prior(path: str) -> dict[str, np.ndarray]:
    """The prior grid a ``meta_ts`` checkpoint holds."""
    state, _ = load_owned_checkpoint(path, MetaThompson.name)
    if "log_prior" not in state:
        raise CheckpointError(f"checkpoint {path} holds no meta_ts prior")
    return {k: np.asarray(state[k], float) for k in ("alpha", "log_mu", "log_m", "log_prior")}


def generic_prior(market: MarketInfo) -> dict[str, np.ndarray]:
    """A wide prior without meta-training: values up to the top of the price range, any taste scale and reach."""
    cost = market.costs[market.index]
    spread = np.array([[cost + f * (market.price_max - cost), np.log(m), np.log(r)]
                       for f in (0.1, 0.5, 0.9) for m in (0.1, 0.5) for r in (30.0, 300.0)])  # fmt: skip
    return prior_grid(spread, robust=1.0)


# --- meta-training: the prior from the training tasks ------------------------------------------------------


class MetaThompsonLearner:
    """Fits ``meta_ts``'s prior: the model fitted to each of ``pool`` training tasks' expected sales curves.

    One iteration does it all (there is nothing to iterate); the curve's validation regret is the strategy with
    that prior, and its default ``forget``, ``hazard`` and ``act`` (what an evaluation of the checkpoint uses), run
    on the held-aside tasks in the batched market with sampled sales.
    """

    iterations = 1
    log_every = 1

    def __init__(self, setup: MetaSetup, pool: int = 1024, validation: int = 64, robust: float = 0.15) -> None:
        self.setup, self.pool, self.validation, self.robust = setup, pool, validation, float(robust)
        self.params = {"grid": list(setup.grid)}

    def begin(self, env: Any) -> None:
        self.prior: dict[str, np.ndarray] | None = None

    def update(self, iteration: int, iterations: int, env: Any, rng: np.random.Generator) -> dict[str, float]:
        fitted = fit_tasks(env, np.asarray(self.setup.grid, float))
        self.prior = prior_grid(fitted, self.robust)
        self.fitted = fitted
        return {"tasks_fitted": float(len(fitted))}

    def validate(self, env: Any) -> np.ndarray:
        return play_batch(env, self.prior, self.params, np.random.default_rng(20_000 + self.setup.seed))

    def finish(
        self,
        iterations: int,
        env: Any,
        validation: Any,
        rng: np.random.Generator,
        regret: Callable[[np.ndarray], np.ndarray],
    ) -> MetaCheckpoint:
        assert self.prior is not None
        spread = {name: [float(v) for v in np.percentile(self.fitted[:, i], [5, 50, 95])]
                  for i, name in enumerate(("alpha", "log_mu", "log_m"))}  # fmt: skip
        return MetaCheckpoint(
            state={**self.prior, "fitted": self.fitted},
            params=dict(self.params),
            info={"method": "meta_thompson", "robust": self.robust, "tasks_fitted": len(self.fitted),
                  "fitted_percentiles_5_50_95": spread},
        )  # fmt: skip


def fit_tasks(env: Any, grid: np.ndarray) -> np.ndarray:
    """(tasks, 3) the model fitted to each task's expected units over ``grid``, rivals at their opening prices."""
    prices = env.start.copy()
    curves = np.empty((len(env), len(grid)))
    for a, p in enumerate(grid):
        prices[:, 0] = p
        curves[:, a] = env.expected_units(prices)
    return np.array([fit_task(grid, curve) for curve in curves])


def play_batch(env: Any, prior: Mapping[str, np.ndarray], params: Mapping[str, Any], rng: np.random.Generator):
    """(tasks, H) expected profit of ``meta_ts`` with ``prior`` in every task of the batched market ``env``."""
    strategy_params = {k: v for k, v in params.items() if k in ("grid", "resolution", "forget", "hazard", "act")}
    learners = [MetaThompson(**strategy_params) for _ in range(len(env))]
    for learner in learners:
        learner.candidates = np.linspace(learner.grid[0], learner.grid[-1], learner.resolution)
        learner.posterior = Posterior(prior, learner.forget, learner.hazard)
    last = env.reset_episode(rng)
    out = np.empty((len(env), env.horizon))
    sample = rng if strategy_params.get("act", "sample") == "sample" else None
    for t in range(env.horizon):
        own = np.array(
            [lr.posterior.best_price(lr.candidates, cost, sample) for lr, cost in zip(learners, env.cost[:, 0])]
        )
        step = env.step(last, own, rng)
        for b, lr in enumerate(learners):
            lr.posterior.observe(float(step.prices[b, 0]), float(step.units[b]))
        out[:, t], last = step.expected_profit, step.prices
    return out


__all__ = ["MetaThompson", "MetaThompsonLearner", "Posterior", "fit_task", "model_units", "prior_grid"]
