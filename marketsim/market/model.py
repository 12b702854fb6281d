"""The Mesa market model: sellers post prices, the market clears, sellers settle, strategies learn.

One ``Seller`` agent per seller holds a strategy object; one ``ConsumerPopulation`` agent holds every
consumer as numpy arrays. All randomness comes from the model's ``rng`` (seeded through Mesa).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mesa
import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.config.scenario import Seller as SellerSpec
from marketsim.exceptions import PortableError
from marketsim.market import consumers, network
from marketsim.market.economics import Benchmarks, ExpectedDemand, compute_benchmarks
from marketsim.observers import Observer, ObserverError, RunInfo, StepRecord
from marketsim.registry import Registry, default_registry
from marketsim.strategy import MarketInfo, Observation, Outcome, Strategy, checked_price


class StrategyError(PortableError, RuntimeError):
    """A seller's strategy failed (raised, or returned an invalid price); carries the seat and step."""

    def __init__(self, seat: int, seller: str, step: int, error: Exception) -> None:
        super().__init__(f"seller {seller!r} (seat {seat}) failed at step {step}: {type(error).__name__}: {error}")
        self.seat, self.seller, self.step, self.error = seat, seller, step, error


@dataclass(frozen=True, slots=True)
class Draws:
    """The random numbers one step of shopping uses, drawn in a fixed order from the model's rng."""

    active: np.ndarray | None  # indices of shoppers, None when everyone shops
    u: np.ndarray  # (n_shoppers,) uniforms for the first choice
    order: np.ndarray | None  # random queue of shoppers, None when no seller can run out


def draw_shopping(rng: np.random.Generator, n: int, arrival: float, limited: bool) -> Draws:
    """Draw who shops, their choice uniforms and the queue order (shared with the reference model).

    Gumbel keys for shoppers who may be turned away are drawn afterwards, only when needed.
    """
    active = np.flatnonzero(rng.random(n) < arrival) if arrival < 1.0 else None
    m = n if active is None else len(active)
    u = rng.random(m)
    order = rng.permutation(m) if limited else None
    return Draws(active, u, order)


def wtp_population(scenario: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Each consumer's base WTP, drawn from the scenario's distribution."""
    dist = scenario.consumers.wtp.frozen()
    size = scenario.consumers.size
    if dist is None:
        return np.full(size, scenario.consumers.wtp.value)
    return dist.rvs(size=size, random_state=rng)


def wtp_nodes(scenario: Scenario) -> np.ndarray:
    """Quadrature nodes of the WTP distribution (quantile midpoints): the continuum population."""
    dist = scenario.consumers.wtp.frozen()
    if dist is None:
        return np.array([scenario.consumers.wtp.value])
    k = scenario.demand.quadrature
    return dist.ppf((np.arange(k) + 0.5) / k)


def choice_model(scenario: Scenario, registry: Registry | None = None) -> consumers.ChoiceModel:
    """The scenario's consumer-choice model, built from its registered class with ``mu`` and its params."""
    spec = scenario.consumers.choice
    registry = registry if registry is not None else default_registry()
    return registry.extension("choice model", spec.model).cls(mu=scenario.consumers.mu, **spec.params)


def expected_demand(scenario: Scenario, registry: Registry | None = None) -> ExpectedDemand:
    """The scenario's noise-free demand at its base arrival rate (no shocks, no capacity, full awareness)."""
    sellers = scenario.expanded_sellers()
    nodes = wtp_nodes(scenario)
    c = scenario.consumers
    return ExpectedDemand(
        quality=np.array([s.quality for s in sellers]),
        costs=np.array([s.cost for s in sellers]),
        outside=c.outside_value,
        mu=c.mu,
        wtp=nodes,
        mass=np.full(len(nodes), c.size * c.arrival / len(nodes)),
        survival=None if (dist := c.wtp.frozen()) is None else (lambda t: float(dist.sf(t))),
        choice=choice_model(scenario, registry),
    )


def market_info(
    i: int, demand: ExpectedDemand, benchmarks: Benchmarks, price_min: np.ndarray, price_max: np.ndarray
) -> MarketInfo:
    """The facts seller ``i``'s strategy is set up with (shared by the model and the batched engine)."""
    return MarketInfo(
        index=i,
        n_sellers=len(price_min),
        costs=tuple(float(c) for c in demand.costs),
        price_min=float(price_min[i]),
        price_max=float(price_max[i]),
        nash_prices=benchmarks.nash.prices,
        monopoly_prices=benchmarks.monopoly.prices,
        expected_profit=demand.profits,
    )


class Seller(mesa.Agent):
    """A seller: cost, price bounds, optional capacity and inventory, and the strategy it holds."""

    def __init__(self, model: MarketModel, spec: SellerSpec, index: int, strategy: Strategy) -> None:
        super().__init__(model)
        self.spec, self.index, self.strategy = spec, index, strategy
        self.name, self.cost, self.quality = spec.name, spec.cost, spec.quality
        self.capacity = spec.capacity if spec.capacity is not None else math.inf
        self.inventory = spec.inventory.initial if spec.inventory else math.inf
        self.price = spec.start_price
        self.units = self.revenue = self.profit = self.holding_cost = 0.0

    @property
    def limit(self) -> float:
        """Most units it can sell this step."""
        return min(self.capacity, self.inventory)

    def observe(self, step: int, competitor_prices: tuple[float, ...]) -> Observation:
        """The frozen observation its strategy prices from."""
        return Observation(
            step=step,
            own_price=self.price,
            cost=self.cost,
            last_units=self.units,
            last_profit=self.profit,
            inventory=self.inventory,
            capacity=self.capacity,
            competitor_prices=competitor_prices,
            price_min=self.spec.price_min,
            price_max=self.spec.price_max,
        )

    def post_price(self, obs: Observation) -> float:
        """Ask the strategy for a price, check it, and clip it to the allowed range."""
        raw = self.strategy.price(obs)
        price = checked_price(self.strategy.name, raw, obs.step)
        self.price = min(max(price, self.spec.price_min), self.spec.price_max)
        return self.price

    def settle(self, units: float) -> None:
        """Book the step's sales: revenue, cost, inventory, holding cost, profit, then restock."""
        self.units = units
        self.revenue = self.price * units
        self.inventory -= units
        held = self.inventory if math.isfinite(self.inventory) else 0.0
        self.holding_cost = self.spec.inventory.holding_cost * held if self.spec.inventory else 0.0
        self.profit = self.revenue - self.cost * units - self.holding_cost
        self._restock()

    def _restock(self) -> None:
        rule = self.spec.inventory.restock if self.spec.inventory else None
        if rule is None:
            return
        due = self.model.steps % rule.every == 0 if rule.every is not None else self.inventory <= rule.reorder_point
        if due:
            self.inventory = max(self.inventory, rule.up_to)

    def outcome(self, step: int, competitor_prices: tuple[float, ...], next_obs: Observation) -> Outcome:
        """What the strategy learns from after settlement."""
        return Outcome(
            step=step,
            price=self.price,
            units=self.units,
            revenue=self.revenue,
            variable_cost=self.cost * self.units,
            holding_cost=self.holding_cost,
            profit=self.profit,
            inventory=self.inventory,
            competitor_prices=competitor_prices,
            next_observation=next_obs,
        )


class ConsumerPopulation(mesa.Agent):
    """Every consumer as arrays: base WTP, per-node mass, and (with a network) awareness of sellers."""

    def __init__(self, model: MarketModel, scenario: Scenario) -> None:
        super().__init__(model)
        self.spec = scenario.consumers
        self.choice = model.demand.choice  # the scenario's ChoiceModel, built once by the model
        self.expected = scenario.demand.mode == "expected"
        self.wtp = wtp_nodes(scenario) if self.expected else wtp_population(scenario, model.rng)
        self.aware: np.ndarray | None = None
        self.adjacency = None
        self.net = scenario.network
        if self.net is not None:
            graph = network.build_graph(self.net.graph, len(self.wtp), model.rng)
            self.adjacency = network.adjacency(graph, len(self.wtp))
            n_sellers = len(scenario.expanded_sellers())
            self.aware = network.initial_awareness(n_sellers, len(self.wtp), self.net.initial_awareness, model.rng)
        self.shoppers = 0.0
        self.buyers = 0.0
        self.surplus = 0.0

    def shop(self, x: np.ndarray, limits: np.ndarray, step: int) -> np.ndarray:
        """Clear the market for seller values ``x = quality - price``; return units sold per seller."""
        arrival = self.spec.arrival_at(step)
        w = self.wtp + self.spec.wtp_shift_at(step)
        if self.expected:
            mass = np.full(len(w), self.spec.size * arrival / len(w))
            units, self.surplus = consumers.clear_expected(w, mass, x, self.spec.outside_value, self.choice, limits)
            self.shoppers, self.buyers = float(mass.sum()), float(units.sum())
            return units
        rng = self.model.rng
        draws = draw_shopping(rng, len(w), arrival, bool(np.isfinite(limits).any()))
        who = draws.active
        allowed = None if self.aware is None else (self.aware if who is None else self.aware[:, who])
        result = consumers.clear_agents(
            w if who is None else w[who],
            x,
            self.spec.outside_value,
            self.choice,
            limits,
            draws.u,
            draws.order,
            allowed,
            keys=lambda m: consumers.ranking_uniforms(rng, m, len(x) + 1),
        )
        bought = result.choice >= 0
        self.shoppers, self.buyers = float(len(result.choice)), float(bought.sum())
        self.surplus = float(result.surplus.sum())
        if self.net is not None:
            buyers = np.flatnonzero(bought) if who is None else who[bought]
            network.spread_awareness(
                self.aware,
                buyers,
                result.choice[bought],
                self.adjacency,
                self.net.spread,
                self.net.decay,
                self.model.rng,
            )
        return result.units


class MarketModel(mesa.Model):
    """A market of competing sellers and a consumer population, built from a validated Scenario."""

    population_cls: type[ConsumerPopulation] = ConsumerPopulation  # tests swap in a per-consumer reference
    tracker: Callable[[int, int], None] | None = None  # told (seat, step) before strategy code runs
    learning: bool = True  # False in evaluation phases: strategies act but do not learn

    def __init__(
        self,
        scenario: Scenario,
        registry: Registry | None = None,
        seed: int | None = None,
        tracker: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__(rng=scenario.seed if seed is None else seed)
        self.config = scenario  # the validated Scenario; Mesa >= 3.4 reserves `Model.scenario` for its own
        self.tracker = tracker
        registry = registry if registry is not None else default_registry()
        specs = scenario.expanded_sellers()
        self.demand = expected_demand(scenario, registry)
        self.price_min = np.array([s.price_min for s in specs])
        self.price_max = np.array([s.price_max for s in specs])
        self.benchmarks: Benchmarks = compute_benchmarks(self.demand, self.price_min, self.price_max)
        strategy_rngs = self.rng.spawn(len(specs))
        self.sellers: list[Seller] = []
        for i, spec in enumerate(specs):
            if self.tracker is not None:  # building and setting up a strategy is its own code running too
                self.tracker(i, 0)
            try:  # a strategy that cannot be built or set up is that seller's fault, like a bad price
                strategy = registry.create(spec.strategy, spec.params)
                strategy.setup(self._market_info(i), strategy_rngs[i])
            except Exception as exc:
                raise StrategyError(i, spec.name, 0, exc) from exc
            self.sellers.append(Seller(self, spec, i, strategy))
        if self.tracker is not None:
            self.tracker(-1, -1)
        self.population = self.population_cls(self, scenario)
        self.learners = [s for s in self.sellers if hasattr(s.strategy, "converged")]
        self.observations = [s.observe(0, self._rivals(s, self._prices())) for s in self.sellers]
        self.datacollector = mesa.DataCollector(model_reporters=self._reporters())
        self.observers = self._start_observers(scenario, registry)

    def _start_observers(self, scenario: Scenario, registry: Registry) -> list[Observer]:
        """Build the scenario's observers and tell them what run they watch."""
        info = RunInfo(
            scenario=scenario.name,
            seed=scenario.seed,
            steps=scenario.steps,
            sellers=tuple(s.name for s in self.sellers),
            strategies=tuple(s.strategy.name for s in self.sellers),
        )
        observers = []
        for spec in scenario.observers:
            try:
                observer = registry.extension("observer", spec.observer).cls(**spec.params)
                observer.start(info)
            except Exception as exc:
                raise ObserverError(spec.observer, 0, exc) from exc
            observers.append(observer)
        return observers

    def _notify(self, step: int) -> None:
        """Hand every observer the frozen record of the step just completed."""
        if not self.observers:
            return
        pop = self.population
        record = StepRecord(
            step=step,
            prices=tuple(s.price for s in self.sellers),
            units=tuple(s.units for s in self.sellers),
            profits=tuple(s.profit for s in self.sellers),
            inventory=tuple(s.inventory for s in self.sellers),
            shoppers=pop.shoppers,
            buyers=pop.buyers,
            consumer_surplus=pop.surplus,
        )
        for observer in self.observers:
            try:
                observer.on_step(record)
            except Exception as exc:
                raise ObserverError(observer.name, step, exc) from exc

    def finish_observers(self) -> dict[str, dict]:
        """Each observer's closing metrics, by name (for summary.json)."""
        out = {}
        for observer in self.observers:
            try:
                out[observer.name] = dict(observer.finish())
            except Exception as exc:
                raise ObserverError(observer.name, self.steps, exc) from exc
        return out

    def _market_info(self, i: int) -> MarketInfo:
        return market_info(i, self.demand, self.benchmarks, self.price_min, self.price_max)

    def _prices(self) -> np.ndarray:
        return np.array([s.price for s in self.sellers])

    @staticmethod
    def _rivals(seller: Seller, prices: np.ndarray) -> tuple[float, ...]:
        return tuple(float(p) for k, p in enumerate(prices) if k != seller.index)

    def step(self) -> None:
        """One period: post prices → clear the market → settle sellers → strategies learn → record."""
        step = self.steps - 1  # Mesa counts steps from 1 inside step()
        prices = self.post_prices()
        units = self.clear_market(prices, step)
        self.settle(units)
        self.learn(prices, step)
        self.datacollector.collect(self)
        self._notify(step)
        if self.learners and all(self._converged(s) for s in self.learners):
            self.running = False  # every learner's greedy policy has stopped changing

    def post_prices(self) -> np.ndarray:
        """Every seller posts a price from its current observation."""
        prices = []
        for seller, obs in zip(self.sellers, self.observations):
            with self._blame(seller, obs.step):
                prices.append(seller.post_price(obs))
        return np.array(prices)

    def _converged(self, seller: Seller) -> bool:
        with self._blame(seller, self.steps - 1):
            return bool(seller.strategy.converged)

    @contextmanager
    def _blame(self, seller: Seller, step: int) -> Iterator[None]:
        """Report which seller is about to run strategy code, and tag anything it raises with its seat.

        Afterwards the tracker is told (-1, -1): time spent outside strategy code is nobody's fault. A
        ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``, a budget timer) leaves the tracker on this seat,
        so that whoever catches it can still blame the seat.
        """
        if self.tracker is not None:
            self.tracker(seller.index, step)
        try:
            yield
        except Exception as exc:
            if self.tracker is not None:
                self.tracker(-1, -1)
            if isinstance(exc, StrategyError):
                raise
            raise StrategyError(seller.index, seller.name, step, exc) from exc
        if self.tracker is not None:
            self.tracker(-1, -1)

    def clear_market(self, prices: np.ndarray, step: int) -> np.ndarray:
        """Consumers shop at the posted prices; returns units sold per seller."""
        x = self.demand.quality - prices
        limits = np.array([s.limit for s in self.sellers])
        return self.population.shop(x, limits, step)

    def settle(self, units: np.ndarray) -> None:
        """Book sales, costs, inventory and profit for every seller."""
        for seller, q in zip(self.sellers, units):
            seller.settle(float(q))

    def learn(self, prices: np.ndarray, step: int) -> None:
        """Hand each strategy its outcome and next observation."""
        self.observations = []
        for seller in self.sellers:
            rivals = self._rivals(seller, prices)
            obs = seller.observe(step + 1, rivals)
            if self.learning:
                with self._blame(seller, step):
                    seller.strategy.learn(seller.outcome(step, rivals, obs))
            self.observations.append(obs)

    def set_learning(self, learning: bool) -> None:
        """Switch learning on or off (evaluation phases); strategies are told through ``set_training``."""
        self.learning = learning
        for seller in self.sellers:
            with self._blame(seller, self.steps):
                seller.strategy.set_training(learning)

    def _reporters(self) -> dict:
        pop = self.population
        reporters = {
            "step": lambda m: m.steps - 1,
            "shoppers": lambda m: pop.shoppers,
            "buyers": lambda m: pop.buyers,
            "consumer_surplus": lambda m: pop.surplus,
        }
        for s in self.sellers:
            reporters[f"{s.name}.price"] = lambda m, s=s: s.price
            reporters[f"{s.name}.units"] = lambda m, s=s: s.units
            reporters[f"{s.name}.revenue"] = lambda m, s=s: s.revenue
            reporters[f"{s.name}.profit"] = lambda m, s=s: s.profit
            reporters[f"{s.name}.inventory"] = lambda m, s=s: s.inventory
            reporters[f"{s.name}.share"] = lambda m, s=s: s.units / pop.shoppers if pop.shoppers else 0.0
        return reporters
