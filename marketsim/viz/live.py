"""The model behind the live page: a MarketModel that SolaraViz can rebuild from slider values.

Mesa's SolaraViz resets a model by calling its class with keyword arguments: the fixed ones (``market``, the
validated scenario) and one per slider, named by its dotted path (``consumers.mu``, ``sellers[0].cost``).
Besides the DataCollector's records it keeps what only the page shows: each learner's exploration rate and
greedy price (``Exploring``) and, on a network, the share of consumers who know each seller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from marketsim.config.paths import PathError, with_values
from marketsim.config.scenario import Scenario
from marketsim.market.model import MarketModel
from marketsim.registry import Registry, default_registry
from marketsim.strategy import Exploring

#: Consumers drawn for the network view: enough to see clusters, few enough to read and to lay out at once.
NETWORK_SAMPLE = 120


@dataclass
class LearnerTrace:
    """Per step, one ``Exploring`` seller's exploration rate and greedy price (NaN before it has one)."""

    name: str
    exploration: list[float] = field(default_factory=list)
    greedy: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class NetworkSample:
    """A connected sample of the social graph with a fixed layout: consumer ids, edges (as sample indices), x/y."""

    nodes: np.ndarray
    edges: list[tuple[int, int]]
    xy: np.ndarray


class LiveMarket(MarketModel):
    """A scenario's market for the live page; keyword arguments named by dotted paths replace its values.

    ``scenario`` is accepted and ignored: Mesa ≥ 3.4 passes its own experiment ``Scenario`` when it resets a
    model (marketsim's scenario is ``market``, kept as ``config`` as in every MarketModel).
    """

    def __init__(
        self, market: Scenario, registry: Registry | None = None, scenario: Any = None, **kwargs: float
    ) -> None:
        self.values = dict(kwargs)
        config, self.refused = accepted(market, kwargs, registry if registry is not None else default_registry())
        super().__init__(config, registry)
        self.learner_traces = [LearnerTrace(s.name) for s in self.sellers if isinstance(s.strategy, Exploring)]
        self.awareness: list[list[float]] = [[] for _ in self.sellers] if self.population.aware is not None else []
        self.network = network_sample(self) if self.population.aware is not None else None

    def step(self) -> None:
        """One market step, then the page's own records; the run ends after the scenario's steps, as a run does."""
        super().step()
        if self.steps >= self.config.steps:
            self.running = False
        traces = iter(self.learner_traces)
        for seller in self.sellers:
            if isinstance(seller.strategy, Exploring):
                trace, greedy = next(traces), seller.strategy.greedy_price
                trace.exploration.append(float(seller.strategy.exploration_rate))
                trace.greedy.append(float("nan") if greedy is None else float(greedy))
        if self.awareness:
            for row, share in zip(self.awareness, self.population.aware.mean(axis=1)):
                row.append(float(share))

    def series(self, name: str) -> list[float]:
        """One DataCollector column (``"step"``, ``"cutter.price"``, ``"consumer_surplus"``) as recorded so far."""
        return self.datacollector.model_vars[name]


def accepted(market: Scenario, values: dict[str, Any], registry: Registry) -> tuple[Scenario, str | None]:
    """The market with the slider values, or the market as written and why the values were refused.

    A slider can reach a value the scenario or a strategy refuses (an arrival rate of 0, a negative grid);
    the page then keeps running the scenario's own market and says why, instead of failing the reset.
    """
    try:
        config = with_values(market, values)
        for seller in config.sellers:
            registry.create(seller.strategy, seller.params)  # the strategy's own checks of its parameters
    except Exception as exc:  # anything a strategy's constructor raises is a refusal of the values
        return market, f"{type(exc).__name__}: {exc}" if not isinstance(exc, PathError) else str(exc)
    return config, None


def network_sample(model: LiveMarket, size: int = NETWORK_SAMPLE) -> NetworkSample:
    """Consumers reached breadth-first from one consumer, laid out once with a seeded spring layout.

    The start is drawn from a generator of its own (seeded by the scenario), never from the model's: watching
    the network does not change the market.
    """
    adjacency = model.population.adjacency
    n = adjacency.shape[0]
    start = int(np.random.default_rng(model.config.seed).integers(n))
    seen, frontier = [start], [start]
    known = {start}
    while frontier and len(seen) < size:
        nxt = []
        for node in frontier:
            for nb in adjacency.indices[adjacency.indptr[node] : adjacency.indptr[node + 1]]:
                if int(nb) not in known and len(seen) < size:
                    known.add(int(nb))
                    seen.append(int(nb))
                    nxt.append(int(nb))
        frontier = nxt
    nodes = np.array(seen)
    index = {v: i for i, v in enumerate(seen)}
    graph = nx.Graph()
    graph.add_nodes_from(range(len(seen)))
    for v in seen:
        for nb in adjacency.indices[adjacency.indptr[v] : adjacency.indptr[v + 1]]:
            if int(nb) in index and index[v] < index[int(nb)]:
                graph.add_edge(index[v], index[int(nb)])
    layout = nx.spring_layout(graph, seed=0, iterations=50)
    xy = np.array([layout[i] for i in range(len(seen))])
    return NetworkSample(nodes, list(graph.edges), xy)
