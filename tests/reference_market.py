"""A per-consumer reference market: one Mesa agent per consumer, served one by one in queue order.

It is deliberately slow and plain Python, the specification the vectorized kernels in
``marketsim.market.consumers`` are checked against. It draws its random numbers through the same
``draw_shopping`` protocol, so on the same seed both must give identical sales.
"""

from __future__ import annotations

import math

import mesa
import numpy as np

from marketsim.market import consumers, network
from marketsim.market.model import ConsumerPopulation, MarketModel
from marketsim.market.population import Sales, draw_shopping

TIE = 1e-12
EXP_CAP = 700.0


class ConsumerAgent(mesa.Agent):
    """One consumer with its own WTP; picks a seller from the options it has not tried yet."""

    def __init__(self, model: mesa.Model, index: int, wtp: float) -> None:
        super().__init__(model)
        self.index = index
        self.wtp = wtp

    def pick(self, options: list[int], x: list[float], a0: float, mu: float, w: float, u: float) -> int:
        """The seller this consumer picks among ``options`` (or -1 for the outside option)."""
        if mu > 0:
            shift = max(x)
            eps = [math.exp((xj - shift) / mu) for xj in x]
            z = math.exp(min((a0 - w - shift) / mu, EXP_CAP))
            total = 0.0
            for j in options:
                total += eps[j]
            target = u * (z + total) - z
            if target < 0:
                return -1
            running, pick = 0.0, 0
            for j in range(len(x)):
                if j in options:
                    running += eps[j]
                if running <= target:
                    pick += 1
            return min(pick, len(x) - 1)
        if not options:
            return -1
        best = max(x[j] for j in options)
        ties = [j for j in options if x[j] >= best - TIE]
        if not w + best > a0:
            return -1
        return ties[min(int(u * len(ties)), len(ties) - 1)]

    def surplus(self, options: list[int], x: list[float], a0: float, mu: float, w: float) -> float:
        """Expected surplus over the outside option given the sellers it can still choose."""
        if mu > 0:
            shift = max(x)
            total = sum(math.exp((x[j] - shift) / mu) for j in options)
            if total == 0:
                return 0.0
            log_ratio = math.log(total) - (a0 - w - shift) / mu
            return mu * float(np.logaddexp(0.0, log_ratio))
        if not options:
            return 0.0
        return max(w + max(x[j] for j in options) - a0, 0.0)


class PerConsumerPopulation(ConsumerPopulation):
    """Same state as ConsumerPopulation (its sampled backend), but shopping is a loop over ConsumerAgent objects."""

    def __init__(self, model: MarketModel, scenario) -> None:
        super().__init__(model, scenario)
        self.spec, self.net = scenario.consumers, self.backend.net  # self.adjacency is the population's own
        self.agents_list = [ConsumerAgent(model, i, float(w)) for i, w in enumerate(self.wtp)]

    def clear(self, x: np.ndarray, limits: np.ndarray, step: int) -> Sales:
        arrival = self.spec.arrival_at(step)
        shift = self.spec.wtp_shift_at(step)
        a0, mu = self.spec.outside_value, self.spec.mu
        rng = self.model.rng
        draws = draw_shopping(rng, len(self.wtp), arrival, bool(np.isfinite(limits).any()))
        shoppers = list(range(len(self.wtp))) if draws.active is None else [int(i) for i in draws.active]
        xs, stock = [float(v) for v in x], [float(v) for v in limits]
        agents = [self.agents_list[i] for i in shoppers]
        known = [[j for j in range(len(xs)) if self.aware is None or self.aware[j, a.index]] for a in agents]
        # 1. every shopper's first choice, from all the sellers it knows
        first = [a.pick(known[k], xs, a0, mu, a.wtp + shift, float(draws.u[k])) for k, a in enumerate(agents)]
        # 2. the rest of the ranking (Gumbel keys), only if some seller is over its limit
        queue = range(len(agents)) if draws.order is None else [int(k) for k in draws.order]
        keys = {}
        wanted = [first.count(j) for j in range(len(xs))]
        if draws.order is not None and any(wanted[j] > stock[j] for j in range(len(xs))):
            ranked = [k for k in queue if first[k] >= 0 and math.isfinite(stock[first[k]])]
            drawn = consumers.ranking_uniforms(rng, len(ranked), len(xs) + 1)
            keys = {k: consumers.gumbel(drawn[r]) for r, k in enumerate(ranked)}
        # 3. serve the queue one shopper at a time
        units, choice = [0.0] * len(xs), [-1] * len(agents)
        surplus = 0.0
        for k in queue:
            w = agents[k].wtp + shift
            in_stock = [j for j in known[k] if stock[j] >= 1]
            surplus += agents[k].surplus(in_stock, xs, a0, mu, w)
            pick = first[k]
            if pick >= 0 and stock[pick] < 1:  # turned away: best remaining option in stock
                pick = self.next_choice(in_stock, xs, a0, mu, w, keys[k])
            if pick >= 0:
                stock[pick] -= 1
                units[pick] += 1
                choice[k] = pick
        bought = [k for k in range(len(agents)) if choice[k] >= 0]
        if self.net is not None:
            buyers = np.array([shoppers[k] for k in bought], dtype=np.int64)
            picks = np.array([choice[k] for k in bought], dtype=np.int64)
            network.spread_awareness(
                self.aware, buyers, picks, self.adjacency, self.net.spread, self.net.decay, self.model.rng
            )
        self.sales = Sales(np.array(units), float(len(agents)), float(len(bought)), surplus)
        return self.sales

    @staticmethod
    def next_choice(options: list[int], x: list[float], a0: float, mu: float, w: float, key: np.ndarray) -> int:
        """A turned-away shopper's best option among ``options``, ranked by its Gumbel keys."""
        if not options:
            return -1
        if mu > 0:
            best = max(options, key=lambda j: (w + x[j]) / mu + key[j + 1])
            return best if (w + x[best]) / mu + key[best + 1] > a0 / mu + key[0] else -1
        top = max(x[j] for j in options)
        ties = [j for j in options if x[j] >= top - TIE]
        best = max(ties, key=lambda j: key[j + 1])
        return best if w + top > a0 else -1


class ReferenceMarket(MarketModel):
    """MarketModel with the per-consumer population."""

    population_cls = PerConsumerPopulation
