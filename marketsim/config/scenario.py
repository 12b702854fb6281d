"""Scenario files: the schema, frozen pydantic models whose every field has a type, a default and a description.

``marketsim schema`` prints the JSON Schema. Unknown keys are errors. Strategies are named by their registered
name; checking those names, parameters and named files against a registry and the disk is
``marketsim.config.validate`` 's job, which also reads (parses and loads) scenario files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator
from scipy import stats

from marketsim.config import limits
from marketsim.config.errors import FieldError, override_problems
from marketsim.config.spec import FileSchema, Float, Int, Spec
from marketsim.config.yamlsource import SourceError

ScenarioError = SourceError

# --- willingness to pay -------------------------------------------------------------------------


class ConstantWTP(Spec):
    """Every consumer has the same base willingness to pay (the textbook logit market)."""

    distribution: Literal["constant"] = Field(description="Which WTP distribution: constant.")
    value: Float = Field(0.0, description="The common WTP added to every seller's quality.")

    def frozen(self) -> None:
        return None


class UniformWTP(Spec):
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


class NormalWTP(Spec):
    """WTP normal with the given mean and sd, truncated at 0 (nobody pays to avoid a product)."""

    distribution: Literal["normal"] = Field(description="Which WTP distribution: normal.")
    mean: Float = Field(1.0, description="Mean before truncation.")
    sd: Float = Field(0.5, gt=0, description="Standard deviation before truncation.")

    def frozen(self) -> Any:
        return stats.truncnorm(a=(0.0 - self.mean) / self.sd, b=np.inf, loc=self.mean, scale=self.sd)


class LognormalWTP(Spec):
    """WTP lognormal: log(WTP) is normal with mean ``mean`` and sd ``sigma``."""

    distribution: Literal["lognormal"] = Field(description="Which WTP distribution: lognormal.")
    mean: Float = Field(0.0, description="Mean of log(WTP).")
    sigma: Float = Field(0.5, gt=0, description="Standard deviation of log(WTP).")

    def frozen(self) -> Any:
        return stats.lognorm(s=self.sigma, scale=float(np.exp(self.mean)))


WTP = Annotated[ConstantWTP | UniformWTP | NormalWTP | LognormalWTP, Field(discriminator="distribution")]


# --- demand shocks --------------------------------------------------------------------------------


class SinusoidalShock(Spec):
    """Seasonality: arrival probability × (1 + amplitude · sin(2π (step + phase) / period))."""

    kind: Literal["sinusoidal"] = Field(description="Which shock: sinusoidal seasonality.")
    amplitude: Float = Field(0.2, ge=0, le=1, description="Relative swing of the arrival rate.")
    period: Int = Field(52, gt=0, description="Steps per cycle.")
    phase: Float = Field(0.0, description="Shift of the cycle, in steps.")

    def arrival_factor(self, step: int) -> float:
        return 1.0 + self.amplitude * float(np.sin(2 * np.pi * (step + self.phase) / self.period))

    def wtp_shift(self, step: int) -> float:
        return 0.0


class StepShock(Spec):
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


class Choice(Spec):
    """Which consumer-choice (demand) model the population follows: a registered name and its parameters."""

    model: str = Field("logit", min_length=1, description="Registered choice model (see `marketsim plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters of the model (besides mu).")


class ObserverSpec(Spec):
    """A step observer attached to the run (a logger or a custom metric)."""

    observer: str = Field(..., min_length=1, description="Registered observer name (see `marketsim plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters of the observer.")


class Consumers(Spec):
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


class Demand(Spec):
    """How demand is realised: sampled consumers, or the noise-free continuum limit."""

    mode: Literal["agents", "expected"] = Field(
        "agents", description="agents: each consumer draws its choice; expected: expected demand, no noise."
    )
    quadrature: Int = Field(256, gt=0, description="WTP nodes for the expected mode (1 when WTP is constant).")


# --- social network -------------------------------------------------------------------------------


class WattsStrogatz(Spec):
    """Small world (Watts & Strogatz 1998): a ring lattice with randomly rewired edges."""

    kind: Literal["watts_strogatz"] = Field(description="Which graph: Watts-Strogatz small world.")
    k: Int = Field(6, ge=2, description="Each node's neighbours in the ring before rewiring.")
    p: Float = Field(0.1, ge=0, le=1, description="Rewiring probability.")


class BarabasiAlbert(Spec):
    """Scale free (Barabási & Albert 1999): preferential attachment, a few highly connected hubs."""

    kind: Literal["barabasi_albert"] = Field(description="Which graph: Barabási-Albert scale free.")
    m: Int = Field(3, ge=1, description="Edges each new node attaches with.")


class ErdosRenyi(Spec):
    """Random graph (Erdős & Rényi 1959): every pair of consumers linked with the same probability."""

    kind: Literal["erdos_renyi"] = Field(description="Which graph: Erdős-Rényi random graph.")
    mean_degree: Float = Field(6.0, gt=0, description="Expected number of neighbours.")


class EdgeList(Spec):
    """A graph read from a file of edges (your own survey or platform data)."""

    kind: Literal["edge_list"] = Field(description="Which graph: an edge-list file.")
    path: str = Field(
        ...,
        description="Whitespace-separated 'u v' lines of node ids 0..size-1 ('#' starts a comment); a relative "
        "path is relative to the folder of the file it is written in (scenario, tournament or family).",
    )


Graph = Annotated[WattsStrogatz | BarabasiAlbert | ErdosRenyi | EdgeList, Field(discriminator="kind")]


class Network(Spec):
    """Word of mouth: consumers consider only sellers they know; buyers tell their neighbours."""

    graph: Graph = Field(..., description="The social graph (networkx generator or edge-list file).")
    initial_awareness: Float = Field(0.2, ge=0, le=1, description="Chance a consumer knows a seller at the start.")
    spread: Float = Field(0.3, ge=0, le=1, description="Chance per step a buyer makes a neighbour aware of its seller.")
    decay: Float = Field(
        0.0, ge=0, le=1, description="Chance per step a consumer forgets a seller it did not buy from."
    )


# --- sellers --------------------------------------------------------------------------------------


class Restock(Spec):
    """Restock rule: order up to ``up_to`` every ``every`` steps, or when stock falls to ``reorder_point``."""

    up_to: Float = Field(..., gt=0, description="Order-up-to level.")
    every: Int | None = Field(None, gt=0, description="Periodic review: restock every this many steps.")
    reorder_point: Float | None = Field(None, ge=0, description="Continuous review: restock when stock ≤ this.")

    @model_validator(mode="after")
    def _one_rule(self) -> Restock:
        if (self.every is None) == (self.reorder_point is None):
            raise ValueError("give exactly one of 'every' or 'reorder_point'")
        return self


class Inventory(Spec):
    """Finite stock: sales draw it down, the restock rule refills it, holding it costs money."""

    initial: Float = Field(..., ge=0, description="Units in stock at step 0.")
    restock: Restock | None = Field(None, description="How stock is refilled (never, when omitted).")
    holding_cost: Float = Field(0.0, ge=0, description="Cost per unit held at the end of a step.")


class Seller(Spec):
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


class Scenario(Spec):
    """A market: consumers, how demand is realised, an optional social network and the sellers."""

    too_short_messages: ClassVar[dict[str, str]] = {"sellers": "a scenario needs at least one seller"}

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
            raise SourceError(override_problems(exc, Scenario)) from None


def scenario_schema() -> dict[str, Any]:
    """JSON Schema (Draft 2020-12) of the scenario format."""
    return Scenario.model_json_schema(by_alias=True, schema_generator=FileSchema)
