"""A sweep's points as tasks: each point's key, seed and file, runnable on the tournament's executors.

A point's key is a hash of its values (sorted by path), so it does not depend on the order of the axes, of the
points or on the worker count; its seed comes from the sweep's root seed and that key through the one seed
helper. A ``PointTask`` is a ``MatchTask`` (the executors' unit: budgets, plugin set-up, fault blame) that also
carries the point's job and values; a ``PointResult`` is what the coordinator stores, one JSON row per point.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from marketsim import seeds
from marketsim.config.sweep import LoadedSweep, checked_point, point_source, point_text
from marketsim.tournament.matches import Fault, MatchResult, MatchTask

Values = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class PointTask(MatchTask):
    """One point of a sweep: the base file with the point's values, the job to run and how often.

    ``scenario`` (the executors read it to prepare workers) is the point's market for a scenario base, else None.
    """

    job: str = "run"
    values: Values = ()
    repetitions: int = 1
    metrics: tuple[str, ...] = ()
    base_path: str = ""
    base_kind: str = "scenario"
    base_text: str = ""  # the point's file: the base as written, with the point's values set


@dataclass(frozen=True)
class PointResult:
    """A point's metrics (each a mean with its 95% confidence interval over the repetitions) or its fault."""

    key: str
    index: int
    seed: int
    values: Values
    status: Literal["ok", "fault"]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    fault: Fault | None = None
    elapsed: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)


def point_key(values: dict[str, Any]) -> str:
    """``p`` and 16 hex digits of the sha256 of the values sorted by path: the point's identity."""
    blob = json.dumps(sorted(values.items()), separators=(",", ":"), default=repr)
    return "p" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def schedule(sweep: LoadedSweep, design: list[dict[str, Any]] | None = None, start: int = 0) -> list[PointTask]:
    """The points of the design (default: the sweep's own) as tasks, in design order from index ``start``, each
    with its own seed."""
    tasks = []
    for index, values in enumerate(design if design is not None else sweep.spec.points(), start):
        key = point_key(values)
        text = point_text(sweep.base_path, values)
        source = point_source(sweep.base_path, key)
        scenario = checked_point(sweep.base_kind, text, source, sweep.base_path)
        if sweep.base_kind == "family":  # and its drawn tasks are markets with known strategies
            from marketsim.meta.tasks import parse_family

            parse_family(text, source, base_dir=sweep.base_path.parent)
        seed = seeds.derive(sweep.spec.seed, "sweep-point", key)
        tasks.append(
            PointTask(
                key=key, index=index, seed=seed, scenario=scenario, seats=(), train_steps=0, eval_steps=0,
                time_limit=math.inf, memory_limit_mb=None, job=sweep.job, values=tuple(values.items()),
                repetitions=sweep.spec.repetitions, metrics=sweep.metrics, base_path=str(sweep.base_path),
                base_kind=sweep.base_kind, base_text=text,
            )
        )  # fmt: skip
    return tasks


def point_to_json(result: PointResult | MatchResult) -> str:
    """A point's stored row; a fault the executor reported (a MatchResult) is stored as the point's fault."""
    if isinstance(result, MatchResult):
        result = PointResult(result.key, result.index, result.seed, (), "fault", fault=result.fault)
    return json.dumps(asdict(result), allow_nan=True, separators=(",", ":"), default=_plain)


def point_from_json(text: str) -> PointResult:
    """Inverse of ``point_to_json``."""
    data = json.loads(text)
    data["values"] = tuple((path, value) for path, value in data["values"])
    data["fault"] = Fault(**data["fault"]) if data.get("fault") else None
    return PointResult(**data)


def _plain(obj: Any) -> Any:
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot store {type(obj).__name__} in a sweep point")


CODEC = (point_to_json, point_from_json)
