"""The sweep file: one base job (a scenario run, an experiment, a tournament or a meta-eval) over a design of points.

A sweep names its base file, the axes to vary (dotted paths into the base: ``sellers[0].params.alpha``,
``consumers.mu``, a seller group's ``count``), how to combine them (``grid``, ``zip``, or ``random`` /
``latin_hypercube`` samples from ranges with the sweep's seed), the repetitions (seeds or sessions) per point and
the metrics to collect. Validation applies every axis's values to the base and validates the result, so a path
the base does not have is refused with the valid ones listed, and a value the base refuses is refused with the
base's own message, each located at its line in the sweep file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from marketsim.config.errors import FieldError, did_you_mean, pydantic_problems, source_error
from marketsim.config.kinds import detect_kind
from marketsim.config.paths import PathError, format_path, knobs, parse, set_value, with_values
from marketsim.config.scenario import Scenario
from marketsim.config.spec import Float, Int, Spec
from marketsim.config.yamlsource import Located, Problem, SourceError, load_yaml, read_source
from marketsim.outputs import InputRecord, file_sha256
from marketsim.registry import Registry, default_registry
from marketsim.strategy import parameters

Job = Literal["run", "experiment", "tournament", "meta-eval"]
Combine = Literal["grid", "zip", "random", "latin_hypercube"]
Value = float | int | str | bool

#: The jobs a base of each kind can run, the default first.
JOBS: dict[str, tuple[str, ...]] = {
    "scenario": ("run", "experiment"),
    "tournament": ("tournament",),
    "family": ("meta-eval",),
}
#: The metrics each job can report for a point, the defaults first.
METRICS: dict[str, tuple[str, ...]] = {
    "run": ("delta", "mean_price", "consumer_surplus", "hhi", "mean_profit"),
    "experiment": ("delta", "convergence_steps", "converged_share", "mean_price"),
    "tournament": ("mean_profit", "win_rate", "mean_delta", "faults"),
    "meta-eval": ("regret_H", "regret_25", "regret_10"),
}
#: Metrics reported once per entrant (tournament) or agent (meta-eval), as ``metric.name`` columns.
PER_NAME = frozenset({"mean_profit", "win_rate", "regret_H", "regret_25", "regret_10"})


class Range(Spec):
    """A numeric axis as a range: ``num`` evenly spaced values for grid and zip, or the bounds samples are drawn in."""

    low: Float = Field(..., description="Lowest value.")
    high: Float = Field(..., description="Highest value.")
    num: Int | None = Field(None, ge=1, le=10_000, description="Values on the range (grid, zip).")
    scale: Literal["linear", "log"] = Field("linear", description="Spacing: linear, or even in the logarithm.")
    integer: bool = Field(False, description="Round every value to a whole number (a group's count, a grid size).")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.high < self.low:
            raise FieldError(("high",), f"high ({self.high}) is below low ({self.low})")
        if self.scale == "log" and self.low <= 0:
            raise FieldError(("low",), f"a log scale needs low > 0, got {self.low}")
        return self

    def values(self) -> list[float | int]:
        """The ``num`` values of the range (grid and zip)."""
        if self.scale == "log":
            points = np.geomspace(self.low, self.high, self.num or 1)
        else:
            points = np.linspace(self.low, self.high, self.num or 1)
        return [int(round(v)) if self.integer else float(v) for v in points]

    def at(self, u: float) -> float | int:
        """The value at quantile ``u`` in [0, 1) of the range (random and Latin-hypercube samples)."""
        if self.scale == "log":
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return int(math.floor(value + 0.5)) if self.integer else value


def _axis_kind(value: Any) -> str:
    """A mapping is a range, anything else a list of values (so a bad range is not also reported as a bad list)."""
    return "range" if isinstance(value, dict | Range) else "values"


#: One axis: a list of values, or a range.
Axis = Annotated[
    Annotated[list[Value], Tag("values")] | Annotated[Range, Tag("range")],
    Discriminator(_axis_kind),
]


class Search(Spec):
    """Instead of a fixed design, maximise (or minimise) one metric over the ranges with Optuna."""

    metric: str = Field(..., description="The metric to optimise (one of the job's metrics).")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Which way is better.")
    trials: Int = Field(..., ge=1, le=10_000, description="Points Optuna tries.")
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's sampler, seeded by the sweep's seed.")
    parallel: Int = Field(
        2, ge=1, le=64, description="Trials asked for at once and run side by side (fixed, so results do not "
        "depend on --workers).",
    )  # fmt: skip


class Sweep(Spec):
    """A design of points over a base file's parameters."""

    name: str = Field(..., min_length=1, description="Name of the sweep (its output folder by default).")
    description: str = Field("", description="What the sweep is for.")
    base: str = Field(
        ..., min_length=1, description="The base file, relative to this file: scenario, tournament, family."
    )
    job: Job | None = Field(None, description="What runs at each point (default: run for a scenario, …).")
    seed: Int = Field(0, ge=0, description="Root seed: every point's seeds derive from it and the point's key.")
    axes: dict[str, Axis] = Field(..., min_length=1, description="Dotted path → a list of values, or a range.")
    combine: Combine = Field("grid", description="grid (every combination), zip, random or latin_hypercube.")
    samples: Int | None = Field(None, ge=1, le=100_000, description="Points to draw (random, latin_hypercube).")
    repetitions: Int = Field(1, ge=1, le=100_000, description="Seeds per point (run), sessions (experiment), …")
    metrics: list[str] = Field(default_factory=list, description="Metrics per point (default: the job's).")
    search: Search | None = Field(None, description="Optimise a metric over ranges with Optuna instead.")

    @model_validator(mode="after")
    def _design(self) -> Sweep:
        for path, axis in self.axes.items():
            if isinstance(axis, list) and not axis:
                raise FieldError(("axes", path), "an axis needs at least one value")
        sampled = self.combine in ("random", "latin_hypercube") or self.search is not None
        if sampled:
            lists = [path for path, axis in self.axes.items() if not isinstance(axis, Range)]
            if lists:
                how = "search" if self.search is not None else self.combine
                raise FieldError(("axes", lists[0]), f"{how} draws from ranges: write {{low, high}} for this axis")
        if self.combine in ("random", "latin_hypercube") and self.search is None and self.samples is None:
            raise FieldError(("combine",), f"{self.combine} needs samples: how many points to draw")
        if not sampled:
            for path, axis in self.axes.items():
                if isinstance(axis, Range) and axis.num is None:
                    raise FieldError(("axes", path, "num"), f"a range on a {self.combine} needs num: how many values")
        if self.combine == "zip" and len({len(self._values(a)) for a in self.axes.values()}) > 1:
            sizes = ", ".join(f"{p}: {len(self._values(a))}" for p, a in self.axes.items())
            raise FieldError(("combine",), f"zip needs axes of one length; they have {sizes}")
        return self

    @staticmethod
    def _values(axis: list[Value] | Range) -> list[Value]:
        return axis.values() if isinstance(axis, Range) else list(axis)

    def points(self) -> list[dict[str, Value]]:
        """Every point of the design, in a fixed order: one mapping path → value per point (not for a search)."""
        paths = list(self.axes)
        if self.combine == "grid":
            return [
                dict(zip(paths, combo)) for combo in itertools.product(*(self._values(self.axes[p]) for p in paths))
            ]
        if self.combine == "zip":
            return [dict(zip(paths, combo)) for combo in zip(*(self._values(self.axes[p]) for p in paths))]
        return self._samples(paths)

    def _samples(self, paths: list[str]) -> list[dict[str, Value]]:
        """``samples`` points drawn with the sweep's seed: independent uniforms, or a Latin hypercube (scipy)."""
        n, d = int(self.samples or 0), len(paths)
        if self.combine == "latin_hypercube":
            from scipy.stats import qmc

            unit = qmc.LatinHypercube(d=d, seed=np.random.default_rng([self.seed, 1])).random(n)
        else:
            unit = np.random.default_rng([self.seed, 0]).random((n, d))
        return [{p: self.axes[p].at(float(u[k])) for k, p in enumerate(paths)} for u in unit]  # type: ignore[union-attr]


@dataclass(frozen=True)
class LoadedSweep:
    """A validated sweep with its base resolved: the base file's path and kind, and the job that runs."""

    spec: Sweep
    source: str
    base_path: Path
    base_kind: str
    job: str
    metrics: tuple[str, ...]

    def digest(self) -> str:
        """Identifies the sweep: its spec and the base file's bytes (a resume must match both)."""
        blob = json.dumps(self.spec.model_dump(mode="json"), sort_keys=True) + file_sha256(self.base_path)
        return hashlib.sha256(blob.encode()).hexdigest()

    def record(self) -> InputRecord:
        """The sweep an output folder was made from, with its base file's path and sha256."""
        data = {**self.spec.model_dump(mode="json"), "base_file": str(self.base_path)}
        data["base_sha256"] = file_sha256(self.base_path)
        return InputRecord("sweep", data, self.digest())


def load_sweep(path: str | Path, registry: Registry | None = None) -> LoadedSweep:
    """Read and validate a sweep file; problems are located in it (``file:line:col: axes.…: reason``)."""
    path = Path(path)
    return parse_sweep(read_source(path), str(path), path.parent, registry)


def parse_sweep(text: str, source: str, base_dir: Path, registry: Registry | None = None) -> LoadedSweep:
    """Validate sweep YAML against its base file."""
    located = load_yaml(text, source)
    if not isinstance(located.data, dict):
        raise source_error([Problem(source, 1, 1, "", "a sweep must be a YAML mapping (key: value lines)")])
    try:
        spec = Sweep.model_validate(located.data)
    except ValidationError as exc:
        raise source_error(pydantic_problems(exc, located, Sweep)) from None
    base_path, kind = _base(spec, located, base_dir)
    job = spec.job or JOBS[kind][0]
    if job not in JOBS[kind]:
        message = f"a {kind} base runs {' or '.join(JOBS[kind])}, not {job}"
        raise source_error([located.problem(("job",), message)])
    metrics = tuple(spec.metrics) or METRICS[job][:2]
    problems = _metric_problems(spec, job, located)
    problems += _axis_problems(spec, base_path, kind, located, registry or default_registry())
    if problems:
        raise source_error(problems)
    return LoadedSweep(spec, source, base_path, kind, job, metrics)


def _base(spec: Sweep, located: Located, base_dir: Path) -> tuple[Path, str]:
    path = (base_dir / spec.base).resolve()
    if not path.is_file():
        raise source_error([located.problem(("base",), f"no such file: {spec.base} (relative to the sweep's folder)")])
    kind = detect_kind(path)
    if kind not in JOBS:
        what = "another sweep" if kind == "sweep" else "not a scenario, tournament or task-family file"
        raise source_error([located.problem(("base",), f"{spec.base} is {what}: a sweep varies one of those")])
    return path, kind


def _metric_problems(spec: Sweep, job: str, located: Located) -> list[Problem]:
    known = METRICS[job]
    problems = [
        located.problem(("metrics", i), f"unknown metric {m!r} for a {job} sweep{did_you_mean(m, known)}; "
                        f"available: {', '.join(known)}")
        for i, m in enumerate(spec.metrics) if m not in known
    ]  # fmt: skip
    if spec.search is not None and spec.search.metric not in known:
        m = spec.search.metric
        message = f"unknown metric {m!r} for a {job} sweep{did_you_mean(m, known)}; available: {', '.join(known)}"
        problems.append(located.problem(("search", "metric"), message))
    return problems


def _axis_problems(spec: Sweep, base: Path, kind: str, located: Located, registry: Registry) -> list[Problem]:
    """Each axis's path must name a value of the base, and each of its values must be one the base accepts."""
    if kind != "scenario":
        return _file_axis_problems(spec, base, kind, located)
    from marketsim.config.validate import load_scenario

    scenario = load_scenario(base, registry)
    problems = []
    for path, axis in spec.axes.items():
        values = axis.values() if isinstance(axis, Range) and axis.num else _ends(axis)
        problem = _path_problem(scenario, path, values, registry)
        if problem is not None:
            problems.append(located.problem(("axes", path), problem, at_key=True))
    return problems


def _file_axis_problems(spec: Sweep, base: Path, kind: str, located: Located) -> list[Problem]:
    """A tournament's or family's axes: each end value set in the base file as written, judged by the file's parser."""
    problems = []
    for path, axis in spec.axes.items():
        for value in _ends(axis):
            try:
                checked_point(kind, point_text(base, {path: value}), point_source(base, path), base)
            except PathError as exc:
                problems.append(located.problem(("axes", path), str(exc), at_key=True))
                break
            except SourceError as exc:
                first = exc.problems[0]
                where = f"{first.field}: " if first.field not in ("", path) else ""
                value_text = "" if first.message.startswith("unknown") else f"value {value!r}: "
                problems.append(located.problem(("axes", path), f"{value_text}{where}{first.message}", at_key=True))
                break
    return problems


def _ends(axis: list[Value] | Range) -> list[Value]:
    return [axis.at(0.0), axis.at(1.0 - 1e-12)] if isinstance(axis, Range) else list(axis)


def _path_problem(scenario: Scenario, path: str, values: list[Value], registry: Registry) -> str | None:
    """Why ``path`` with these values does not fit the scenario, or None."""
    try:
        key = parse(path)
    except PathError as exc:
        return str(exc)
    unknown = _unknown_parameter(scenario, key, registry)
    if unknown is not None:
        return unknown
    for value in values:
        try:
            changed = with_values(scenario, {path: value})
            for seller in changed.sellers:
                registry.create(seller.strategy, seller.params)
        except PathError as exc:
            if "has no" in str(exc) or "no item" in str(exc):
                valid = valid_paths(scenario, registry)
                return f"{exc}{did_you_mean(path, valid)}; paths you can vary include {', '.join(valid[:12])}"
            return f"value {value!r}: {exc}"
        except Exception as exc:  # the strategy's own refusal of a parameter value
            return f"value {value!r}: {type(exc).__name__}: {exc}"
    return None


def _unknown_parameter(scenario: Scenario, key: tuple, registry: Registry) -> str | None:
    """For ``sellers[i].params.NAME``: a message when the seller's strategy has no parameter NAME."""
    if len(key) != 4 or key[0] != "sellers" or key[2] != "params" or not isinstance(key[1], int):
        return None
    if key[1] >= len(scenario.sellers):
        return None  # with_values names the missing seller
    seller = scenario.sellers[key[1]]
    names = [p.name for p in parameters(registry.get(seller.strategy).cls)]
    if key[3] in names:
        return None
    hint = did_you_mean(str(key[3]), names)
    listed = ", ".join(names) if names else "none"
    where = f"strategy {seller.strategy!r} of seller {seller.name!r}"
    return f"{where} has no parameter {key[3]!r}{hint}; its parameters: {listed}"


def valid_paths(scenario: Scenario, registry: Registry) -> list[str]:
    """Numeric paths of a scenario worth varying: its knobs, plus each seller group's count and the market's size."""
    out = [k.path for k in knobs(scenario, registry)]
    out += [format_path(("sellers", i, "count")) for i in range(len(scenario.sellers))]
    return [*out, "consumers.size", "steps"]


# --- a point's file -----------------------------------------------------------------------------------


def point_text(base: Path, values: dict[str, Any]) -> str:
    """The base file's YAML with each value set at its path (the file's parser validates it where it runs)."""
    data = yaml.safe_load(base.read_text())
    for path, value in values.items():
        set_value(data, path, value)
    return yaml.safe_dump(data, sort_keys=False)


def point_source(base: str | Path, key: str) -> str:
    """How a point's file is named in its problems: the base file and the point's key."""
    return f"{Path(base).name} at point {key}"


def checked_point(kind: str, text: str, source: str, base: Path) -> Scenario | None:
    """Validate a point's file with its kind's own parser (SourceError naming the point); its market for a scenario.

    A family is read as a file (``read_family``); that its drawn tasks are valid markets is checked where the points
    are scheduled (``marketsim.sweep.points``), since drawing tasks is the meta package's job.
    """
    if kind == "scenario":
        from marketsim.config.validate import parse_scenario

        return parse_scenario(text, source, base_dir=base.parent)
    if kind == "tournament":
        from marketsim.config.tournament import parse_tournament

        parse_tournament(text, source, base_dir=base.parent)
    else:
        from marketsim.config.family import read_family

        read_family(text, source, registry=default_registry(), base_dir=base.parent)
    return None
