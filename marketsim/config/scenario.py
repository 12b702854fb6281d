"""Scenario files: YAML validated into a frozen pydantic model whose errors name file:line:col.

Every field has a type, a default where one makes sense and a description (``marketsim schema``
prints the JSON Schema). Unknown keys are errors. Strategies are named by their registered name.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from scipy import stats

from marketsim.config import limits
from marketsim.config.yamlsource import Located, Problem, SourceError, brief, load_yaml, read_bytes, read_source
from marketsim.exceptions import PortableError
from marketsim.registry import Registry, default_registry
from marketsim.strategy import SizedState, parameters

ScenarioError = SourceError

#: Where a validation problem sits: field names and list indices, as in pydantic's error ``loc``.
Loc = tuple[str | int, ...]


class FieldError(PortableError, ValueError):
    """A model validator's complaint about one of its fields; ``loc`` is relative to the model.

    pydantic puts a model validator's error on the whole model; raising this instead lets the error
    point at the line of the field that is actually wrong (``price_max``, not the seller's first line).
    """

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


def _no_text_or_bool(value: Any) -> Any:
    """Refuse text and booleans where a number is expected (lax pydantic would turn "2" or `yes` into numbers).

    YAML reads ``yes``/``no``/``on``/``off``/``true``/``false`` as booleans and anything in quotes as text.
    """
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "should be a number, not a boolean (YAML reads yes/no/on/off as one)")
    if isinstance(value, str):
        raise PydanticCustomError("number_type", f"should be a number, not text ({_text_number_hint(value)})")
    return value


_E_NOTATION = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _text_number_hint(text: str) -> str:
    """How to write ``text`` as a number: YAML 1.1 reads ``2e4`` (no dot, no exponent sign) as text."""
    if len(text) < 40 and _E_NOTATION.match(text.strip()):
        mantissa, exponent = text.strip().lower().split("e")
        mantissa += "" if "." in mantissa else ".0"
        exponent = exponent if exponent[0] in "+-" else "+" + exponent
        value = float(text)
        plain = f" or {int(value)}" if value.is_integer() and abs(value) < 1e15 else ""
        return f"YAML 1.1 reads {text.strip()} as text; write {mantissa}e{exponent}{plain}"
    return "write numbers without quotes"


#: A real number; ints and numpy scalars are fine, text and booleans are not.
Float = Annotated[float, BeforeValidator(_no_text_or_bool)]
#: An integer; numpy integers are fine, text, booleans and fractions are not.
Int = Annotated[int, BeforeValidator(_no_text_or_bool)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- willingness to pay -------------------------------------------------------------------------


class ConstantWTP(_Spec):
    """Every consumer has the same base willingness to pay (the textbook logit market)."""

    distribution: Literal["constant"] = Field(description="Which WTP distribution: constant.")
    value: Float = Field(0.0, description="The common WTP added to every seller's quality.")

    def frozen(self) -> None:
        return None


class UniformWTP(_Spec):
    """WTP uniform on [low, high]."""

    distribution: Literal["uniform"] = Field(description="Which WTP distribution: uniform.")
    low: Float = Field(0.0, description="Lowest WTP.")
    high: Float = Field(1.0, description="Highest WTP.")

    @model_validator(mode="after")
    def _ordered(self) -> UniformWTP:
        if self.high <= self.low:
            raise FieldError(("high",), f"high ({self.high}) must exceed low ({self.low})")
        return self

    def frozen(self) -> Any:
        return stats.uniform(loc=self.low, scale=self.high - self.low)


class NormalWTP(_Spec):
    """WTP normal with the given mean and sd, truncated at 0 (nobody pays to avoid a product)."""

    distribution: Literal["normal"] = Field(description="Which WTP distribution: normal.")
    mean: Float = Field(1.0, description="Mean before truncation.")
    sd: Float = Field(0.5, gt=0, description="Standard deviation before truncation.")

    def frozen(self) -> Any:
        return stats.truncnorm(a=(0.0 - self.mean) / self.sd, b=np.inf, loc=self.mean, scale=self.sd)


class LognormalWTP(_Spec):
    """WTP lognormal: log(WTP) is normal with mean ``mean`` and sd ``sigma``."""

    distribution: Literal["lognormal"] = Field(description="Which WTP distribution: lognormal.")
    mean: Float = Field(0.0, description="Mean of log(WTP).")
    sigma: Float = Field(0.5, gt=0, description="Standard deviation of log(WTP).")

    def frozen(self) -> Any:
        return stats.lognorm(s=self.sigma, scale=float(np.exp(self.mean)))


WTP = Annotated[ConstantWTP | UniformWTP | NormalWTP | LognormalWTP, Field(discriminator="distribution")]


# --- demand shocks --------------------------------------------------------------------------------


class SinusoidalShock(_Spec):
    """Seasonality: arrival probability × (1 + amplitude · sin(2π (step + phase) / period))."""

    kind: Literal["sinusoidal"] = Field(description="Which shock: sinusoidal seasonality.")
    amplitude: Float = Field(0.2, ge=0, le=1, description="Relative swing of the arrival rate.")
    period: Int = Field(52, gt=0, description="Steps per cycle.")
    phase: Float = Field(0.0, description="Shift of the cycle, in steps.")

    def arrival_factor(self, step: int) -> float:
        return 1.0 + self.amplitude * float(np.sin(2 * np.pi * (step + self.phase) / self.period))

    def wtp_shift(self, step: int) -> float:
        return 0.0


class StepShock(_Spec):
    """A demand shock from step ``at`` (until ``until``, exclusive): scales arrivals, shifts WTP."""

    kind: Literal["step"] = Field(description="Which shock: a step change.")
    at: Int = Field(..., ge=0, description="First step of the shock.")
    until: Int | None = Field(None, gt=0, description="Step at which it ends (never when omitted).")
    arrival_factor_: Float = Field(1.0, ge=0, alias="arrival_factor", description="Arrival multiplier.")
    wtp_shift_: Float = Field(0.0, alias="wtp_shift", description="Added to every consumer's WTP.")

    @model_validator(mode="after")
    def _ordered(self) -> StepShock:
        if self.until is not None and self.until <= self.at:
            raise FieldError(("until",), f"until ({self.until}) must be after at ({self.at})")
        return self

    def _on(self, step: int) -> bool:
        return step >= self.at and (self.until is None or step < self.until)

    def arrival_factor(self, step: int) -> float:
        return self.arrival_factor_ if self._on(step) else 1.0

    def wtp_shift(self, step: int) -> float:
        return self.wtp_shift_ if self._on(step) else 0.0


Shock = Annotated[SinusoidalShock | StepShock, Field(discriminator="kind")]


class Choice(_Spec):
    """Which consumer-choice (demand) model the population follows: a registered name and its parameters."""

    model: str = Field("logit", min_length=1, description="Registered choice model (see `marketsim plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters of the model (besides mu).")


class ObserverSpec(_Spec):
    """A step observer attached to the run (a logger or a custom metric)."""

    observer: str = Field(..., min_length=1, description="Registered observer name (see `marketsim plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters of the observer.")


class Consumers(_Spec):
    """The consumer population: size, willingness to pay, taste shocks, arrivals and choice model."""

    size: Int = Field(10_000, gt=0, description="Number of consumers (market size).")
    wtp: WTP = Field(default_factory=lambda: ConstantWTP(distribution="constant"), description="WTP distribution.")
    mu: Float = Field(0.25, ge=0, description="Scale of the Gumbel taste shocks (0 = none; > 0 = logit).")
    outside_value: Float = Field(0.0, description="Value a0 of not buying (the outside option).")
    arrival: Float = Field(1.0, gt=0, le=1, description="Probability that a consumer shops in a step.")
    shocks: tuple[Shock, ...] = Field(default_factory=tuple, description="Seasonality and demand shocks.")
    choice: Choice = Field(default_factory=Choice, description="Consumer-choice model (default: the logit).")

    def arrival_at(self, step: int) -> float:
        """Arrival probability at ``step`` after seasonality and shocks, clipped to [0, 1]."""
        factor = float(np.prod([s.arrival_factor(step) for s in self.shocks])) if self.shocks else 1.0
        return min(max(self.arrival * factor, 0.0), 1.0)

    def wtp_shift_at(self, step: int) -> float:
        """Total WTP shift at ``step``."""
        return float(sum(s.wtp_shift(step) for s in self.shocks))


class Demand(_Spec):
    """How demand is realised: sampled consumers, or the noise-free continuum limit."""

    mode: Literal["agents", "expected"] = Field(
        "agents", description="agents: each consumer draws its choice; expected: expected demand, no noise."
    )
    quadrature: Int = Field(256, gt=0, description="WTP nodes for the expected mode (1 when WTP is constant).")


# --- social network -------------------------------------------------------------------------------


class WattsStrogatz(_Spec):
    """Small world (Watts & Strogatz 1998): a ring lattice with randomly rewired edges."""

    kind: Literal["watts_strogatz"] = Field(description="Which graph: Watts-Strogatz small world.")
    k: Int = Field(6, ge=2, description="Each node's neighbours in the ring before rewiring.")
    p: Float = Field(0.1, ge=0, le=1, description="Rewiring probability.")


class BarabasiAlbert(_Spec):
    """Scale free (Barabási & Albert 1999): preferential attachment, a few highly connected hubs."""

    kind: Literal["barabasi_albert"] = Field(description="Which graph: Barabási-Albert scale free.")
    m: Int = Field(3, ge=1, description="Edges each new node attaches with.")


class ErdosRenyi(_Spec):
    """Random graph (Erdős & Rényi 1959): every pair of consumers linked with the same probability."""

    kind: Literal["erdos_renyi"] = Field(description="Which graph: Erdős-Rényi random graph.")
    mean_degree: Float = Field(6.0, gt=0, description="Expected number of neighbours.")


class EdgeList(_Spec):
    """A graph read from a file of edges (your own survey or platform data)."""

    kind: Literal["edge_list"] = Field(description="Which graph: an edge-list file.")
    path: str = Field(
        ...,
        description="Whitespace-separated 'u v' lines of node ids 0..size-1 ('#' starts a comment); a relative "
        "path is relative to the folder of the file it is written in (scenario, tournament or family).",
    )


Graph = Annotated[WattsStrogatz | BarabasiAlbert | ErdosRenyi | EdgeList, Field(discriminator="kind")]


class Network(_Spec):
    """Word of mouth: consumers consider only sellers they know; buyers tell their neighbours."""

    graph: Graph = Field(..., description="The social graph (networkx generator or edge-list file).")
    initial_awareness: Float = Field(0.2, ge=0, le=1, description="Chance a consumer knows a seller at the start.")
    spread: Float = Field(0.3, ge=0, le=1, description="Chance per step a buyer makes a neighbour aware of its seller.")
    decay: Float = Field(
        0.0, ge=0, le=1, description="Chance per step a consumer forgets a seller it did not buy from."
    )


# --- sellers --------------------------------------------------------------------------------------


class Restock(_Spec):
    """Restock rule: order up to ``up_to`` every ``every`` steps, or when stock falls to ``reorder_point``."""

    up_to: Float = Field(..., gt=0, description="Order-up-to level.")
    every: Int | None = Field(None, gt=0, description="Periodic review: restock every this many steps.")
    reorder_point: Float | None = Field(None, ge=0, description="Continuous review: restock when stock ≤ this.")

    @model_validator(mode="after")
    def _one_rule(self) -> Restock:
        if (self.every is None) == (self.reorder_point is None):
            raise ValueError("give exactly one of 'every' or 'reorder_point'")
        return self


class Inventory(_Spec):
    """Finite stock: sales draw it down, the restock rule refills it, holding it costs money."""

    initial: Float = Field(..., ge=0, description="Units in stock at step 0.")
    restock: Restock | None = Field(None, description="How stock is refilled (never, when omitted).")
    holding_cost: Float = Field(0.0, ge=0, description="Cost per unit held at the end of a step.")


class Seller(_Spec):
    """One seller, or a group of identical ones with ``count``."""

    name: str = Field(..., min_length=1, description="Display name (groups get _1, _2, … appended).")
    strategy: str = Field(..., description="Registered strategy name (see `marketsim plugins`).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword parameters of the strategy. A relative `checkpoint` path is relative to the folder "
        "of the file it is written in (scenario, tournament or family), not to the working directory.",
    )
    count: Int = Field(1, ge=1, description="Number of identical sellers this entry declares.")
    cost: Float = Field(1.0, ge=0, description="Marginal cost per unit.")
    quality: Float = Field(2.0, description="Brand/quality term a_j added to every consumer's value.")
    price_min: Float = Field(0.0, ge=0, description="Lowest price the seller may post.")
    price_max: Float = Field(10.0, gt=0, description="Highest price the seller may post.")
    initial_price: Float | None = Field(None, ge=0, description="Price 'last posted' at step 0 (default: midpoint).")
    capacity: Float | None = Field(None, gt=0, description="Most units it can sell in one step (unlimited if omitted).")
    inventory: Inventory | None = Field(None, description="Finite stock (unlimited if omitted).")

    @model_validator(mode="after")
    def _bounds(self) -> Seller:
        if self.price_max < self.price_min:
            raise FieldError(("price_max",), f"price_max ({self.price_max}) is below price_min ({self.price_min})")
        if self.cost > self.price_max:
            raise FieldError(
                ("cost",), f"cost ({self.cost}) is above price_max ({self.price_max}): every allowed price loses money"
            )
        if self.initial_price is not None and not self.price_min <= self.initial_price <= self.price_max:
            raise FieldError(
                ("initial_price",),
                f"initial_price {self.initial_price} is outside [price_min, price_max] = "
                f"[{self.price_min}, {self.price_max}]",
            )
        return self

    @property
    def start_price(self) -> float:
        """The price treated as last posted before step 0."""
        return self.initial_price if self.initial_price is not None else (self.price_min + self.price_max) / 2


class Scenario(_Spec):
    """A market: consumers, how demand is realised, an optional social network and the sellers."""

    name: str = Field(..., min_length=1, description="Short name of the scenario.")
    description: str = Field("", description="What the scenario shows.")
    seed: Int = Field(0, ge=0, description="Root seed: the same seed gives the same run.")
    steps: Int = Field(1000, gt=0, description="Steps to simulate.")
    consumers: Consumers = Field(default_factory=Consumers, description="The consumer population.")
    demand: Demand = Field(default_factory=Demand, description="Sampled or expected demand.")
    network: Network | None = Field(None, description="Optional word-of-mouth network.")
    sellers: tuple[Seller, ...] = Field(..., min_length=1, description="Sellers, one by one or as groups.")
    observers: tuple[ObserverSpec, ...] = Field(default_factory=tuple, description="Step observers to attach.")

    @model_validator(mode="after")
    def _unique_names(self) -> Scenario:
        self._check_seller_count()  # first: expanding a huge count into names would take forever
        seen: dict[str, str] = {}  # expanded name -> the entry that declared it
        for i, entry in enumerate(self.sellers):
            names = [entry.name] if entry.count == 1 else [f"{entry.name}_{k}" for k in range(1, entry.count + 1)]
            group = f" (name {entry.name!r} with count {entry.count} gives {names[0]} … {names[-1]})"
            for name in names:
                if name in seen:
                    mine = group if entry.count > 1 else ""
                    raise FieldError(
                        ("sellers", i, "name"),
                        f"seller name {name!r}{mine} is already used by {seen[name]}; seller names must be unique",
                    )
                seen[name] = f"sellers[{i}]" + (group if entry.count > 1 else "")
        return self

    def _check_seller_count(self) -> None:
        """Refuse more sellers than ``limits.max_sellers()``, at the ``count`` that crosses the limit."""
        most, total = limits.max_sellers(), 0
        for i, entry in enumerate(self.sellers):
            total += entry.count
            if total > most:
                raise FieldError(
                    ("sellers", i, "count"),
                    f"{total:,} sellers in all is more than {most:,}, the most one market may hold "
                    "(the Nash benchmark alone would take hours; set MARKETSIM_MAX_SELLERS to allow more)",
                )

    @model_validator(mode="after")
    def _network_fits(self) -> Scenario:
        """Graph parameters must fit the population: a ring of k neighbours needs more than k consumers."""
        graph, n = (self.network.graph if self.network else None), self.consumers.size
        where = ("network", "graph")
        if isinstance(graph, WattsStrogatz) and graph.k >= n:
            raise FieldError((*where, "k"), f"k ({graph.k:,}) must be below consumers.size ({n:,})")
        if isinstance(graph, BarabasiAlbert) and graph.m >= n:
            raise FieldError((*where, "m"), f"m ({graph.m:,}) must be below consumers.size ({n:,})")
        if isinstance(graph, ErdosRenyi) and graph.mean_degree > n - 1:
            raise FieldError(
                (*where, "mean_degree"),
                f"mean_degree ({graph.mean_degree:g}) cannot exceed consumers.size - 1 ({n - 1:,})",
            )
        return self

    @model_validator(mode="after")
    def _network_needs_agents(self) -> Scenario:
        if self.network is not None and self.demand.mode == "expected":
            raise FieldError(
                ("demand", "mode"),
                "a word-of-mouth network needs demand.mode 'agents' (awareness belongs to individual consumers), "
                "not 'expected'",
            )
        return self

    def expanded_sellers(self) -> list[Seller]:
        """One Seller per market participant, groups expanded to name_1, name_2, …"""
        out = []
        for s in self.sellers:
            if s.count == 1:
                out.append(s)
            else:
                out += [s.model_copy(update={"name": f"{s.name}_{k}", "count": 1}) for k in range(1, s.count + 1)]
        return out

    def digest(self) -> str:
        """sha256 of the canonical JSON of the resolved scenario (identifies a market configuration)."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_overrides(self, **fields: Any) -> Scenario:
        """A validated copy with top-level fields replaced (``steps``, ``seed`` from the CLI).

        A bad value raises ScenarioError whose problem is attributed to ``override`` (it is in no file).
        """
        try:
            return Scenario.model_validate({**self.model_dump(by_alias=True), **fields})
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = _error_loc(err)
                dotted = ".".join(f"[{s}]" if isinstance(s, int) else str(s) for s in loc).replace(".[", "[")
                problems.append(Problem("override", 0, 0, dotted, _message(err, loc)))
            raise SourceError(problems) from None


# --- turning pydantic errors into located, friendly one-liners --------------------------------------


def _unwrap(tp: Any) -> Any:
    """``tp`` without Annotated metadata and without None in a union (``X | None`` -> ``X``)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp


def _tags(model: Any) -> list[str]:
    """The values of the single-value Literal fields of ``model`` (its tags in a discriminated union)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    out = []
    for field in model.model_fields.values():
        args = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is Literal else ()
        if len(args) == 1:
            out.append(str(args[0]))
    return out


def _type_at(loc: Sequence[str | int]) -> Any:
    """The type pydantic validated the value at ``loc`` against (None when the path leaves the models)."""
    tp: Any = Scenario
    for step in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = next((f.annotation for n, f in tp.model_fields.items() if (f.alias or n) == step), None)
        elif typing.get_origin(tp) in (list, tuple) and isinstance(step, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (typing.Union, types.UnionType):  # pydantic puts the tag in the path
            tp = next((m for m in typing.get_args(tp) if step in _tags(m)), None)
        else:
            return None
        if tp is None:
            return None
    return _unwrap(tp)


def _field_names(model: Any) -> list[str]:
    """The keys a mapping validated as ``model`` may use."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` looks like a misspelling of one of ``choices``."""
    if len(word) > 100:  # no field name is this long; comparing a huge key to each choice is wasted work
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _error_loc(err: Any) -> Loc:
    """Where a pydantic error belongs: its ``loc``, moved down to the field a FieldError or tag names."""
    loc: Loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), FieldError):
        loc += ctx["error"].loc
    if err["type"] == "union_tag_invalid":
        loc += (str(ctx.get("discriminator", "")).strip("'\""),)
    return loc


def _shown(value: Any) -> str | None:
    """A short repr of a scalar or small list for an error message; None for mappings and long values.

    Built by ``brief``, which stops after a few items and levels: ``repr`` of a value that aliases blow up
    would take minutes and gigabytes before it could be cut.
    """
    if isinstance(value, dict | BaseModel):
        return None
    text = brief(value, limit=61)
    return text if len(text) <= 60 else None


def _message(err: Any, loc: Loc) -> str:
    """A friendly one-line message for one pydantic error at ``loc``."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _field_names(_type_at(loc[:-1]))
        key = str(loc[-1])
        listing = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown field {brief(key)}{_did_you_mean(key, allowed)}{listing}"
    if kind == "missing":
        return f"missing required field {loc[-1]!r}"
    if kind == "union_tag_invalid":
        return f"unknown {loc[-1]} {ctx.get('tag')!r}; expected one of: {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        union = _type_at(loc)
        tags = [t for m in typing.get_args(union) for t in _tags(m)]
        disc = str(ctx.get("discriminator", "")).strip("'\"")
        return f"missing {disc!r}, which says what kind this is (one of: {', '.join(tags)})"
    if kind == "too_short" and loc == ("sellers",):
        return "a scenario needs at least one seller"
    msg = err["msg"].removeprefix("Value error, ")
    msg = msg.removeprefix("Input ") if msg.startswith("Input should") else msg
    if isinstance(ctx.get("error"), ValueError):  # our own validators already name the values
        return msg
    msg = msg.split(", got ")[0]  # "…, got a number with a fractional part": the value itself says more
    shown = _shown(err.get("input"))
    return f"{msg} (got {shown})" if shown is not None else msg


def _pydantic_problems(exc: ValidationError, located: Located) -> list[Problem]:
    """One located Problem per pydantic error."""
    problems = []
    for err in exc.errors():
        if _follows_item_errors(err):
            continue
        loc = _error_loc(err)
        problems.append(located.problem(loc, _message(err, loc), at_key=err["type"] == "extra_forbidden"))
    return problems


def _follows_item_errors(err: Any) -> bool:
    """A "too short" error that only repeats that some items failed (pydantic counts what validated)."""
    given, ctx = err.get("input"), err.get("ctx") or {}
    return err["type"] == "too_short" and isinstance(given, list | tuple) and len(given) >= ctx.get("min_length", 0)


# --- strategies and files: checks that need the registry or the disk -------------------------------


def _type_name(tp: Any) -> str:
    """``float``, ``int | None``, … for an annotation."""
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _strategy_problems(
    scenario: Scenario, located: Located, registry: Registry
) -> tuple[list[Problem], list[dict[str, Any]]]:
    """Problems with strategy names and parameters, and each seller's parameters validated to their types.

    The choice model and observers are checked by building them: an unknown name lists the registered
    ones, and a parameter the class refuses is reported at its line.
    """
    problems, params = check_strategies(scenario.sellers, "sellers", located, registry)
    extensions = [("choice model", ("consumers", "choice"), "model", scenario.consumers.choice)]
    extensions += [("observer", ("observers", i), "observer", o) for i, o in enumerate(scenario.observers)]
    for kind, where, key, spec in extensions:
        problems += _extension_problems(kind, where, key, spec, located, registry, scenario.consumers.mu)
    return problems, params


def _extension_problems(
    kind: str, where: tuple, key: str, spec: Any, located: Located, registry: Registry, mu: float
) -> list[Problem]:
    """Build one choice model or observer from its spec; report an unknown name or refused parameters."""
    name = getattr(spec, key)
    table = registry.extensions[kind]
    if name not in table:
        available = ", ".join(sorted(table)) or "(none installed)"
        hint = _did_you_mean(name, sorted(table))
        return [located.problem((*where, key), f"unknown {kind} {name!r}{hint}; available: {available}")]
    params = {"mu": mu, **spec.params} if kind == "choice model" else dict(spec.params)
    try:
        table[name].cls(**params)
    except Exception as exc:
        accepted = ", ".join(p.name for p in parameters(table[name].cls)) or "none"
        return [located.problem((*where, "params"), f"{kind} {name!r}: {exc}; accepted: {accepted}")]
    return []


def check_strategies(
    items: Sequence[Any], section: str, located: Located, registry: Registry
) -> tuple[list[Problem], list[dict[str, Any]]]:
    """Check each item's ``strategy`` name and ``params`` (items listed under ``section`` in the file).

    Returns the problems, located in the file, and each item's parameters validated to their types.
    Used for scenario sellers and for tournament entrants alike.
    """
    problems: list[Problem] = []
    resolved: list[dict[str, Any]] = []
    for i, seller in enumerate(items):
        if seller.strategy not in registry:
            names = registry.names()
            available = ", ".join(names) or "(none installed)"
            hint = _did_you_mean(seller.strategy, names)
            problems.append(
                located.problem(
                    (section, i, "strategy"), f"unknown strategy {seller.strategy!r}{hint}; available: {available}"
                )
            )
            resolved.append(dict(seller.params))
            continue
        found, params = _param_problems(seller, i, registry, located, section)
        problems += found
        resolved.append(params)
    return problems, resolved


def _param_problems(
    seller: Any, i: int, registry: Registry, located: Located, section: str = "sellers"
) -> tuple[list[Problem], dict[str, Any]]:
    """Check ``seller.params`` against its strategy's signature; return problems and the typed parameters."""
    accepted = {p.name: p for p in parameters(registry.get(seller.strategy).cls)}
    listing = ", ".join(f"{p.name}={p.default!r}" if not p.required else p.name for p in accepted.values()) or "none"
    problems = []
    typed: dict[str, Any] = {}
    for key, value in seller.params.items():
        where = (section, i, "params", key)
        if key not in accepted:
            hint = _did_you_mean(str(key), list(accepted))
            problems.append(
                located.problem(
                    where,
                    f"unknown parameter {key!r}{hint} for strategy {seller.strategy!r}; accepted: {listing}",
                    at_key=True,
                )
            )
            continue
        annotation = accepted[key].annotation
        what = f"bad value {brief(value)} for {seller.strategy} parameter {key!r} ({_type_name(annotation)})"
        try:
            typed[key] = TypeAdapter(annotation).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ").removeprefix("Input ")
            problems.append(located.problem(where, f"{what}: {reason}"))
            continue
        if (
            isinstance(value, bool | str)
            and type(typed[key]) in (bool, int, float)
            and type(value) is not type(typed[key])
        ):  # lax validation would turn `yes` into 1.0 and "2" into 2: in YAML these are mistakes
            reason = (
                "a boolean, not a number (YAML reads yes/no/on/off as one)"
                if isinstance(value, bool)
                else f"text, not a number ({_text_number_hint(value)})"
            )
            problems.append(located.problem(where, f"{what}: {reason}"))
    for p in accepted.values():
        if p.required and p.name not in seller.params:
            problems.append(
                located.problem((section, i, "params"), f"strategy {seller.strategy!r} needs parameter {p.name!r}")
            )
    if not problems:
        try:  # the strategy's own checks (ranges, consistency) also surface at validation time
            registry.create(seller.strategy, typed)
        except Exception as exc:  # a plugin's constructor may raise anything; report it, don't crash
            kind = "" if isinstance(exc, ValueError | TypeError) else f"{type(exc).__name__}: "
            problems.append(
                located.problem(
                    (section, i, "params"), f"strategy {seller.strategy!r} rejected its parameters: {kind}{exc}"
                )
            )
    return problems, typed


#: Rough bytes per consumer row (WTP, uniforms, choice, surplus, index arrays) and per row and seller
#: (logit weights, awareness and masks) while a step clears; and per node and edge of a networkx graph
#: (adjacency dicts both ways plus the sparse matrix), measured on Watts-Strogatz graphs.
BYTES_PER_CONSUMER, BYTES_PER_CONSUMER_SELLER = 64, 24
BYTES_PER_GRAPH_NODE, BYTES_PER_GRAPH_EDGE = 250, 250


def resolve_checkpoints(items: Sequence[Any], base_dir: Path) -> list[Any]:
    """Items (sellers, entrants) whose ``checkpoint`` parameter, a relative path, is made absolute.

    A checkpoint named in a file is relative to that file's folder, as an edge-list path or a
    tournament's market is, so a file means the same wherever it is run from.
    """
    out = []
    for item in items:
        path = item.params.get("checkpoint")
        if isinstance(path, str) and path:
            item = item.model_copy(update={"params": {**item.params, "checkpoint": str((base_dir / path).resolve())}})
        out.append(item)
    return out


def checkpoint_problems(paths: Sequence[Any], section: str, located: Located, key: Sequence[str]) -> list[Problem]:
    """A problem for each checkpoint path (already absolute) that names no file, at ``section[i].key``.

    ``paths[i]`` belongs to item ``i`` of ``section`` (None or a non-path where it has no checkpoint).
    """
    from marketsim.learning.checkpoint import state_file  # torch-free; imported here to keep scenario's imports lean

    problems = []
    for i, path in enumerate(paths):
        if isinstance(path, str) and path and not state_file(path).is_file():
            problems.append(located.problem((section, i, *key), f"checkpoint file {state_file(path)} not found"))
    return problems


def _edge_list_problems(scenario: Scenario, located: Located) -> tuple[list[Problem], int]:
    """Problems with the edge-list file (its path already absolute) and its number of edges.

    The file is read within the size limit and checked line by line; a problem names the line of the
    file, never its content (the path might point at a file that is not ours to show).
    """
    graph, n = scenario.network.graph, scenario.consumers.size  # type: ignore[union-attr]
    where, path = ("network", "graph", "path"), Path(graph.path)
    if not path.exists():
        return [located.problem(where, f"edge-list file {path.name!r} not found in {path.parent}")], 0
    try:
        data = read_bytes(path, "edge-list file")
    except SourceError as exc:
        reason = exc.problems[0].message
        return [located.problem(where, f"edge-list file {graph.path}: {reason}")], 0
    edges = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        tokens = raw.split(b"#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) != 2 or not all(t.isdigit() and t.isascii() for t in tokens):
            reason = "is not an edge: each line holds two whole-number node ids 'u v' (or a # comment)"
            return [located.problem(where, f"edge-list file {graph.path}, line {number} {reason}")], edges
        if max(int(tokens[0]), int(tokens[1])) >= n:
            reason = f"names a node outside 0..{n - 1:,} (consumers.size = {n:,})"
            return [located.problem(where, f"edge-list file {graph.path}, line {number} {reason}")], edges
        edges += 1
    return [], edges


def _graph_edges(graph: Any, n: int, listed: int) -> float:
    """Expected number of edges of the social graph over ``n`` consumers (``listed`` for an edge list)."""
    if isinstance(graph, WattsStrogatz):
        return n * graph.k / 2
    if isinstance(graph, BarabasiAlbert):
        return n * graph.m
    if isinstance(graph, ErdosRenyi):
        return n * graph.mean_degree / 2
    return listed


def memory_excess(scenario: Scenario, registry: Registry, edges: int | None = None) -> tuple[Loc, str] | None:
    """Where (a path in ``scenario``) and why its estimated memory exceeds the budget; None when it fits.

    Sums the population, the social graph (``edges`` of an edge list; counted from its file when None) and
    the ``SizedState`` strategies' tables, and names the largest part, its estimate, the total and the budget.
    Parameters are those the strategies are built with, so they must already be valid.
    """
    budget = limits.memory_budget()
    sellers = sum(s.count for s in scenario.sellers)
    c = scenario.consumers
    rows = c.size if scenario.demand.mode == "agents" else scenario.demand.quadrature
    parts: list[tuple[Loc, str, float]] = [
        (
            ("consumers", "size"),
            "the consumer population",
            rows * (BYTES_PER_CONSUMER + BYTES_PER_CONSUMER_SELLER * sellers),
        )
    ]
    if scenario.network is not None:
        graph = scenario.network.graph
        if edges is None and isinstance(graph, EdgeList):
            edges = _edge_list_problems(scenario, Located(None, None, ""))[1]
        size = c.size * BYTES_PER_GRAPH_NODE + _graph_edges(graph, c.size, edges or 0) * BYTES_PER_GRAPH_EDGE
        parts.append((("network", "graph"), "the social graph", size))
    for i, seller in enumerate(scenario.sellers):
        if issubclass(registry.get(seller.strategy).cls, SizedState):
            made = registry.create(seller.strategy, dict(seller.params))
            what = f"the tables of strategy {seller.strategy!r}" + (f" (x{seller.count})" if seller.count > 1 else "")
            parts.append((("sellers", i, "params"), what, made.state_bytes(sellers) * seller.count))
    total = sum(size for _, _, size in parts)
    if total <= budget:
        return None
    where, what, size = max(parts, key=lambda part: part[2])
    overall = f"; {limits.human_bytes(total, exact=False)} in all" if total > size * 1.001 else ""
    message = (
        f"{what} would need an estimated {limits.human_bytes(size)}{overall}, more than the memory budget "
        f"of {limits.human_bytes(budget)} (set MARKETSIM_MEMORY_BUDGET to allow more)"
    )
    return where, message


def _memory_problems(scenario: Scenario, located: Located, registry: Registry, edges: int) -> list[Problem]:
    """Refuse a market whose estimated population, graph and strategy tables exceed the memory budget."""
    found = memory_excess(scenario, registry, edges)
    return [located.problem(*found)] if found else []


def _error(problems: list[Problem]) -> SourceError:
    """ScenarioError with ``problems`` in file order."""
    return SourceError(sorted(problems, key=lambda p: (p.line, p.column)))


def parse_scenario(
    text: str, source: str = "<string>", registry: Registry | None = None, base_dir: Path | None = None
) -> Scenario:
    """Validate scenario YAML text; raise ScenarioError listing each problem as file:line:col.

    Strategy parameters come back converted to the types their strategy declares (``2`` -> ``2.0``).
    """
    located = load_yaml(text, source)
    if located.data is None:
        raise _error([Problem(source, 1, 1, "", "the file is empty; a scenario is a YAML mapping (key: value lines)")])
    if not isinstance(located.data, dict):
        line, col, _ = located.locate(())
        kind = {list: "list", str: "single string"}.get(type(located.data), f"single {type(located.data).__name__}")
        message = f"a scenario must be a YAML mapping (key: value lines), not a {kind}"
        raise _error([Problem(source, line, col, "", message)])
    return scenario_from_located(located, registry, base_dir)


def scenario_from_located(located: Located, registry: Registry | None = None, base_dir: Path | None = None) -> Scenario:
    """Validate parsed YAML (a mapping) into a Scenario; problems are located in the source file.

    Relative paths (an edge-list file, a seller's ``checkpoint`` parameter) resolve against ``base_dir``,
    the folder of the file the scenario is written in. Named files must exist and be usable, and the
    market's estimated memory must fit the budget, so nothing that validates fails for these at run time.
    """
    try:
        scenario = Scenario.model_validate(located.data)
    except ValidationError as exc:
        raise _error(_pydantic_problems(exc, located)) from None
    registry = registry if registry is not None else default_registry()
    scenario = _resolve_paths(scenario, base_dir or Path.cwd())
    problems, params = _strategy_problems(scenario, located, registry)
    checkpoints = [s.params.get("checkpoint") for s in scenario.sellers]
    problems = problems or checkpoint_problems(checkpoints, "sellers", located, ("params", "checkpoint"))
    edges = 0
    if scenario.network is not None and isinstance(scenario.network.graph, EdgeList):
        found, edges = _edge_list_problems(scenario, located)
        problems += found
    if problems:
        raise _error(problems)
    sellers = tuple(s.model_copy(update={"params": p}) for s, p in zip(scenario.sellers, params))
    scenario = scenario.model_copy(update={"sellers": sellers})
    problems = _memory_problems(scenario, located, registry, edges)
    if problems:
        raise _error(problems)
    return scenario


def _resolve_paths(scenario: Scenario, base_dir: Path) -> Scenario:
    """Make file paths inside the scenario absolute, so a run does not depend on the working directory."""
    scenario = scenario.model_copy(update={"sellers": tuple(resolve_checkpoints(scenario.sellers, base_dir))})
    if scenario.network is None or not isinstance(scenario.network.graph, EdgeList):
        return scenario
    graph = scenario.network.graph.model_copy(update={"path": str((base_dir / scenario.network.graph.path).resolve())})
    return scenario.model_copy(update={"network": scenario.network.model_copy(update={"graph": graph})})


def load_scenario(path: str | Path, registry: Registry | None = None) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    return parse_scenario(read_source(path), str(path), registry, path.parent)


def scenario_schema() -> dict[str, Any]:
    """JSON Schema of the scenario format."""
    return Scenario.model_json_schema(by_alias=True)
