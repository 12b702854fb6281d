"""Exact oracle for discrete pricing games against rivals with deterministic memory-1 reactions.

The market is a repeated game on a price grid: ``n`` sellers each pick one of ``m`` grid prices, and the
state is last period's joint action. Every rival reacts deterministically to that state (fixed price,
match, undercut, …), so seller ``i`` faces a deterministic Markov decision process whose optimal policy
value iteration finds (finished by policy iteration, so the policy and values are exact).

A learner is judged by its normalised score ``S = (π − π_random)/(π* − π_random)``: π is the long-run profit
per period of its greedy policy, π* that of the optimal policy and π_random that of uniform random pricing,
all averaged uniformly over start states. ``S`` is 0 for random pricing and 1 for the optimum; the myopic
(static best response) policy's score is reported next to it. Plain "percent of optimal profit" says
little here: random pricing already earns 80–90% of π* in the Calvano et al. (2020) logit duopoly.

Timing convention: a policy maps last period's joint action (the state) to this period's action, and a
period's profit is that of the joint action played in it, i.e. of the *successor* state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Reaction = np.ndarray  # (m**n,) int: a rival's action this period as a function of last period's joint action


@dataclass(frozen=True)
class DiscreteMarket:
    """n sellers each choosing one of m grid prices; the state is last period's joint action (memory 1)."""

    grids: np.ndarray  # (n, m) price grid of each seller
    profits: np.ndarray  # (n, m**n) one-period profit of each seller for each joint action

    def __post_init__(self) -> None:
        grids = np.asarray(self.grids, dtype=float)
        profits = np.asarray(self.profits, dtype=float)
        if grids.ndim != 2 or grids.shape[1] < 1:
            raise ValueError(f"grids must have shape (n, m), got {grids.shape}")
        n, m = grids.shape
        if profits.shape != (n, m**n):
            raise ValueError(f"profits must have shape (n, m**n) = {(n, m**n)}, got {profits.shape}")
        object.__setattr__(self, "grids", grids)
        object.__setattr__(self, "profits", profits)

    @property
    def n(self) -> int:
        """Number of sellers."""
        return int(self.grids.shape[0])

    @property
    def m(self) -> int:
        """Number of grid prices per seller."""
        return int(self.grids.shape[1])

    @property
    def n_states(self) -> int:
        """Number of joint actions (= states), m**n."""
        return self.m**self.n

    def joint(self, actions: np.ndarray) -> np.ndarray:
        """(..., n) action indices -> joint index; seller 0 is the most significant digit."""
        actions = np.asarray(actions, dtype=np.int64)
        return actions @ (self.m ** np.arange(self.n - 1, -1, -1, dtype=np.int64))

    def actions(self, joint: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`joint`: (...,) joint indices -> (..., n) action indices."""
        return _digits(np.asarray(joint, dtype=np.int64), self.n, self.m)

    @classmethod
    def from_profit_function(cls, grids: np.ndarray, profit_fn: Callable[[np.ndarray], np.ndarray]) -> DiscreteMarket:
        """Tabulate ``profit_fn(prices (n,)) -> profits (n,)`` over every joint action of the grids."""
        grids = np.asarray(grids, dtype=float)
        n, m = grids.shape
        prices = grids[np.arange(n), _digits(np.arange(m**n), n, m)]  # (m**n, n)
        table = np.array([np.asarray(profit_fn(p), dtype=float).reshape(n) for p in prices])
        return cls(grids, table.T)


def _digits(joint: np.ndarray, n: int, m: int) -> np.ndarray:
    return (joint[..., None] // (m ** np.arange(n - 1, -1, -1, dtype=np.int64))) % m


def _seller(market: DiscreteMarket, i: int) -> int:
    if not 0 <= i < market.n:
        raise ValueError(f"seller index {i} out of range for {market.n} sellers")
    return int(i)


def _action(market: DiscreteMarket, action: int) -> int:
    if not 0 <= action < market.m:
        raise ValueError(f"action {action} out of range for a grid of {market.m} prices")
    return int(action)


# ---------------------------------------------------------------------------------------------- reactions


def fixed_reaction(market: DiscreteMarket, action: int) -> Reaction:
    """A rival that always plays grid index ``action``."""
    return np.full(market.n_states, _action(market, action), dtype=np.int64)


def match_reaction(market: DiscreteMarket, rival: int, target: int) -> Reaction:
    """``rival`` plays ``target``'s last action index (grids are assumed aligned by index)."""
    _seller(market, rival)
    return market.actions(np.arange(market.n_states))[:, _seller(market, target)].copy()


def undercut_reaction(market: DiscreteMarket, rival: int, target: int, steps: int = 1) -> Reaction:
    """``rival`` plays ``target``'s last action index minus ``steps``, floored at 0."""
    return np.maximum(match_reaction(market, rival, target) - int(steps), 0)


def _reactions(market: DiscreteMarket, i: int, reactions: dict[int, Reaction]) -> dict[int, np.ndarray]:
    """Validated reactions of every seller other than ``i``."""
    i = _seller(market, i)
    expected = set(range(market.n)) - {i}
    if set(reactions) != expected:
        raise ValueError(f"reactions must be given for exactly the sellers {sorted(expected)}, got {sorted(reactions)}")
    out = {}
    for j, reaction in reactions.items():
        r = np.asarray(reaction)
        if r.shape != (market.n_states,) or not np.issubdtype(r.dtype, np.integer):
            raise ValueError(f"reaction of seller {j} must be an int array of shape ({market.n_states},)")
        if r.min() < 0 or r.max() >= market.m:
            raise ValueError(f"reaction of seller {j} has actions outside 0..{market.m - 1}")
        out[int(j)] = r.astype(np.int64)
    return out


def next_state(
    market: DiscreteMarket, i: int, action: int | np.ndarray, state: np.ndarray, reactions: dict[int, Reaction]
) -> np.ndarray:
    """Joint index of this period's actions: seller ``i`` plays ``action``, each rival j plays reactions[j][state].

    ``action`` and ``state`` broadcast against each other.
    """
    reactions = _reactions(market, i, reactions)
    state = np.asarray(state, dtype=np.int64)
    action = np.asarray(action, dtype=np.int64)
    weights = market.m ** np.arange(market.n - 1, -1, -1, dtype=np.int64)
    out = action * weights[i]
    for j, reaction in reactions.items():
        out = out + reaction[state] * weights[j]
    return out


def _successors(market: DiscreteMarket, i: int, reactions: dict[int, Reaction]) -> np.ndarray:
    """(m**n, m) successor state of each (state, action of i)."""
    states = np.arange(market.n_states)
    return next_state(market, i, np.arange(market.m)[None, :], states[:, None], reactions)


def _policy(market: DiscreteMarket, policy: np.ndarray) -> np.ndarray:
    policy = np.asarray(policy)
    if policy.shape != (market.n_states,) or not np.issubdtype(policy.dtype, np.integer):
        raise ValueError(f"policy must be an int array of shape ({market.n_states},)")
    if policy.min() < 0 or policy.max() >= market.m:
        raise ValueError(f"policy has actions outside 0..{market.m - 1}")
    return policy.astype(np.int64)


# ---------------------------------------------------------------------------------------------- solving


@dataclass(frozen=True)
class Solution:
    """Seller i's optimal policy against the given reactions."""

    policy: np.ndarray  # (m**n,) optimal action of seller i in each state
    values: np.ndarray  # (m**n,) discounted values
    long_run_profit: float  # π*: long-run profit per period of ``policy`` (see long_run_profit)


def _discounted(f: np.ndarray, r: np.ndarray, delta: float) -> np.ndarray:
    """Exact Σ_t δ^t r(f^t(s)) for a deterministic successor map f, by doubling the horizon."""
    total, g, w = r.astype(float), f.copy(), float(delta)
    while w > 1e-20:  # total = Σ_{t<T} δ^t r(f^t s), g = f^T, w = δ^T; the remainder is below w·max|r|/(1−δ)
        total = total + w * total[g]
        g, w = g[g], w * w
    return total


def _greedy_with_ties(q: np.ndarray) -> np.ndarray:
    """Lowest action within a relative 1e-11 of each state's best Q (stable against round-off)."""
    best = q.max(axis=1, keepdims=True)
    eps = 1e-11 * max(1.0, float(np.abs(q).max()))
    return np.argmax(q >= best - eps, axis=1).astype(np.int64)


def solve(
    market: DiscreteMarket,
    i: int,
    reactions: dict[int, Reaction],
    delta: float,
    tol: float = 1e-12,
    max_iter: int = 100_000,
) -> Solution:
    """Seller i's optimal policy against deterministic rivals, discount factor ``delta``.

    Value iteration on Q(s, a) = π_i(next(s, a)) + δ V(next(s, a)), vectorized over states and actions,
    until the sup-norm change is at most ``tol`` (or ``max_iter`` sweeps), then policy iteration with exact
    policy evaluation until the policy is stable, so the returned policy and values are exact.
    Ties go to the lowest action index.
    """
    if not 0 <= delta < 1:
        raise ValueError(f"delta must lie in [0, 1), got {delta}")
    i = _seller(market, i)
    succ = _successors(market, i, reactions)
    reward = market.profits[i][succ]  # (S, m)
    values = np.zeros(market.n_states)
    for _ in range(max_iter):
        new = (reward + delta * values[succ]).max(axis=1)
        change = float(np.abs(new - values).max())
        values = new
        if change <= tol:
            break
    states = np.arange(market.n_states)
    policy = _greedy_with_ties(reward + delta * values[succ])
    eps = 1e-12 * max(1.0, float(np.abs(reward).max()) / max(1e-300, 1 - delta))
    for _ in range(10 * market.n_states + 100):  # policy iteration: switch only on strict improvement
        f = succ[states, policy]
        values = _discounted(f, market.profits[i][f], delta)
        q = reward + delta * values[succ]
        better = q.max(axis=1) > q[states, policy] + eps
        if not better.any():
            break
        policy = np.where(better, q.argmax(axis=1), policy)
    else:  # pragma: no cover - policy iteration terminates in finitely many steps
        raise RuntimeError("policy iteration did not converge")
    tied = _greedy_with_ties(q)
    if not np.array_equal(tied, policy):  # prefer the lowest index among (numerically) tied optimal actions
        policy = tied
        f = succ[states, policy]
        values = _discounted(f, market.profits[i][f], delta)
    return Solution(policy, values, long_run_profit(market, i, policy, reactions))


def evaluate(
    market: DiscreteMarket, i: int, policy: np.ndarray, reactions: dict[int, Reaction], delta: float
) -> np.ndarray:
    """Exact discounted value of each state when seller i follows the deterministic ``policy``."""
    if not 0 <= delta < 1:
        raise ValueError(f"delta must lie in [0, 1), got {delta}")
    i = _seller(market, i)
    policy = _policy(market, policy)
    f = next_state(market, i, policy, np.arange(market.n_states), reactions)
    return _discounted(f, market.profits[i][f], delta)


def long_run_profit(
    market: DiscreteMarket, i: int, policy: np.ndarray, reactions: dict[int, Reaction], start: int | None = None
) -> float:
    """Seller i's long-run profit per period under a deterministic policy, from ``start`` or averaged
    uniformly over all start states when ``start`` is None.

    Dynamics are deterministic, so each start's path enters a cycle; its long-run profit is the mean profit
    over that cycle. Exact: cycles are found by doubling the successor map (O(S log S)).
    """
    i = _seller(market, i)
    policy = _policy(market, policy)
    size = market.n_states
    f = next_state(market, i, policy, np.arange(size), reactions)
    reward = market.profits[i][f]  # profit of the period that follows state s
    g, low = f.copy(), np.arange(size)  # g = f^T, low(s) = min_{t<T} f^t(s)
    for _ in range(int(np.ceil(np.log2(size))) + 1):  # until T ≥ size: then g(s) lies on s's cycle
        low = np.minimum(low, low[g])
        g = g[g]
    on_cycle = np.zeros(size, dtype=bool)
    on_cycle[g] = True
    label = low[on_cycle]  # smallest state of each cycle labels it (T ≥ cycle length)
    sums = np.bincount(label, weights=reward[on_cycle], minlength=size)
    counts = np.bincount(label, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        cycle_mean = sums / counts
    per_start = cycle_mean[low[g]]
    return float(per_start.mean() if start is None else per_start[start])


def _cesaro_gain(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact long-run average reward from each state of a Markov chain (Cesàro limit of Q^t applied to c)."""
    k = len(c)
    reach = (q > 0) | np.eye(k, dtype=bool)
    while True:  # transitive closure by squaring
        new = (reach.astype(float) @ reach.astype(float)) > 0
        if np.array_equal(new, reach):
            break
        reach = new
    recurrent = np.all(~reach | reach.T, axis=1)  # everything s reaches also reaches s back
    gain = np.zeros(k)
    todo = recurrent.copy()
    while todo.any():  # each closed class: gain = stationary distribution · c
        s = int(np.argmax(todo))
        cls = np.flatnonzero(reach[s] & reach[:, s])
        a = q[np.ix_(cls, cls)].T - np.eye(len(cls))
        a[-1] = 1.0
        rhs = np.zeros(len(cls))
        rhs[-1] = 1.0
        gain[cls] = np.linalg.solve(a, rhs) @ c[cls]
        todo[cls] = False
    tr, rec = np.flatnonzero(~recurrent), np.flatnonzero(recurrent)
    if len(tr):  # transient states: g_T = Q_TT g_T + Q_TR g_R
        a = np.eye(len(tr)) - q[np.ix_(tr, tr)]
        gain[tr] = np.linalg.solve(a, q[np.ix_(tr, rec)] @ gain[rec])
    return gain


def random_long_run_profit(market: DiscreteMarket, i: int, reactions: dict[int, Reaction]) -> float:
    """Seller i's long-run profit per period when it prices uniformly at random, averaged over start states.

    Exact: the rivals' action profile follows a Markov chain of m**(n-1) states (i's uniform action drives
    it), whose Cesàro-limit gain is computed by linear algebra on its closed classes and transient states.
    """
    i = _seller(market, i)
    reactions = _reactions(market, i, reactions)
    n, m, size = market.n, market.m, market.n_states
    rivals = [j for j in range(n) if j != i]
    weights = m ** np.arange(n - 2, -1, -1, dtype=np.int64)  # profile index over rivals, first rival most significant
    acts = market.actions(np.arange(size))
    profile = acts[:, rivals] @ weights  # rivals' profile played in state s
    compose = np.empty((m ** (n - 1), m), dtype=np.int64)  # full state from (profile, i's action)
    compose[profile, acts[:, i]] = np.arange(size)
    reacted = np.zeros(size, dtype=np.int64)  # rivals' next profile after state s
    for j, w in zip(rivals, weights):
        reacted += reactions[j] * w
    k = m ** (n - 1)
    q = np.zeros((k, k))
    np.add.at(q, (np.repeat(np.arange(k), m), reacted[compose].ravel()), 1.0 / m)
    c = market.profits[i][compose].mean(axis=1)  # expected profit of a period with rivals at profile x
    gain = _cesaro_gain(q, c)
    return float(gain[reacted].mean())


def myopic_policy(market: DiscreteMarket, i: int, reactions: dict[int, Reaction]) -> np.ndarray:
    """Static best response: argmax_a π_i(next(s, a)) in each state (ties go to the lowest index)."""
    i = _seller(market, i)
    return np.argmax(market.profits[i][_successors(market, i, reactions)], axis=1).astype(np.int64)


def greedy_policy(q: np.ndarray) -> np.ndarray:
    """Greedy policy of a (m**n, m) Q-table: argmax over the last axis (ties go to the lowest index)."""
    return np.argmax(np.asarray(q), axis=-1).astype(np.int64)


# ---------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """A policy's long-run profit next to the optimal and random ones; S = (profit − random)/(optimal − random)."""

    profit: float
    optimal: float
    random: float
    score: float
    myopic_profit: float
    myopic_score: float

    def as_dict(self) -> dict:
        """Plain-data form for summary.json."""
        return {k: float(getattr(self, k)) for k in self.__dataclass_fields__}


def _normalised(profit: float, optimal: float, random: float) -> float:
    gap = optimal - random
    return (profit - random) / gap if abs(gap) > 1e-12 * max(1.0, abs(optimal)) else float("nan")


def score(
    market: DiscreteMarket,
    i: int,
    policy: np.ndarray,
    reactions: dict[int, Reaction],
    delta: float,
    start: int | None = None,
) -> Score:
    """Normalised score of seller i's deterministic ``policy`` (and of the myopic one) against the reactions.

    Long-run profits are measured from ``start`` (e.g. the state a learning session ended in), or
    averaged over all start states when it is None; random pricing is ergodic-averaged either way.
    S is NaN when optimal and random pricing earn the same.
    """
    solution = solve(market, i, reactions, delta)
    optimal = (
        solution.long_run_profit if start is None else long_run_profit(market, i, solution.policy, reactions, start)
    )
    random = random_long_run_profit(market, i, reactions)
    profit = long_run_profit(market, i, policy, reactions, start)
    myopic = long_run_profit(market, i, myopic_policy(market, i, reactions), reactions, start)
    return Score(
        profit=profit,
        optimal=optimal,
        random=random,
        score=_normalised(profit, optimal, random),
        myopic_profit=myopic,
        myopic_score=_normalised(myopic, optimal, random),
    )


def is_best_response(
    market: DiscreteMarket,
    i: int,
    policy: np.ndarray,
    reactions: dict[int, Reaction],
    delta: float,
    tol: float = 1e-9,
) -> tuple[bool, float]:
    """Whether the policy's discounted values match the optimal ones within ``tol`` in every state.

    Returns (all states within tol, share of states that are).
    """
    optimal = solve(market, i, reactions, delta).values
    close = np.abs(evaluate(market, i, policy, reactions, delta) - optimal) <= tol
    return bool(close.all()), float(close.mean())
