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

import numpy as np

_EXP_CAP = 700.0  # exp(700) is finite in float64; beyond it the outside option wins with certainty
_TIE = 1e-12  # values closer than this count as a tie when mu = 0


@dataclass(frozen=True, slots=True)
class Clearing:
    """Result of clearing one step: each shopper's seller (-1 = none), units per seller, surplus."""

    choice: np.ndarray  # (n,) int, -1 for no purchase
    units: np.ndarray  # (J,) float
    surplus: np.ndarray  # (n,) expected surplus of each shopper over the outside option, in money


def _logit_parts(w: np.ndarray, x: np.ndarray, a0: float, mu: float) -> tuple[np.ndarray, np.ndarray]:
    """Scaled seller weights eps_j = exp((x_j - M)/mu) and outside weights z_i, sharing the shift M."""
    shift = float(np.max(x))
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
    eps, z = _logit_parts(w, x, a0, mu)
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
        eps, z = _logit_parts(w, x, a0, mu)
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
        eps, z = _logit_parts(w, x, a0, mu)
        return eps * float(np.sum(weight / (z + eps.sum())))
    return probabilities(w, x, a0, mu, allowed) @ weight


def gumbel_keys(rng: np.random.Generator, m: int, n_options: int) -> np.ndarray:
    """Standard Gumbel draws, shape (m, n_options): column 0 is the outside option, column j+1 seller j."""
    u = rng.random((m, n_options), dtype=np.float32)
    with np.errstate(divide="ignore"):  # float32 keeps the draw cheap; a ranking needs no more precision
        return -np.log(-np.log(u))


def clear_agents(
    w: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float,
    limits: np.ndarray,
    u: np.ndarray,
    order: np.ndarray | None,
    allowed: np.ndarray | None = None,
    keys: Callable[[int], np.ndarray] | None = None,
) -> Clearing:
    """Clear a finite population of shoppers, rationing sellers that run out.

    ``u`` holds each shopper's uniform for its first choice. ``order`` is the random queue (a
    permutation of shoppers, needed when a limit is finite). Sellers serve shoppers in queue order up
    to ``limits`` (units this step); a shopper turned away buys its best remaining option among the
    sellers still in stock at its turn, ranked by Gumbel ``keys(m)`` (an (m, J+1) array) drawn for
    the m shoppers whose first choice has a finite limit, in shopper order, only when some seller is
    over its limit. The result equals serving the queue one by one (tests/reference_market.py).
    """
    n_sellers, n = len(x), len(w)
    choice = choose(w, x, a0, mu, u, allowed)
    position = None
    if order is not None:
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        if np.any(np.bincount(choice[choice >= 0], minlength=n_sellers) > limits):
            if keys is None:
                raise ValueError("demand exceeds a limit: rationing needs Gumbel keys")
            _ration(w, x, a0, mu, limits, choice, order, position, allowed, keys)
    units = np.bincount(choice[choice >= 0], minlength=n_sellers).astype(float)
    return Clearing(choice, units, _surplus_at_turn(w, x, a0, mu, allowed, choice, units, limits, position))


def _ration(w, x, a0, mu, limits, choice, order, position, allowed, keys) -> None:
    """Re-route, in place, the shoppers who reach a sold-out seller, one sell-out event at a time."""
    n_sellers, n = len(x), len(w)
    ranked = np.flatnonzero((choice >= 0) & np.isfinite(limits)[np.maximum(choice, 0)])
    row = np.full(n, -1, dtype=np.int64)
    row[ranked] = np.arange(len(ranked))
    gumbel = keys(len(ranked))
    score, outside = _ranking_scores(w[ranked], x, a0, mu, gumbel)
    cut = np.full(n_sellers, np.iinfo(np.int64).max)  # queue position of the first shopper each seller turns away
    queued = choice[order]  # choices in queue order: position k holds shopper order[k]
    while (event := _first_turned_away(queued, limits, cut)) is not None:
        seller, at = event
        cut[seller] = at
        who = order[at + np.flatnonzero(queued[at:] == seller)]
        score[:, seller] = -np.inf  # nobody later in the queue can buy from it
        rows = row[who]
        sub = score[rows]
        if allowed is not None:
            sub = np.where(allowed[:, who].T, sub, -np.inf)
        best = sub.argmax(axis=1)
        top = sub[np.arange(len(who)), best]
        choice[who] = np.where(top > outside[rows], best, -1)
        queued[position[who]] = choice[who]


def _ranking_scores(w, x, a0, mu, gumbel) -> tuple[np.ndarray, np.ndarray]:
    """Scores (m, J) and outside thresholds (m,) whose order is each shopper's preference ranking.

    With mu > 0 the score is the Gumbel utility (w + x_j)/mu + g_j against a0/mu + g_0. With mu = 0
    values decide and the keys only break ties: the score is x_j plus a tie-breaking term far below
    any value gap, and the shopper buys if w + x_j beats a0.
    """
    if mu > 0:
        return (w[:, None] + x[None, :]) / mu + gumbel[:, 1:], a0 / mu + gumbel[:, 0]
    rank = np.argsort(np.argsort(gumbel[:, 1:], axis=1), axis=1)  # 0..J-1, larger = preferred among ties
    score = x[None, :] + rank * (_TIE / (2 * len(x)))
    return score, np.where(np.isfinite(w), a0 - w + _TIE, np.inf)


def _surplus_at_turn(w, x, a0, mu, allowed, choice, units, limits, position) -> np.ndarray:
    """Each shopper's expected surplus over the sellers it knows that still have stock at its turn."""
    value = surplus(w, x, a0, mu, allowed)
    full = np.isfinite(limits) & (units >= np.floor(limits))
    if position is None or not full.any():
        return value
    empty_from = np.full(len(x), len(w))  # first queue position at which the seller has no stock
    for j in np.flatnonzero(full):
        empty_from[j] = position[choice == j].max() + 1 if units[j] > 0 else 0
    late = np.flatnonzero(position >= empty_from.min())
    in_stock = empty_from[:, None] > position[late][None, :]
    mask = in_stock if allowed is None else allowed[:, late] & in_stock
    value[late] = surplus(w[late], x, a0, mu, mask)
    return value


def _first_turned_away(queued: np.ndarray, limits: np.ndarray, cut: np.ndarray) -> tuple[int, int] | None:
    """The open seller whose demand first exceeds its limit, and the queue position where that happens."""
    first: tuple[int, int] | None = None
    wanted = np.bincount(queued[queued >= 0], minlength=len(limits))
    for j in np.flatnonzero((wanted > limits) & (cut == np.iinfo(np.int64).max)):
        at = int(np.flatnonzero(queued == j)[int(limits[j])])
        if first is None or at < first[1]:
            first = (int(j), at)
    return first


def clear_expected(
    w: np.ndarray,
    weight: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float,
    limits: np.ndarray,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Continuum clearing: expected units per seller and total surplus, with random-order rationing.

    Shoppers arrive uniformly over the step; while every seller is open they buy at the expected
    rates, a seller closes when its limit is reached and later shoppers choose among the open ones.
    This is the large-population limit of ``clear_agents``.
    """
    n_sellers = len(x)
    base = np.ones((n_sellers, len(w)), dtype=bool) if allowed is None else allowed
    open_ = np.ones(n_sellers, dtype=bool)
    sold = np.zeros(n_sellers)
    welfare, now = 0.0, 0.0
    while True:
        mask = None if (allowed is None and open_.all()) else base & open_[:, None]
        rate = expected_units(w, weight, x, a0, mu, mask)
        cs = float(surplus(w, x, a0, mu, mask) @ weight)
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
