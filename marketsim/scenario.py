"""Scenario files: YAML validated into a frozen pydantic model whose errors name file:line:col.

Every field has a type, a default where one makes sense and a description (``marketsim schema``
prints the JSON Schema). Unknown keys are errors. Strategies are named by their registered name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from scipy import stats

from marketsim.registry import Registry, default_registry
from marketsim.strategy import parameters
from marketsim.yamlsource import Located, Problem, SourceError, load_yaml

ScenarioError = SourceError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- willingness to pay -------------------------------------------------------------------------


class ConstantWTP(_Spec):
    """Every consumer has the same base willingness to pay (the textbook logit market)."""

    distribution: Literal["constant"]
    value: float = Field(0.0, description="The common WTP added to every seller's quality.")

    def frozen(self) -> None:
        return None


class UniformWTP(_Spec):
    """WTP uniform on [low, high]."""

    distribution: Literal["uniform"]
    low: float = Field(0.0, description="Lowest WTP.")
    high: float = Field(1.0, description="Highest WTP.")

    @model_validator(mode="after")
    def _ordered(self) -> UniformWTP:
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must exceed low ({self.low})")
        return self

    def frozen(self) -> Any:
        return stats.uniform(loc=self.low, scale=self.high - self.low)


class NormalWTP(_Spec):
    """WTP normal with the given mean and sd, truncated at 0 (nobody pays to avoid a product)."""

    distribution: Literal["normal"]
    mean: float = Field(1.0, description="Mean before truncation.")
    sd: float = Field(0.5, gt=0, description="Standard deviation before truncation.")

    def frozen(self) -> Any:
        return stats.truncnorm(a=(0.0 - self.mean) / self.sd, b=np.inf, loc=self.mean, scale=self.sd)


class LognormalWTP(_Spec):
    """WTP lognormal: log(WTP) is normal with mean ``mean`` and sd ``sigma``."""

    distribution: Literal["lognormal"]
    mean: float = Field(0.0, description="Mean of log(WTP).")
    sigma: float = Field(0.5, gt=0, description="Standard deviation of log(WTP).")

    def frozen(self) -> Any:
        return stats.lognorm(s=self.sigma, scale=float(np.exp(self.mean)))


WTP = Annotated[ConstantWTP | UniformWTP | NormalWTP | LognormalWTP, Field(discriminator="distribution")]


# --- demand shocks --------------------------------------------------------------------------------


class SinusoidalShock(_Spec):
    """Seasonality: arrival probability × (1 + amplitude · sin(2π (step + phase) / period))."""

    kind: Literal["sinusoidal"]
    amplitude: float = Field(0.2, ge=0, le=1, description="Relative swing of the arrival rate.")
    period: int = Field(52, gt=0, description="Steps per cycle.")
    phase: float = Field(0.0, description="Shift of the cycle, in steps.")

    def arrival_factor(self, step: int) -> float:
        return 1.0 + self.amplitude * float(np.sin(2 * np.pi * (step + self.phase) / self.period))

    def wtp_shift(self, step: int) -> float:
        return 0.0


class StepShock(_Spec):
    """A demand shock from step ``at`` (until ``until``, exclusive): scales arrivals, shifts WTP."""

    kind: Literal["step"]
    at: int = Field(..., ge=0, description="First step of the shock.")
    until: int | None = Field(None, gt=0, description="Step at which it ends (never when omitted).")
    arrival_factor_: float = Field(1.0, ge=0, alias="arrival_factor", description="Arrival multiplier.")
    wtp_shift_: float = Field(0.0, alias="wtp_shift", description="Added to every consumer's WTP.")

    @model_validator(mode="after")
    def _ordered(self) -> StepShock:
        if self.until is not None and self.until <= self.at:
            raise ValueError(f"until ({self.until}) must be after at ({self.at})")
        return self

    def _on(self, step: int) -> bool:
        return step >= self.at and (self.until is None or step < self.until)

    def arrival_factor(self, step: int) -> float:
        return self.arrival_factor_ if self._on(step) else 1.0

    def wtp_shift(self, step: int) -> float:
        return self.wtp_shift_ if self._on(step) else 0.0


Shock = Annotated[SinusoidalShock | StepShock, Field(discriminator="kind")]


class Consumers(_Spec):
    """The consumer population: size, willingness to pay, taste shocks and arrivals."""

    size: int = Field(10_000, gt=0, description="Number of consumers (market size).")
    wtp: WTP = Field(default_factory=lambda: ConstantWTP(distribution="constant"), description="WTP distribution.")
    mu: float = Field(0.25, ge=0, description="Scale of the Gumbel taste shocks (0 = none; > 0 = logit).")
    outside_value: float = Field(0.0, description="Value a0 of not buying (the outside option).")
    arrival: float = Field(1.0, gt=0, le=1, description="Probability that a consumer shops in a step.")
    shocks: list[Shock] = Field(default_factory=list, description="Seasonality and demand shocks.")

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
    quadrature: int = Field(256, gt=0, description="WTP nodes for the expected mode (1 when WTP is constant).")


# --- social network -------------------------------------------------------------------------------


class WattsStrogatz(_Spec):
    kind: Literal["watts_strogatz"]
    k: int = Field(6, ge=2, description="Each node's neighbours in the ring before rewiring.")
    p: float = Field(0.1, ge=0, le=1, description="Rewiring probability.")


class BarabasiAlbert(_Spec):
    kind: Literal["barabasi_albert"]
    m: int = Field(3, ge=1, description="Edges each new node attaches with.")


class ErdosRenyi(_Spec):
    kind: Literal["erdos_renyi"]
    mean_degree: float = Field(6.0, gt=0, description="Expected number of neighbours.")


class EdgeList(_Spec):
    kind: Literal["edge_list"]
    path: str = Field(..., description="Whitespace-separated 'u v' lines, nodes 0..size-1; relative to the scenario.")


Graph = Annotated[WattsStrogatz | BarabasiAlbert | ErdosRenyi | EdgeList, Field(discriminator="kind")]


class Network(_Spec):
    """Word of mouth: consumers consider only sellers they know; buyers tell their neighbours."""

    graph: Graph = Field(..., description="The social graph (networkx generator or edge-list file).")
    initial_awareness: float = Field(0.2, ge=0, le=1, description="Chance a consumer knows a seller at the start.")
    spread: float = Field(0.3, ge=0, le=1, description="Chance per step a buyer makes a neighbour aware of its seller.")
    decay: float = Field(
        0.0, ge=0, le=1, description="Chance per step a consumer forgets a seller it did not buy from."
    )


# --- sellers --------------------------------------------------------------------------------------


class Restock(_Spec):
    """Restock rule: order up to ``up_to`` every ``every`` steps, or when stock falls to ``reorder_point``."""

    up_to: float = Field(..., gt=0, description="Order-up-to level.")
    every: int | None = Field(None, gt=0, description="Periodic review: restock every this many steps.")
    reorder_point: float | None = Field(None, ge=0, description="Continuous review: restock when stock ≤ this.")

    @model_validator(mode="after")
    def _one_rule(self) -> Restock:
        if (self.every is None) == (self.reorder_point is None):
            raise ValueError("give exactly one of 'every' or 'reorder_point'")
        return self


class Inventory(_Spec):
    """Finite stock: sales draw it down, the restock rule refills it, holding it costs money."""

    initial: float = Field(..., ge=0, description="Units in stock at step 0.")
    restock: Restock | None = Field(None, description="How stock is refilled (never, when omitted).")
    holding_cost: float = Field(0.0, ge=0, description="Cost per unit held at the end of a step.")


class Seller(_Spec):
    """One seller, or a group of identical ones with ``count``."""

    name: str = Field(..., min_length=1, description="Display name (groups get _1, _2, … appended).")
    strategy: str = Field(..., description="Registered strategy name (see `marketsim plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters of the strategy.")
    count: int = Field(1, ge=1, description="Number of identical sellers this entry declares.")
    cost: float = Field(1.0, ge=0, description="Marginal cost per unit.")
    quality: float = Field(2.0, description="Brand/quality term a_j added to every consumer's value.")
    price_min: float = Field(0.0, ge=0, description="Lowest price the seller may post.")
    price_max: float = Field(10.0, gt=0, description="Highest price the seller may post.")
    initial_price: float | None = Field(None, ge=0, description="Price 'last posted' at step 0 (default: midpoint).")
    capacity: float | None = Field(None, gt=0, description="Most units it can sell in one step (unlimited if omitted).")
    inventory: Inventory | None = Field(None, description="Finite stock (unlimited if omitted).")

    @model_validator(mode="after")
    def _bounds(self) -> Seller:
        if self.price_max < self.price_min:
            raise ValueError(f"price_max ({self.price_max}) is below price_min ({self.price_min})")
        if self.initial_price is not None and not self.price_min <= self.initial_price <= self.price_max:
            raise ValueError(f"initial_price {self.initial_price} is outside [{self.price_min}, {self.price_max}]")
        return self

    @property
    def start_price(self) -> float:
        """The price treated as last posted before step 0."""
        return self.initial_price if self.initial_price is not None else (self.price_min + self.price_max) / 2


class Scenario(_Spec):
    """A market: consumers, how demand is realised, an optional social network and the sellers."""

    name: str = Field(..., min_length=1, description="Short name of the scenario.")
    description: str = Field("", description="What the scenario shows.")
    seed: int = Field(0, ge=0, description="Root seed: the same seed gives the same run.")
    steps: int = Field(1000, gt=0, description="Steps to simulate.")
    consumers: Consumers = Field(default_factory=Consumers, description="The consumer population.")
    demand: Demand = Field(default_factory=Demand, description="Sampled or expected demand.")
    network: Network | None = Field(None, description="Optional word-of-mouth network.")
    sellers: list[Seller] = Field(..., min_length=1, description="Sellers, one by one or as groups.")

    @model_validator(mode="after")
    def _unique_names(self) -> Scenario:
        names = [s.name for s in self.expanded_sellers()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"seller names must be unique; repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _network_needs_agents(self) -> Scenario:
        if self.network is not None and self.demand.mode == "expected":
            raise ValueError(
                "a word-of-mouth network needs demand.mode 'agents': awareness belongs to individual consumers"
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
        """A validated copy with top-level fields replaced (``steps``, ``seed`` from the CLI)."""
        return Scenario.model_validate({**self.model_dump(by_alias=True), **fields})


def _pydantic_problems(exc: ValidationError, located: Located, prefix: tuple = ()) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"missing required field {loc[-1]!r}"
        elif err["type"] == "union_tag_invalid":
            msg = msg.replace("Input tag", "value")
        problems.append(located.problem(loc, msg))
    return problems


def _strategy_problems(scenario: Scenario, located: Located, registry: Registry) -> list[Problem]:
    problems = []
    for i, seller in enumerate(scenario.sellers):
        if seller.strategy not in registry:
            available = ", ".join(registry.names()) or "(none installed)"
            problems.append(
                located.problem(
                    ("sellers", i, "strategy"), f"unknown strategy {seller.strategy!r}; available: {available}"
                )
            )
            continue
        problems += _param_problems(seller, i, registry, located)
    return problems


def _param_problems(seller: Seller, i: int, registry: Registry, located: Located) -> list[Problem]:
    accepted = {p.name: p for p in parameters(registry.get(seller.strategy).cls)}
    listing = ", ".join(f"{p.name}={p.default!r}" if not p.required else p.name for p in accepted.values()) or "none"
    problems = []
    for key, value in seller.params.items():
        where = ("sellers", i, "params", key)
        if key not in accepted:
            problems.append(
                located.problem(
                    where, f"unknown parameter {key!r} for strategy {seller.strategy!r}; accepted: {listing}"
                )
            )
            continue
        try:
            TypeAdapter(accepted[key].annotation).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            problems.append(located.problem(where, f"bad value {value!r} for {seller.strategy}.{key}: {reason}"))
    for p in accepted.values():
        if p.required and p.name not in seller.params:
            problems.append(
                located.problem(("sellers", i, "params"), f"strategy {seller.strategy!r} needs parameter {p.name!r}")
            )
    if not problems:
        try:  # the strategy's own checks (ranges, consistency) also surface at validation time
            registry.create(seller.strategy, seller.params)
        except (ValueError, TypeError) as exc:
            problems.append(
                located.problem(
                    ("sellers", i, "params"), f"strategy {seller.strategy!r} rejected its parameters: {exc}"
                )
            )
    return problems


def _file_problems(scenario: Scenario, located: Located, base_dir: Path) -> list[Problem]:
    graph = scenario.network.graph if scenario.network else None
    if isinstance(graph, EdgeList) and not (base_dir / graph.path).is_file():
        return [located.problem(("network", "graph", "path"), f"edge-list file {graph.path!r} not found in {base_dir}")]
    return []


def parse_scenario(
    text: str, source: str = "<string>", registry: Registry | None = None, base_dir: Path | None = None
) -> Scenario:
    """Validate scenario YAML text; raise ScenarioError listing each problem as file:line:col."""
    located = load_yaml(text, source)
    if not isinstance(located.data, dict):
        raise SourceError([Problem(source, 1, 1, "", "a scenario must be a YAML mapping (key: value lines)")])
    try:
        scenario = Scenario.model_validate(located.data)
    except ValidationError as exc:
        raise SourceError(_pydantic_problems(exc, located)) from None
    registry = registry if registry is not None else default_registry()
    problems = _strategy_problems(scenario, located, registry)
    problems += _file_problems(scenario, located, base_dir or Path.cwd())
    if problems:
        raise SourceError(problems)
    return _resolve_paths(scenario, base_dir or Path.cwd())


def _resolve_paths(scenario: Scenario, base_dir: Path) -> Scenario:
    """Make file paths inside the scenario absolute, so a run does not depend on the working directory."""
    if scenario.network is None or not isinstance(scenario.network.graph, EdgeList):
        return scenario
    graph = scenario.network.graph.model_copy(update={"path": str((base_dir / scenario.network.graph.path).resolve())})
    return scenario.model_copy(update={"network": scenario.network.model_copy(update={"graph": graph})})


def load_scenario(path: str | Path, registry: Registry | None = None) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError([Problem(str(path), 1, 1, "", f"cannot read file: {exc.strerror or exc}")]) from None
    return parse_scenario(text, str(path), registry, path.parent)


def scenario_schema() -> dict[str, Any]:
    """JSON Schema of the scenario format."""
    return Scenario.model_json_schema(by_alias=True)
