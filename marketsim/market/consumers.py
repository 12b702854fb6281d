"""Consumer choice and market clearing as pure numpy functions of arrays (no Mesa, no strategies).

Consumer i values seller j at ``v_ij = w_i + x_j + mu * e_ij`` with ``x_j = quality_j - price_j`` and
the outside option at ``a0 + mu * e_i0``; the e are i.i.d. standard Gumbel taste shocks drawn fresh
each step. It buys one unit from the highest-value seller if that beats the outside option.
We sample the first choice exactly without drawing the Gumbel shocks: by the Gumbel-max property it
is a categorical draw with logit probabilities (one uniform per consumer). Only shoppers who may be
turned away by a sold-out seller need the rest of their preference ranking; given the first choice,
that ranking is Plackett–Luce over the remaining options, i.e. the order of fresh Gumbel keys, which
are then drawn for those shoppers alone. With ``mu = 0`` the choice is deterministic and ties between
sellers are split at random.

Arrays are laid out seller-major: masks and probabilities are ``(n_sellers, n_consumers)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

_EXP_CAP = 700.0  # exp(700) is finite in float64; beyond it the outside option wins with certainty
_TIE = 1e-12  # values closer than this count as a tie when mu = 0


@dataclass(frozen=True, slots=True)
class Clearing:
    """Result of clearing one step: each shopper's seller (-1 = none), units per seller, surplus."""

    choice: np.ndarray  # (n,) int, -1 for no purchase
    units: np.ndarray  # (J,) float
    surplus: np.ndarray  # (n,) expected surplus of each shopper over the outside option, in money


@dataclass(frozen=True, slots=True)
class Draws:
    """The random numbers one step of shopping uses, drawn in a fixed order from the model's rng."""

    active: np.ndarray | None  # indices of shoppers, None when everyone shops
    u: np.ndarray  # (n_shoppers,) uniforms for the first choice
    order: np.ndarray | None  # random queue of shoppers, None when no seller can run out


@dataclass(frozen=True, slots=True)
class _Shoppers:
    """The shoppers of one clearing: their WTP, the sellers' values, the outside option, the model, awareness."""

    w: np.ndarray
    x: np.ndarray
    a0: float
    model: ChoiceModel
    allowed: np.ndarray | None


def logit_parts(w: np.ndarray, x: np.ndarray, a0: Any, mu: Any) -> tuple[np.ndarray, np.ndarray]:
    """Scaled seller weights eps_j = exp((x_j - M)/mu) and outside weights z_i, sharing the shift M.

    The one logit kernel: ``x`` (J,) with scalar ``a0``/``mu``, or with a leading batch axis — ``x`` (B, J)
    (-inf where a row has no seller), ``w`` (B, N), ``a0`` and ``mu`` (B,) — as the batched markets use it.
    """
    if np.ndim(x) == 1:
        shift, a0, mu = float(np.max(x)), a0, mu
    else:
        shift, a0, mu = x.max(axis=1, keepdims=True), np.asarray(a0)[:, None], np.asarray(mu)[:, None]
    eps = np.exp((x - shift) / mu)
    z = np.exp(np.minimum((a0 - w - shift) / mu, _EXP_CAP))
    return eps, z


def choose(
    w: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float,
    u: np.ndarray,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Each consumer's pick among ``allowed`` sellers and the outside option, driven by uniforms ``u``.

    Returns an int array of seller indices, -1 where the outside option wins.
    """
    if mu > 0:
        return _choose_logit(w, x, a0, mu, u, allowed)
    return _choose_deterministic(w, x, a0, u, allowed)


def _choose_logit(w, x, a0, mu, u, allowed):
    eps, z = logit_parts(w, x, a0, mu)
    n_sellers = len(x)
    if allowed is None:
        cum = np.cumsum(eps)
        target = u * (z + cum[-1]) - z
        pick = np.searchsorted(cum, target, side="right")
    else:
        weights = eps[:, None] * allowed
        total = weights.sum(axis=0)
        target = u * (z + total) - z
        pick = np.zeros(len(w), dtype=np.int64)
        running = np.zeros(len(w))
        for j in range(n_sellers):
            running += weights[j]
            pick += running <= target
    pick = np.minimum(pick, n_sellers - 1)
    return np.where(target < 0, -1, pick)


def _choose_deterministic(w, x, a0, u, allowed):
    if allowed is None:
        best = float(np.max(x))
        ties = np.flatnonzero(x >= best - _TIE)
        pick = ties[np.minimum((u * len(ties)).astype(np.int64), len(ties) - 1)]
        return np.where(w + best > a0, pick, -1)
    masked = np.where(allowed, x[:, None], -np.inf)
    best = masked.max(axis=0)
    tie = masked >= best - _TIE
    n_ties = tie.sum(axis=0)
    k = np.minimum((u * n_ties).astype(np.int64), np.maximum(n_ties - 1, 0))
    pick = (np.cumsum(tie, axis=0) <= k).sum(axis=0)
    buys = (n_ties > 0) & (w + best > a0)
    return np.where(buys, np.minimum(pick, len(x) - 1), -1)


def surplus(w: np.ndarray, x: np.ndarray, a0: float, mu: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """Expected surplus over the outside option of each consumer facing ``allowed`` sellers.

    For mu > 0 this is the logit inclusive value mu * log(1 + sum_j exp((w + x_j - a0)/mu))
    (Small & Rosen); for mu = 0 it is max(0, w + max_j x_j - a0).
    """
    if mu > 0:
        shift = float(np.max(x))
        eps = np.exp((x - shift) / mu)
        total = eps.sum() if allowed is None else eps @ allowed
        with np.errstate(divide="ignore"):
            log_ratio = np.log(total) - (a0 - w - shift) / mu
        return mu * np.logaddexp(0.0, log_ratio)
    best = np.max(x) if allowed is None else np.where(allowed, x[:, None], -np.inf).max(axis=0)
    return np.maximum(w + best - a0, 0.0)


def probabilities(w: np.ndarray, x: np.ndarray, a0: float, mu: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """Purchase probability of each consumer from each seller, shape (J, n)."""
    n_sellers, n = len(x), len(w)
    mask = np.ones((n_sellers, n), dtype=bool) if allowed is None else allowed
    if mu > 0:
        eps, z = logit_parts(w, x, a0, mu)
        weights = eps[:, None] * mask
        return weights / (z + weights.sum(axis=0))
    masked = np.where(mask, x[:, None], -np.inf)
    best = masked.max(axis=0)
    tie = masked >= best - _TIE
    buys = np.isfinite(best) & (w + best > a0)
    return tie * (buys / np.maximum(tie.sum(axis=0), 1))


def expected_units(
    w: np.ndarray,
    weight: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Expected units per seller when consumer i carries mass ``weight_i`` (no capacity limits)."""
    if mu > 0 and allowed is None:
        eps, z = logit_parts(w, x, a0, mu)
        return eps * float(np.sum(weight / (z + eps.sum())))
    return probabilities(w, x, a0, mu, allowed) @ weight


def ranking_uniforms(rng: np.random.Generator, m: int, n_options: int) -> np.ndarray:
    """Uniforms, shape (m, n_options), that ``gumbel`` turns into preference keys (float32 is plenty)."""
    return rng.random((m, n_options), dtype=np.float32)


def gumbel(u: np.ndarray) -> np.ndarray:
    """Standard Gumbel keys from uniforms: column 0 for the outside option, column j+1 for seller j."""
    with np.errstate(divide="ignore"):
        return -np.log(-np.log(u))


def clear_agents(
    w: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float | ChoiceModel,
    limits: np.ndarray,
    draws: Draws,
    allowed: np.ndarray | None = None,
    keys: Callable[[int], np.ndarray] | None = None,
) -> Clearing:
    """Clear a finite population of shoppers, rationing sellers that run out.

    ``mu`` is the logit scale, or any ``ChoiceModel`` (a plugin's demand model).
    ``draws.u`` holds each shopper's uniform for its first choice; ``draws.order`` is the random queue (a
    permutation of shoppers, needed when a limit is finite; ``draws.active`` is not read here). Sellers
    serve shoppers in queue order up to ``limits`` (units this step); a shopper turned away buys its best
    remaining option among the sellers still in stock at its turn, ranked by Gumbel keys made from
    ``keys(m)``, an (m, J+1) array of uniforms drawn for the m shoppers whose first choice has a finite
    limit, in queue order, only when some seller is over its limit. The result equals serving the queue
    one by one (tests/reference_market.py).
    """
    n_sellers, n = len(x), len(w)
    shop = _Shoppers(w, x, a0, as_choice_model(mu), allowed)
    order = draws.order
    choice = shop.model.choose(w, x, a0, draws.u, allowed)
    position = None
    if order is not None:
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        if np.any(np.bincount(choice[choice >= 0], minlength=n_sellers) > limits):
            if keys is None:
                raise ValueError("demand exceeds a limit: rationing needs Gumbel keys")
            _ration(shop, limits, choice, order, keys)
    units = np.bincount(choice[choice >= 0], minlength=n_sellers).astype(float)
    return Clearing(choice, units, _surplus_at_turn(shop, choice, units, limits, position))


def _ration(shop: _Shoppers, limits, choice, order, keys) -> None:
    """Re-route, in place, the shoppers who reach a sold-out seller, one sell-out event at a time.

    Work is laid out in queue order, so each event touches only the shoppers behind it, and a
    shopper's Gumbel keys are computed only when it is turned away.
    """
    w, x, a0, model, allowed = shop.w, shop.x, shop.a0, shop.model, shop.allowed
    limited = np.isfinite(limits)
    spot = np.flatnonzero(limited[choice[order]] & (choice[order] >= 0))  # queue positions that may be turned away
    uniforms = keys(len(spot))  # one row per such shopper, in queue order
    row = np.full(len(w), -1, dtype=np.int64)
    row[spot] = np.arange(len(spot))
    queued = choice[order]  # queued[k] is the choice of the k-th shopper in the queue
    open_ = np.ones(len(x), dtype=bool)
    sellouts = _SellOuts(queued, limits)
    while (event := sellouts.next()) is not None:
        seller, at = event
        open_[seller] = False
        behind = at + np.flatnonzero(queued[at:] == seller)
        who = order[behind]
        sub_allowed = None if allowed is None else allowed[:, who]
        queued[behind] = model.reroute(w[who], x, a0, uniforms[row[behind]], open_, sub_allowed)
    choice[order] = queued


def _best_remaining(w, x, a0, mu, keys, open_, allowed) -> np.ndarray:
    """Each turned-away shopper's top-ranked option among the open sellers it knows, or -1 for none.

    With mu > 0 the ranking is by Gumbel utility (w + x_j)/mu + g_j against a0/mu + g_0 (w is common
    to all sellers, so it only matters against the outside option). With mu = 0 values decide, the
    keys only break ties, and a shopper buys if w + x_j beats a0.
    """
    cols = np.flatnonzero(open_)
    if cols.size == 0:
        return np.full(len(w), -1)
    gain = x[cols] / mu if mu > 0 else x[cols]
    score = np.broadcast_to(gain, (len(w), cols.size)) if mu == 0 else keys[:, 1 + cols] + gain
    if allowed is not None:
        score = np.where(allowed[cols].T, score, -np.inf)
    top = score.max(axis=1)
    if mu > 0:
        best = score.argmax(axis=1)
        buys = w / mu + top > a0 / mu + keys[:, 0]
    else:
        best = np.where(score >= top[:, None] - _TIE, keys[:, 1 + cols], -np.inf).argmax(axis=1)
        buys = w + top > a0
    return np.where(buys & np.isfinite(top), cols[best], -1)


class _SellOuts:
    """Finds sell-out events in queue order, counting each seller's sales ahead of the last event once."""

    def __init__(self, queued: np.ndarray, limits: np.ndarray) -> None:
        self.queued, self.limits = queued, np.floor(limits)
        self.open = np.ones(len(limits), dtype=bool)
        self.start = 0  # queue position of the last event; choices before it are final
        self.sold = np.zeros(len(limits), dtype=np.int64)  # units sold before ``start``

    def next(self) -> tuple[int, int] | None:
        """The next (seller, queue position of the first shopper it turns away), or None."""
        tail = self.queued[self.start :]
        wanted = np.bincount(tail[tail >= 0], minlength=len(self.limits))
        first: tuple[int, int] | None = None
        for j in np.flatnonzero(self.open & (self.sold + wanted > self.limits)):
            at = self.start + int(np.flatnonzero(tail == j)[int(self.limits[j]) - self.sold[j]])
            if first is None or at < first[1]:
                first = (int(j), at)
        if first is not None:
            passed = self.queued[self.start : first[1]]
            self.sold += np.bincount(passed[passed >= 0], minlength=len(self.limits))
            self.start = first[1]
            self.open[first[0]] = False
        return first


def _surplus_at_turn(shop: _Shoppers, choice, units, limits, position) -> np.ndarray:
    """Each shopper's expected surplus over the sellers it knows that still have stock at its turn."""
    w, x, a0, model, allowed = shop.w, shop.x, shop.a0, shop.model, shop.allowed
    value = model.surplus(w, x, a0, allowed)
    full = np.isfinite(limits) & (units >= np.floor(limits))
    if position is None or not full.any():
        return value
    empty_from = np.full(len(x), len(w))  # first queue position at which the seller has no stock
    for j in np.flatnonzero(full):
        empty_from[j] = position[choice == j].max() + 1 if units[j] > 0 else 0
    late = np.flatnonzero(position >= empty_from.min())
    in_stock = empty_from[:, None] > position[late][None, :]
    mask = in_stock if allowed is None else allowed[:, late] & in_stock
    value[late] = model.surplus(w[late], x, a0, mask)
    return value


def clear_expected(
    w: np.ndarray,
    weight: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float | ChoiceModel,
    limits: np.ndarray,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Continuum clearing: expected units per seller and total surplus, with random-order rationing.

    Shoppers arrive uniformly over the step; while every seller is open they buy at the expected
    rates, a seller closes when its limit is reached and later shoppers choose among the open ones.
    This is the large-population limit of ``clear_agents``.
    """
    n_sellers, model = len(x), as_choice_model(mu)
    base = np.ones((n_sellers, len(w)), dtype=bool) if allowed is None else allowed
    open_ = np.ones(n_sellers, dtype=bool)
    sold = np.zeros(n_sellers)
    welfare, now = 0.0, 0.0
    while True:
        mask = None if (allowed is None and open_.all()) else base & open_[:, None]
        rate = model.expected_units(w, weight, x, a0, mask)
        cs = float(model.surplus(w, x, a0, mask) @ weight)
        with np.errstate(divide="ignore", invalid="ignore"):
            until = np.where(open_ & (rate > 0), (limits - sold) / rate, np.inf)
        j = int(np.argmin(until))
        span = min(1.0 - now, float(until[j]))
        sold += rate * span
        welfare += cs * span
        now += span
        if now >= 1.0 - 1e-12:
            return sold, welfare
        open_[j] = False
        sold[j] = limits[j]


# --------------------------------------------------------------------------------------- choice models


class ChoiceModel:
    """How a consumer picks among sellers: the contract of the ``register_choice_models`` hook.

    A consumer with WTP ``w`` faces sellers offering ``x_j = quality_j − price_j`` and an outside option
    worth ``a0``; ``allowed`` (J, n), when given, masks the sellers each consumer knows (or that are still
    in stock). A model is built once per run as ``cls(mu=consumers.mu, **consumers.choice.params)``.
    Only ``probabilities`` is required; the rest have exact defaults derived from it, which a model
    overrides when it knows better (the logit's closed forms, say). Every method is vectorised over
    consumers and must be a pure function of its arguments (randomness comes in as uniforms).
    """

    name: ClassVar[str] = ""

    def probabilities(self, w: np.ndarray, x: np.ndarray, a0: float, allowed: np.ndarray | None = None) -> np.ndarray:
        """Purchase probability of each consumer from each seller, shape (J, n); columns sum to ≤ 1."""
        raise NotImplementedError

    def choose(
        self, w: np.ndarray, x: np.ndarray, a0: float, u: np.ndarray, allowed: np.ndarray | None = None
    ) -> np.ndarray:
        """Each consumer's pick (−1 = outside option) from its uniform in ``u``: the inverse CDF of its row."""
        cum = np.cumsum(self.probabilities(w, x, a0, allowed), axis=0)
        pick = (cum <= u[None, :]).sum(axis=0)
        return np.where(pick >= len(x), -1, pick)

    def surplus(self, w: np.ndarray, x: np.ndarray, a0: float, allowed: np.ndarray | None = None) -> np.ndarray:
        """Expected surplus of each consumer over the outside option, in money (default: Σ_j P_j (w + x_j − a0)⁺)."""
        gain = np.maximum(w[None, :] + x[:, None] - a0, 0.0)
        return (self.probabilities(w, x, a0, allowed) * gain).sum(axis=0)

    def expected_units(
        self, w: np.ndarray, weight: np.ndarray, x: np.ndarray, a0: float, allowed: np.ndarray | None = None
    ) -> np.ndarray:
        """Expected units per seller when consumer i carries mass ``weight_i``."""
        return self.probabilities(w, x, a0, allowed) @ weight

    def reroute(
        self,
        w: np.ndarray,
        x: np.ndarray,
        a0: float,
        uniforms: np.ndarray,
        open_: np.ndarray,
        allowed: np.ndarray | None,
    ) -> np.ndarray:
        """Where shoppers turned away by a sold-out seller buy instead (−1 = nowhere).

        ``uniforms`` (m, J+1) are fresh per shopper; ``open_`` (J,) marks sellers still in stock. The
        default re-draws among the open sellers each shopper knows with the first uniform.
        """
        mask = np.broadcast_to(open_[:, None], (len(x), len(w)))
        mask = mask if allowed is None else mask & allowed
        return self.choose(w, x, a0, uniforms[:, 0], mask)


class Logit(ChoiceModel):
    """Multinomial logit: Gumbel taste shocks of scale ``mu`` (``mu = 0``: the best value wins, ties split).

    The built-in model (McFadden 1974), registered through the same hook as plugins' models. Its
    methods are this module's closed-form kernels; a turned-away shopper's next choice follows its
    Plackett–Luce ranking, so rationing equals serving the consumers one by one.
    """

    name = "logit"

    def __init__(self, mu: float = 0.25) -> None:
        if not (np.isfinite(mu) and mu >= 0):
            raise ValueError(f"mu must be finite and >= 0, got {mu}")
        self.mu = float(mu)

    def probabilities(self, w, x, a0, allowed=None):
        return probabilities(w, x, a0, self.mu, allowed)

    def choose(self, w, x, a0, u, allowed=None):
        return choose(w, x, a0, self.mu, u, allowed)

    def surplus(self, w, x, a0, allowed=None):
        return surplus(w, x, a0, self.mu, allowed)

    def expected_units(self, w, weight, x, a0, allowed=None):
        return expected_units(w, weight, x, a0, self.mu, allowed)

    def reroute(self, w, x, a0, uniforms, open_, allowed):
        return _best_remaining(w, x, a0, self.mu, gumbel(uniforms), open_, allowed)


def as_choice_model(model: float | ChoiceModel) -> ChoiceModel:
    """A choice model as given, or the logit of scale ``model`` when it is a number."""
    return model if isinstance(model, ChoiceModel) else Logit(float(model))
