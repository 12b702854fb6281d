"""After learning: greedy play, its limit cycle, deviation-punishment diagnostics and best-response checks.

Follows Calvano et al. (2020): outcomes are measured on the cycle that greedy play settles into; a
one-period deviation to the static best response shows whether the rivals punish it and whether
prices come back; the oracle says whether each learner's greedy policy is a best response to the
others' (on the path of play and in every state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketsim.learning import tabular
from marketsim.learning.plan import Plan
from marketsim.market import oracle


def greedy_step(plan: Plan, q: np.ndarray, state: np.ndarray, forced: dict[int, np.ndarray] | None = None):
    """Every seller's greedy (or reaction) action in ``state`` for each session; returns (actions (n,S), next state)."""
    n, m = plan.n, plan.m
    sessions = np.arange(len(state))
    actions = np.empty((n, len(state)), dtype=np.int64)
    for k, j in enumerate(plan.learners):
        actions[j] = q[k, sessions, state].argmax(axis=1)
    for j, reaction in plan.reactions.items():
        actions[j] = reaction[state % m**n]
    for j, a in (forced or {}).items():
        actions[j] = a
    joint = tabular.joint_index(actions.T, m)
    return actions, tabular.advance_state(state, joint, m, n, plan.memory)


@dataclass(frozen=True)
class Cycle:
    """The limit cycle of greedy play for each session."""

    length: np.ndarray  # (S,)
    prices: np.ndarray  # (S, n) mean posted price over the cycle
    profits: np.ndarray  # (S, n) mean profit per period over the cycle
    state: np.ndarray  # (S,) a state on the cycle


def limit_cycle(plan: Plan, q: np.ndarray, start: np.ndarray) -> Cycle:
    """Follow greedy play from ``start`` until it repeats; average prices and profits over the cycle."""
    horizon = min(2 * tabular.n_states(plan.m, plan.n, plan.memory) + 2, 20_000)
    state = start.copy()
    states, joints = [], []
    for _ in range(horizon):
        actions, state = greedy_step(plan, q, state)
        states.append(state)
        joints.append(tabular.joint_index(actions.T, plan.m))
    states, joints = np.array(states), np.array(joints)  # (H, S)
    last = states[-1]
    length = np.zeros(len(start), dtype=np.int64)
    for c in range(1, horizon):
        hit = (length == 0) & (states[-1 - c] == last)
        length[hit] = c
    length[length == 0] = horizon  # no repeat within the horizon (never for memory 1)
    n = plan.n
    prices = np.zeros((len(start), n))
    profits = np.zeros((len(start), n))
    for s in range(len(start)):
        cyc = joints[-length[s] :, s]
        acts = np.stack(np.unravel_index(cyc, (plan.m,) * n))  # (n, c)
        prices[s] = plan.market.grids[np.arange(n)[:, None], acts].mean(axis=1)
        profits[s] = plan.market.profits[:, cyc].mean(axis=1)
    return Cycle(length, prices, profits, last)


@dataclass(frozen=True)
class ImpulseResponse:
    """Prices around a one-period deviation by ``deviator`` (periods −pre .. +after), per session."""

    deviator: int
    periods: np.ndarray  # (T,) period offsets, 0 = the deviation
    prices: np.ndarray  # (S, n, T)
    baseline: np.ndarray  # (S, n, T) undisturbed greedy play from the same state
    immediate_gain: np.ndarray  # (S,) deviator's relative profit gain in the deviation period
    punishment_depth: np.ndarray  # (S,) largest drop of the rivals' mean price below the baseline
    punishment_length: np.ndarray  # (S,) periods until play rejoins the baseline path (after+1 if never)
    returns: np.ndarray  # (S,) bool: play rejoined the undisturbed path within ``after`` periods


def impulse_response(plan: Plan, q: np.ndarray, cycle: Cycle, deviator: int, pre: int = 3, after: int = 25):
    """Force ``deviator`` to the static best response for one period on the cycle, then let greedy play run."""
    n, m = plan.n, plan.m
    sessions = np.arange(len(cycle.state))
    base_prices, dev_prices = [], []
    state = cycle.state.copy()
    for _ in range(pre):
        actions, state = greedy_step(plan, q, state)
        base_prices.append(plan.market.grids[np.arange(n)[:, None], actions])
    dev_prices = list(base_prices)
    undisturbed = state.copy()
    greedy, _ = greedy_step(plan, q, state)
    best = _static_best_response(plan, greedy, deviator)
    actions, deviated = greedy_step(plan, q, state, {deviator: best})
    no_dev_profit = plan.market.profits[deviator, tabular.joint_index(greedy.T, m)]
    dev_profit = plan.market.profits[deviator, tabular.joint_index(actions.T, m)]
    dev_prices.append(plan.market.grids[np.arange(n)[:, None], actions])
    base_prices.append(plan.market.grids[np.arange(n)[:, None], greedy])
    _, undisturbed = greedy_step(plan, q, undisturbed)
    rejoined = np.full(len(sessions), after + 1)
    for k in range(1, after + 1):
        acts_dev, deviated = greedy_step(plan, q, deviated)
        acts_base, undisturbed = greedy_step(plan, q, undisturbed)
        dev_prices.append(plan.market.grids[np.arange(n)[:, None], acts_dev])
        base_prices.append(plan.market.grids[np.arange(n)[:, None], acts_base])
        joined = (rejoined > after) & (deviated == undisturbed)
        rejoined[joined] = k
    prices = np.stack(dev_prices, axis=-1)  # (n, S, T)
    baseline = np.stack(base_prices, axis=-1)
    rivals = [j for j in range(n) if j != deviator]
    drop = (baseline[rivals].mean(axis=0) - prices[rivals].mean(axis=0))[:, pre + 1 :]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(no_dev_profit != 0, dev_profit / no_dev_profit - 1.0, 0.0)
    return ImpulseResponse(
        deviator=deviator,
        periods=np.arange(-pre, after + 1),
        prices=prices.transpose(1, 0, 2),
        baseline=baseline.transpose(1, 0, 2),
        immediate_gain=gain,
        punishment_depth=np.maximum(drop.max(axis=1), 0.0),
        punishment_length=rejoined,
        returns=rejoined <= after,
    )


def _static_best_response(plan: Plan, actions: np.ndarray, deviator: int) -> np.ndarray:
    """The deviator's one-period profit-maximising grid action against the others' ``actions`` (n, S)."""
    m = plan.m
    trial = np.repeat(actions[:, :, None], m, axis=2)  # (n, S, m)
    trial[deviator] = np.arange(m)[None, :]
    joint = tabular.joint_index(np.moveaxis(trial, 0, -1), m)  # (S, m)
    return plan.market.profits[deviator][joint].argmax(axis=1)


@dataclass(frozen=True)
class BestResponse:
    """Whether each learner's greedy policy is a best response to the others', per session."""

    on_path: np.ndarray  # (S, L) bool: optimal at every state of the limit cycle
    all_states: np.ndarray  # (S, L) share of states where it is optimal
    one_shot_on_path: np.ndarray  # (S, L) bool: no one-period deviation (then back to greedy) pays on the cycle


def best_responses(plan: Plan, q: np.ndarray, cycle: Cycle, tol: float = 1e-7) -> BestResponse | None:
    """Check each learner against the oracle given the others' greedy policies (memory 1 only)."""
    if plan.memory != 1:
        return None
    sessions = q.shape[1]
    on_path = np.zeros((sessions, len(plan.learners)), dtype=bool)
    one_shot = np.zeros((sessions, len(plan.learners)), dtype=bool)
    share = np.zeros((sessions, len(plan.learners)))
    for s in range(sessions):
        policies = {j: q[k, s].argmax(axis=1) for k, j in enumerate(plan.learners)}
        cycle_states = _cycle_states(plan, policies, int(cycle.state[s]))
        for k, (i, cfg) in enumerate(zip(plan.learners, plan.configs)):
            reactions = {**plan.reactions, **{j: p for j, p in policies.items() if j != i}}
            solution = oracle.solve(plan.market, i, reactions, cfg.delta)
            values = oracle.evaluate(plan.market, i, policies[i], reactions, cfg.delta)
            ok = values >= solution.values - tol * np.maximum(1.0, np.abs(solution.values))
            on_path[s, k] = bool(ok[cycle_states].all())
            share[s, k] = float(ok.mean())
            following = oracle.next_state(plan.market, i, np.arange(plan.m)[None, :], cycle_states[:, None], reactions)
            deviate = plan.market.profits[i][following] + cfg.delta * values[following]  # (cycle, m)
            chosen = deviate[np.arange(len(cycle_states)), policies[i][cycle_states]]
            one_shot[s, k] = bool((chosen >= deviate.max(axis=1) - tol * np.maximum(1.0, np.abs(chosen))).all())
    return BestResponse(on_path, share, one_shot)


def _cycle_states(plan: Plan, policies: dict[int, np.ndarray], start: int) -> np.ndarray:
    reactions = {**plan.reactions, **policies}
    seen, state = [], start
    while state not in seen:
        seen.append(state)
        actions = [int(reactions[j][state]) for j in range(plan.n)]
        state = int(tabular.joint_index(actions, plan.m))
    return np.array(seen[seen.index(state) :])
