"""Task families for meta-learning: distributions over markets, sampled into concrete scenarios.

A *family file* is YAML with two parts::

    family:                         # how tasks are drawn
      name: meta_pricing
      seed: 7                       # root of the task seed streams
      horizon: 50                   # H: steps per task (the task scenario's ``steps``)
      learner: learner              # the base seller whose seat a strategy under test takes
      grid: {low: 1.1, high: 4.0, size: 15}   # the price grid learners share (or a list of prices)
      sample:                       # distributions over fields of the base scenario, by dotted path
        consumers.mu: {loguniform: [0.2, 1.2]}
        sellers.learner.quality: {uniform: [1.0, 3.0]}
      rivals:                       # rivals added to the base sellers
        count: {choice: [0, 1, 2]}  # how many of the slots below take part
        slots:
          - strategy: {choice: [fixed_price, match_lowest, undercut]}
            cost: {uniform: [0.8, 1.2]}
            params:                 # per strategy name: its parameters' distributions
              fixed_price: {price: {uniform: [1.5, 3.5]}}
      ood:                          # optional out-of-distribution slice: overrides of ``sample``/``rivals``
        sample:
          consumers.mu: {uniform: [1.3, 1.6]}
    base:                           # an ordinary scenario (the learner's strategy is a placeholder)
      name: meta_pricing_task
      sellers: [{name: learner, strategy: fixed_price}]

A distribution is ``{uniform: [a, b]}``, ``{loguniform: [a, b]}``, ``{choice: [...]}`` or a constant.
Sample paths name scenario fields: ``consumers.mu``, ``consumers.wtp.sd``, ``sellers.<name>.cost``,
``sellers.<name>.params.<key>``, ``demand.mode``…; a path must exist in the base scenario.

Meta-training, meta-test and OOD tasks come from disjoint seed streams: task ``k`` of split ``s`` draws
from ``SeedSequence(family.seed, spawn_key=(stream(s), k))``, so it is the same whatever ``n`` is and
whatever other tasks were drawn, and no two splits share a stream. Sampling builds the scenario dict
and validates it with pydantic only (no registry look-ups): thousands of tasks take a second or two.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from marketsim.config import limits
from marketsim.config.scenario import (
    FieldError,
    Float,
    Int,
    Scenario,
    check_strategies,
    memory_excess,
    scenario_from_located,
)
from marketsim.config.yamlsource import Located, Problem, SourceError, brief, load_yaml, read_source
from marketsim.registry import Registry, default_registry
from marketsim.strategy import MarketInfo, Observation, Strategy

Split = Literal["train", "test", "ood"]
SPLITS: tuple[str, ...] = ("train", "test", "ood")
#: Spawn key of each split's seed stream (part of the reproducibility contract).
STREAMS: Mapping[str, int] = {"train": 0, "test": 1, "ood": 2}
#: The strategy the learner seat holds in a sampled task until a caller puts its own there.
PLACEHOLDER = "fixed_price"

FamilyError = SourceError


# --- distributions ------------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _pair(value: Any, name: str) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or any(isinstance(v, bool | str) or not isinstance(v, int | float) for v in value)
    ):
        raise PydanticCustomError("distribution", f"{name} needs two numbers [low, high], got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise PydanticCustomError("distribution", f"{name} needs low < high, got [{low}, {high}]")
    return low, high


@dataclass(frozen=True, slots=True)
class Dist:
    """One distribution of a family: uniform, loguniform, choice or constant."""

    kind: Literal["uniform", "loguniform", "choice", "constant"]
    args: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        """One value (a Python scalar, or the chosen item)."""
        if self.kind == "uniform":
            return float(rng.uniform(*self.args))
        if self.kind == "loguniform":
            low, high = self.args
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.kind == "choice":
            return copy.deepcopy(self.args[int(rng.integers(len(self.args)))])
        return copy.deepcopy(self.args[0])

    @property
    def low(self) -> Any:
        """A representative value (lower end, first choice, the constant): used to check the file."""
        return self.args[0]

    def range(self) -> tuple[float, float] | None:
        """(low, high) of a numeric distribution (None for text choices)."""
        values = self.args
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return float(min(values)), float(max(values))
        return None

    def as_data(self) -> Any:
        """The YAML form back."""
        if self.kind == "constant":
            return self.args[0]
        return {self.kind: list(self.args)}


def _dist(value: Any) -> Dist:
    if isinstance(value, Dist):
        return value
    if isinstance(value, Mapping):
        keys = set(value)
        if len(keys) == 1 and keys <= {"uniform", "loguniform", "choice"}:
            (kind,) = keys
            if kind == "choice":
                items = value[kind]
                if not isinstance(items, list) or not items:
                    raise PydanticCustomError("distribution", "choice needs a non-empty list of values")
                return Dist("choice", tuple(items))
            low, high = _pair(value[kind], kind)
            if kind == "loguniform" and low <= 0:
                raise PydanticCustomError("distribution", f"loguniform needs 0 < low, got {low}")
            return Dist(kind, (low, high))
        raise PydanticCustomError(
            "distribution",
            "a distribution is {uniform: [a, b]}, {loguniform: [a, b]}, {choice: [...]} or a constant; "
            "got a mapping with keys {keys}",
            {"keys": ", ".join(map(str, value))},
        )
    if value is None or isinstance(value, list | tuple):
        raise PydanticCustomError("distribution", "a constant must be a number, text or a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("distribution", "a constant must be finite")
    return Dist("constant", (value,))


#: A family distribution as written in YAML.
Distribution = Annotated[Dist, BeforeValidator(_dist)]


# --- the family spec ----------------------------------------------------------------------------------


class Grid(_Spec):
    """The price grid the baselines (and meta-learners) choose from: ``size`` points on [low, high]."""

    low: Float = Field(..., gt=0, description="Lowest grid price.")
    high: Float = Field(..., gt=0, description="Highest grid price.")
    size: Int = Field(15, ge=2, description="Number of grid prices.")

    @model_validator(mode="after")
    def _ordered(self) -> Grid:
        if self.high <= self.low:
            raise FieldError(("high",), f"high ({self.high}) must exceed low ({self.low})")
        return self

    def prices(self) -> tuple[float, ...]:
        return tuple(float(p) for p in np.linspace(self.low, self.high, self.size))


class RivalSlot(_Spec):
    """One rival seat: its strategy (drawn), parameters per strategy, cost, quality and price bounds."""

    name: str | None = Field(None, min_length=1, description="Seller name (default rival_<k>).")
    strategy: Distribution = Field(..., description="Registered strategy name, or a choice of names.")
    params: dict[str, dict[str, Distribution]] = Field(
        default_factory=dict, description="Per strategy name: distributions of its parameters."
    )
    cost: Distribution = Field(default_factory=lambda: Dist("constant", (1.0,)), description="Marginal cost.")
    quality: Distribution = Field(default_factory=lambda: Dist("constant", (2.0,)), description="Quality a_j.")
    price_min: Float = Field(0.0, ge=0, description="Lowest price the rival may post.")
    price_max: Float = Field(10.0, gt=0, description="Highest price the rival may post.")
    initial_price: Distribution | None = Field(None, description="Price 'last posted' at step 0 (default midpoint).")

    def strategies(self) -> list[str]:
        """Every strategy name this slot can draw."""
        return [str(s) for s in self.strategy.args]


class Rivals(_Spec):
    """Rivals added after the base sellers: the first ``count`` slots take part."""

    count: Distribution = Field(default_factory=lambda: Dist("constant", (0,)), description="Rivals per task.")
    slots: tuple[RivalSlot, ...] = Field(default_factory=tuple, description="Rival seats, in order.")


class OOD(_Spec):
    """An out-of-distribution slice: distributions that replace the training ones."""

    sample: dict[str, Distribution] = Field(default_factory=dict, description="Overrides of family.sample.")
    rivals: Rivals | None = Field(None, description="Replaces family.rivals when given.")


class FamilySpec(_Spec):
    """How the tasks of a family are drawn from its base scenario."""

    name: str = Field(..., min_length=1, description="Short name of the family.")
    description: str = Field("", description="What the family is for.")
    seed: Int = Field(0, ge=0, description="Root seed of the task seed streams.")
    horizon: Int = Field(..., gt=0, description="H: steps per task.")
    learner: str = Field(..., min_length=1, description="Name of the base seller whose seat the learner takes.")
    grid: Annotated[
        Annotated[Grid, Tag("Range")] | Annotated[tuple[Float, ...], Tag("List")],
        Discriminator(lambda v: "Range" if isinstance(v, Mapping | Grid) else "List"),
    ] = Field(..., description="Price grid: {low, high, size} or a list of prices.")
    sample: dict[str, Distribution] = Field(default_factory=dict, description="Distributions by scenario path.")
    rivals: Rivals = Field(default_factory=Rivals, description="Rivals drawn per task.")
    ood: OOD | None = Field(None, description="Optional out-of-distribution slice.")

    def prices(self) -> tuple[float, ...]:
        if isinstance(self.grid, Grid):
            return self.grid.prices()
        return tuple(float(p) for p in self.grid)


class _FamilyFile(_Spec):
    family: FamilySpec = Field(..., description="How tasks are drawn.")
    base: dict[str, Any] = Field(
        ..., description="The base scenario, inline; relative paths in it are relative to the family file's folder."
    )


@dataclass(frozen=True)
class Family:
    """A loaded, checked task family."""

    spec: FamilySpec
    base: Scenario  # the validated base scenario (learner seat holds the placeholder)
    source: str = "<string>"
    _base_data: dict = field(default=None, repr=False, compare=False)  # base as plain data, paths resolved

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def grid(self) -> tuple[float, ...]:
        """The price grid, shared by every task of the family."""
        return self.spec.prices()

    @property
    def learner(self) -> int:
        """Seat index of the learner (base sellers keep their order; rivals come after them)."""
        return _learner_index(self.base, self.spec.learner)

    def sampling(self, split: str) -> tuple[dict[str, Dist], Rivals]:
        """The distributions a split draws from (OOD overrides applied)."""
        sample, rivals = dict(self.spec.sample), self.spec.rivals
        if split == "ood":
            if self.spec.ood is None:
                raise ValueError(f"family {self.name!r} declares no ood slice")
            sample.update(self.spec.ood.sample)
            rivals = self.spec.ood.rivals or rivals
        return sample, rivals


@dataclass(frozen=True)
class Task:
    """One market drawn from a family: a concrete scenario with ``steps = H`` and a placeholder learner."""

    index: int
    split: str
    scenario: Scenario
    learner: int  # seat index of the learner
    params: Mapping[str, Any]  # the drawn values, by path (for reports)
    grid: tuple[float, ...] = ()

    @property
    def horizon(self) -> int:
        return self.scenario.steps

    def rivals(self) -> list[int]:
        """Seat indices of every other seller."""
        return [j for j in range(len(self.scenario.sellers)) if j != self.learner]


# --- loading ------------------------------------------------------------------------------------------


def _learner_index(scenario: Scenario, name: str) -> int:
    names = [s.name for s in scenario.expanded_sellers()]
    return names.index(name)


def _problems(exc: ValidationError, located: Located) -> list[Problem]:
    out = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
            out.append(located.problem(loc, message, at_key=True))
            continue
        if error["type"] == "missing":
            out.append(located.problem(loc[:-1], f"missing field {loc[-1]!r}"))
            continue
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), FieldError):
            loc = (*loc, *ctx["error"].loc)
        # union members add their own names to the loc (e.g. grid.Grid.low): keep the field names
        loc = tuple(s for s in loc if not (isinstance(s, str) and (s[:1].isupper() or "[" in s)))
        out.append(located.problem(loc, message))
    return out


_PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")


def _set_path(data: dict, path: str, value: Any) -> None:
    """Set ``path`` (dotted; ``sellers.<name>`` picks a seller by name) in the plain scenario data."""
    parts = path.split(".")
    node: Any = data
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if isinstance(node, list):
            match = next((s for s in node if isinstance(s, dict) and s.get("name") == part), None)
            if match is None:
                raise KeyError(f"no seller named {part!r}")
            if last:
                raise KeyError("a path must name a field of the seller, not the seller")
            node = match
            continue
        if not isinstance(node, dict) or (part not in node and not (k > 0 and parts[k - 1] == "params")):
            raise KeyError(f"{'.'.join(parts[: k + 1])!r} is not in the base scenario")
        if last:
            node[part] = value
        else:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]


def _path_exists(data: dict, path: str) -> str | None:
    """Why ``path`` cannot be set in ``data`` (None when it can)."""
    if not _PATH.match(path):
        return f"bad path {path!r}: write dotted field names like consumers.mu or sellers.<name>.cost"
    try:
        _set_path(copy.deepcopy(data), path, 0)
    except KeyError as exc:
        return f"bad path {path!r}: {exc.args[0]}"
    return None


def parse_family(
    text: str, source: str = "<string>", registry: Registry | None = None, base_dir: Path | None = None
) -> Family:
    """Validate family YAML text; raise FamilyError listing each problem as file:line:col: field: reason."""
    located = load_yaml(text, source)
    if not isinstance(located.data, dict):
        raise SourceError([Problem(source, 1, 1, "", "a family file is a YAML mapping with 'family:' and 'base:'")])
    try:
        spec = _FamilyFile.model_validate(located.data)
    except ValidationError as exc:
        raise SourceError(sorted(_problems(exc, located), key=lambda p: (p.line, p.column))) from None
    registry = registry if registry is not None else default_registry()
    base = scenario_from_located(located.part("base"), registry, base_dir)  # problems read base.<field>
    fam = spec.family
    problems = _family_problems(fam, base, located, registry)
    if problems:
        raise SourceError(sorted(problems, key=lambda p: (p.line, p.column)))
    data = base.model_dump(mode="json", by_alias=True, exclude_none=False)
    family = Family(fam, base, source, data)
    problems = _worst_case_problems(family, located, registry)
    if problems:
        raise SourceError(problems)
    for split in ("train", "test") + (("ood",) if fam.ood else ()):
        task = sample_task(family, split, 0)  # a drawn market must be a valid scenario with known strategies
        where = "family.ood" if split == "ood" else "family"
        found, _ = check_strategies(task.scenario.sellers, "sellers", Located(None, None, source), registry)
        if found:
            line, col, _ = located.locate(tuple(where.split(".")))
            raise SourceError([Problem(source, line, col, where, f"a drawn {split} task: {p.message}") for p in found])
    return family


def _family_problems(fam: FamilySpec, base: Scenario, located: Located, registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    names = [s.name for s in base.expanded_sellers()]
    if fam.learner not in names:
        problems.append(
            located.problem(("family", "learner"), f"no base seller named {fam.learner!r}; sellers: {', '.join(names)}")
        )
    else:
        seat = base.expanded_sellers()[names.index(fam.learner)]
        grid = fam.prices()
        if list(grid) != sorted(grid) or len(set(grid)) != len(grid) or len(grid) < 2:
            problems.append(located.problem(("family", "grid"), "the grid needs at least two increasing prices"))
        elif grid[0] < seat.price_min or grid[-1] > seat.price_max:
            problems.append(
                located.problem(
                    ("family", "grid"),
                    f"grid [{grid[0]:g}, {grid[-1]:g}] leaves the learner's price range "
                    f"[{seat.price_min:g}, {seat.price_max:g}]",
                )
            )
    data = base.model_dump(mode="json", by_alias=True)
    sections = [("sample", fam.sample, fam.rivals)]
    if fam.ood is not None:
        sections.append(("ood", fam.ood.sample, fam.ood.rivals))
    for section, sample, rivals in sections:
        prefix = ("family", "ood", "sample") if section == "ood" else ("family", "sample")
        for path in sample:
            why = _path_exists(data, path)
            if why:
                problems.append(located.problem((*prefix, path), why, at_key=True))
        if rivals is None:
            continue
        where = ("family", "ood", "rivals") if section == "ood" else ("family", "rivals")
        counts = rivals.count.args
        if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
            problems.append(located.problem((*where, "count"), "rival counts must be integers >= 0"))
        elif max(counts) > len(rivals.slots):
            problems.append(
                located.problem((*where, "count"), f"up to {max(counts)} rivals but only {len(rivals.slots)} slots")
            )
        for k, slot in enumerate(rivals.slots):
            problems += _slot_problems(slot, (*where, "slots", k), located, registry)
    return problems


def _worst_values(dist: Dist) -> list[Any]:
    """The values of ``dist`` that could cost the most: the top of a numeric support, else each distinct choice."""
    span = dist.range()
    if span is not None:
        top = span[1]
        return [top] if top.is_integer() else [top, float(math.floor(top))]  # the floor for an integer field
    distinct: dict[str, Any] = {}
    for value in dist.args:
        distinct.setdefault(repr(value), value)
    return list(distinct.values())


def _with_rivals(data: dict, rivals: Rivals, count: int) -> dict:
    """A copy of the scenario ``data`` with the first ``count`` rival slots seated (first strategy, low values)."""
    data = copy.deepcopy(data)
    taken = {s["name"] for s in data["sellers"]}
    for j, slot in enumerate(rivals.slots[:count]):
        name = slot.name or f"rival_{j + 1}"
        while name in taken:
            name += "_"
        taken.add(name)
        strategy = str(slot.strategy.low)
        params = {key: d.low for key, d in slot.params.get(strategy, {}).items()}
        seller = {"name": name, "strategy": strategy, "params": params, "cost": slot.cost.low}
        seller.update(quality=slot.quality.low, price_min=slot.price_min, price_max=slot.price_max)
        data["sellers"].append(seller)
    return data


def _worst_case_problem(data: dict, registry: Registry) -> str | None:
    """Why the market ``data`` (a drawn task at a worst case) exceeds the seller limit or memory budget; else None.

    A market that is invalid for another reason is not judged here: the draw check reports such families.
    """
    sellers = sum(int(s.get("count", 1)) for s in data["sellers"] if isinstance(s.get("count", 1), int | float))
    if sellers > (most := limits.max_sellers()):
        return (
            f"{sellers:,} sellers in all is more than {most:,}, the most one market may hold "
            "(set MARKETSIM_MAX_SELLERS to allow more)"
        )
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError:
        return None
    found, typed = check_strategies(scenario.sellers, "sellers", Located(None, None, ""), registry)
    if found:
        return None
    typed_sellers = tuple(s.model_copy(update={"params": p}) for s, p in zip(scenario.sellers, typed))
    excess = memory_excess(scenario.model_copy(update={"sellers": typed_sellers}), registry)
    return None if excess is None else excess[1]


def _worst_case_problems(family: Family, located: Located, registry: Registry) -> list[Problem]:
    """Refuse a family whose distributions can draw a market above the seller limit or memory budget.

    Each sampled path is set, alone, to the worst of its support (the upper end of a range, the largest or
    each choice) with the most rivals seated; the rival count is checked at its largest. Located at the
    distribution.
    """
    spec = family.spec
    sections = [(("family",), {path: (("family",), d) for path, d in spec.sample.items()}, spec.rivals)]
    if spec.ood is not None:  # the OOD slice draws the training distributions it does not override
        sample = {path: (("family",), d) for path, d in spec.sample.items()}
        sample.update({path: (("family", "ood"), d) for path, d in spec.ood.sample.items()})
        rivals_at = ("family", "ood") if spec.ood.rivals else ("family",)
        sections.append((rivals_at, sample, spec.ood.rivals or spec.rivals))
    for prefix, sample, rivals in sections:
        most = max(int(c) for c in rivals.count.args)
        crowded = _with_rivals(family._base_data, rivals, most)
        why = _worst_case_problem(crowded, registry)
        if why is not None:
            where = (*prefix, "rivals", "count") if most else (*prefix,)
            return [located.problem(where, f"with {most} rivals, a drawn task: {why}")]
        for path, (at, dist) in sample.items():
            for value in _worst_values(dist):
                data = copy.deepcopy(crowded)
                _set_path(data, path, value)
                why = _worst_case_problem(data, registry)
                if why is not None:
                    shown = brief(int(value) if isinstance(value, float) and value.is_integer() else value)
                    message = f"a drawn task with {path} = {shown}" + (f" and {most} rivals" if most else "")
                    return [located.problem((*at, "sample", path), f"{message}: {why}")]
    return []


def _slot_problems(slot: RivalSlot, where: tuple, located: Located, registry: Registry) -> list[Problem]:
    problems = []
    for name in slot.strategies():
        if name not in registry:
            problems.append(
                located.problem(
                    (*where, "strategy"), f"unknown strategy {name!r}; available: {', '.join(registry.names())}"
                )
            )
            continue
        cls = registry.get(name).cls
        if cls.classifier.get("learns") or cls.classifier.get("stochastic") or not cls.classifier.get("reactive"):
            problems.append(
                located.problem(
                    (*where, "strategy"),
                    f"rival strategy {name!r} must be a deterministic rule reacting only to last period's prices "
                    "(classifier reactive: True): the clairvoyant oracle tabulates rivals",
                )
            )
    for name in slot.params:
        if name not in slot.strategies():
            problems.append(
                located.problem((*where, "params", name), f"{name!r} is not among this slot's strategies", at_key=True)
            )
    return problems


def load_family(path: str | Path, registry: Registry | None = None) -> Family:
    """Read and validate a family file."""
    path = Path(path)
    return parse_family(read_source(path), str(path), registry, path.parent)


def is_family_file(path: str | Path) -> bool:
    """A family file declares ``family:`` at the top level (how ``marketsim validate`` can tell)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^family\s*:", text, re.MULTILINE) is not None


# --- sampling -----------------------------------------------------------------------------------------


def task_seed_sequence(family: Family, split: str, k: int) -> np.random.SeedSequence:
    """The seed sequence of task ``k`` of ``split``: its own stream, disjoint from every other task's."""
    if split not in STREAMS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return np.random.SeedSequence(family.spec.seed, spawn_key=(STREAMS[split], int(k)))


def sample_task(family: Family, split: str, k: int) -> Task:
    """Task ``k`` of ``split`` (the same whatever else is sampled)."""
    if k < 0:
        raise ValueError(f"task index must be >= 0, got {k}")
    draws_seq, market_seq = task_seed_sequence(family, split, k).spawn(2)
    rng = np.random.default_rng(draws_seq)
    sample, rivals = family.sampling(split)
    data = copy.deepcopy(family._base_data)
    params: dict[str, Any] = {}
    for path, dist in sample.items():
        params[path] = value = dist.draw(rng)
        _set_path(data, path, value)
    count = int(rivals.count.draw(rng))
    params["rivals.count"] = count
    taken = {s["name"] for s in data["sellers"]}
    for j, slot in enumerate(rivals.slots[:count]):
        strategy = str(slot.strategy.draw(rng))
        name = slot.name or f"rival_{j + 1}"
        while name in taken:
            name += "_"
        taken.add(name)
        seller = {
            "name": name,
            "strategy": strategy,
            "params": {key: d.draw(rng) for key, d in slot.params.get(strategy, {}).items()},
            "cost": slot.cost.draw(rng),
            "quality": slot.quality.draw(rng),
            "price_min": slot.price_min,
            "price_max": slot.price_max,
        }
        if slot.initial_price is not None:
            seller["initial_price"] = slot.initial_price.draw(rng)
        params[f"rivals[{j}].strategy"] = strategy
        params.update({f"rivals[{j}].{key}": seller[key] for key in ("cost", "quality")})
        params.update({f"rivals[{j}].params.{key}": v for key, v in seller["params"].items()})
        data["sellers"].append(seller)
    grid = family.grid
    learner = next(s for s in data["sellers"] if s["name"] == family.spec.learner)
    learner["strategy"], learner["params"] = PLACEHOLDER, {"price": float(np.median(grid))}
    data["steps"] = family.spec.horizon
    data["seed"] = int(market_seq.generate_state(1, np.uint32)[0])
    data["name"] = f"{family.name}-{split}-{k}"
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(s) for s in first["loc"])
        raise SourceError(
            [Problem(family.source, 0, 0, "family", f"{split} task {k} is not a valid market: {where}: {first['msg']}")]
        ) from None
    return Task(k, split, scenario, _learner_index(scenario, family.spec.learner), params, grid)


def sample_tasks(family: Family, split: Split, n: int, start: int = 0) -> list[Task]:
    """Tasks ``start … start+n-1`` of ``split`` ("train", "test" or "ood")."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [sample_task(family, split, k) for k in range(start, start + n)]


def with_strategy(task: Task, strategy: str, params: Mapping[str, Any] | None = None) -> Scenario:
    """The task's scenario with ``strategy`` (registered name, params) in the learner seat."""
    sellers = list(task.scenario.sellers)
    seat = sellers[task.learner]
    sellers[task.learner] = seat.model_copy(update={"strategy": strategy, "params": dict(params or {})})
    return task.scenario.model_copy(update={"sellers": tuple(sellers)})


# --- rivals as known rules: their next prices from last period's prices --------------------------------


@dataclass(frozen=True)
class RivalSpec:
    """What a clairvoyant knows about one rival: its rule and the facts its observation holds."""

    strategy: str
    params: Mapping[str, Any]
    cost: float
    price_min: float
    price_max: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "cost": self.cost,
            "price_min": self.price_min,
            "price_max": self.price_max,
        }


def rival_specs(scenario: Scenario, learner: int) -> list[RivalSpec]:
    """Every other seller of ``scenario`` in seat order, as the clairvoyant's ``rivals`` parameter wants them."""
    return [
        RivalSpec(s.strategy, dict(s.params), s.cost, s.price_min, s.price_max)
        for j, s in enumerate(scenario.expanded_sellers())
        if j != learner
    ]


class RivalRules:
    """Rivals that react deterministically to last period's prices: ``next_prices(prices)`` predicts them.

    ``prices`` is the full price vector of last period (the learner's at ``index``); the result is the
    rivals' prices this period, in seat order without ``index``. Built from the rivals' registered
    rules, so it is exact for rules with classifier ``reactive: True`` (what a family allows).
    """

    def __init__(
        self,
        rivals: Sequence[RivalSpec | Mapping[str, Any]],
        index: int,
        market: MarketInfo | None = None,
        registry: Registry | None = None,
    ) -> None:
        registry = registry if registry is not None else default_registry()
        self.specs = [r if isinstance(r, RivalSpec) else RivalSpec(**dict(r)) for r in rivals]
        self.index = index
        self.n = len(self.specs) + 1
        self.seats = [j for j in range(self.n) if j != index]
        self.rules: list[Strategy] = []
        for seat, spec in zip(self.seats, self.specs):
            rule = registry.create(spec.strategy, spec.params)
            if market is not None:
                # the learner's market facts, seen from the rival's seat
                info = dataclasses.replace(
                    market, index=seat, n_sellers=self.n, price_min=spec.price_min, price_max=spec.price_max
                )
                rule.setup(info, np.random.default_rng(0))  # deterministic rules draw nothing
            self.rules.append(rule)

    def next_prices(self, prices: Sequence[float]) -> tuple[float, ...]:
        out = []
        for seat, spec, rule in zip(self.seats, self.specs, self.rules):
            obs = Observation(
                step=1, own_price=float(prices[seat]), cost=spec.cost, last_units=0.0, last_profit=0.0,
                inventory=math.inf, capacity=math.inf,
                competitor_prices=tuple(float(p) for j, p in enumerate(prices) if j != seat),
                price_min=spec.price_min, price_max=spec.price_max,
            )  # fmt: skip
            out.append(min(max(float(rule.price(obs)), spec.price_min), spec.price_max))
        return tuple(out)


def full_prices(own: float, rivals: Sequence[float], index: int) -> np.ndarray:
    """The price vector with ``own`` at ``index`` and ``rivals`` in the other seats."""
    return np.insert(np.asarray(rivals, dtype=float), index, own)


# --- the best fixed price under the prior ----------------------------------------------------------------


def fixed_price_profits(task: Task, prices: Sequence[float], registry: Registry | None = None) -> np.ndarray:
    """(len(prices), H) expected one-step profit of the learner posting each price every step of ``task``.

    Rivals follow their rules on the expected dynamics (their prices depend on the learner's only through
    their deterministic reactions), profits come from the task's expected demand: exactly what a
    fixed-price learner earns in expectation in the task's market.
    """
    market, demand = task_market(task, registry)
    sellers = task.scenario.expanded_sellers()
    rules = RivalRules(rival_specs(task.scenario, task.learner), task.learner, market, registry)
    start = np.array([s.start_price for s in sellers])
    out = np.empty((len(prices), task.horizon))
    cache: dict[tuple, float] = {}
    for a, p in enumerate(prices):
        last, before = start, None
        for t in range(task.horizon):
            now = full_prices(float(p), rules.next_prices(last), task.learner)
            key = tuple(np.round(now, 12))
            if key not in cache:
                cache[key] = float(demand.profits(now)[task.learner])
            out[a, t] = cache[key]
            if key == before:  # the rivals have settled: every later step repeats this one
                out[a, t:] = cache[key]
                break
            last, before = now, key
    return out


def task_market(task: Task, registry: Registry | None = None) -> tuple[MarketInfo, Any]:
    """The learner seat's MarketInfo and the task's ExpectedDemand, without the Nash/monopoly benchmarks
    (NaN here: computing them is what makes building a MarketModel cost ~0.2 s). Strategies given an
    explicit grid never read them."""
    from marketsim.market.model import expected_demand

    registry = registry if registry is not None else default_registry()
    demand = expected_demand(task.scenario, registry)
    sellers = task.scenario.expanded_sellers()
    n = len(sellers)
    market = MarketInfo(
        index=task.learner, n_sellers=n, costs=tuple(float(c) for c in demand.costs),
        price_min=sellers[task.learner].price_min, price_max=sellers[task.learner].price_max,
        nash_prices=(math.nan,) * n, monopoly_prices=(math.nan,) * n, expected_profit=demand.profits,
    )  # fmt: skip
    return market, demand


def expected_rollout(
    task: Task, strategy: Strategy, registry: Registry | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``strategy`` in the learner seat of ``task`` on the noise-free dynamics for H steps.

    Each step the rivals post what their rules give, the learner posts its price and sells exactly the
    expected units (and learns from that outcome). Returns (posted prices, expected profits), each (H,).
    Fast (no Mesa model, no consumer draws, no benchmarks): for sales-blind strategies (clairvoyant,
    fixed prices) it gives exactly their expected profit path in the task's noisy market too.
    """
    from marketsim.strategy import Outcome

    market, demand = task_market(task, registry)
    strategy.setup(market, np.random.default_rng(seed))
    rules = RivalRules(rival_specs(task.scenario, task.learner), task.learner, market, registry)
    seat = task.scenario.expanded_sellers()[task.learner]
    prices = np.array([s.start_price for s in task.scenario.expanded_sellers()])
    units = profit = 0.0
    posted, earned = np.empty(task.horizon), np.empty(task.horizon)
    for t in range(task.horizon):
        rivals = tuple(float(p) for j, p in enumerate(prices) if j != task.learner)
        obs = Observation(
            step=t, own_price=float(prices[task.learner]), cost=seat.cost, last_units=units, last_profit=profit,
            inventory=math.inf, capacity=math.inf, competitor_prices=rivals,
            price_min=seat.price_min, price_max=seat.price_max,
        )  # fmt: skip
        own = min(max(float(strategy.price(obs)), seat.price_min), seat.price_max)
        now = full_prices(own, rules.next_prices(prices), task.learner)
        units = float(demand.units(now)[task.learner])
        profit = float(demand.profits(now)[task.learner])
        posted[t], earned[t] = own, profit
        after = tuple(float(p) for j, p in enumerate(now) if j != task.learner)
        nxt = Observation(
            step=t + 1, own_price=own, cost=seat.cost, last_units=units, last_profit=profit, inventory=math.inf,
            capacity=math.inf, competitor_prices=after, price_min=seat.price_min, price_max=seat.price_max,
        )  # fmt: skip
        strategy.learn(
            Outcome(
                step=t,
                price=own,
                units=units,
                revenue=own * units,
                variable_cost=seat.cost * units,
                holding_cost=0.0,
                profit=profit,
                inventory=math.inf,
                competitor_prices=after,
                next_observation=nxt,
            )  # fmt: skip
        )
        prices = now
    return posted, earned


def best_fixed_price(
    family: Family,
    n_tasks: int = 200,
    split: str = "train",
    candidates: Sequence[float] | None = None,
    registry: Registry | None = None,
) -> tuple[float, float]:
    """The single price that maximises the mean expected H-step profit over ``n_tasks`` tasks of ``split``.

    Returns (price, mean profit per step). Candidates default to 121 prices spanning the family's grid,
    so the answer is not limited to grid points. This is the ``price`` parameter of ``best_fixed_price``
    the meta-evaluation hands that baseline (computed from training tasks, never from test tasks).
    """
    grid = family.grid
    candidates = np.asarray(candidates if candidates is not None else np.linspace(grid[0], grid[-1], 121), float)
    total = np.zeros(len(candidates))
    for task in sample_tasks(family, split, n_tasks):
        total += fixed_price_profits(task, candidates, registry).mean(axis=1)
    k = int(np.argmax(total))
    return float(candidates[k]), float(total[k] / max(n_tasks, 1))
