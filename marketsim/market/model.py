"""The Mesa market model, the driver of ``marketsim run``: strategies price, the market steps, strategies learn.

The step itself (clearing, settlement, restocking) is ``marketsim.market.engine.Market``; this model wraps
it in Mesa: one ``Seller`` agent per seat holds a strategy and shows its books, one ``ConsumerPopulation``
agent holds every consumer as numpy arrays, and a DataCollector records each step. All randomness comes
from the model's ``rng`` (seeded through Mesa), drawn in a fixed order. The names re-exported here
(``expected_demand``, ``market_info``, ``wtp_nodes``, ``draw_shopping``, …) live in the engine modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import mesa
import numpy as np
from scipy import sparse

from marketsim.config.scenario import Scenario
from marketsim.config.scenario import Seller as SellerSpec
from marketsim.exceptions import PortableError
from marketsim.market.economics import Benchmarks, ExpectedDemand, choice_model, expected_demand
from marketsim.market.engine import Market, StepResult, market_info
from marketsim.market.population import Draws, Sales, draw_shopping, population, wtp_nodes, wtp_population
from marketsim.observers import Observer, ObserverError, RunInfo, StepRecord
from marketsim.registry import Registry, default_registry
from marketsim.strategy import Converging, MarketInfo, Prefetching, Strategy, checked_price

__all__ = [
    "ConsumerPopulation",
    "Draws",
    "MarketModel",
    "Seller",
    "StrategyError",
    "choice_model",
    "draw_shopping",
    "expected_demand",
    "market_info",
    "wtp_nodes",
    "wtp_population",
]


class StrategyError(PortableError, RuntimeError):
    """A seller's strategy failed (raised, or returned an invalid price); carries the seat and step."""

    def __init__(self, seat: int, seller: str, step: int, error: Exception) -> None:
        super().__init__(f"seller {seller!r} (seat {seat}) failed at step {step}: {type(error).__name__}: {error}")
        self.seat, self.seller, self.step, self.error = seat, seller, step, error


class Seller(mesa.Agent):
    """A seller seat: its spec, the strategy it holds, and a view of its books in the market."""

    def __init__(self, model: MarketModel, spec: SellerSpec, index: int, strategy: Strategy) -> None:
        super().__init__(model)
        self.spec, self.index, self.strategy = spec, index, strategy
        self.name, self.cost, self.quality = spec.name, spec.cost, spec.quality
        self.capacity = spec.capacity if spec.capacity is not None else math.inf

    @property
    def price(self) -> float:
        """The price it posted last (its start price before the first step)."""
        return float(self.model.market.state.prices[self.index])

    @property
    def units(self) -> float:
        """Units sold in the last step."""
        return float(self.model.market.state.units[self.index])

    @property
    def revenue(self) -> float:
        """Revenue of the last step."""
        return float(self.model.market.state.revenue[self.index])

    @property
    def holding_cost(self) -> float:
        """Holding cost of the last step."""
        return float(self.model.market.state.holding_cost[self.index])

    @property
    def profit(self) -> float:
        """Profit of the last step."""
        return float(self.model.market.state.profits[self.index])

    @property
    def inventory(self) -> float:
        """Stock after the last step's sales and restocking (inf for unlimited)."""
        return float(self.model.market.state.inventory[self.index])


class ConsumerPopulation(mesa.Agent):
    """Every consumer as one Mesa agent: the scenario's demand backend, drawn from the model's rng."""

    def __init__(self, model: MarketModel, scenario: Scenario) -> None:
        super().__init__(model)
        self.backend = population(scenario, model.demand.model, model.rng)
        self.sales = Sales(np.zeros(len(scenario.expanded_sellers())))

    @property
    def wtp(self) -> np.ndarray:
        """Each consumer's base WTP (the quadrature nodes for the continuum)."""
        return self.backend.wtp

    @property
    def aware(self) -> np.ndarray | None:
        """Which sellers each consumer knows, (J, n), or None without a network."""
        return self.backend.aware

    @property
    def adjacency(self) -> sparse.csr_array | None:
        """The social graph over consumers as a CSR adjacency matrix, or None without a network."""
        return getattr(self.backend, "adjacency", None)

    @property
    def shoppers(self) -> float:
        """Consumers who shopped in the last step."""
        return self.sales.shoppers

    @property
    def buyers(self) -> float:
        """Consumers who bought in the last step."""
        return self.sales.buyers

    @property
    def surplus(self) -> float:
        """Consumer surplus of the last step."""
        return self.sales.surplus

    def clear(self, x: np.ndarray, limits: np.ndarray, step: int) -> Sales:
        """Clear the market for seller values ``x = quality - price`` (the market's demand backend call)."""
        self.sales = self.backend.clear(x, limits, step)
        return self.sales


class MarketModel(mesa.Model):
    """A market of competing sellers and a consumer population, built from a validated Scenario.

    The model drives a ``Market`` (the one step API) through Mesa: observe → strategies price → the market
    clears and settles → strategies learn → the DataCollector records. Mesa's ``rng`` draws the consumers.
    """

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
        self.registry = registry
        self.market = Market(scenario, registry)
        self.sellers: list[Seller] = self._seat_sellers(scenario, registry)
        self.population = self.population_cls(self, scenario)
        self.observations = list(self.market.reset(self.rng, consumers=self.population))
        self.learners = [s for s in self.sellers if isinstance(s.strategy, Converging)]
        self.datacollector = mesa.DataCollector(model_reporters=self._reporters())
        self.observers = self._start_observers(scenario, registry)

    @property
    def demand(self) -> ExpectedDemand:
        """The market's noise-free demand (benchmarks, MarketInfo.expected_profit)."""
        return self.market.demand

    @property
    def benchmarks(self) -> Benchmarks:
        """The market's Nash and joint-monopoly benchmarks."""
        return self.market.benchmarks

    @property
    def price_min(self) -> np.ndarray:
        """Each seller's lowest allowed price."""
        return self.market.price_min

    @property
    def price_max(self) -> np.ndarray:
        """Each seller's highest allowed price."""
        return self.market.price_max

    def _seat_sellers(self, scenario: Scenario, registry: Registry) -> list[Seller]:
        """Build and set up each seat's strategy with its own generator spawned from the model's rng."""
        specs = scenario.expanded_sellers()
        strategy_rngs = self.rng.spawn(len(specs))
        sellers = []
        for i, spec in enumerate(specs):
            if self.tracker is not None:  # building and setting up a strategy is its own code running too
                self.tracker(i, 0)
            try:  # a strategy that cannot be built or set up is that seller's fault, like a bad price
                strategy = registry.create(spec.strategy, spec.params)
                strategy.setup(self._market_info(i), strategy_rngs[i])
            except Exception as exc:
                raise StrategyError(i, spec.name, 0, exc) from exc
            sellers.append(Seller(self, spec, i, strategy))
        if self.tracker is not None:
            self.tracker(-1, -1)
        return sellers

    def _start_observers(self, scenario: Scenario, registry: Registry) -> list[Observer]:
        """Build the scenario's observers and tell them what run they watch."""
        info = RunInfo(
            scenario=scenario.name,
            seed=scenario.seed,
            steps=scenario.steps,
            sellers=tuple(s.name for s in self.sellers),
            strategies=tuple(s.strategy.name for s in self.sellers),
            costs=tuple(float(s.cost) for s in self.sellers),
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

    def _notify(self, step: int, result: StepResult) -> None:
        """Hand every observer the frozen record of the step just completed."""
        if not self.observers:
            return
        record = StepRecord(
            step=step,
            prices=tuple(result.prices.tolist()),
            units=tuple(result.units.tolist()),
            profits=tuple(result.profits.tolist()),
            inventory=tuple(result.inventory.tolist()),
            shoppers=result.shoppers,
            buyers=result.buyers,
            consumer_surplus=result.consumer_surplus,
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
        return self.market.info(i)

    def step(self) -> None:
        """One period: post prices → clear the market and settle → strategies learn → record."""
        step = self.steps - 1  # Mesa counts steps from 1 inside step()
        result = self.market.step(self.post_prices())
        self.observations = list(self.market.observations())
        if self.learning:
            self.learn(result, step)
        self.datacollector.collect(self)
        self._notify(step, result)
        if self.learners and all(self._converged(s) for s in self.learners):
            self.running = False  # every learner's greedy policy has stopped changing

    def post_prices(self) -> list[float]:
        """Every seller's checked price from its current observation (the market clips it to the range).

        Sellers with slow outside calls (``Prefetching``) are all asked to start first, so the calls overlap.
        """
        for seller, obs in zip(self.sellers, self.observations):
            if isinstance(seller.strategy, Prefetching):
                with self._blame(seller, obs.step):
                    seller.strategy.prefetch(obs)
        prices = []
        for seller, obs in zip(self.sellers, self.observations):
            with self._blame(seller, obs.step):
                prices.append(checked_price(seller.strategy.name, seller.strategy.price(obs), obs.step))
        return prices

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

    def learn(self, result: StepResult, step: int) -> None:
        """Hand each strategy its outcome of the step just settled, with its next observation."""
        for seller, out in zip(self.sellers, self.market.outcomes(result, self.observations)):
            with self._blame(seller, step):
                seller.strategy.learn(out)

    def set_learning(self, learning: bool) -> None:
        """Switch learning on or off (evaluation phases); strategies are told through ``set_training``."""
        self.learning = learning
        for seller in self.sellers:
            with self._blame(seller, self.steps):
                seller.strategy.set_training(learning)

    def _reporters(self) -> dict:
        reporters = {
            "step": lambda m: m.steps - 1,
            "shoppers": lambda m: m.market.state.shoppers,
            "buyers": lambda m: m.market.state.buyers,
            "consumer_surplus": lambda m: m.market.state.consumer_surplus,
        }
        for s in self.sellers:
            reporters[f"{s.name}.price"] = lambda m, s=s: s.price
            reporters[f"{s.name}.units"] = lambda m, s=s: s.units
            reporters[f"{s.name}.revenue"] = lambda m, s=s: s.revenue
            reporters[f"{s.name}.profit"] = lambda m, s=s: s.profit
            reporters[f"{s.name}.inventory"] = lambda m, s=s: s.inventory
            reporters[f"{s.name}.share"] = lambda m, s=s: _share(s.units, m.market.state.shoppers)
        return reporters


def _share(units: float, shoppers: float) -> float:
    """A seller's share of the step's shoppers (0 when nobody shopped)."""
    return units / shoppers if shoppers else 0.0
