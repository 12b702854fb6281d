"""The exact oracle: hand-solved markets, brute-force cross-checks, and the Calvano logit duopoly."""

import itertools

import numpy as np
import pytest

from marketsim.market.economics import ExpectedDemand
from marketsim.market.oracle import (
    DiscreteMarket,
    Score,
    evaluate,
    fixed_reaction,
    greedy_policy,
    is_best_response,
    long_run_profit,
    match_reaction,
    myopic_policy,
    next_state,
    random_long_run_profit,
    score,
    solve,
    undercut_reaction,
)

# Hand case 1: seller 0's profit P1[own action, rival action], m = 3; the game is symmetric.
P1 = np.array([[2.0, 1.0, 0.0], [5.0, 3.0, 1.0], [4.0, 6.0, 2.0]])
# Hand case 2 (index 0 = low, 1 = high): (high, high) 3 each, undercutter 4, undercut 0, (low, low) 1.
P2 = np.array([[1.0, 4.0], [0.0, 3.0]])


def symmetric(table: np.ndarray) -> DiscreteMarket:
    """Two-seller market where seller 0 earns table[a0, a1] and seller 1 earns table[a1, a0]."""
    m = len(table)
    grid = np.arange(1.0, m + 1)
    return DiscreteMarket(np.stack([grid, grid]), np.stack([table.ravel(), table.T.ravel()]))


def simulate_cycle_mean(market, i, policy, reactions, start):
    """Brute force: walk from start until a state repeats, return the mean profit over the cycle."""
    seen, path, s = {}, [], start
    while s not in seen:
        seen[s] = len(path)
        path.append(s)
        s = int(next_state(market, i, policy[s], s, reactions))
    cycle = path[seen[s] :]
    succ = [int(next_state(market, i, policy[c], c, reactions)) for c in cycle]
    return float(np.mean(market.profits[i][succ]))


# ---------------------------------------------------------------------------------------------- encoding


def test_joint_and_actions_round_trip_with_seller_0_most_significant():
    market = DiscreteMarket(np.zeros((3, 4)), np.zeros((3, 64)))
    states = np.arange(market.n_states)
    assert (market.n, market.m, market.n_states) == (3, 4, 64)
    np.testing.assert_array_equal(market.joint(market.actions(states)), states)
    assert market.joint(np.array([1, 0, 0])) == 16 and market.joint(np.array([0, 0, 1])) == 1
    acts = np.random.default_rng(0).integers(0, 4, size=(5, 7, 3))
    np.testing.assert_array_equal(market.actions(market.joint(acts)), acts)
    assert market.actions(np.array(27)).tolist() == [1, 2, 3]


def test_market_rejects_tables_of_the_wrong_shape():
    with pytest.raises(ValueError, match="profits"):
        DiscreteMarket(np.zeros((2, 3)), np.zeros((2, 8)))


def test_from_profit_function_matches_direct_evaluation():
    grids = np.array([[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]])
    market = DiscreteMarket.from_profit_function(grids, lambda p: np.array([p[0] * p[1], p[0] - p[1]]))
    for a0, a1 in itertools.product(range(3), repeat=2):
        s = market.joint(np.array([a0, a1]))
        p0, p1 = grids[0, a0], grids[1, a1]
        np.testing.assert_allclose(market.profits[:, s], [p0 * p1, p0 - p1])


def test_reactions_and_next_state():
    market = symmetric(P1)
    state = market.joint(np.array([2, 0]))  # last period: seller 0 played 2, seller 1 played 0
    assert fixed_reaction(market, 1)[state] == 1
    assert match_reaction(market, 1, 0)[state] == 2
    assert undercut_reaction(market, 1, 0)[state] == 1
    assert undercut_reaction(market, 1, 0, steps=5)[state] == 0  # floored at 0
    reactions = {1: match_reaction(market, 1, 0)}
    assert next_state(market, 0, 1, state, reactions) == market.joint(np.array([1, 2]))
    out = next_state(market, 0, np.arange(3)[None, :], np.arange(9)[:, None], reactions)
    assert out.shape == (9, 3)
    with pytest.raises(ValueError, match="reactions"):
        next_state(market, 0, 1, state, {})


def test_greedy_policy_breaks_ties_to_the_lowest_index():
    q = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    np.testing.assert_array_equal(greedy_policy(q), [1, 0])


# ---------------------------------------------------------------------------------------------- hand-solved


def test_hand_case_fixed_rival_optimum_is_the_static_best_response():
    # Rival fixed at action 1: it ignores the state, so the state after any move is (a, 1) and the
    # continuation value is the same whatever seller 0 does. Hence the optimum is the static best
    # response to column 1 = (1, 3, 6), i.e. action 2 in every state, V = 6/(1 − δ) = 60 at δ = 0.9,
    # π* = 6. Random pricing earns the column mean 10/3.
    market = symmetric(P1)
    reactions = {1: fixed_reaction(market, 1)}
    sol = solve(market, 0, reactions, delta=0.9)
    np.testing.assert_array_equal(sol.policy, np.full(9, 2))
    np.testing.assert_allclose(sol.values, np.full(9, 60.0), atol=1e-10)
    assert sol.long_run_profit == pytest.approx(6.0, abs=1e-12)
    assert random_long_run_profit(market, 0, reactions) == pytest.approx(10 / 3, abs=1e-12)
    result = score(market, 0, sol.policy, reactions, delta=0.9)
    assert result.score == pytest.approx(1.0) and result.myopic_score == pytest.approx(1.0)
    # A policy that prices like the random baseline on average (mean of actions 0, 1, 2 = 10/3) scores 0:
    # here the 3-cycle 0 → 1 → 2 → 0 of its own last action.
    cycling = (market.actions(np.arange(9))[:, 0] + 1) % 3
    assert score(market, 0, cycling, reactions, delta=0.9).score == pytest.approx(0.0, abs=1e-12)
    assert is_best_response(market, 0, sol.policy, reactions, delta=0.9) == (True, 1.0)
    # Deviating in state (0, 0) only, which no play ever reaches again, costs value there and nowhere else.
    deviant = sol.policy.copy()
    deviant[0] = 0
    assert is_best_response(market, 0, deviant, reactions, delta=0.9) == (False, pytest.approx(8 / 9))


def test_hand_case_matching_rival_collusion_pays_when_patient():
    # Rival plays seller 0's last action, so only seller 0's last action matters: V_H, V_L.
    # Always high: V_H = 3/(1 − δ), V_L = 0 + δ V_H. A one-shot undercut from H earns 4 + δ V_L =
    # 4 + 3δ²/(1 − δ) against 3/(1 − δ) = 3 + 3δ + 3δ²/(1 − δ): it does not pay iff δ ≥ 1/3; from L,
    # returning to high beats staying low (1 + δ V_L) iff 3δ ≥ 1 too. At δ = 0.9: V_H = 30, V_L = 27, π* = 3.
    # Myopically low always wins (4 > 3, 1 > 0), long-run profit 1. Random pricing: the rival's action is
    # an independent uniform draw (my previous one), so π_random = mean of the table = 2 and S_myopic = −1.
    market = symmetric(P2)
    reactions = {1: match_reaction(market, 1, 0)}
    sol = solve(market, 0, reactions, delta=0.9)
    np.testing.assert_array_equal(sol.policy, [1, 1, 1, 1])  # states (a0, a1) = 00, 01, 10, 11
    np.testing.assert_allclose(sol.values, [27.0, 27.0, 30.0, 30.0], atol=1e-10)
    assert sol.long_run_profit == pytest.approx(3.0, abs=1e-12)
    np.testing.assert_array_equal(myopic_policy(market, 0, reactions), [0, 0, 0, 0])
    result = score(market, 0, sol.policy, reactions, delta=0.9)
    assert result == Score(profit=3.0, optimal=3.0, random=pytest.approx(2.0), score=pytest.approx(1.0),
                           myopic_profit=1.0, myopic_score=pytest.approx(-1.0))  # fmt: skip
    assert is_best_response(market, 0, myopic_policy(market, 0, reactions), reactions, delta=0.9) == (False, 0.0)


def test_hand_case_matching_rival_impatient_seller_prices_low():
    # Always low: V_L = 1/(1 − δ), V_H = 4 + δ V_L. Staying high from H gives 3 + δ V_H, which is worse
    # iff 3δ < 1 (same algebra as above). At δ = 0.1: V_L = 10/9, V_H = 37/9, π* = 1.
    market = symmetric(P2)
    reactions = {1: match_reaction(market, 1, 0)}
    sol = solve(market, 0, reactions, delta=0.1)
    np.testing.assert_array_equal(sol.policy, [0, 0, 0, 0])
    np.testing.assert_allclose(sol.values, [10 / 9, 10 / 9, 37 / 9, 37 / 9], atol=1e-12)
    assert sol.long_run_profit == pytest.approx(1.0, abs=1e-12)
    # The switch happens at δ = 1/3.
    np.testing.assert_array_equal(solve(market, 0, reactions, delta=0.32).policy, [0, 0, 0, 0])
    np.testing.assert_array_equal(solve(market, 0, reactions, delta=0.35).policy, [1, 1, 1, 1])


def test_long_run_profit_is_the_cycle_mean():
    market = symmetric(P1)
    reactions = {1: fixed_reaction(market, 1)}
    own_last = market.actions(np.arange(9))[:, 0]
    # 2-cycle: after 0 play 1, after 1 or 2 play 0 → every start ends in 1, 0, 1, 0, …: mean (3 + 1)/2.
    alternate = np.where(own_last == 0, 1, 0)
    assert long_run_profit(market, 0, alternate, reactions) == pytest.approx(2.0, abs=1e-14)
    # Repeat own last action: three fixed points, one per start's own action → mean (1 + 3 + 6)/3.
    assert long_run_profit(market, 0, own_last, reactions) == pytest.approx(10 / 3, abs=1e-14)


def test_long_run_profit_matches_brute_force_walks():
    rng = np.random.default_rng(1)
    for n, m in [(2, 4), (3, 3)]:
        market = DiscreteMarket(np.zeros((n, m)), rng.random((n, m**n)))
        reactions = {j: rng.integers(0, m, m**n) for j in range(1, n)}
        policy = rng.integers(0, m, m**n)
        walks = [simulate_cycle_mean(market, 0, policy, reactions, s) for s in range(m**n)]
        assert long_run_profit(market, 0, policy, reactions) == pytest.approx(np.mean(walks), abs=1e-13)


# ---------------------------------------------------------------------------------------------- random pricing


def test_random_profit_hand_cases():
    market = symmetric(P1)
    rival_last = market.actions(np.arange(9))[:, 1]
    cases = {
        # fixed rival: mean of the column
        "fixed": (fixed_reaction(market, 0), P1[:, 0].mean()),
        # sticky rival (repeats itself): one closed class per rival action, starts uniform → table mean
        "sticky": (match_reaction(market, 1, 1), P1.mean()),
        # periodic rival 0 → 1 → 2 → 0: Cesàro average over the period → table mean
        "cycling": ((rival_last + 1) % 3, P1.mean()),
        # rival matches seller 0 until it once plays 0, then stays at 0 (transient states) → column 0 mean
        "absorbing": (np.where(rival_last == 0, 0, market.actions(np.arange(9))[:, 0]), P1[:, 0].mean()),
    }
    for name, (reaction, expected) in cases.items():
        assert random_long_run_profit(market, 0, {1: reaction}) == pytest.approx(expected, abs=1e-12), name


def test_random_profit_matches_lazy_chain_limit_and_monte_carlo():
    rng = np.random.default_rng(2)
    for n, m in [(2, 3), (3, 2), (3, 3)]:
        market = DiscreteMarket(np.zeros((n, m)), rng.random((n, m**n)))
        reactions = {j: rng.integers(0, m, m**n) for j in range(1, n)}
        size = m**n
        # Independent exact check: full-state chain made lazy (aperiodic), powers by repeated squaring.
        succ = next_state(market, 0, np.arange(m)[None, :], np.arange(size)[:, None], reactions)
        chain = np.zeros((size, size))
        np.add.at(chain, (np.repeat(np.arange(size), m), succ.ravel()), 1 / m)
        limit = (np.eye(size) + chain) / 2
        for _ in range(40):  # 2**40 steps; rows renormalised so round-off cannot drain them
            limit = limit @ limit
            limit /= limit.sum(axis=1, keepdims=True)
        expected = np.full(size, 1 / size) @ limit @ chain @ market.profits[0]
        assert random_long_run_profit(market, 0, reactions) == pytest.approx(expected, abs=1e-10)
    # Monte Carlo: 4000 random starts, 500 periods of uniform random pricing against an undercutting rival.
    market = symmetric(P1)
    reactions = {1: undercut_reaction(market, 1, 0)}
    state = rng.integers(0, 9, 4000)
    total = 0.0
    for _ in range(500):
        state = next_state(market, 0, rng.integers(0, 3, state.shape), state, reactions)
        total += market.profits[0][state].mean()
    assert random_long_run_profit(market, 0, reactions) == pytest.approx(total / 500, abs=1e-2)
    market = symmetric(P2)
    assert random_long_run_profit(market, 0, {1: match_reaction(market, 1, 0)}) == pytest.approx(2.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------- brute force


@pytest.mark.parametrize(("n", "m"), [(2, 2), (3, 2), (2, 3)])
def test_solve_beats_every_policy_in_every_state(n, m):
    rng = np.random.default_rng(n * 10 + m)
    market = DiscreteMarket(np.zeros((n, m)), rng.random((n, m**n)))
    reactions = {j: rng.integers(0, m, m**n) for j in range(1, n)}
    size, delta = m**n, 0.8
    policies = np.array(list(itertools.product(range(m), repeat=size)))  # every deterministic policy
    succ = next_state(market, 0, policies, np.arange(size)[None, :], reactions)  # (P, S)
    chains = np.zeros((len(policies), size, size))
    np.put_along_axis(chains, succ[:, :, None], 1.0, axis=2)
    values = np.linalg.solve(np.eye(size) - delta * chains, market.profits[0][succ][:, :, None])[..., 0]
    sol = solve(market, 0, reactions, delta)
    np.testing.assert_allclose(sol.values, values.max(axis=0), atol=1e-10)
    np.testing.assert_allclose(evaluate(market, 0, sol.policy, reactions, delta), sol.values, atol=1e-12)
    assert sol.long_run_profit == pytest.approx(long_run_profit(market, 0, sol.policy, reactions))


# ---------------------------------------------------------------------------------------------- Calvano


@pytest.fixture(scope="module")
def calvano():
    demand = ExpectedDemand(
        quality=np.array([2.0, 2.0]),
        costs=np.array([1.0, 1.0]),
        outside=0.0,
        mu=0.25,
        wtp=np.array([0.0]),
        mass=np.array([1.0]),
    )
    p_n, p_m = 1.4729, 1.9250
    grid = np.linspace(p_n - 0.1 * (p_m - p_n), p_m + 0.1 * (p_m - p_n), 15)
    market = DiscreteMarket.from_profit_function(np.stack([grid, grid]), demand.profits)
    return market, demand, int(np.argmin(abs(grid - p_n))), int(np.argmin(abs(grid - p_m)))


def test_calvano_fixed_rival_optimum_is_the_grid_best_response(calvano):
    market, demand, nash, _ = calvano
    grid = market.grids[0]
    best = int(np.argmax([demand.profits(np.array([p, grid[nash]]))[0] for p in grid]))
    reactions = {1: fixed_reaction(market, nash)}
    sol = solve(market, 0, reactions, delta=0.95)
    np.testing.assert_array_equal(sol.policy, np.full(market.n_states, best))
    assert abs(best - nash) <= 1  # the grid best response to Nash is (about) Nash
    assert sol.long_run_profit == pytest.approx(demand.profits(np.array([grid[best], grid[nash]]))[0])


def test_calvano_matching_rival(calvano):
    market, demand, _, mono = calvano
    reactions = {1: match_reaction(market, 1, 0)}
    sol = solve(market, 0, reactions, delta=0.95)
    collusive = demand.profits(market.grids[:, mono])[0]
    assert sol.long_run_profit >= 0.33
    assert sol.long_run_profit == pytest.approx(collusive, abs=5e-3)
    result = score(market, 0, sol.policy, reactions, delta=0.95)
    assert 0.8 <= result.random / result.optimal <= 0.9  # why "percent of optimal" says little
    assert result.score == pytest.approx(1.0)
    assert result.myopic_score < 0.5
