"""The unit of a tournament: one match, its task description, its result and its faults.

Executors move ``MatchTask`` objects to wherever they run and bring ``MatchResult`` objects back;
both are frozen, picklable and plain. ``run_match`` (in ``marketsim.tournament.play``) turns one into the
other and never raises for a misbehaving strategy: it returns a result with a ``Fault``.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from marketsim.config.scenario import Scenario
from marketsim.config.tournament import DEFAULT_MEMORY_LIMIT_MB

# The fault model, in one place: every backend (serial, process, Ray) reports a misbehaving match with exactly
# one of these kinds, blamed on the seat whose strategy code was running (or on nobody when none was).
FaultKind = Literal["exception", "invalid_price", "crash", "timeout", "wall_timeout", "memory"]
FAULT_KINDS: dict[str, str] = {
    "exception": "the strategy raised an exception (while being built, set up, pricing or learning)",
    "invalid_price": "the strategy returned a price that is not a finite number in its allowed range",
    "crash": "the strategy ended or tried to end its process: sys.exit, os._exit, a signal, a raised "
    "KeyboardInterrupt or another BaseException",
    "timeout": "the match used more than its CPU-time budget (the tournament's time_limit, in CPU seconds)",
    "wall_timeout": "the match ran past its wall-clock backstop (wall_limit): a strategy that sleeps or blocks",
    "memory": "the match went over its memory cap (memory_limit_mb): a MemoryError, or killed for memory",
}
assert set(FAULT_KINDS) == set(get_args(FaultKind))


def default_wall_limit(cpu_limit: float) -> float:
    """The wall-clock backstop for a CPU budget: generous, so that load never turns into a fault."""
    return max(3.0 * cpu_limit, cpu_limit + 60.0)


class BudgetExceeded(BaseException):
    """Raised inside a match by its CPU or wall timer; a BaseException so ``except Exception`` cannot swallow it."""

    kind: FaultKind = "timeout"


class CpuBudgetExceeded(BudgetExceeded):
    """The match used up its CPU-time budget."""

    kind = "timeout"


class WallBudgetExceeded(BudgetExceeded):
    """The match ran past its wall-clock backstop."""

    kind = "wall_timeout"


class UserInterrupt(KeyboardInterrupt):
    """A real Ctrl-C of the user (the coordinator's SIGINT handler raises it); never blamed on a strategy."""


def fault_kind(exc: BaseException) -> FaultKind:
    """The fault kind of anything strategy code raised (or that was raised into it by a budget timer)."""
    from marketsim.strategy import InvalidPriceError

    if isinstance(exc, BudgetExceeded):
        return exc.kind
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        return "memory"
    if isinstance(exc, InvalidPriceError):
        return "invalid_price"
    if isinstance(exc, Exception):
        return "exception"
    return "crash"  # SystemExit, KeyboardInterrupt raised by the strategy, GeneratorExit, ...


@dataclass(frozen=True)
class MatchTask:
    """Everything needed to play one match, anywhere."""

    key: str  # stable identity: scenario hash, format, entrants by seat, repetition
    index: int  # position in the schedule; results are reported in this order
    seed: int
    scenario: Scenario  # the market with one seller per seat, steps = train + eval
    seats: tuple[str, ...]  # entrant display name in each seat
    train_steps: int
    eval_steps: int
    learn_during_eval: bool = False
    time_limit: float = 60.0  # CPU seconds of its worker the match may use (a "timeout" fault after that)
    wall_limit: float | None = None  # wall-clock backstop in seconds; None: default_wall_limit(time_limit)
    memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB  # address-space growth allowed to the match; None: no cap
    plugins: tuple[str, ...] = ()  # extra plugin modules ("package.module") to register where it runs
    plugin_dirs: tuple[str, ...] = ()  # the directories the user allowed those modules to come from

    @property
    def wall_seconds(self) -> float:
        """The wall-clock backstop actually in force for this match."""
        return self.wall_limit if self.wall_limit is not None else default_wall_limit(self.time_limit)


@dataclass(frozen=True)
class Fault:
    """A misbehaving entrant, as recorded in faults.csv."""

    key: str
    kind: FaultKind
    entrant: str | None  # None when the fault cannot be attributed (e.g. the worker died between steps)
    seat: int | None
    step: int | None
    message: str  # the error and the innermost frames of its traceback, shortened
    cpu_seconds: float | None = None  # CPU time the match's worker had used on it (None when unknown)
    wall_seconds: float | None = None  # wall-clock time from its start to the fault (None when unknown)

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
    # each observer's finish() metrics (JSON data) over the whole match, training included, by observer name
    observers: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, hash=False)


def fault_result(
    task: MatchTask,
    kind: FaultKind,
    seat: int | None,
    step: int | None,
    message: str,
    cpu_seconds: float | None = None,
    wall_seconds: float | None = None,
) -> MatchResult:
    """A result for a match that ended in a fault (used by runners and executors alike).

    A negative seat or step (the tracker's "outside strategy code") means the fault has no culprit.
    """
    seat = seat if seat is not None and 0 <= seat < len(task.seats) else None
    step = step if step is not None and step >= 0 else None
    entrant = task.seats[seat] if seat is not None else None
    cpu = None if cpu_seconds is None else round(float(cpu_seconds), 3)
    wall = None if wall_seconds is None else round(float(wall_seconds), 3)
    fault = Fault(task.key, kind, entrant, seat, step, message, cpu, wall)
    return MatchResult(task.key, task.index, task.seed, task.seats, "fault", fault=fault, elapsed=wall or 0.0)


def shorten(text: str, limit: int = 2000) -> str:
    """Text for a fault row: colour codes removed, the tail kept when it is long."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()  # Ray colours its messages
    return text if len(text) <= limit else "..." + text[-limit:]


def short_traceback(exc: BaseException, frames: int = 3) -> str:
    """The error and the innermost frames of its traceback, for a fault row."""
    return shorten("".join(traceback.format_exception(exc, limit=-frames)))
