"""The compiled step loop of the batched tabular engine (numba): one call runs a group of sessions through a span
of periods.

Why: numpy vectorises over sessions, but each period of a session is a handful of scalar reads and
writes (a Q row's cached max, one cell's update), so the numpy engine spends its time in per-call
overhead. Sessions are independent, so this kernel loops over sessions outside and time inside,
keeping one session's Q tables hot in cache while it runs through thousands of periods (the caller
hands it several blocks of ``UNIFORM_BLOCK`` uniforms at once).

What: ``advance`` does exactly what ``experiment._step`` and ``experiment._update`` do, in the same
order and with the same floating-point operations (``q + α (target − q)``, ``r + δ max Q``, ties to
the lowest index, ``u < ε``, ``min(int(u · m), m − 1)``), reading the same uniforms drawn by numpy
in the caller and the ε of each step precomputed by ``tabular.epsilon``. So prices, convergence steps
and Q tables are bit-identical to the numpy engine, which stays the tested reference. ε-greedy
learners only: Boltzmann exploration stays on the numpy path (its softmax uses numpy's vectorised
``exp``, whose last bit a scalar ``exp`` need not reproduce).

Plain arrays in, arrays updated in place; no Python objects inside. No ``fastmath`` (it would let LLVM fuse
or reorder the arithmetic and break the identity). ``cache=True`` stores the machine code on disk, so only the
first call on a machine pays the compile (seconds).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["advance"]


@numba.njit(cache=True)
def _arg_max(q, k, row):
    """(arg-max, max) of Q row ``row`` of learner ``k``, ties to the lowest index as ``np.argmax``."""
    after, top = 0, q[k, row, 0]
    for b in range(1, q.shape[2]):
        if q[k, row, b] > top:
            after, top = b, q[k, row, b]
    return after, top


@numba.njit(cache=True)
def _choose(u0, u1, eps, m, greedy):
    """ε-greedy: with probability ε a uniform action ``min(int(u1 · m), m − 1)``, else the greedy one."""
    return min(np.int64(u1 * m), m - 1) if u0 < eps else greedy


@numba.njit(cache=True)
def _session(learn, play, game, draws, i, s, t0, t1):
    """Advance session ``s`` (row ``i`` of the draws) over periods [t0, t1) or until it converges; returns the
    periods it ran.

    Each learner makes one TD update a period, made here in line (not in a helper taking the arrays, whose
    reference counting would cost more than the update): Q-learning on this period's pair, SARSA on last
    period's pair with the action just chosen (its update touches only its own table, so making it after the
    rivals' choices, as here, changes nothing).
    """
    q, best, greedy, stable, pend, pend_r = learn
    state, converged, steps, trace = play
    learners, rates, rules, reactions, profits, memory = game
    uniforms, eps = draws
    n_learners, n_states, m = q.shape[0], q.shape[1] // state.shape[0], q.shape[2]
    n, block = profits.shape[0], profits.shape[1]
    base = s * n_states
    actions = np.empty(n, np.int64)
    for t in range(t0, t1):
        h, st = t - t0, state[s]
        row = base + st
        for k in range(n_learners):
            actions[learners[k, 0]] = _choose(uniforms[i, k, h, 0], uniforms[i, k, h, 1], eps[k, h], m, greedy[k, row])
        for r in range(rules.shape[0]):
            actions[rules[r]] = reactions[r, st % block]
        joint = 0
        for j in range(n):
            joint = joint * m + actions[j]
        following = joint + block * (st % block ** (memory - 1)) if memory > 1 else joint
        done = True
        for k in range(n_learners):  # settle from the table and learn
            a, reward = actions[learners[k, 0]], profits[learners[k, 0], joint]
            if learners[k, 1]:  # SARSA: (s0, a0) ← r0 + δ Q(s1, a), then this period's pair waits
                target = pend_r[k, s] + rates[k, 1] * q[k, base + pend[k, s, 2], a]
                cell, b = base + pend[k, s, 0], pend[k, s, 1]
                pend[k, s, 0], pend[k, s, 1], pend[k, s, 2], pend_r[k, s] = st, a, following, reward
            else:
                target, cell, b = reward + rates[k, 1] * best[k, base + following], row, a
            if not learners[k, 1] or t > 0:
                old = q[k, cell, b]
                new = old + rates[k, 0] * (target - old)
                q[k, cell, b] = new
                top, was = best[k, cell], greedy[k, cell]
                after = was
                if new > top or (new == top and b < was):
                    after, top = b, new
                elif b == was and new < top:  # the arg-max lost value: look at the whole row again
                    after, top = _arg_max(q, k, cell)
                best[k, cell], greedy[k, cell] = top, after
                stable[k, s] = stable[k, s] + 1 if after == was else 0
            done = done and stable[k, s] >= learners[k, 2]
        state[s] = following
        for j in range(trace.shape[2]):
            trace[s, t, j] = actions[j]
        if done:
            converged[s], steps[s] = True, t + 1
            return t + 1 - t0
    return t1 - t0


@numba.njit(cache=True)
def advance(learn, play, game, draws, sessions, t0, t1):
    """Advance each session in ``sessions`` over periods [t0, t1) (one block of uniforms) or until it converges.

    Tuples of arrays, S sessions, L learners, n sellers, m prices:
    ``learn`` = (q (L, S·states, m) flat Q tables, best and greedy (L, S·states) each row's max and arg-max,
    stable (L, S) periods since the updated row's greedy action last changed, pend (L, S, 3) SARSA's pending
    (state, action, next state) and pend_r (L, S) its reward), all updated in place;
    ``play`` = (state (S,), converged and steps (S,) set at the period a session converges, trace (S, T, n)
    every period's actions or an empty (0, 0, 0) array), updated in place;
    ``game`` = (learners (L, 3) = seat, is SARSA, convergence patience; rates (L, 2) = α, δ; rules (R,) the
    rule seats; reactions (R, m^n) their action per last joint action; profits (n, m^n); memory);
    ``draws`` = (uniforms (≥ len(sessions), L, t1 − t0, 2) the draws of each session in ``sessions``,
    eps (L, t1 − t0) ε per period).
    Returns the session-periods run (for progress).
    """
    total = 0
    for i in range(sessions.shape[0]):
        total += _session(learn, play, game, draws, i, sessions[i], t0, t1)
    return total
