"""Consumer choice and market clearing as pure numpy functions of arrays (no Mesa, no strategies).

Consumer i values seller j at ``v_ij = w_i + x_j + mu * e_ij`` with ``x_j = quality_j - price_j`` and
the outside option at ``a0 + mu * e_i0``; the e are i.i.d. standard Gumbel taste shocks drawn fresh
each step. It buys one unit from the highest-value seller if that beats the outside option.
We sample that arg-max exactly without drawing the Gumbel shocks: by the Gumbel-max property it
is a categorical draw with logit probabilities (one uniform per consumer), and a consumer turned away
by a sold-out seller draws its next choice from the logit over what it has not tried yet
(Plackett–Luce), which is the conditional law of the second-best Gumbel option. With ``mu = 0`` the
choice is deterministic and ties between sellers are split by the same uniform.

Arrays are laid out seller-major: masks and probabilities are ``(n_sellers, n_consumers)``.
"""

from __future__ import annotations

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


def clear_agents(
    w: np.ndarray,
    x: np.ndarray,
    a0: float,
    mu: float,
    limits: np.ndarray,
    u: np.ndarray,
    order: np.ndarray | None,
    allowed: np.ndarray | None = None,
) -> Clearing:
    """Clear a finite population of shoppers, rationing sellers that run out.

    ``u`` holds one row of uniforms per choice a consumer may need (first choice plus one per seller
    with a finite limit). ``order`` is the random queue (a permutation of shoppers); sellers sell to
    shoppers in queue order until ``limits`` (units this step) is reached, and each shopper turned away
    re-chooses among the options it has not tried. The result equals serving the queue one by one.
    """
    n_sellers, n = len(x), len(w)
    choice = choose(w, x, a0, mu, u[0], allowed)
    wanted = np.bincount(choice[choice >= 0], minlength=n_sellers)
    if order is None or not np.any(wanted > limits):
        return Clearing(choice, wanted.astype(float), surplus(w, x, a0, mu, allowed))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    tried = np.zeros((n_sellers, n), dtype=bool)
    rounds = np.zeros(n, dtype=np.int64)
    closed = np.zeros(n_sellers, dtype=bool)
    base = np.ones((n_sellers, n), dtype=bool) if allowed is None else allowed
    while True:
        cut = _first_turned_away(choice, position, limits, closed, n_sellers)
        if cut is None:
            break
        seller, at = cut
        closed[seller] = True
        who = np.flatnonzero((choice == seller) & (position >= at))
        while who.size:  # re-choose until each lands on an open seller or the outside option
            tried[choice[who], who] = True
            rounds[who] += 1
            sub_allowed = base[:, who] & ~tried[:, who]
            choice[who] = choose(w[who], x, a0, mu, u[rounds[who], who], sub_allowed)
            picked = choice[who]
            who = who[(picked >= 0) & closed[np.maximum(picked, 0)]]
    units = np.bincount(choice[choice >= 0], minlength=n_sellers).astype(float)
    return Clearing(choice, units, surplus(w, x, a0, mu, base & ~tried))


def _first_turned_away(choice, position, limits, closed, n_sellers):
    """The open seller whose demand first exceeds its limit, and the queue position of that shopper."""
    first: tuple[int, int] | None = None
    wanted = np.bincount(choice[choice >= 0], minlength=n_sellers)
    for j in np.flatnonzero((wanted > limits) & ~closed):
        cap = int(limits[j])
        at = int(np.partition(position[choice == j], cap)[cap])
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
