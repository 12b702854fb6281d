"""A scenario's market with some seats handed to outside agents: the engine under every environment.

``SeatedMarket`` steps ``marketsim.market.engine.Market``. The agents' seats post the prices they are given;
every other seat keeps playing its scenario strategy, set up, priced and taught exactly as the Mesa model
does it, with the same random streams (the generator ``default_rng(seed)`` spawns one child per seat, then
draws the consumers), so a seeded env run and ``marketsim run`` with the same prices are step-for-step equal.
No Gymnasium or PettingZoo here: the wrappers in ``parallel``, ``gym`` and ``vector`` add the APIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from marketsim.config.errors import did_you_mean
from marketsim.config.scenario import Scenario, SinusoidalShock
from marketsim.envs.layout import ActionMap, ObservationLayout
from marketsim.market.engine import Market, StepResult
from marketsim.market.model import StrategyError
from marketsim.market.population import population
from marketsim.registry import Registry, default_registry
from marketsim.seeds import derive, strategy_generators
from marketsim.strategy import Observation, Prefetching, Strategy, checked_price

__all__ = ["EnvError", "EnvOptions", "Episodes", "SeatedMarket", "load"]

REWARDS = ("profit", "profit_gain")


class EnvError(ValueError):
    """An environment cannot be built as asked (unknown seller, bad option); the message says what is valid."""


@dataclass(frozen=True)
class EnvOptions:
    """What every env takes besides the scenario: who the agents are and what they act and earn."""

    agents: tuple[str, ...] | None = None  # seller names (None: every seller)
    action: str = "discrete"
    reward: str = "profit"
    max_steps: int | None = None  # None: the scenario's ``steps``
    grid_size: int = 15
    xi: float = 0.1
    freeze_rivals: bool = False  # rivals act but do not learn


def load(
    scenario_or_path: Scenario | str | Path,
    registry: Registry | None = None,
    agents: Sequence[str] | Literal["all"] | None = None,
) -> tuple[Scenario, Registry]:
    """The scenario (validated like ``marketsim run`` does, located errors on a bad file) and the registry.

    The seats of ``agents`` (a list of seller names, or ``"all"``) are priced by the caller, so their own
    strategies are never built: a file read here hands those seats to ``fixed_price`` before validation, and a
    seat may name a strategy whose extra is not installed (``deep_duopoly.yaml``'s ``dqn`` learner without torch).
    With ``agents`` None the file is read as it is.
    """
    registry = registry if registry is not None else default_registry()
    if isinstance(scenario_or_path, Scenario):
        return scenario_or_path, registry
    from marketsim.config.validate import load_scenario, scenario_from_located  # the YAML reader, only for paths
    from marketsim.config.yamlsource import load_yaml, read_source

    path = Path(scenario_or_path)
    located = load_yaml(read_source(path), str(path))
    if agents is not None and isinstance(located.data, dict) and _hand_over(located.data, agents):
        return scenario_from_located(located, registry, path.parent), registry
    return load_scenario(path, registry), registry  # nothing handed over (or not a mapping: its own error)


def first_seller(scenario_or_path: Scenario | str | Path, registry: Registry | None = None) -> str:
    """The name of the scenario's first seller (its first seat), read without building or checking strategies."""
    if isinstance(scenario_or_path, Scenario):
        return scenario_or_path.expanded_sellers()[0].name
    from marketsim.config.yamlsource import load_yaml, read_source

    data = load_yaml(read_source(Path(scenario_or_path)), str(scenario_or_path)).data
    seats = _seats(data) if isinstance(data, dict) else []
    if seats:
        return seats[0][1][0]
    return load(scenario_or_path, registry)[0].expanded_sellers()[0].name  # malformed: its own located error


def _hand_over(data: dict, agents: Sequence[str] | Literal["all"]) -> bool:
    """Give the agents' seats (in a scenario file's data) the stand-in strategy; whether any seat was handed over.

    An agent that names no seller is refused here, before the other seats are validated (EnvError, did you mean).
    """
    seats = _seats(data)
    every = [n for _, names in seats for n in names]
    for agent in () if agents == "all" else agents:
        if agent not in every:
            raise EnvError(_unknown_seller(agent, every))
    handed = False
    for seller, names in seats:
        if agents == "all" or all(n in agents for n in names):
            seller["strategy"], handed = "fixed_price", True
            seller.pop("params", None)
    return handed


def _seats(data: dict) -> list[tuple[dict, list[str]]]:
    """Each well-formed seller entry of a scenario file's data with the seat names it expands to (as
    ``Scenario.expanded_sellers`` names them); malformed entries are skipped, left for validation to report."""
    seats = []
    for seller in data.get("sellers") or ():
        count = seller.get("count", 1) if isinstance(seller, dict) else None
        if not isinstance(count, int) or count < 1 or not isinstance(seller.get("name"), str):
            continue
        names = [seller["name"]] if count == 1 else [f"{seller['name']}_{k}" for k in range(1, count + 1)]
        seats.append((seller, names))
    return seats


def _unknown_seller(name: str, names: Sequence[str]) -> str:
    return f"no seller named {name!r}{did_you_mean(name, names)}; sellers: {', '.join(names)}"


class Episodes:
    """Each episode's seed: the one given to ``reset``, else the scenario's seed for the first episode and then
    seeds derived from the last given one and the episode count (a run of unseeded resets is reproducible)."""

    def __init__(self, root: int) -> None:
        self.root, self.count = root, 0

    def next(self, seed: int | None) -> int:
        """The seed of the episode a ``reset(seed)`` opens."""
        if seed is not None:
            self.root, self.count = int(seed), 1
            return self.root
        self.count += 1
        return self.root if self.count == 1 else derive(self.root, "episode", self.count)


class SeatedMarket:
    """The market, the agents' seats (action maps and observation layouts) and the rivals' strategies."""

    def __init__(self, scenario: Scenario, registry: Registry, options: EnvOptions) -> None:
        self.scenario, self.registry, self.options = scenario, registry, options
        self.market = Market(scenario, registry)
        names = [s.name for s in self.market.specs]
        self.agents = _checked_agents(options, names)
        self.seats = {a: names.index(a) for a in self.agents}
        self.max_steps = options.max_steps if options.max_steps is not None else scenario.steps
        first = self.market.observations()  # the opening books: start prices, initial stock
        seasons = [(s.period, s.phase) for s in scenario.consumers.shocks if isinstance(s, SinusoidalShock)]
        self.layouts = {
            a: ObservationLayout.for_seller(self.market.info(i), first[i], seasons) for a, i in self.seats.items()
        }
        self.actions = {
            a: ActionMap.for_seller(self.market.info(i), options.action, options.grid_size, options.xi)
            for a, i in self.seats.items()
        }
        self.rivals: dict[int, Strategy] = {}
        self.observations: tuple[Observation, ...] = first

    @property
    def names(self) -> list[str]:
        """Every seller's name, in seat order."""
        return [s.name for s in self.market.specs]

    def reset(self, seed: int) -> None:
        """Open the market afresh: rivals rebuilt and set up, consumers drawn, all from ``seed``."""
        rng = np.random.default_rng(seed)
        children = strategy_generators(rng, len(self.market.specs))
        self.rivals = {}
        for i, spec in enumerate(self.market.specs):
            if i in self.seats.values():
                continue
            try:
                strategy = self.registry.create(spec.strategy, spec.params)
                strategy.setup(self.market.info(i), children[i])
                if self.options.freeze_rivals:
                    strategy.set_training(False)
            except Exception as exc:
                raise StrategyError(i, spec.name, 0, exc) from exc
            self.rivals[i] = strategy
        consumers = population(self.scenario, self.market.demand.model, rng)
        self.observations = self.market.reset(consumers=consumers)

    def step(self, agent_prices: Mapping[str, float]) -> StepResult:
        """One period: the agents' prices and the rivals' own, the market clears, the rivals learn."""
        last = self.market.state.prices
        prices = [float(p) for p in last]  # a seat without a price (a finished agent) holds its last one
        for agent, price in agent_prices.items():
            prices[self.seats[agent]] = price
        for i, strategy in self.rivals.items():  # slow outside calls (Prefetching) all start before any is awaited
            if isinstance(strategy, Prefetching):
                self._blamed(i, lambda s=strategy, o=self.observations[i]: s.prefetch(o))
        for i, strategy in self.rivals.items():
            obs = self.observations[i]
            prices[i] = self._blamed(i, lambda s=strategy, o=obs: checked_price(s.name, s.price(o), o.step))
        result = self.market.step(prices)
        following = self.market.observations()
        if not self.options.freeze_rivals and self.rivals:
            outcomes = self.market.outcomes(result, following)
            for i, strategy in self.rivals.items():
                self._blamed(i, lambda s=strategy, out=outcomes[i]: s.learn(out))
        self.observations = following
        return result

    def _blamed(self, seat: int, call):  # noqa: ANN001, ANN202 - a thunk of strategy code
        """Run a rival's code; anything it raises becomes a StrategyError naming the seat and step."""
        try:
            return call()
        except Exception as exc:
            raise StrategyError(seat, self.market.specs[seat].name, self.market.t, exc) from exc

    def observe(self, agent: str) -> np.ndarray:
        """The agent's observation vector now."""
        return self.layouts[agent].encode(self.observations[self.seats[agent]])

    def sold_out(self, agent: str) -> bool:
        """Whether the agent's stock ran out for good (finite, empty and never restocked)."""
        spec = self.market.specs[self.seats[agent]]
        stock = float(self.market.state.inventory[self.seats[agent]])
        return spec.inventory is not None and spec.inventory.restock is None and stock <= 0

    def reward(self, agent: str, result: StepResult) -> float:
        """The agent's reward for the step: its profit, or its profit gain Δ over Nash toward monopoly."""
        i = self.seats[agent]
        if self.options.reward == "profit":
            return float(result.profits[i])
        return float(self.market.benchmarks.profit_gain(result.profits)[i])

    def info(self, result: StepResult | None) -> dict:
        """What every agent's info carries: each seller's price, units, profit and Δ, and consumer surplus.

        At a reset (``result`` None) nothing has been sold yet: Δ is NaN rather than the −π_N/(π_M − π_N) of a
        zero profit, so averages over infos are not pulled down by the opening.
        """
        state = result if result is not None else self.market.state
        gain = self.market.benchmarks.profit_gain(state.profits)
        if result is None:
            gain = np.full_like(gain, np.nan)
        names = self.names
        return {
            "step": self.market.t,
            "prices": dict(zip(names, state.prices.tolist())),
            "units": dict(zip(names, state.units.tolist())),
            "profits": dict(zip(names, state.profits.tolist())),
            "profit_gain": dict(zip(names, gain.tolist())),
            "consumer_surplus": float(state.consumer_surplus),
        }

    def bounds(self, agent: str) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest value of each feature of the agent's vector in this scenario."""
        layout, i = self.layouts[agent], self.seats[agent]
        specs, size = self.market.specs, float(self.scenario.consumers.size)
        spec = specs[i]
        to_scale = [(s.price_min - layout.price_low) / layout.price_span for s in specs]
        from_scale = [(s.price_max - layout.price_low) / layout.price_span for s in specs]
        order = [i, *(k for k in range(len(specs)) if k != i)]
        low = [to_scale[k] for k in order] + [0.0]
        high = [from_scale[k] for k in order] + [size / layout.unit_scale]
        stock_max = _stock_max(spec)
        holding = (spec.inventory.holding_cost * stock_max) if spec.inventory else 0.0
        low.append((min(0.0, spec.price_min - spec.cost) * size - holding) / layout.profit_scale)
        high.append(max(0.0, spec.price_max - spec.cost) * size / layout.profit_scale)
        if layout.stock_scale is not None:
            low.append(0.0)
            high.append(stock_max / layout.stock_scale)
        if layout.capacity is not None:
            low.append(layout.capacity)
            high.append(layout.capacity)
        low += [-1.0, -1.0] * len(layout.seasons)
        high += [1.0, 1.0] * len(layout.seasons)
        lo, hi = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
        slack = 1e-5 * np.maximum(1.0, np.abs(np.stack([lo, hi]))).max(axis=0)  # float32 rounding at the edges
        return (lo - slack).astype(np.float32), (hi + slack).astype(np.float32)


def _stock_max(spec) -> float:  # noqa: ANN001 - a config.scenario.Seller
    """The most stock a seller can hold: its initial stock or its restocking level."""
    if spec.inventory is None:
        return 0.0
    up_to = spec.inventory.restock.up_to if spec.inventory.restock else 0.0
    return float(max(spec.inventory.initial, up_to))


def _checked_agents(options: EnvOptions, names: Sequence[str]) -> tuple[str, ...]:
    """The agents asked for, checked against the sellers (and the other options checked too)."""
    if options.reward not in REWARDS:
        raise EnvError(f"reward must be one of {', '.join(REWARDS)}; got {options.reward!r}")
    if options.action not in ("discrete", "continuous"):
        raise EnvError(f"action must be 'discrete' or 'continuous'; got {options.action!r}")
    if options.max_steps is not None and options.max_steps < 1:
        raise EnvError(f"max_steps must be >= 1; got {options.max_steps}")
    agents = tuple(names) if options.agents is None else tuple(options.agents)
    for a in agents:
        if a not in names:
            raise EnvError(_unknown_seller(a, names))
    if len(set(agents)) != len(agents) or not agents:
        raise EnvError(f"agents must be distinct seller names, at least one; got {list(agents)}")
    return agents
