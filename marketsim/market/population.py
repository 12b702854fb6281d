"""The demand backends behind a market step: a finite population of sampled consumers, or the continuum.

Both answer ``clear(x, limits, step) -> Sales`` for seller values ``x = quality - price`` and per-seller
``limits`` (units each can sell this step). The finite population draws every random number it needs from
the generator it was built with, in a fixed order (``draw_shopping``, then rationing keys, then word of
mouth), so that a seeded run is reproducible and the per-consumer reference model can replay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from marketsim.config.scenario import Scenario
from marketsim.market import consumers, network
from marketsim.market.consumers import Draws


@dataclass(frozen=True, slots=True)
class Sales:
    """What one step of shopping produced: units per seller, shoppers, buyers and consumer surplus."""

    units: np.ndarray  # (J,) float
    shoppers: float = 0.0
    buyers: float = 0.0
    surplus: float = 0.0


class Population(Protocol):
    """A demand backend: clears the market for seller values ``x`` under per-seller ``limits`` at ``step``."""

    def clear(self, x: np.ndarray, limits: np.ndarray, step: int) -> Sales:
        """Units sold per seller, and who shopped and bought, at these values and limits."""
        ...


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


class Continuum:
    """The expected (continuum) population: WTP quadrature nodes carrying the market's mass, no noise."""

    def __init__(self, scenario: Scenario, choice: consumers.ChoiceModel) -> None:
        self.spec, self.choice = scenario.consumers, choice
        self.wtp = wtp_nodes(scenario)
        self.aware: np.ndarray | None = None

    def clear(self, x: np.ndarray, limits: np.ndarray, step: int) -> Sales:
        """Expected units at this step's arrival rate and WTP shift, rationed in random arrival order."""
        w = self.wtp + self.spec.wtp_shift_at(step)
        mass = np.full(len(w), self.spec.size * self.spec.arrival_at(step) / len(w))
        units, surplus = consumers.clear_expected(w, mass, x, self.spec.outside_value, self.choice, limits)
        return Sales(units, float(mass.sum()), float(units.sum()), surplus)


class Sampled:
    """A finite population: each consumer's WTP drawn once, shoppers sampled every step, optional network.

    With a network, consumers only consider sellers they know, and buyers tell their neighbours.
    """

    def __init__(self, scenario: Scenario, choice: consumers.ChoiceModel, rng: np.random.Generator) -> None:
        self.spec, self.choice, self.rng = scenario.consumers, choice, rng
        self.wtp = wtp_population(scenario, rng)
        self.aware: np.ndarray | None = None
        self.adjacency = None
        self.net = scenario.network
        if self.net is not None:
            graph = network.build_graph(self.net.graph, len(self.wtp), rng)
            self.adjacency = network.adjacency(graph, len(self.wtp))
            n_sellers = len(scenario.expanded_sellers())
            self.aware = network.initial_awareness(n_sellers, len(self.wtp), self.net.initial_awareness, rng)

    def clear(self, x: np.ndarray, limits: np.ndarray, step: int) -> Sales:
        """Sample this step's shoppers, clear them with rationing, then let word of mouth spread."""
        rng = self.rng
        w = self.wtp + self.spec.wtp_shift_at(step)
        draws = draw_shopping(rng, len(w), self.spec.arrival_at(step), bool(np.isfinite(limits).any()))
        who = draws.active
        allowed = None if self.aware is None else (self.aware if who is None else self.aware[:, who])
        result = consumers.clear_agents(
            w if who is None else w[who],
            x,
            self.spec.outside_value,
            self.choice,
            limits,
            draws,
            allowed,
            keys=lambda m: consumers.ranking_uniforms(rng, m, len(x) + 1),
        )
        bought = result.choice >= 0
        if self.net is not None:
            buyers = np.flatnonzero(bought) if who is None else who[bought]
            self.spread(buyers, result.choice[bought])
        return Sales(result.units, float(len(result.choice)), float(bought.sum()), float(result.surplus.sum()))

    def spread(self, buyers: np.ndarray, choice: np.ndarray) -> None:
        """Word of mouth after a step in which consumer ``buyers[k]`` bought from seller ``choice[k]``."""
        net = self.net
        network.spread_awareness(self.aware, buyers, choice, self.adjacency, net.spread, net.decay, self.rng)


def population(scenario: Scenario, choice: consumers.ChoiceModel, rng: np.random.Generator) -> Continuum | Sampled:
    """The scenario's demand backend: the continuum in ``expected`` mode, else a sampled finite population."""
    if scenario.demand.mode == "expected":
        return Continuum(scenario, choice)
    return Sampled(scenario, choice, rng)
