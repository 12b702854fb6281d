"""Step observers: code that watches a run (loggers, custom metrics) without being a seller.

Plugins register observer classes through the ``register_observers`` hook; a scenario attaches them by
name under ``observers:``. The market hands each one a frozen ``StepRecord`` at the end of every step,
after learning, so an observer sees exactly what ``steps.csv`` records and can never change the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from marketsim.exceptions import PortableError
from marketsim.strategy import described, documented


@documented
@dataclass(frozen=True, slots=True)
class RunInfo:
    """What an observer learns once, before the first step (handed to ``start``). Tuples are in seat order."""

    scenario: str = described("The scenario's ``name``.")
    seed: int = described("The run's root seed.")
    steps: int = described(
        "Steps the run is set to take; it may end sooner (every learner converged, or a strategy raised StopRun)."
    )
    sellers: tuple[str, ...] = described("Seller names (a seller with ``count: k`` appears as name_1 … name_k).")
    strategies: tuple[str, ...] = described("Each seller's strategy: its class's registered ``name``.")
    costs: tuple[float, ...] = described("Each seller's marginal cost of one unit, so margins need no other source.")


@documented
@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of the market as recorded in ``steps.csv`` (handed to ``on_step``). Tuples are in seat order."""

    step: int = described("The step just cleared (0 for the first).")
    prices: tuple[float, ...] = described("Each seller's posted price, after clipping to its range.")
    units: tuple[float, ...] = described("Units each seller sold this step.")
    profits: tuple[float, ...] = described("Each seller's profit: revenue − variable cost − holding cost.")
    inventory: tuple[float, ...] = described(
        "Each seller's stock after this step's sales and restocking (math.inf when unlimited)."
    )
    shoppers: float = described("Consumers who shopped this step (a mass under expected demand).")
    buyers: float = described("Shoppers who bought a unit this step.")
    consumer_surplus: float = described("The shoppers' total surplus over the outside option this step, in money.")


class Observer:
    """Base class of step observers. Subclasses set ``name`` and override what they need.

    The host builds one instance per run or tournament match (``cls(**params)`` with the file's ``params:``),
    calls ``start`` once, ``on_step`` after every step (after the strategies learned) and ``finish`` after the
    last one. An observer sees frozen records and can never change the run; one that raises stops the run,
    naming it and the step.
    """

    name: ClassVar[str] = ""

    def start(self, info: RunInfo) -> None:
        """Called once before the first step, with the facts of the run."""

    def on_step(self, record: StepRecord) -> None:
        """Called at the end of every step with that step's frozen record."""

    def finish(self) -> Mapping[str, Any]:
        """Called after the last step; the metrics returned (JSON-serialisable plain data) go to
        ``summary.json["observers"][name]``."""
        return {}


class ObserverError(PortableError, RuntimeError):
    """An observer raised: the run stops and says which observer and step."""

    def __init__(self, name: str, step: int, error: BaseException) -> None:
        super().__init__(f"observer {name!r} failed at step {step}: {type(error).__name__}: {error}")
        self.observer, self.step = name, step
