"""The unit of a tournament: one match, its task description, its result and its faults.

Executors move ``MatchTask`` objects to wherever they run and bring ``MatchResult`` objects back;
both are frozen, picklable and plain. ``run_match`` (in ``marketsim.tournament``) turns one into the
other and never raises for a misbehaving strategy: it returns a result with a ``Fault``.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import asdict, dataclass, field
from typing import Literal

FaultKind = Literal["exception", "invalid_price", "timeout", "crash"]


@dataclass(frozen=True)
class MatchTask:
    """Everything needed to play one match, anywhere."""

    key: str  # stable identity: scenario hash, format, entrants by seat, repetition
    index: int  # position in the schedule; results are reported in this order
    seed: int
    scenario: object  # marketsim.scenario.Scenario with one seller per seat, steps = train + eval
    seats: tuple[str, ...]  # entrant display name in each seat
    train_steps: int
    eval_steps: int
    learn_during_eval: bool = False
    time_limit: float = 60.0  # seconds of wall time before the executor kills the match
    plugins: tuple[str, ...] = ()  # extra plugin modules ("package.module") to register where it runs


@dataclass(frozen=True)
class Fault:
    """A misbehaving entrant, as recorded in faults.csv."""

    key: str
    kind: FaultKind
    entrant: str | None  # None when the fault cannot be attributed (e.g. the worker died between steps)
    seat: int | None
    step: int | None
    message: str  # the error and the innermost frames of its traceback, shortened

    def as_row(self) -> dict:
        """Plain-data form for the store and faults.csv."""
        return asdict(self)


@dataclass(frozen=True)
class SeatResult:
    """How one seat did over the evaluation phase."""

    seat: int
    entrant: str
    strategy: str
    mean_profit: float
    mean_price: float
    mean_units: float
    profit_gain: float


@dataclass(frozen=True)
class MatchResult:
    """The outcome of one match: per-seat results, or the fault that stopped it."""

    key: str
    index: int
    seed: int
    seats: tuple[str, ...]
    status: Literal["ok", "fault"]
    results: tuple[SeatResult, ...] = ()
    consumer_surplus: float = float("nan")
    fault: Fault | None = None
    prices: tuple[tuple[float, ...], ...] = field(default=(), repr=False)  # eval price path per seat
    elapsed: float = 0.0


def fault_result(task: MatchTask, kind: FaultKind, seat: int | None, step: int | None, message: str) -> MatchResult:
    """A result for a match that ended in a fault (used by executors for timeouts and crashes).

    A negative seat or step (the tracker's "outside strategy code") means the fault has no culprit.
    """
    seat = seat if seat is not None and 0 <= seat < len(task.seats) else None
    step = step if step is not None and step >= 0 else None
    entrant = task.seats[seat] if seat is not None else None
    fault = Fault(task.key, kind, entrant, seat, step, message)
    return MatchResult(task.key, task.index, task.seed, task.seats, "fault", fault=fault)


def shorten(text: str, limit: int = 2000) -> str:
    """Text for a fault row: colour codes removed, the tail kept when it is long."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()  # Ray colours its messages
    return text if len(text) <= limit else "..." + text[-limit:]


def short_traceback(exc: BaseException, frames: int = 3) -> str:
    """The error and the innermost frames of its traceback, for a fault row."""
    return shorten("".join(traceback.format_exception(exc, limit=-frames)))
