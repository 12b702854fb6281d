"""Tournament results: the durable result store, the scoring tables and the statistics built on them.

Three layers, each usable on its own:

* ``ResultStore`` — an append-only SQLite file (WAL, ``synchronous=FULL``) keyed by match key. Each match is
  committed in its own transaction the moment it arrives, so a tournament killed at any instant (even
  ``kill -9``) leaves exactly the matches that were finished, and ``--resume`` just skips ``done_keys()``.
  Only the coordinating process ever opens the store for writing; workers return results to it.
* ``match_rows`` — one row per (match, seat) with the fault rule applied; every table below starts from it.
* ``leaderboard``, ``payoff_matrix`` / ``payoff_samples``, ``pairings``, ``ab_test`` — bootstrap confidence
  intervals, the head-to-head matrix (and the match results behind each cell, for ``marketsim.tournament.metagame``'s
  bootstrap), collusion (Δ) and consumer surplus per pairing, paired A/B tests.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import sqlite3
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from os import PathLike
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from marketsim.tournament.matches import Fault, MatchResult, SeatResult

__all__ = [
    "ResultStore",
    "result_to_json",
    "result_from_json",
    "match_rows",
    "leaderboard",
    "payoff_matrix",
    "pairings",
    "ABTest",
    "ab_test",
    "payoff_samples",
    "observer_rows",
    "observer_summary",
    "ROW_COLUMNS",
    "LEADERBOARD_COLUMNS",
]

SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays that slipped into a result become plain Python values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a match result")


def result_to_json(result: MatchResult) -> str:
    """A MatchResult as JSON text that ``result_from_json`` turns back into an equal result.

    Floats are written with ``repr`` precision and NaN / ±inf as the JSON extensions ``NaN`` / ``Infinity``,
    so every float (including NaN surplus of a faulty match) survives bit for bit.
    """
    data = asdict(result)  # recursive: SeatResult and Fault become dicts, tuples stay sequences
    return json.dumps(data, allow_nan=True, separators=(",", ":"), default=_json_default)


def result_from_json(text: str) -> MatchResult:
    """Inverse of ``result_to_json``: rebuilds the nested SeatResult / Fault objects and the tuples."""
    data = json.loads(text)
    data["seats"] = tuple(data["seats"])
    data["results"] = tuple(SeatResult(**seat) for seat in data.get("results", ()))
    data["fault"] = Fault(**data["fault"]) if data.get("fault") else None
    data["prices"] = tuple(tuple(path) for path in data.get("prices", ()))
    return MatchResult(**data)


# ---------------------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------------------


#: How a store writes and reads its results: (result → JSON text, JSON text → result). Matches by default; a sweep
#: stores its points with the same durability through its own pair.
Codec = tuple[Callable[[Any], str], Callable[[str], Any]]


class ResultStore:
    """Append-only, crash-safe store of match results (or, with a ``codec``, any keyed results) in one SQLite file.

    Why SQLite in WAL mode with ``synchronous=FULL``: every ``add`` is one transaction that is on disk when
    ``add`` returns, so a tournament killed at any point (``kill -9``, power loss) keeps every finished match
    and never a half-written one. Matches are keyed by their match key and inserted with ``INSERT OR IGNORE``,
    so adding a result twice (a resumed run re-delivering a match) is harmless: the first copy wins.

    Only the coordinating process opens a store for writing; workers never touch it, they hand their
    ``MatchResult`` back to the coordinator, which calls ``add``. Reading a store another process is writing
    is safe (WAL readers see the last committed match). Within the coordinator, ``add`` may be called from any
    thread (e.g. a future's done-callback); calls are serialised by a lock.

    Tables: ``meta(key, value)`` for the tournament's identity (digest, schedule size) so a resume can refuse a
    different tournament; ``matches(key, idx, payload)`` holding each result as JSON; ``faults(key, payload)``
    holding the result's Fault (if any), referencing its match.
    """

    def __init__(self, path: str | PathLike[str], *, timeout: float = 30.0, codec: Codec | None = None) -> None:
        self.path = str(path)
        self.encode, self.decode = codec if codec is not None else (result_to_json, result_from_json)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal" and self.path != ":memory:":
            raise sqlite3.OperationalError(f"{self.path}: could not switch the result store to WAL mode ({mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise ValueError(f"{self.path}: result store schema {version}, this marketsim reads {SCHEMA_VERSION}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS matches (key TEXT PRIMARY KEY, idx INTEGER, payload TEXT)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS faults "
                "(key TEXT PRIMARY KEY REFERENCES matches(key), payload TEXT NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS matches_idx ON matches(idx)")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- writing ----------------------------------------------------------------------------------------------

    def add(self, result: MatchResult, replace: bool = False) -> bool:
        """Store one result (and its fault) durably; False when its key was already stored (nothing changes).

        ``replace=True`` (a faulted match replayed by ``--retry-faults``) swaps the stored result and its
        fault for this one, in one transaction, so an interrupted retry keeps the old result.
        """
        payload = self.encode(result)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if replace:
                    conn.execute("DELETE FROM faults WHERE key = ?", (result.key,))
                    conn.execute("DELETE FROM matches WHERE key = ?", (result.key,))
                cur = conn.execute(
                    "INSERT OR IGNORE INTO matches (key, idx, payload) VALUES (?, ?, ?)",
                    (result.key, int(result.index), payload),
                )
                inserted = cur.rowcount == 1
                if inserted and result.fault is not None:
                    self._insert_fault(result.key, result.fault)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return inserted

    def _insert_fault(self, key: str, fault: Fault) -> None:
        """The fault row; runs inside ``add``'s transaction (a separate method so tests can kill mid-transaction)."""
        payload = json.dumps(fault.as_row(), allow_nan=True, separators=(",", ":"), default=_json_default)
        self._conn.execute("INSERT OR IGNORE INTO faults (key, payload) VALUES (?, ?)", (key, payload))

    def set_meta(self, key: str, value: str) -> None:
        """Record (or overwrite) one fact about the tournament, e.g. its digest and schedule size."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- reading ----------------------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A fact recorded with ``set_meta``, or ``default``."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def done_keys(self) -> set[str]:
        """Keys of every stored match: what a resumed tournament skips."""
        return {row[0] for row in self._conn.execute("SELECT key FROM matches")}

    def faulted_keys(self, kind: str | None = None) -> set[str]:
        """Keys of the stored matches that faulted (with fault ``kind``, or any kind when None)."""
        return {fault.key for fault in self.faults() if kind is None or fault.kind == kind}

    def results(self) -> list[MatchResult]:
        """Every stored result, in schedule order."""
        rows = self._conn.execute("SELECT payload FROM matches ORDER BY idx, key").fetchall()
        return [self.decode(row[0]) for row in rows]

    def faults(self) -> list[Fault]:
        """Every stored fault, in the schedule order of its match."""
        rows = self._conn.execute(
            "SELECT f.payload FROM faults f JOIN matches m ON m.key = f.key ORDER BY m.idx, m.key"
        ).fetchall()
        return [Fault(**json.loads(row[0])) for row in rows]

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        return self._conn.execute("SELECT 1 FROM matches WHERE key = ?", (key,)).fetchone() is not None

    # -- lifetime ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (every added result is already committed)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------------
# Scoring: one row per (match, seat)
# ---------------------------------------------------------------------------------------------------------------

ROW_COLUMNS = [
    "key",
    "index",
    "seed",
    "seat",
    "entrant",
    "opponents",
    "strategy",
    "status",
    "mean_profit",
    "mean_price",
    "profit_gain",
    "consumer_surplus",
    "win",
    "faulted",
]

_NAN = float("nan")


def _faulty_seats(result: MatchResult) -> list[int] | None:
    """Seats to blame for a faulty match, or None when the fault cannot be attributed (the match is void)."""
    fault = result.fault
    if fault is None or fault.entrant is None:
        return None
    if fault.seat is not None:
        return [fault.seat] if 0 <= fault.seat < len(result.seats) else None
    seats = [i for i, name in enumerate(result.seats) if name == fault.entrant]
    return seats or None


def _forfeit_wins(seats: tuple[str, ...], faulty: list[int]) -> np.ndarray:
    """Win shares of a forfeited match: split among the seats of *other* entrants than the blamed ones.

    A seat held by the blamed entrant itself (its twin in self-play) wins nothing: an entrant must never win
    from its own fault. A self-play match that faults therefore gives no win to anyone.
    """
    blamed = {seats[i] for i in faulty}
    winners = [i for i, name in enumerate(seats) if name not in blamed]
    wins = np.zeros(len(seats))
    if winners:
        wins[winners] = 1.0 / len(winners)
    return wins


def match_rows(results: list[MatchResult], rule: Literal["forfeit", "void"] = "forfeit") -> pd.DataFrame:
    """One row per (match, seat): who sat there, against whom, how it did, and its share of the win.

    A win goes to the seat with the highest mean evaluation profit of a finished match; ties split it (1/k).
    A faulty match under ``rule="forfeit"`` gives the faulty seat profit 0.0 and no win, and every seat of another
    entrant an equal win share with profit NaN (the match did not finish, so it says nothing about their profit and
    is left out of means); the faulty entrant's self-play twin gets profit NaN and no win. Under ``rule="void"``
    every seat gets profit and win NaN (left out of every mean), so the match scores nothing but the blamed
    entrant's fault still counts. A fault that names no entrant gives no rows. The boolean column ``faulted``
    marks the seat blamed for a fault.
    """
    if rule not in ("forfeit", "void"):
        raise ValueError(f"unknown fault rule {rule!r}: use 'forfeit' or 'void'")
    out: list[dict[str, Any]] = []
    for res in results:
        n = len(res.seats)
        by_seat = {s.seat: s for s in res.results}
        if res.status == "ok":
            profits = np.array([by_seat[i].mean_profit if i in by_seat else _NAN for i in range(n)], float)
            finite = np.isfinite(profits)
            wins = np.zeros(n)
            if finite.any():
                best = profits[finite].max()
                tied = finite & (profits >= best - 1e-12 * max(1.0, abs(best)))
                wins[tied] = 1.0 / tied.sum()
            faulty: list[int] = []
            surplus = float(res.consumer_surplus)
        else:
            blamed = _faulty_seats(res)
            if blamed is None:
                continue
            faulty = blamed
            if rule == "void":
                profits, wins = np.full(n, _NAN), np.full(n, _NAN)
            else:
                profits = np.array([0.0 if i in faulty else _NAN for i in range(n)])
                wins = _forfeit_wins(res.seats, faulty)
            surplus = _NAN
        for i, name in enumerate(res.seats):
            seat = by_seat.get(i)
            ok = res.status == "ok" and seat is not None
            out.append(
                {
                    "key": res.key,
                    "index": res.index,
                    "seed": res.seed,
                    "seat": i,
                    "entrant": name,
                    "opponents": "+".join(res.seats[:i] + res.seats[i + 1 :]),
                    "strategy": seat.strategy if seat is not None else "",
                    "status": res.status,
                    "mean_profit": float(profits[i]),
                    "mean_price": float(seat.mean_price) if ok else _NAN,
                    "profit_gain": float(seat.profit_gain) if ok else _NAN,
                    "consumer_surplus": surplus,
                    "win": float(wins[i]),
                    "faulted": i in faulty,
                }
            )
    return pd.DataFrame(out, columns=ROW_COLUMNS)


# ---------------------------------------------------------------------------------------------------------------
# Leaderboard with bootstrap confidence intervals
# ---------------------------------------------------------------------------------------------------------------

LEADERBOARD_COLUMNS = ["entrant", "rank", "mean_profit", "ci_low", "ci_high", "win_rate", "matches", "faults"]

_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_ci(
    values: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | None = None,
    method: Literal["BCa", "percentile", "basic"] = "BCa",
) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean of ``values`` (finite ones only).

    BCa by default: it corrects the percentile interval for the skew typical of profit distributions.
    Fewer than two finite values, or values that are all equal, give the degenerate interval (mean, mean);
    a BCa interval that comes out undefined falls back to the percentile interval.
    """
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return _NAN, _NAN
    mean = float(x.mean())
    if x.size < 2 or np.ptp(x) == 0:
        return mean, mean
    rng = rng if rng is not None else np.random.default_rng(0)
    for how in dict.fromkeys((method, "percentile")):  # the requested method, then percentile as a fallback
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (x,),
                np.mean,
                n_resamples=n_resamples,
                vectorized=True,
                confidence_level=confidence,
                method=how,
                **{_RNG_KEYWORD: rng},
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return mean, mean


def _per_match(rows: pd.DataFrame) -> pd.DataFrame:
    """Collapse seats to one value per (entrant, match): self-play seats are averaged, not double counted."""
    faulted = rows["faulted"] if "faulted" in rows else pd.Series(False, index=rows.index)
    frame = pd.DataFrame(
        {
            "entrant": rows["entrant"],
            "key": rows["key"],
            "mean_profit": rows["mean_profit"].astype(float),
            "win": rows["win"].astype(float),
            "faulted": faulted.astype(bool),
        }
    )
    return frame.groupby(["entrant", "key"], sort=True).agg(
        mean_profit=("mean_profit", "mean"), win=("win", "mean"), faulted=("faulted", "any")
    )


def leaderboard(
    rows: pd.DataFrame,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: Literal["BCa", "percentile", "basic"] = "BCa",
) -> pd.DataFrame:
    """Per entrant: mean evaluation profit with a bootstrap CI, rank, win rate, matches played and faults.

    Every entrant that sat in a match appears, also one whose every match faulted or was voided (its
    ``faults`` count them; ``matches`` counts every match it sat in, voided ones included; its profit is NaN
    and it ranks last when it never finished one).

    ``rows`` is ``match_rows`` output (needs ``entrant``, ``key``, ``mean_profit``, ``win``; ``faulted``
    optional). Each match counts once per entrant (its seats averaged). Rank 1 is the highest mean profit; ties
    share the better rank; an entrant without a finite profit ranks last. The bootstrap of each entrant draws
    from its own generator seeded by (``seed``, entrant name), so an entrant's interval does not change when
    other entrants are added.
    """
    if rows.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    per = _per_match(rows)
    records = []
    for entrant, grp in per.groupby(level="entrant", sort=True):
        profits = grp["mean_profit"].to_numpy(float)
        finite = profits[np.isfinite(profits)]
        rng = np.random.default_rng([seed, zlib.crc32(str(entrant).encode())])
        low, high = bootstrap_ci(finite, confidence, n_resamples, rng, method)
        records.append(
            {
                "entrant": entrant,
                "mean_profit": float(finite.mean()) if finite.size else _NAN,
                "ci_low": low,
                "ci_high": high,
                "win_rate": float(grp["win"].mean()),
                "matches": len(grp),
                "faults": int(grp["faulted"].sum()),
            }
        )
    table = pd.DataFrame(records)
    table["rank"] = table["mean_profit"].rank(method="min", ascending=False, na_option="bottom").astype(int)
    table = table.sort_values(["rank", "entrant"], kind="stable").reset_index(drop=True)
    return table[LEADERBOARD_COLUMNS]


# ---------------------------------------------------------------------------------------------------------------
# Head-to-head tables
# ---------------------------------------------------------------------------------------------------------------


def _seats_per_match(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby("key")["seat"].transform("size")


def payoff_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """Entrants × entrants: mean profit of the row entrant in duopoly matches against the column entrant.

    Only two-seat matches count (exactly one opponent). NaN where the two never met (or every meeting was cut
    short by the column entrant's fault). Rows and columns are the entrants sorted by name.
    """
    entrants = sorted(rows["entrant"].unique()) if not rows.empty else []
    duo = rows[_seats_per_match(rows) == 2] if not rows.empty else rows
    means = duo.groupby(["entrant", "opponents"])["mean_profit"].mean() if not duo.empty else pd.Series(dtype=float)
    matrix = pd.DataFrame(np.nan, index=pd.Index(entrants, name="entrant"), columns=pd.Index(entrants, name="opponent"))
    for (me, opp), value in means.items():
        if opp in matrix.columns:
            matrix.loc[me, opp] = value
    return matrix


def payoff_samples(rows: pd.DataFrame, entrants: list[str]) -> list[list[list[float]]]:
    """``samples[i][j]``: entrant i's profit in each finished duopoly match against j (the bootstrap's cells)."""
    duo = rows[_seats_per_match(rows) == 2] if not rows.empty else rows
    profits = duo.dropna(subset=["mean_profit"]).groupby(["entrant", "opponents"])["mean_profit"].apply(list)
    return [[profits.get((me, opponent), []) for opponent in entrants] for me in entrants]


def pairings(rows: pd.DataFrame) -> pd.DataFrame:
    """Per unordered pairing (self-play included): mean profit gain Δ, consumer surplus and profit.

    A match's Δ is the mean of its seats' profit gains (Calvano et al.: 0 = Nash, 1 = joint monopoly); the
    table averages that over the pairing's finished matches. ``pairing`` is the sorted entrant names joined by
    "+"; ``a`` is the first of them and ``b`` the rest (for a duopoly, simply the two names). ``matches``
    counts every match of the pairing, ``faults`` those that did not finish.
    """
    columns = ["pairing", "a", "b", "matches", "faults", "profit_gain", "consumer_surplus", "mean_profit"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    per_match = rows.groupby("key", sort=False).agg(
        names=("entrant", lambda s: tuple(sorted(s))),
        status=("status", "first"),
        profit_gain=("profit_gain", "mean"),
        consumer_surplus=("consumer_surplus", "first"),
        mean_profit=("mean_profit", "mean"),
    )
    records = []
    for names, grp in per_match.groupby("names", sort=True):
        records.append(
            {
                "pairing": "+".join(names),
                "a": names[0],
                "b": "+".join(names[1:]),
                "matches": len(grp),
                "faults": int((grp["status"] != "ok").sum()),
                "profit_gain": float(grp["profit_gain"].mean()),
                "consumer_surplus": float(grp["consumer_surplus"].mean()),
                "mean_profit": float(grp["mean_profit"].mean()),
            }
        )
    return pd.DataFrame(records, columns=columns)


# ---------------------------------------------------------------------------------------------------------------
# Observers attached to the tournament's market
# ---------------------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    """A metric that can be averaged: a real number, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def observer_rows(results: list[MatchResult]) -> pd.DataFrame:
    """One row per (finished match, observer): its key, pairing, observer and each numeric metric it returned.

    Metrics that are not numbers (text, lists, nested dicts) stay in the per-match JSON and are not tabled.
    """
    out = []
    for res in results:
        pairing = "+".join(sorted(res.seats))
        for name, metrics in res.observers.items():
            numbers = {metric: float(value) for metric, value in metrics.items() if _is_number(value)}
            out.append({"key": res.key, "pairing": pairing, "observer": name, **numbers})
    return pd.DataFrame(out)


def observer_summary(results: list[MatchResult]) -> dict[str, dict[str, Any]]:
    """Per observer: the matches it finished and the mean of each numeric metric, overall and per pairing."""
    rows = observer_rows(results)
    if rows.empty:
        return {}
    summary: dict[str, dict[str, Any]] = {}
    for name, grp in rows.groupby("observer", sort=True):
        metrics = grp.drop(columns=["key", "pairing", "observer"]).dropna(axis=1, how="all")
        by_pairing = metrics.groupby(grp["pairing"], sort=True).mean()
        summary[str(name)] = {
            "matches": len(grp),
            "mean": {metric: float(value) for metric, value in metrics.mean().items()},
            "by_pairing": {
                str(pairing): {metric: float(value) for metric, value in means.items() if math.isfinite(value)}
                for pairing, means in by_pairing.iterrows()
            },
        }
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Paired A/B comparison
# ---------------------------------------------------------------------------------------------------------------

_TRAILING_INT = re.compile(r"(\d+)\s*$")


def _pairing_key(key: str, opponents: str, seat: int) -> tuple[str, str, int, int | str]:
    """(context, opponents, seat, repetition) of one row: the same for a and b on a common design point.

    The match key is "<scenario hash>|<format>|<entrants by seat>|r<repetition>"; the context is the hash and
    format (so different scenarios or formats never pair), the repetition is the integer ending the last "|"
    segment (the segment itself when it has none).
    """
    parts = key.split("|")
    last = parts[-1]
    found = _TRAILING_INT.search(last)
    repetition: int | str = int(found.group(1)) if found else last
    context = "|".join(parts[:2] if len(parts) >= 4 else parts[:-2])
    return context, opponents, int(seat), repetition


def _design_points(rows: pd.DataFrame, name: str) -> dict[tuple[str, str, int, int | str], float]:
    """Mean profit of entrant ``name`` at each design point it played (non-finite profits skipped)."""
    mine = rows[rows["entrant"] == name]
    found: dict[tuple[str, str, int, int | str], list[float]] = {}
    for key, opponents, seat, profit in zip(mine["key"], mine["opponents"], mine["seat"], mine["mean_profit"]):
        if math.isfinite(float(profit)):
            found.setdefault(_pairing_key(key, opponents, seat), []).append(float(profit))
    return {point: float(np.mean(values)) for point, values in found.items()}


@dataclass(frozen=True, kw_only=True)
class ABTest:
    """A paired comparison of entrants ``a`` and ``b``: ``b − a`` over the design points both played."""

    a: str
    b: str
    pairs: int = 0
    mean_difference: float = _NAN
    ci_low: float = _NAN
    ci_high: float = _NAN
    t_statistic: float = _NAN
    p_value: float = _NAN
    wilcoxon_p: float | None = None
    better: str | None = None

    def as_row(self) -> dict[str, Any]:
        """Plain-data form, fields in order (for summary.json and the report's table)."""
        return asdict(self)


def ab_test(rows: pd.DataFrame, a: str, b: str, confidence: float = 0.95, alpha: float = 0.05) -> ABTest:
    """Paired comparison of entrants ``a`` and ``b`` on the same opponents, seat and repetition.

    Each design point (scenario/format, opponent set, seat, repetition) that both played gives one pair of
    mean profits; rows without a finite profit are skipped. Returns the number of pairs, the mean difference
    ``b − a`` with its t confidence interval, the paired t-test (``scipy.stats.ttest_rel``), the Wilcoxon
    signed-rank p-value when at least 6 differences are non-zero (else None) and ``better``: the entrant with
    the higher mean when the t-test is significant at ``alpha``, else None.
    """
    sides = [_design_points(rows, name) for name in (a, b)]
    common = sorted(set(sides[0]) & set(sides[1]), key=repr)
    n = len(common)
    if n == 0:
        return ABTest(a=a, b=b)
    diff = np.array([sides[1][k] for k in common]) - np.array([sides[0][k] for k in common])
    mean = float(diff.mean())
    if n < 2:
        return ABTest(a=a, b=b, pairs=n, mean_difference=mean)
    xa = np.array([sides[0][k] for k in common])
    xb = np.array([sides[1][k] for k in common])
    if np.ptp(diff) == 0:  # no variance: the t-test is undefined, the answer is not
        d = float(diff[0])
        t, p, low, high = (0.0 if d == 0 else math.copysign(math.inf, d)), (1.0 if d == 0 else 0.0), d, d
    else:
        test = stats.ttest_rel(xb, xa)
        ci = test.confidence_interval(confidence)
        t, p, low, high = float(test.statistic), float(test.pvalue), float(ci.low), float(ci.high)
    wilcoxon = None
    if np.count_nonzero(diff) >= 6:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wilcoxon = float(stats.wilcoxon(xb, xa).pvalue)
    better = (b if mean > 0 else a) if p < alpha and mean != 0 else None
    return ABTest(
        a=a,
        b=b,
        pairs=n,
        mean_difference=mean,
        ci_low=low,
        ci_high=high,
        t_statistic=t,
        p_value=p,
        wilcoxon_p=wilcoxon,
        better=better,
    )
