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


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What an observer learns once, before the first step."""

    scenario: str
    seed: int
    steps: int
    sellers: tuple[str, ...]
    strategies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of the market as recorded: per-seller tuples are in seller order."""

    step: int
    prices: tuple[float, ...]
    units: tuple[float, ...]
    profits: tuple[float, ...]
    inventory: tuple[float, ...]
    shoppers: float
    buyers: float
    consumer_surplus: float


class Observer:
    """Base class of step observers. Subclasses set ``name`` and override what they need."""

    name: ClassVar[str] = ""

    def start(self, info: RunInfo) -> None:
        """Called once before the first step."""

    def on_step(self, record: StepRecord) -> None:
        """Called at the end of every step."""

    def finish(self) -> Mapping[str, Any]:
        """Called after the last step; the metrics returned go to ``summary.json["observers"][name]``."""
        return {}


class ObserverError(PortableError, RuntimeError):
    """An observer raised: the run stops and says which observer and step."""

    def __init__(self, name: str, step: int, error: BaseException) -> None:
        super().__init__(f"observer {name!r} failed at step {step}: {type(error).__name__}: {error}")
        self.observer, self.step = name, step
