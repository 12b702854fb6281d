"""Result store durability, scoring rules, tables, statistics and the meta-game solver (issue 6, items 5–6)."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sqlite3

import numpy as np
import pandas as pd
import pytest

from marketsim.tables import write_csv
from marketsim.tournament.matches import Fault, MatchResult, SeatResult
from marketsim.tournament.metagame import analyse_meta_game
from marketsim.tournament.results import (
    LEADERBOARD_COLUMNS,
    ResultStore,
    ab_test,
    leaderboard,
    match_rows,
    pairings,
    payoff_matrix,
    payoff_samples,
    result_from_json,
    result_to_json,
)

# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def ok_match(
    index: int, seats: tuple[str, ...], profits: tuple[float, ...], rep: int = 0, gains=None, cs: float = 1.0
) -> MatchResult:
    """A finished match with the given per-seat profits."""
    key = f"h|round_robin|{','.join(seats)}|r{rep}"
    gains = gains if gains is not None else [0.5] * len(seats)
    results = tuple(
        SeatResult(i, name, name.upper(), float(p), 1.5 + i, 0.25, float(g))
        for i, (name, p, g) in enumerate(zip(seats, profits, gains))
    )
    prices = tuple(tuple(1.0 + 0.1 * t + i for t in range(3)) for i in range(len(seats)))
    return MatchResult(key, index, 1000 + index, seats, "ok", results, cs, None, prices, 0.01)


def faulty_match(index: int, seats: tuple[str, ...], seat: int | None, rep: int = 0) -> MatchResult:
    """A match stopped by a fault of ``seat`` (None: unattributable)."""
    key = f"h|round_robin|{','.join(seats)}|r{rep}"
    entrant = seats[seat] if seat is not None else None
    fault = Fault(key, "exception", entrant, seat, 7, "ValueError: boom")
    return MatchResult(key, index, 1000 + index, seats, "fault", fault=fault)


def same(x: MatchResult, y: MatchResult) -> bool:
    """Equality that treats NaN as equal to NaN (dataclass == does not)."""

    def norm(v):
        if isinstance(v, float):  # np.float64 comes back as float: compare values
            return "NaN" if math.isnan(v) else ("float", float(v))
        if isinstance(v, tuple | list):
            return tuple(norm(e) for e in v)
        if hasattr(v, "__dataclass_fields__"):
            return (type(v).__name__, tuple(norm(getattr(v, f)) for f in v.__dataclass_fields__))
        return (type(v).__name__, v)

    return norm(x) == norm(y)


def sample_results(k: int) -> list[MatchResult]:
    out = []
    for i in range(k):
        if i % 3 == 2:
            out.append(faulty_match(i, ("a", "b"), i % 2, rep=i))
        else:
            out.append(ok_match(i, ("a", "b"), (1.0 + i, float("nan") if i == 4 else 2.0), rep=i))
    return out


# ---------------------------------------------------------------------------------------------------------------
# store
# ---------------------------------------------------------------------------------------------------------------


def test_json_round_trip_is_exact():
    r = ok_match(3, ("a", "b"), (0.1 + 0.2, -0.0), cs=float("nan"))
    r = MatchResult(r.key, r.index, r.seed, r.seats, r.status, r.results, float("inf"), None, r.prices, np.float64(2.5))
    back = result_from_json(result_to_json(r))
    assert same(back, r)
    assert back.results[0].mean_profit == 0.1 + 0.2 and math.copysign(1, back.results[1].mean_profit) == -1
    assert isinstance(back.prices, tuple) and all(isinstance(p, tuple) for p in back.prices)
    assert isinstance(back.seats, tuple) and isinstance(back.results[0], SeatResult)
    f = faulty_match(1, ("a", "b"), 1)
    back = result_from_json(result_to_json(f))
    assert same(back, f) and isinstance(back.fault, Fault) and math.isnan(back.consumer_surplus)


def test_store_round_trip_idempotent_and_wal(tmp_path):
    path = tmp_path / "results.sqlite"
    results = sample_results(6)
    with ResultStore(path) as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        for r in reversed(results):  # arrival order differs from schedule order
            assert store.add(r) is True
        assert store.add(results[2]) is False  # same key again: ignored
        changed = ok_match(0, ("a", "b"), (99.0, 99.0), rep=0)
        assert changed.key == results[0].key and store.add(changed) is False  # first copy wins
        store.set_meta("digest", "abc")
        store.set_meta("digest", "abd")
        assert len(store) == 6
        assert store._conn.execute("SELECT COUNT(*) FROM faults").fetchone()[0] == 2
    with ResultStore(path) as store:  # a new connection sees everything: committed, durable
        back = store.results()
        assert [r.index for r in back] == list(range(6))
        assert all(same(x, y) for x, y in zip(back, results))
        assert store.done_keys() == {r.key for r in results}
        assert store.faults() == [results[2].fault, results[5].fault]
        assert store.get_meta("digest") == "abd" and store.get_meta("missing") is None
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def _write_then_die(path: str, k: int, total: int, during: bool) -> None:
    """Child: add k results, then SIGKILL itself: right after, or inside the (k+1)-th add's transaction."""
    store = ResultStore(path)
    results = sample_results(total)
    for r in results[:k]:
        store.add(r)
    if not during:
        os.kill(os.getpid(), signal.SIGKILL)

    def die(*_args):
        os.kill(os.getpid(), signal.SIGKILL)

    store._insert_fault = die  # result k's match row is inserted but not committed when this runs
    store.add(results[k])
    os._exit(3)  # not reached


@pytest.mark.parametrize(("k", "during"), [(0, False), (4, False), (9, False), (2, True), (5, True)])
def test_kill_9_mid_run_keeps_exactly_the_committed_matches(tmp_path, k, during):
    total = 9
    expected = sample_results(total)
    assert not during or expected[k].fault is not None  # the hook fires inside a real fault insert
    path = str(tmp_path / "results.sqlite")
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    child = ctx.Process(target=_write_then_die, args=(path, k, total, during))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    with ResultStore(path) as store:
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        got = store.results()
        assert len(got) == k and all(same(x, y) for x, y in zip(got, expected[:k]))  # no partial match
        assert store.faults() == [r.fault for r in expected[:k] if r.fault is not None]
        # resume: add what is not done; the union equals an uninterrupted run, no duplicate, none lost
        done = store.done_keys()
        for r in expected:
            assert store.add(r) is (r.key not in done)
        assert len(store) == total and all(same(x, y) for x, y in zip(store.results(), expected))
        assert store.faults() == [r.fault for r in expected if r.fault is not None]


# ---------------------------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------------------------


def test_rows_and_win_ties_split():
    rows = match_rows([ok_match(0, ("a", "b", "c"), (2.0, 2.0, 1.0)), ok_match(1, ("a", "b"), (1.0, 3.0))])
    assert list(rows["win"]) == [0.5, 0.5, 0.0, 0.0, 1.0]
    assert list(rows["opponents"])[:3] == ["b+c", "a+c", "a+b"]
    assert list(rows["strategy"])[:2] == ["A", "B"] and (rows["status"] == "ok").all()
    assert rows.groupby("key")["win"].sum().tolist() == [1.0, 1.0]


def test_forfeit_and_void_rules():
    res = [faulty_match(0, ("a", "b", "c"), 1), ok_match(1, ("a", "b", "c"), (1.0, 2.0, 3.0), rep=1)]
    forfeit = match_rows(res, "forfeit")
    bad = forfeit[forfeit["key"] == res[0].key].set_index("entrant")
    assert bad.loc["b", "mean_profit"] == 0.0 and bad.loc["b", "win"] == 0.0 and bad.loc["b", "faulted"]
    assert bad.loc[["a", "c"], "win"].tolist() == [0.5, 0.5]
    assert bad.loc[["a", "c"], "mean_profit"].isna().all() and not bad.loc[["a", "c"], "faulted"].any()
    void = match_rows(res, "void")
    voided = void[void["key"] == res[0].key].set_index("entrant")  # scores nothing, but the fault still counts
    assert voided["mean_profit"].isna().all() and voided["win"].isna().all()
    assert voided["faulted"].tolist() == [False, True, False] and len(void) == 6
    void_board = leaderboard(void, n_resamples=200).set_index("entrant")
    assert void_board.loc["b", "faults"] == 1 and void_board.loc["b", "mean_profit"] == 2.0
    assert void_board.loc["b", "win_rate"] == 0.0  # the voided match is left out of the win rate
    only_faults = leaderboard(match_rows([faulty_match(0, ("a", "b"), 1)], "void"), n_resamples=200)
    assert only_faults.set_index("entrant").loc["b", "faults"] == 1  # voided everywhere, still listed
    unattributed = match_rows([faulty_match(0, ("a", "b"), None)], "forfeit")
    assert unattributed.empty
    board = leaderboard(forfeit, n_resamples=200).set_index("entrant")
    assert board.loc["b", "faults"] == 1 and board.loc["b", "mean_profit"] == 1.0  # (0 + 2) / 2
    assert board.loc["a", "mean_profit"] == 1.0 and board.loc["a", "win_rate"] == 0.25  # NaN profit is skipped
    with pytest.raises(ValueError):
        match_rows(res, "lenient")


# ---------------------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------------------


def round_robin_rows() -> pd.DataFrame:
    """a beats b, b beats c, everyone beats c; two repetitions, both seat orders, self-play included."""
    profit = {("a", "b"): 3.0, ("b", "a"): 1.0, ("a", "c"): 4.0, ("c", "a"): 0.0, ("b", "c"): 2.0, ("c", "b"): 1.0}
    profit |= {("a", "a"): 2.0, ("b", "b"): 1.5, ("c", "c"): 0.5}
    results, i = [], 0
    for rep in range(2):
        for x in "abc":
            for y in "abc":
                if x == y and rep == 1:
                    continue
                gain = 0.8 if x == y else 0.2
                results.append(ok_match(i, (x, y), (profit[x, y], profit[y, x]), rep, [gain, gain], cs=10 - i))
                i += 1
    return match_rows(results)


def test_leaderboard_order_ranks_and_columns():
    board = leaderboard(round_robin_rows(), n_resamples=500)
    assert list(board.columns[: len(LEADERBOARD_COLUMNS)]) == LEADERBOARD_COLUMNS
    assert list(board["entrant"]) == ["a", "b", "c"] and list(board["rank"]) == [1, 2, 3]
    assert (board["ci_low"] <= board["mean_profit"]).all() and (board["mean_profit"] <= board["ci_high"]).all()
    a = board.iloc[0]
    # a: vs b 3 (x4), vs c 4 (x4), self-play 2 (1 match, seats averaged)
    assert a["matches"] == 9 and a["mean_profit"] == pytest.approx((3 * 4 + 4 * 4 + 2) / 9)
    assert a["win_rate"] == pytest.approx((8 + 0.5) / 9)
    tie = leaderboard(match_rows([ok_match(0, ("x", "y"), (1.0, 1.0)), ok_match(1, ("z", "x"), (0.5, 1.0))]))
    assert dict(zip(tie["entrant"], tie["rank"])) == {"x": 1, "y": 1, "z": 3}
    again = leaderboard(round_robin_rows(), n_resamples=500)
    pd.testing.assert_frame_equal(board, again)  # seeded


def test_payoff_matrix_of_round_robin():
    m = payoff_matrix(round_robin_rows())
    expected = [[2.0, 3.0, 4.0], [1.0, 1.5, 2.0], [0.0, 1.0, 0.5]]
    assert list(m.index) == ["a", "b", "c"] and list(m.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(m.to_numpy(), expected)
    partial = payoff_matrix(match_rows([ok_match(0, ("a", "b"), (1.0, 2.0)), ok_match(1, ("c", "c"), (3.0, 3.0))]))
    assert np.isnan(partial.loc["a", "c"]) and partial.loc["b", "a"] == 2.0 and partial.loc["c", "c"] == 3.0
    three = match_rows([ok_match(0, ("a", "b", "c"), (1.0, 2.0, 3.0))])  # oligopolies stay out of the matrix
    assert payoff_matrix(three).isna().all().all()


def test_pairings_delta_and_surplus():
    table = pairings(round_robin_rows()).set_index("pairing")
    assert list(table.index) == ["a+a", "a+b", "a+c", "b+b", "b+c", "c+c"]
    assert table.loc["a+b", "matches"] == 4 and table.loc["a+a", "matches"] == 1
    assert table.loc["a+a", "profit_gain"] == pytest.approx(0.8) and table.loc["b+c", "profit_gain"] == 0.2
    # surplus: a+b matches have indices 1, 3 (rep 0) and 9, 11 (rep 1) -> cs = 10 - i
    assert table.loc["a+b", "consumer_surplus"] == pytest.approx(np.mean([9, 7, 1, -1]))
    assert (table.loc["a+b", "a"], table.loc["a+b", "b"]) == ("a", "b")


def synthetic_ab(shift: float, n: int = 40, seed: int = 1) -> pd.DataFrame:
    """a and b each play opponent o on both seats, n repetitions; common noise per design point."""
    rng = np.random.default_rng(seed)
    results, i = [], 0
    for rep in range(n):
        common = rng.normal(10, 3)
        for me, mine in (("a", common + rng.normal(0, 0.5)), ("b", common + shift + rng.normal(0, 0.5))):
            results.append(ok_match(i, (me, "o"), (mine, 5.0), rep))
            results.append(ok_match(i + 1, ("o", me), (5.0, mine), rep))
            i += 2
    return match_rows(results)


def test_ab_test_detects_a_known_shift_and_not_a_null():
    better = ab_test(synthetic_ab(1.0), "a", "b")
    assert better.pairs == 80 and better.better == "b"
    assert better.p_value < 1e-6 and better.wilcoxon_p < 1e-6
    assert better.ci_low < 1.0 < better.ci_high and better.mean_difference == pytest.approx(1.0, abs=0.2)
    equal = ab_test(synthetic_ab(0.0, seed=2), "a", "b")
    assert equal.p_value > 0.05 and equal.better is None and equal.ci_low < 0 < equal.ci_high
    assert ab_test(synthetic_ab(1.0), "b", "a").mean_difference == pytest.approx(-better.mean_difference)
    none = ab_test(synthetic_ab(1.0), "a", "nobody")
    assert none.pairs == 0 and none.better is None and none.wilcoxon_p is None


# ---------------------------------------------------------------------------------------------------------------
# meta-game
# ---------------------------------------------------------------------------------------------------------------


def test_payoff_samples_are_the_matches_behind_each_cell():
    rows = round_robin_rows()
    samples = payoff_samples(rows, ["a", "b", "c"])
    assert samples[0][1] == [3.0] * 4 and samples[1][0] == [1.0] * 4  # two repetitions, both seatings
    assert samples[0][0] == [2.0, 2.0]  # self-play: both seats of the one match
    matrix = payoff_matrix(rows)
    means = [[np.mean(cell) for cell in row] for row in samples]
    np.testing.assert_allclose(means, matrix.to_numpy(float))


def test_meta_game_report_of_a_dominated_field():
    rows = round_robin_rows()  # a dominates b and c
    names = ["a", "b", "c"]
    game = analyse_meta_game(names, payoff_matrix(rows).to_numpy(float), payoff_samples(rows, names), n_resamples=50)
    assert game.equilibria.count == 1 and game.equilibria_rows()[0]["support"] == "a"
    assert game.equilibria_rows()[0]["basin_share"] == pytest.approx(1.0)
    assert game.alpha_rank.ranking[0] == 0 and game.nash_averaging.ranking[0] == 0
    columns = game.ranking_columns()
    assert columns["a"]["alpha_rank"] > 0.9 and columns["a"]["nash_avg_skill"] == pytest.approx(0, abs=1e-9)
    assert columns["c"]["nash_avg_skill"] < columns["b"]["nash_avg_skill"] < 0
    summary = game.summary()
    assert summary["count"] == 1 and summary["alpha_rank"]["ranking"][0] == "a"


# ---------------------------------------------------------------------------------------------------------------
# bootstrap coverage
# ---------------------------------------------------------------------------------------------------------------


def test_bootstrap_interval_covers_the_true_mean_at_about_the_nominal_rate():
    """200 skewed samples (gamma, shape 2: skewness 1.4) of 30 matches, one entrant each: the CI should cover
    the true mean at about its nominal rate (95 %; and 80 %, so a too-wide interval fails too)."""
    rng = np.random.default_rng(2024)
    shape, scale, n, samples = 2.0, 1.5, 30, 200
    true_mean = shape * scale
    profits = rng.gamma(shape, scale, size=(samples, n))
    rows = pd.DataFrame(
        {
            "entrant": np.repeat([f"e{i:03d}" for i in range(samples)], n),
            "key": np.tile([f"m{j}" for j in range(n)], samples),
            "mean_profit": profits.ravel(),
            "win": 0.0,
        }
    )
    for confidence, low, high in ((0.95, 0.88, 0.99), (0.80, 0.68, 0.90)):
        board = leaderboard(rows, confidence=confidence, n_resamples=999, seed=5)
        assert len(board) == samples and (board["matches"] == n).all()
        covered = ((board["ci_low"] <= true_mean) & (true_mean <= board["ci_high"])).mean()
        assert low <= covered <= high, (confidence, covered)


def test_store_replaces_a_retried_fault(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        bad = faulty_match(0, ("a", "b"), 1)
        store.add(bad)
        store.add(ok_match(1, ("b", "a"), (1.0, 2.0)))
        assert store.faulted_keys() == {bad.key} and store.faulted_keys("timeout") == set()
        retried = ok_match(0, ("a", "b"), (3.0, 4.0))
        assert not store.add(retried)  # without replace the first copy wins
        assert store.add(retried, replace=True)
        assert store.faulted_keys() == set() and store.faults() == [] and len(store) == 2
        assert same(store.results()[0], retried)


# ---------------------------------------------------------------------------------------------------------------
# CSV tables: one precision policy (marketsim.tables)
# ---------------------------------------------------------------------------------------------------------------


def test_csv_tables_have_whole_counts_and_no_float_noise(tmp_path):
    frame = pd.DataFrame(
        {
            "entrant": ["a", "b"],
            "matches": [20000.0, 3.0],  # counts that arithmetic made floats
            "mean_profit": [2716.2000000000003, 0.1 + 0.2],  # binary noise in the 17th digit
            "ci_low": [float("nan"), float("inf")],
            "seed": [6220794373850697553, 1],
            "faulted": [True, False],
        }
    )
    text = write_csv(frame, tmp_path / "t.csv").read_text()
    assert text.splitlines() == [
        "entrant,matches,mean_profit,ci_low,seed,faulted",
        "a,20000,2716.2,,6220794373850697553,True",
        "b,3,0.3,inf,1,False",
    ]
    matrix = pd.DataFrame([[0.1 + 0.2]], index=pd.Index(["a"], name="entrant"), columns=["b"])
    assert write_csv(matrix, tmp_path / "m.csv", index=True).read_text() == "entrant,b\na,0.3\n"


def test_csv_precision_keeps_fifteen_digits_and_passes_the_golden_tolerance(tmp_path):
    from golden_cases import csv_difference

    values = np.array([1 / 3, 123456.78901234567, 2.3371847206723622e-20, -0.9999999999999991, 1e300])
    frame = pd.DataFrame({"x": values})
    back = pd.read_csv(write_csv(frame, tmp_path / "x.csv"))["x"].to_numpy()
    assert np.all(np.abs(back - values) <= 5e-15 * np.abs(values))  # rounded only past the 15th digit
    assert back[0] != round(values[0], 10)  # and not to 10 digits: the golden comparison stays meaningful
    assert csv_difference(frame.to_csv(index=False), (tmp_path / "x.csv").read_text()) is None  # old files match
