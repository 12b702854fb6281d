"""Game-theoretic evaluation of a symmetric empirical meta-game (a tournament's payoff matrix).

The input everywhere is a square payoff matrix ``A`` (entrants × entrants): ``A[i, j]`` is entrant i's mean
profit when it meets entrant j, so the meta-game is the symmetric two-player game (A, Aᵀ). This module answers
the questions a single "the" Nash equilibrium cannot:

* **Every symmetric equilibrium** (``symmetric_equilibria``): exact support enumeration for games up to
  ``ENUMERATION_LIMIT`` entrants (the algorithm of nashpy's ``support_enumeration``, restricted to symmetric
  supports; Nisan et al. 2007, *Algorithmic Game Theory*, ch. 3), and beyond the bound the distinct rest points
  of replicator dynamics from many seeded random starts that are equilibria (Weibull 1995, *Evolutionary Game
  Theory*, ch. 3). Each equilibrium comes with its basin share under the replicator dynamics and, given bootstrap
  resamples of the matrix, the share of resamples in which an equilibrium with its support still exists
  (``support_survival``).
* **Unique rankings**: α-Rank (Omidshafiei et al. 2019, "α-Rank: Multi-Agent Evaluation by Evolution", Sci. Rep.
  9:9937), single-population version with the ranking intensity α swept upward until the stationary distribution
  stops changing; and Nash averaging (Balduzzi et al. 2018, "Re-evaluating Evaluation", NeurIPS), the maximum-
  entropy Nash equilibrium of the antisymmetric part A − Aᵀ and the skills (A − Aᵀ)p* it induces. Both come
  with bootstrap percentile intervals (``bootstrap_alpharank``, ``bootstrap_nash_averaging``).
* **Evolutionary dynamics**: the replicator trajectory from the uniform population (``replicator_trajectory``)
  and the frequency-dependent Moran process of a finite population (``moran_process``; Nowak et al. 2004,
  Nature 428:646; Fudenberg & Imhof 2006, J. Econ. Theory 131:251).

It supersedes ``marketsim.tournament.results.solve_meta_game`` / ``_replicator`` (which return one equilibrium chosen by
enumeration order). Solvers: scipy (linear programmes, constrained optimisation, ODE integration) and nashpy (the
full, asymmetric-inclusive enumeration of small games, ``bimatrix_equilibria``; also the independent solver the
tests check the symmetric enumeration against). Pure functions on arrays: no I/O, no plotting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import linalg, optimize
from scipy.integrate import solve_ivp
from scipy.special import logsumexp

__all__ = [
    "ENUMERATION_LIMIT",
    "Equilibrium",
    "EquilibriumSet",
    "symmetric_equilibria",
    "enumerate_symmetric_equilibria",
    "BIMATRIX_LIMIT",
    "bimatrix_equilibria",
    "support_survival",
    "ReplicatorTrajectory",
    "replicator_trajectory",
    "dirichlet_starts",
    "AlphaRank",
    "alpharank",
    "alpharank_transition",
    "fermi_fixation",
    "stationary_distribution",
    "NashAveraging",
    "nash_averaging",
    "MoranProcess",
    "moran_fixation",
    "moran_process",
    "BootstrapSummary",
    "Resamples",
    "draw_resamples",
    "cell_resampler",
    "bootstrap_alpharank",
    "bootstrap_nash_averaging",
    "competition_ranks",
    "MetaGameReport",
    "analyse_meta_game",
]

ENUMERATION_LIMIT = 12
"""Largest game solved by exhaustive support enumeration: 2¹² − 1 = 4095 supports, each a small linear solve."""

Resamples = Sequence[np.ndarray] | Callable[[np.random.Generator], np.ndarray]
"""Bootstrap input: resampled payoff matrices, or a function drawing one from a generator."""


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------------


def _validated(matrix: np.ndarray) -> np.ndarray:
    """The payoff matrix as a finite, non-empty square float array; anything else is refused loudly."""
    a = np.asarray(matrix, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"a meta-game needs a non-empty square payoff matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"payoff matrix has {int(np.sum(~np.isfinite(a)))} missing (non-finite) entries")
    return a


def _tolerance(a: np.ndarray) -> float:
    """Payoff tolerance scaled to the matrix, so results do not depend on the profit unit."""
    return 1e-9 * max(1.0, float(np.abs(a).max()))


def _spread(a: np.ndarray) -> float:
    """The payoff range (max − min), 1 for a constant matrix: the natural unit of selection strength."""
    spread = float(np.ptp(a))
    return spread if spread > 0 else 1.0


def competition_ranks(scores: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Rank 1 for the highest score, ties (within ``tol``) sharing the better rank ("1224" ranking)."""
    s = np.asarray(scores, float)
    return np.array([1 + int(np.sum(s > value + tol)) for value in s], dtype=int)


def _ordering(scores: np.ndarray) -> tuple[int, ...]:
    """Entrant indices from best to worst score; ties keep index order, so the ordering is reproducible."""
    return tuple(int(i) for i in np.argsort(-np.asarray(scores, float), kind="stable"))


# ---------------------------------------------------------------------------------------------------------------
# 1. Every symmetric equilibrium
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Equilibrium:
    """One symmetric Nash equilibrium (x, x): its support, mixture, value xᵀAx and replicator basin share."""

    support: tuple[int, ...]
    mixture: np.ndarray
    value: float
    basin_share: float


@dataclass(frozen=True)
class EquilibriumSet:
    """All symmetric equilibria found, how they were found, and the replicator starts that reached none of them.

    ``method`` is ``"support_enumeration"`` (the list is complete for a non-degenerate game) or
    ``"replicator_sampling"`` (only equilibria that attract some start are found). ``unresolved_share`` is the
    share of the ``starts`` replicator runs that ended near no listed equilibrium (cycles, slow convergence).
    """

    equilibria: tuple[Equilibrium, ...]
    method: Literal["support_enumeration", "replicator_sampling"]
    starts: int
    unresolved_share: float

    @property
    def count(self) -> int:
        """How many symmetric equilibria were found."""
        return len(self.equilibria)


def _solve_support(a: np.ndarray, support: Sequence[int], tol: float) -> np.ndarray | None:
    """The symmetric equilibrium whose support is exactly ``support``, or None when there is none.

    Solves the indifference conditions A_SS x_S = v·1, Σ x_S = 1, then demands x_S > 0 and no profitable
    deviation outside S: (Ax)_i ≤ v. A singular system (a degenerate game) is solved in least squares and
    accepted only if consistent.
    """
    s = list(support)
    k = len(s)
    lhs = np.zeros((k + 1, k + 1))
    lhs[:k, :k] = a[np.ix_(s, s)]
    lhs[:k, k] = -1.0
    lhs[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    sol = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    if not np.all(np.isfinite(sol)) or np.max(np.abs(lhs @ sol - rhs)) > tol:
        return None
    if sol[:k].min() <= 1e-12:
        return None
    x = np.zeros(a.shape[0])
    x[s] = sol[:k] / sol[:k].sum()
    payoff = a @ x
    return x if payoff.max() <= x @ payoff + tol else None


def enumerate_symmetric_equilibria(matrix: np.ndarray) -> list[np.ndarray]:
    """Every symmetric equilibrium mixture of (A, Aᵀ), by support enumeration over all 2ⁿ − 1 supports.

    Complete for non-degenerate games (each equilibrium is the unique solution on its support); exponential in
    n, so callers keep n ≤ ``ENUMERATION_LIMIT``. Ordered by support size, then lexicographically by support.
    """
    a = _validated(matrix)
    n, tol = a.shape[0], _tolerance(a)
    found = []
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            x = _solve_support(a, support, tol)
            if x is not None:
                found.append(x)
    return found


BIMATRIX_LIMIT = 9
"""Largest game whose equilibria nashpy enumerates in full: C(2n, n) − 1 support pairs (48 619 at n = 9)."""


def bimatrix_equilibria(matrix: np.ndarray, max_entrants: int = BIMATRIX_LIMIT) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every Nash equilibrium (x, y) of the two-player game (A, Aᵀ), asymmetric ones included, by nashpy.

    Symmetric equilibria are those with x = y; the asymmetric rest describe two seats playing differently, which
    a population of entrants cannot, so they matter for the total count only. nashpy's support enumeration
    (Knight & Campbell 2018, JOSS 3:904) warns when the game is degenerate.
    """
    import nashpy

    a = _validated(matrix)
    if a.shape[0] > max_entrants:
        raise ValueError(f"full enumeration is limited to {max_entrants} entrants, got {a.shape[0]}")
    return [(np.asarray(x, float), np.asarray(y, float)) for x, y in nashpy.Game(a, a.T).support_enumeration()]


def dirichlet_starts(n: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` population states drawn uniformly from the (n−1)-simplex (flat Dirichlet), seeded."""
    return np.random.default_rng(seed).dirichlet(np.ones(n), size=count)


def _replicator_log_rhs(b: np.ndarray, count: int) -> Callable[[float, np.ndarray], np.ndarray]:
    """Replicator dynamics in log coordinates, d log xᵢ/dt = (Bx)ᵢ − xᵀBx, for ``count`` stacked states."""
    n = b.shape[0]

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        logs = y.reshape(count, n)
        x = np.exp(logs - logsumexp(logs, axis=1, keepdims=True))
        payoff = x @ b.T
        return (payoff - np.sum(x * payoff, axis=1, keepdims=True)).ravel()

    return rhs


def _normalised(a: np.ndarray) -> np.ndarray:
    """Payoffs rescaled to [0, 1]: an affine change that leaves replicator orbits intact and fixes the time unit."""
    return (a - a.min()) / _spread(a)


def _replicator_endpoints(a: np.ndarray, starts: np.ndarray, t_max: float) -> np.ndarray:
    """Population states reached from each start by time ``t_max`` (payoff spread = 1), integrated together.

    Integrates in doubling segments and stops early once every state is at rest (|ẋ| < 1e-12): converging games
    finish fast, cycling ones (RPS) run the whole horizon.
    """
    count, n = starts.shape
    b = _normalised(a)
    rhs = _replicator_log_rhs(b, count)
    y, t, segment = np.log(np.clip(starts, 1e-300, None)).ravel(), 0.0, 100.0
    while t < t_max:
        end = min(t + segment, t_max)
        y = solve_ivp(rhs, (t, end), y, method="RK45", rtol=1e-7, atol=1e-9).y[:, -1]
        t, segment = end, 2.0 * segment
        logs = y.reshape(count, n)
        x = np.exp(logs - logsumexp(logs, axis=1, keepdims=True))
        payoff = x @ b.T
        if np.max(np.abs(x * (payoff - np.sum(x * payoff, axis=1, keepdims=True)))) < 1e-12:
            break
    return x


def _rest_point_equilibria(a: np.ndarray, endpoints: np.ndarray, threshold: float = 1e-3) -> list[np.ndarray]:
    """Distinct equilibria obtained by polishing replicator end points on their supports (entries > threshold)."""
    tol = _tolerance(a)
    found: dict[tuple[int, ...], np.ndarray] = {}
    for point in endpoints:
        support = tuple(int(i) for i in np.flatnonzero(point > threshold))
        if support not in found:
            x = _solve_support(a, support, tol)
            if x is not None:
                found[support] = x
    return [found[s] for s in sorted(found, key=lambda s: (len(s), s))]


def _basin_shares(mixtures: Sequence[np.ndarray], endpoints: np.ndarray, match: float) -> np.ndarray:
    """Share of end points nearest (max-norm) to each mixture, counting only those within ``match`` of it."""
    shares = np.zeros(len(mixtures))
    if not mixtures:
        return shares
    stacked = np.stack(mixtures)
    for point in endpoints:
        distance = np.abs(stacked - point).max(axis=1)
        nearest = int(np.argmin(distance))
        if distance[nearest] <= match:
            shares[nearest] += 1
    return shares / len(endpoints)


def symmetric_equilibria(
    matrix: np.ndarray,
    *,
    starts: int = 500,
    seed: int = 0,
    max_enumeration: int = ENUMERATION_LIMIT,
    t_max: float = 10_000.0,
    match: float = 1e-3,
) -> EquilibriumSet:
    """Every symmetric equilibrium with its value and basin share, so no single one is mistaken for "the" answer.

    Up to ``max_enumeration`` entrants: exact support enumeration. Beyond: the distinct equilibria among the rest
    points of replicator dynamics from the same starts. The basin share of an equilibrium is the share of
    ``starts`` seeded flat-Dirichlet starts whose replicator orbit (run to ``t_max`` in units where the payoff
    spread is 1) ends within ``match`` (max-norm) of it; unstable equilibria get (near) zero.
    """
    a = _validated(matrix)
    n = a.shape[0]
    if starts < 1:
        raise ValueError(f"basin shares need at least one replicator start, got {starts}")
    endpoints = _replicator_endpoints(a, dirichlet_starts(n, starts, seed), t_max)
    if n <= max_enumeration:
        mixtures, method = enumerate_symmetric_equilibria(a), "support_enumeration"
    else:
        mixtures, method = _rest_point_equilibria(a, endpoints), "replicator_sampling"
    shares = _basin_shares(mixtures, endpoints, match)
    equilibria = tuple(
        Equilibrium(tuple(int(i) for i in np.flatnonzero(x > 0)), x, float(x @ a @ x), float(share))
        for x, share in zip(mixtures, shares)
    )
    return EquilibriumSet(equilibria, method, starts, float(1.0 - shares.sum()))


def draw_resamples(resamples: Resamples, n_resamples: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Bootstrap matrices: the given list as is, or ``n_resamples`` draws from a callable with a seeded generator."""
    if callable(resamples):
        rng = np.random.default_rng(seed)
        return [_validated(resamples(rng)) for _ in range(n_resamples)]
    return [_validated(m) for m in resamples]


def cell_resampler(samples: Sequence[Sequence[Sequence[float]]]) -> Callable[[np.random.Generator], np.ndarray]:
    """A bootstrap of the payoff matrix from per-cell match results: each cell's mean over its matches resampled.

    ``samples[i][j]`` holds entrant i's profit in each match against j; one draw resamples every cell's matches
    with replacement and returns the matrix of means (cells resampled independently).
    """
    cells = [[np.asarray(c, float) for c in row] for row in samples]
    for row in cells:
        for cell in row:
            if cell.size == 0:
                raise ValueError("every cell of the payoff matrix needs at least one match result")

    def draw(rng: np.random.Generator) -> np.ndarray:
        return np.array([[rng.choice(cell, size=cell.size).mean() for cell in row] for row in cells])

    return draw


def support_survival(
    supports: EquilibriumSet | Sequence[Sequence[int]],
    resamples: Resamples,
    *,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[tuple[int, ...], float]:
    """For each equilibrium support, the share of bootstrap matrices that still have an equilibrium on it.

    A support that survives in few resamples is an artefact of sampling noise in the match results rather than a
    property of the strategies.
    """
    if isinstance(supports, EquilibriumSet):
        wanted = [e.support for e in supports.equilibria]
    else:
        wanted = [tuple(int(i) for i in s) for s in supports]
    matrices = draw_resamples(resamples, n_resamples, seed)
    hits = dict.fromkeys(wanted, 0)
    for m in matrices:
        for support in hits:
            hits[support] += _solve_support(m, support, _tolerance(m)) is not None
    return {support: count / len(matrices) for support, count in hits.items()}


# ---------------------------------------------------------------------------------------------------------------
# 3. Evolutionary dynamics: replicator trajectory
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicatorTrajectory:
    """Population shares over time (``trajectory[t, i]``) at ``times``, in units where the payoff spread is 1."""

    times: np.ndarray
    trajectory: np.ndarray


def replicator_trajectory(
    matrix: np.ndarray, *, t_max: float = 200.0, points: int = 401, start: np.ndarray | None = None
) -> ReplicatorTrajectory:
    """The replicator orbit ẋᵢ = xᵢ((Ax)ᵢ − xᵀAx) from the uniform population (or ``start``), for a plot.

    Payoffs are rescaled to [0, 1] first (an affine change: same orbits, a fixed time unit); the ODE is
    integrated in log coordinates with tight tolerances, so conserved quantities (RPS cycles) are kept.
    """
    a = _validated(matrix)
    n = a.shape[0]
    x0 = np.full(n, 1.0 / n) if start is None else np.asarray(start, float) / np.sum(start)
    times = np.linspace(0.0, t_max, points)
    rhs = _replicator_log_rhs(_normalised(a), 1)
    y0 = np.log(np.clip(x0, 1e-300, None))
    sol = solve_ivp(rhs, (0.0, t_max), y0, t_eval=times, method="DOP853", rtol=1e-10, atol=1e-12)
    logs = sol.y.T
    return ReplicatorTrajectory(times, np.exp(logs - logsumexp(logs, axis=1, keepdims=True)))


# ---------------------------------------------------------------------------------------------------------------
# 2a. α-Rank
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaRank:
    """α-Rank result: stationary mass per entrant, ranking (best first), the α used and the sweep behind it.

    ``converged`` is False when the sweep ended (numerical reducibility or ``max_doublings``) before two
    consecutive distributions agreed; ``alphas`` and ``distributions`` are the sweep, for a plot of π against α.
    """

    distribution: np.ndarray
    ranking: tuple[int, ...]
    alpha: float
    population: int
    converged: bool
    alphas: np.ndarray
    distributions: np.ndarray


def fermi_fixation(matrix: np.ndarray, resident: int, mutant: int, alpha: float, population: int) -> float:
    """Probability that one ``mutant`` takes over a population of ``population − 1`` ``resident`` individuals.

    Pairwise-comparison (Fermi) process of α-Rank's single-population model (Omidshafiei et al. 2019, §"α-Rank",
    after Traulsen et al. 2006): with k mutants, fitnesses are the mean payoffs against the other m − 1
    individuals, f_τ(k) = ((k−1)A_ττ + (m−k)A_τσ)/(m−1), f_σ(k) = ((m−k−1)A_σσ + kA_στ)/(m−1), and
    ρ = [1 + Σ_{l=1}^{m−1} Π_{k=1}^{l} exp(−α(f_τ(k) − f_σ(k)))]⁻¹, evaluated in log space so large α is exact.
    """
    a, m = matrix, population
    k = np.arange(1, m)
    f_mutant = ((k - 1) * a[mutant, mutant] + (m - k) * a[mutant, resident]) / (m - 1)
    f_resident = ((m - k - 1) * a[resident, resident] + k * a[resident, mutant]) / (m - 1)
    exponents = np.concatenate(([0.0], -alpha * np.cumsum(f_mutant - f_resident)))
    return float(np.exp(-logsumexp(exponents)))


def alpharank_transition(matrix: np.ndarray, alpha: float, population: int = 50) -> np.ndarray:
    """α-Rank's Markov chain over monomorphic populations: a uniformly chosen mutant fixes with its ρ."""
    a = _validated(matrix)
    n = a.shape[0]
    c = np.zeros((n, n))
    for s, r in itertools.permutations(range(n), 2):
        c[s, r] = fermi_fixation(a, s, r, alpha, population) / (n - 1)
    c[np.diag_indices(n)] = 1.0 - c.sum(axis=1)
    return c


def stationary_distribution(transition: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """The unique stationary distribution π = πC of a row-stochastic matrix; ValueError if it is not unique."""
    c = np.asarray(transition, float)
    if c.shape[0] == 1:
        return np.ones(1)
    values, left = linalg.eig(c, left=True, right=False)
    unit = np.flatnonzero(np.abs(values - 1.0) < tol)
    if unit.size != 1:
        raise ValueError(f"the chain has {unit.size} stationary distributions (numerically reducible)")
    pi = np.abs(left[:, unit[0]].real)
    return pi / pi.sum()


def alpharank(
    matrix: np.ndarray,
    *,
    population: int = 50,
    alpha: float | None = None,
    max_doublings: int = 60,
    min_doublings: int = 10,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> AlphaRank:
    """α-Rank's stationary distribution and ranking, with α swept upward until the distribution is stable.

    As the paper prescribes, α is taken large: starting at α = 10⁻³/spread, α doubles until two consecutive
    stationary distributions agree (``np.allclose(rtol, atol)``) after at least ``min_doublings`` doublings, or
    until the chain becomes numerically reducible (then the last well-defined α is kept). A given ``alpha``
    skips the sweep. Population size ``population`` is the paper's m.
    """
    a = _validated(matrix)
    if alpha is not None:
        pi = stationary_distribution(alpharank_transition(a, alpha, population))
        return AlphaRank(pi, _ordering(pi), float(alpha), population, True, np.array([alpha]), pi[None, :])
    alphas: list[float] = []
    pis: list[np.ndarray] = []
    converged = False
    current = 1e-3 / _spread(a)
    for step in range(max_doublings + 1):
        try:
            pi = stationary_distribution(alpharank_transition(a, current, population))
        except ValueError:
            break
        if pis and step > min_doublings and np.allclose(pi, pis[-1], rtol=rtol, atol=atol):
            converged = True
        alphas.append(current)
        pis.append(pi)
        if converged:
            break
        current *= 2.0
    if not pis:
        raise ValueError("α-Rank: no α gave a unique stationary distribution")
    pi = pis[-1]
    return AlphaRank(pi, _ordering(pi), alphas[-1], population, converged, np.array(alphas), np.stack(pis))


# ---------------------------------------------------------------------------------------------------------------
# 2b. Nash averaging
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NashAveraging:
    """Maximum-entropy Nash equilibrium p* of A − Aᵀ, each entrant's skill ((A − Aᵀ)p*)ᵢ ≤ 0, and the ranking."""

    mixture: np.ndarray
    skill: np.ndarray
    ranking: tuple[int, ...]


def _maximise(cost: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Maximise ``cost · p`` over the equilibrium set {p ∈ Δ : Bp ≤ 0} of antisymmetric B (HiGHS LP)."""
    n = b.shape[0]
    res = optimize.linprog(-cost, A_ub=b, b_ub=np.zeros(n), A_eq=np.ones((1, n)), b_eq=[1.0], bounds=(0, None))
    if res.status != 0:
        raise RuntimeError(f"Nash averaging: an equilibrium LP failed: {res.message}")
    return np.clip(res.x, 0.0, None)


def _maximal_support(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entrants some equilibrium of B plays, and a point of the equilibrium set with that support.

    A symmetric zero-sum game (antisymmetric B) has value 0, so its equilibria are {p ∈ Δ : Bp ≤ 0}. By strict
    complementarity (Goldman & Tucker 1956) each entrant i either has p_i > 0 in some equilibrium or (Bp)_i < 0
    in some equilibrium, never both; two LPs per entrant decide which, robustly to solver tolerances.
    """
    n, scale = b.shape[0], max(float(np.abs(b).max()), 1e-300)
    points, support = [], []
    for i in range(n):
        unit = np.eye(n)[i]
        played = _maximise(unit, b)
        losing = _maximise(-b[i], b)
        if played[i] >= -(b[i] @ losing) / scale:
            support.append(i)
            points.append(played)
    return np.array(support, dtype=int), np.mean(points, axis=0)


def _max_entropy(b: np.ndarray, support: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Maximise Shannon entropy over the equilibria supported on ``support`` (SLSQP, analytic gradient)."""

    def negative_entropy(p: np.ndarray) -> tuple[float, np.ndarray]:
        q = np.clip(p, 1e-300, None)
        return float(np.sum(q * np.log(q))), np.log(q) + 1.0

    x0 = np.clip(start[support], 1e-12, None)
    res = optimize.minimize(
        negative_entropy,
        x0 / x0.sum(),
        jac=True,
        method="SLSQP",
        bounds=[(1e-15, 1.0)] * support.size,
        constraints=[
            optimize.LinearConstraint(b[:, support], -np.inf, 0.0),
            optimize.LinearConstraint(np.ones((1, support.size)), 1.0, 1.0),
        ],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    p = np.zeros(b.shape[0])
    p[support] = np.clip(res.x, 0.0, None)
    return p / p.sum()


def nash_averaging(matrix: np.ndarray) -> NashAveraging:
    """Nash averaging: the max-entropy Nash equilibrium p* of the zero-sum game A − Aᵀ and the skills (A − Aᵀ)p*.

    Balduzzi et al. (2018) show the max-entropy equilibrium is unique and that adding copies of an entrant
    splits its mass among the copies and leaves every skill unchanged, so a field cannot be stacked. Skill 0 is
    the best possible (the entrant is in the equilibrium's support); negative skill is how far it falls short.
    """
    a = _validated(matrix)
    b = a - a.T
    p = _max_entropy(b, *_maximal_support(b))
    skill = b @ p
    return NashAveraging(p, skill, _ordering(skill))


# ---------------------------------------------------------------------------------------------------------------
# 3. Moran process
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoranProcess:
    """Moran fixation probabilities ρ[i, j] (one j-mutant among N − 1 i-residents; ρ[i, i] = 1/N, neutral) and the
    stationary distribution of the embedded chain over monomorphic populations (rare mutations)."""

    fixation: np.ndarray
    stationary: np.ndarray
    population: int
    selection: float


def moran_fixation(matrix: np.ndarray, population: int = 50, selection: float = 0.1) -> np.ndarray:
    """Fixation probabilities of the frequency-dependent Moran process (Nowak et al. 2004, Taylor et al. 2004).

    Payoffs are rescaled to [0, 1] so fitness stays positive for every selection intensity w ∈ [0, 1]. With k
    mutants j among N − 1 + 1 individuals, π_j(k) = ((k−1)A_jj + (N−k)A_ji)/(N−1), π_i(k) = (kA_ij +
    (N−k−1)A_ii)/(N−1), fitness f = 1 − w + wπ, and ρ_ij = [1 + Σ_{l=1}^{N−1} Π_{k=1}^{l} f_i(k)/f_j(k)]⁻¹ —
    the closed form of a birth–death chain's absorption probability. Neutral payoffs (or w = 0) give 1/N.
    """
    if not 0.0 <= selection <= 1.0:
        raise ValueError(f"selection intensity w must lie in [0, 1], got {selection}")
    a = _normalised(_validated(matrix))
    n, big_n = a.shape[0], population
    k = np.arange(1, big_n)
    rho = np.full((n, n), 1.0 / big_n)
    for i, j in itertools.permutations(range(n), 2):
        pay_j = ((k - 1) * a[j, j] + (big_n - k) * a[j, i]) / (big_n - 1)
        pay_i = (k * a[i, j] + (big_n - k - 1) * a[i, i]) / (big_n - 1)
        log_ratio = np.log1p(selection * (pay_i - 1.0)) - np.log1p(selection * (pay_j - 1.0))
        rho[i, j] = np.exp(-logsumexp(np.concatenate(([0.0], np.cumsum(log_ratio)))))
    return rho


def moran_process(matrix: np.ndarray, population: int = 50, selection: float = 0.1) -> MoranProcess:
    """Moran fixation probabilities and the long-run share of time each entrant's monomorphic population lasts.

    In the limit of rare mutations (Fudenberg & Imhof 2006) the population jumps between monomorphic states: a
    uniformly chosen mutant j appears in an all-i population and fixes with probability ρ_ij. The stationary
    distribution of that chain ranks entrants by evolutionary robustness in a finite population of size N.
    """
    rho = moran_fixation(matrix, population, selection)
    n = rho.shape[0]
    if n == 1:
        return MoranProcess(rho, np.ones(1), population, selection)
    chain = rho / (n - 1)
    chain[np.diag_indices(n)] = 0.0
    chain[np.diag_indices(n)] = 1.0 - chain.sum(axis=1)
    return MoranProcess(rho, stationary_distribution(chain), population, selection)


# ---------------------------------------------------------------------------------------------------------------
# 2c. Bootstrap confidence for the unique rankings
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapSummary:
    """A per-entrant quantity's point estimate, percentile interval over resamples, and rank stability.

    ``rank`` is the point estimate's competition rank (1 = best), ``rank_held[i]`` the share of resamples in
    which entrant i had the same rank.
    """

    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rank: np.ndarray
    rank_held: np.ndarray
    resamples: int


def _summarise(estimate: np.ndarray, draws: np.ndarray, confidence: float, tol: float) -> BootstrapSummary:
    """Percentile interval of each column of ``draws`` and how often each entrant's point-estimate rank holds."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    rank = competition_ranks(estimate, tol)
    held = np.mean([competition_ranks(d, tol) == rank for d in draws], axis=0)
    return BootstrapSummary(estimate, low, high, rank, held, draws.shape[0])


def _alpharank_at_most(matrix: np.ndarray, alpha: float, population: int) -> np.ndarray:
    """α-Rank mass at ``alpha``, or at the largest α/2ᵏ where the chain is still irreducible (broken ties)."""
    for _ in range(200):
        try:
            return alpharank(matrix, population=population, alpha=alpha).distribution
        except ValueError:
            alpha /= 2.0
    raise ValueError("α-Rank: no α gave a unique stationary distribution")


def bootstrap_alpharank(
    matrix: np.ndarray,
    resamples: Resamples,
    *,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    population: int = 50,
) -> tuple[AlphaRank, BootstrapSummary]:
    """α-Rank on the matrix, and percentile intervals of each entrant's stationary mass over bootstrap matrices.

    Each resample is ranked at the α the point estimate's sweep chose, so the interval reflects sampling noise in
    the payoffs, not a change of α; where noise breaks an exact payoff tie and the resample's chain becomes
    reducible at that α, the largest α/2ᵏ at which it is not is used.
    """
    point = alpharank(matrix, population=population)
    matrices = draw_resamples(resamples, n_resamples, seed)
    draws = np.stack([_alpharank_at_most(m, point.alpha, population) for m in matrices])
    return point, _summarise(point.distribution, draws, confidence, 1e-9)


def bootstrap_nash_averaging(
    matrix: np.ndarray,
    resamples: Resamples,
    *,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[NashAveraging, BootstrapSummary, BootstrapSummary]:
    """Nash averaging on the matrix, with bootstrap intervals of each entrant's mass and of its skill."""
    a = _validated(matrix)
    point = nash_averaging(a)
    results = [nash_averaging(m) for m in draw_resamples(resamples, n_resamples, seed)]
    tol = 1e-6 * _spread(a)
    mass = _summarise(point.mixture, np.stack([r.mixture for r in results]), confidence, 1e-6)
    skill = _summarise(point.skill, np.stack([r.skill for r in results]), confidence, tol)
    return point, mass, skill


# ---------------------------------------------------------------------------------------------------------------
# 4. A tournament's meta-game, all of the above at once (what ``write_outputs`` reports)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaGameReport:
    """Everything this module says about one tournament's payoff matrix, with entrant names attached."""

    entrants: tuple[str, ...]
    equilibria: EquilibriumSet
    survival: dict[tuple[int, ...], float]
    alpha_rank: AlphaRank
    alpha_rank_ci: BootstrapSummary
    nash_averaging: NashAveraging
    nash_mass_ci: BootstrapSummary
    nash_skill_ci: BootstrapSummary
    moran: MoranProcess
    replicator: ReplicatorTrajectory

    def _names(self, support: Sequence[int]) -> list[str]:
        return [self.entrants[i] for i in support]

    def equilibria_rows(self) -> list[dict[str, object]]:
        """One row per symmetric equilibrium, most attracting first: support, mixture, value, basin, survival."""
        rows = [
            {
                "support": " + ".join(self._names(e.support)),
                "mixture": ", ".join(f"{self.entrants[i]} {e.mixture[i]:.3f}" for i in e.support),
                "value": e.value,
                "basin_share": e.basin_share,
                "survives_bootstrap": self.survival.get(e.support, float("nan")),
            }
            for e in self.equilibria.equilibria
        ]
        return sorted(rows, key=lambda r: -float(r["basin_share"]))

    def ranking_columns(self) -> dict[str, dict[str, float]]:
        """Per entrant: α-Rank mass and Nash-averaging skill with their intervals, and the Moran share."""
        ar, na, ns = self.alpha_rank_ci, self.nash_mass_ci, self.nash_skill_ci
        return {
            name: {
                "alpha_rank": float(ar.estimate[i]),
                "alpha_rank_ci_low": float(ar.ci_low[i]),
                "alpha_rank_ci_high": float(ar.ci_high[i]),
                "nash_avg_mass": float(na.estimate[i]),
                "nash_avg_skill": float(ns.estimate[i]),
                "nash_avg_skill_ci_low": float(ns.ci_low[i]),
                "nash_avg_skill_ci_high": float(ns.ci_high[i]),
                "moran": float(self.moran.stationary[i]),
            }
            for i, name in enumerate(self.entrants)
        }

    def summary(self) -> dict[str, object]:
        """The meta-game part of a tournament's summary.json (plain data)."""
        return {
            "equilibria": self.equilibria_rows(),
            "count": self.equilibria.count,
            "method": self.equilibria.method,
            "replicator_starts": self.equilibria.starts,
            "unresolved_share": self.equilibria.unresolved_share,
            "alpha_rank": {
                "ranking": self._names(self.alpha_rank.ranking),
                "alpha": self.alpha_rank.alpha,
                "population": self.alpha_rank.population,
                "converged": self.alpha_rank.converged,
            },
            "nash_averaging": {"ranking": self._names(self.nash_averaging.ranking)},
            "moran": {"population": self.moran.population, "selection": self.moran.selection},
            "resamples": self.alpha_rank_ci.resamples,
            "per_entrant": self.ranking_columns(),
        }


def analyse_meta_game(
    entrants: Sequence[str],
    matrix: np.ndarray,
    samples: Sequence[Sequence[Sequence[float]]],
    *,
    n_resamples: int = 200,
    seed: int = 0,
) -> MetaGameReport:
    """Every equilibrium, α-Rank, Nash averaging, Moran and replicator for one payoff matrix.

    ``samples[i][j]`` are entrant i's profits in its matches against j; the bootstrap resamples them per cell.
    ``seed`` seeds the replicator starts and the bootstrap, so a report is reproducible.
    """
    a = _validated(matrix)
    draws = draw_resamples(cell_resampler(samples), n_resamples, seed)
    equilibria = symmetric_equilibria(a, seed=seed)
    alpha_point, alpha_ci = bootstrap_alpharank(a, draws, seed=seed)
    nash_point, nash_mass, nash_skill = bootstrap_nash_averaging(a, draws, seed=seed)
    return MetaGameReport(
        entrants=tuple(entrants),
        equilibria=equilibria,
        survival=support_survival(equilibria, draws, seed=seed),
        alpha_rank=alpha_point,
        alpha_rank_ci=alpha_ci,
        nash_averaging=nash_point,
        nash_mass_ci=nash_mass,
        nash_skill_ci=nash_skill,
        moran=moran_process(a),
        replicator=replicator_trajectory(a),
    )
