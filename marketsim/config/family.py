"""The task-family file format: distributions over markets, the rival slots, the OOD slice, and its checks.

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

``read_family`` validates a file's text into a ``Family`` (pydantic, then the checks that need the base
scenario and the registry: paths, rival strategies, the worst-case market size); drawing tasks from it is
``marketsim.meta.tasks``'s job.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Discriminator, Field, Tag, ValidationError, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from marketsim.config import limits
from marketsim.config.errors import FieldError, pydantic_problems, source_error
from marketsim.config.scenario import Scenario
from marketsim.config.spec import Float, Int, Spec
from marketsim.config.validate import check_strategies, memory_excess, scenario_from_located
from marketsim.config.yamlsource import Located, Problem, SourceError, brief, load_yaml
from marketsim.registry import Registry

FamilyError = SourceError

# --- distributions ------------------------------------------------------------------------------------


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


_PAIR = {"type": "array", "prefixItems": [{"type": "number"}] * 2, "minItems": 2, "maxItems": 2}
#: A distribution as the file writes it (what ``_dist`` reads), for `marketsim schema --kind family`.
DIST_SCHEMA = {
    "description": "{uniform: [low, high]}, {loguniform: [low, high]} (0 < low), {choice: [v, ...]} or a constant.",
    "anyOf": [
        *(
            {"type": "object", "properties": {kind: _PAIR}, "required": [kind], "additionalProperties": False}
            for kind in ("uniform", "loguniform")
        ),
        {
            "type": "object",
            "properties": {"choice": {"type": "array", "minItems": 1}},
            "required": ["choice"],
            "additionalProperties": False,
        },
        {"type": ["number", "string", "boolean"]},
    ],
}

#: A family distribution as written in YAML.
Distribution = Annotated[Dist, BeforeValidator(_dist), WithJsonSchema(DIST_SCHEMA)]


# --- the family spec ----------------------------------------------------------------------------------


class Grid(Spec):
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


class RivalSlot(Spec):
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


class Rivals(Spec):
    """Rivals added after the base sellers: the first ``count`` slots take part."""

    count: Distribution = Field(default_factory=lambda: Dist("constant", (0,)), description="Rivals per task.")
    slots: tuple[RivalSlot, ...] = Field(default_factory=tuple, description="Rival seats, in order.")


class OOD(Spec):
    """An out-of-distribution slice: distributions that replace the training ones, and demand shocks to add."""

    description: str = Field("", description="What the slice tests.")
    sample: dict[str, Distribution] = Field(default_factory=dict, description="Overrides of family.sample.")
    rivals: Rivals | None = Field(None, description="Replaces family.rivals when given.")
    shocks: tuple[dict[str, Distribution], ...] = Field(
        default_factory=tuple,
        description="Demand shocks added to each task's consumers.shocks (seasonality, a regime change), each a "
        "shock's fields with a value or a distribution: {kind: step, at: {choice: [20, 30]}, wtp_shift: ...}.",
    )


#: Split names a family always has; its slices take other names.
BUILTIN_SPLITS = ("train", "test", "ood")
_SLICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _slice_name(name: str) -> str:
    if name in BUILTIN_SPLITS or not _SLICE_NAME.match(name):
        raise PydanticCustomError(
            "slice_name",
            "a slice name is lower-case letters, digits and _ (not train, test or ood)",
        )
    return name


SliceName = Annotated[str, BeforeValidator(_slice_name)]


class FamilySpec(Spec):
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
    ood: OOD | None = Field(None, description="Optional out-of-distribution slice (the split called ood).")
    slices: dict[SliceName, OOD] = Field(
        default_factory=dict,
        description="More out-of-distribution slices by name (a shifted cost, more rivals, seasonality, a "
        "regime change…): each a split of its own, evaluated with --split NAME or --split all.",
    )

    def prices(self) -> tuple[float, ...]:
        if isinstance(self.grid, Grid):
            return self.grid.prices()
        return tuple(float(p) for p in self.grid)


class _FamilyFile(Spec):
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
    def base_data(self) -> dict:
        """The base scenario as plain data (paths resolved): what every drawn task starts from (copy it)."""
        return self._base_data

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
        return learner_index(self.base, self.spec.learner)

    def slices(self) -> dict[str, tuple[tuple[str, ...], OOD]]:
        """Every out-of-distribution slice by split name, with where the file declares it."""
        found = {} if self.spec.ood is None else {"ood": (("family", "ood"), self.spec.ood)}
        found.update({name: (("family", "slices", name), ood) for name, ood in self.spec.slices.items()})
        return found

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits tasks can be drawn from: train, test, then each slice (ood first)."""
        return ("train", "test", *self.slices())

    def sampling(self, split: str) -> tuple[dict[str, Dist], Rivals, tuple[dict[str, Dist], ...]]:
        """The distributions a split draws from (a slice's overrides applied) and the shocks it adds."""
        sample, rivals = dict(self.spec.sample), self.spec.rivals
        if split in ("train", "test"):
            return sample, rivals, ()
        found = self.slices().get(split)
        if found is None:
            declared = ", ".join(self.splits)
            raise ValueError(f"family {self.name!r} has no split {split!r}; its splits: {declared}")
        ood = found[1]
        sample.update(ood.sample)
        return sample, ood.rivals or rivals, ood.shocks


# --- loading ------------------------------------------------------------------------------------------


def learner_index(scenario: Scenario, name: str) -> int:
    """Seat index of the seller called ``name`` (base sellers keep their order; rivals come after them)."""
    names = [s.name for s in scenario.expanded_sellers()]
    return names.index(name)


_PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")


def set_path(data: dict, path: str, value: Any) -> None:
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
        set_path(copy.deepcopy(data), path, 0)
    except KeyError as exc:
        return f"bad path {path!r}: {exc.args[0]}"
    return None


def read_family(
    text: str, source: str = "<string>", *, registry: Registry, base_dir: Path | None = None
) -> tuple[Family, Located]:
    """Validate family YAML text (all but the tasks it draws); raise FamilyError listing each problem as
    file:line:col: field: reason. Returns the family and the located YAML (for problems found later)."""
    located = load_yaml(text, source)
    if not isinstance(located.data, dict):
        raise SourceError([Problem(source, 1, 1, "", "a family file is a YAML mapping with 'family:' and 'base:'")])
    try:
        spec = _FamilyFile.model_validate(located.data)
    except ValidationError as exc:
        raise source_error(pydantic_problems(exc, located, _FamilyFile)) from None
    base = scenario_from_located(located.part("base"), registry, base_dir)  # problems read base.<field>
    fam = spec.family
    problems = _family_problems(fam, base, located, registry)
    if problems:
        raise SourceError(sorted(problems, key=lambda p: (p.line, p.column)))
    data = base.model_dump(mode="json", by_alias=True, exclude_none=False)
    family = Family(spec=fam, base=base, source=source, _base_data=data)
    problems = _worst_case_problems(family, located, registry)
    if problems:
        raise SourceError(problems)
    return family, located


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
    sections = [(("family",), fam.sample, fam.rivals)]
    slices = {} if fam.ood is None else {"ood": (("family", "ood"), fam.ood)}
    slices.update({name: (("family", "slices", name), ood) for name, ood in fam.slices.items()})
    sections += [(at, ood.sample, ood.rivals) for at, ood in slices.values()]
    for at, sample, rivals in sections:
        for path in sample:
            why = _path_exists(data, path)
            if why:
                problems.append(located.problem((*at, "sample", path), why, at_key=True))
        if rivals is None:
            continue
        where = (*at, "rivals")
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
    for at, ood in family.slices().values():  # a slice draws the training distributions it does not override
        sample = {path: (("family",), d) for path, d in spec.sample.items()}
        sample.update({path: (at, d) for path, d in ood.sample.items()})
        sections.append((at if ood.rivals else ("family",), sample, ood.rivals or spec.rivals))
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
                set_path(data, path, value)
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


def is_family_file(path: str | Path) -> bool:
    """A family file declares ``family:`` at the top level (how ``marketsim validate`` can tell)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^family\s*:", text, re.MULTILINE) is not None
