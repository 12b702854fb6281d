"""Many tasks of a family stepped in lockstep: the batched task market meta-learners train on.

``TaskBatch`` holds sampled tasks as arrays (``marketsim.market.batched``) and steps them together: the
learner's price for every task at once, each rival's reaction asked from its own rule's ``price_batch``
(``marketsim.strategy``), the learner's expected units from each task's logit demand on the WTP quadrature
nodes (exactly ``ExpectedDemand.units``) and — with a generator — sales drawn like the agent-based market's.
``tests/test_metatrain.py`` checks that the expected profits equal ``meta.evaluate.run_agent``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from marketsim.market.batched import BatchedLogitMarket, BatchStep
from marketsim.market.rivals import RivalRules
from marketsim.meta.evaluate import ORACLE, oracle_params
from marketsim.meta.tasks import Task, expected_rollout, rival_specs, rule_market
from marketsim.registry import Registry
from marketsim.strategy import ObservationBatch, Strategy


class MetaTrainError(ValueError):
    """Meta-training cannot run as asked (bad family, unknown strategy, bad numbers)."""


# --- the batched environment -----------------------------------------------------------------------------

Step = BatchStep  # what one lockstep step returns (the learner is column 0)


@dataclass(kw_only=True)
class TaskBatch:
    """B tasks stepped in lockstep: the learner always sits in column 0, its rivals after it in seat order.

    ``market`` clears the batch; ``rules[b, j]`` is the set-up rule of the rival in column ``j`` of task ``b``
    (None for the learner and empty seats), asked through its class's ``price_batch``; ``seat_order[b]``
    lists task ``b``'s columns in seat order (empty columns last), the order a rival sees its competitors in.
    """

    tasks: list[Task]
    market: BatchedLogitMarket
    start: np.ndarray  # (B, J) prices 'last posted' before step 0
    rules: np.ndarray  # (B, J) object: set-up rival rules
    seat_order: np.ndarray  # (B, J) int
    population: np.ndarray | None = None  # (B, N) consumers' WTPs this episode (nan: padding)
    groups: list[RuleGroup] = field(init=False, repr=False)  # the rivals asked together

    def __post_init__(self) -> None:
        self.groups = rule_groups(self.rules)

    @classmethod
    def from_tasks(cls, tasks: Sequence[Task], registry: Registry) -> TaskBatch:
        """Arrays of ``tasks`` (logit demand, no shocks, network, capacity or inventory limits)."""
        if not tasks:
            raise MetaTrainError("no tasks to batch")
        for task in tasks:
            _check_batchable(task)
        B = len(tasks)
        orders = [[t.learner, *t.rivals()] for t in tasks]
        J = max(len(o) for o in orders)
        start, rules, seat_order = np.zeros((B, J)), np.full((B, J), None, dtype=object), np.zeros((B, J), int)
        for b, (task, order) in enumerate(zip(tasks, orders)):
            sellers = task.scenario.expanded_sellers()
            start[b, : len(order)] = [sellers[seat].start_price for seat in order]
            market = rule_market(task, registry)
            rules[b, 1 : len(order)] = RivalRules(
                rival_specs(task.scenario, task.learner), task.learner, market, registry
            ).rules
            seat_order[b] = [*np.argsort(order), *range(len(order), J)]
        return cls(
            tasks=list(tasks),
            market=BatchedLogitMarket.from_scenarios([t.scenario for t in tasks], orders),
            start=start,
            rules=rules,
            seat_order=seat_order,
        )

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def horizon(self) -> int:
        return self.tasks[0].horizon

    @property
    def present(self) -> np.ndarray:
        """(B, J) whether task b has a seller in column j."""
        return self.market.present

    @property
    def cost(self) -> np.ndarray:
        return self.market.cost

    @property
    def pmin(self) -> np.ndarray:
        return self.market.pmin

    @property
    def pmax(self) -> np.ndarray:
        return self.market.pmax

    def subset(self, idx: Sequence[int] | np.ndarray) -> TaskBatch:
        """The tasks at ``idx`` (a training batch drawn from a pool)."""
        idx = np.asarray(idx, int)
        return TaskBatch(
            tasks=[self.tasks[int(b)] for b in idx],
            market=self.market.subset(idx),
            start=self.start[idx],
            rules=self.rules[idx],
            seat_order=self.seat_order[idx],
        )

    # --- dynamics ------------------------------------------------------------------------------------

    def rival_prices(self, last: np.ndarray) -> np.ndarray:
        """Every rival's rule asked for its price from last period's prices (column 0, the learner's, is kept)."""
        B, J = last.shape
        out = last.copy()
        seated = np.take_along_axis(np.where(self.present, last, np.nan), self.seat_order, axis=1)
        for g in self.groups:
            rows, j = g.rows, g.column
            others = seated[rows][self.seat_order[rows] != j].reshape(len(rows), J - 1)
            lo, hi = self.pmin[rows, j], self.pmax[rows, j]
            obs = ObservationBatch(
                own_price=last[rows, j], competitor_prices=others, cost=self.cost[rows, j], price_min=lo, price_max=hi
            )
            out[rows, j] = np.minimum(np.maximum(g.cls.price_batch(g.rules, obs), lo), hi)
        return out

    def expected_units(self, prices: np.ndarray) -> np.ndarray:
        """(B,) learner's expected units: ``ExpectedDemand.units`` on the quadrature nodes."""
        return self.market.expected_units(prices)

    def draw_population(self, rng: np.random.Generator) -> np.ndarray:
        """Each task's consumers' WTPs (B, max size), nan-padded."""
        return self.market.draw_population(rng)

    def reset_episode(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Start every task: draw its consumers (when ``rng``) and return the start prices (B, J)."""
        self.population = self.draw_population(rng) if rng is not None else None
        return self.start.copy()

    def step(self, last: np.ndarray, own: np.ndarray, rng: np.random.Generator | None = None) -> Step:
        """Rivals react to ``last``; the learner posts ``own``; shoppers buy (sampled when ``rng``)."""
        prices = self.rival_prices(last)
        prices[:, 0] = np.clip(own, self.pmin[:, 0], self.pmax[:, 0])
        expected = self.expected_units(prices)
        if rng is None:
            units = expected
        else:
            if self.population is None:
                self.population = self.draw_population(rng)
            units = self.market.sampled_units(prices, self.population, rng)
        return self.market.settle(prices, units, expected)

    def rollout_expected(self, price_paths: np.ndarray) -> np.ndarray:
        """(B, H) expected profits of posting ``price_paths`` (B, H) on the noise-free dynamics."""
        last = self.reset_episode()
        out = np.empty(price_paths.shape)
        for t in range(price_paths.shape[1]):
            s = self.step(last, price_paths[:, t])
            out[:, t], last = s.expected_profit, s.prices
        return out


@dataclass(frozen=True)
class RuleGroup:
    """The rivals in one column of a batch that follow rules of one class: asked with one ``price_batch``."""

    column: int
    cls: type[Strategy]
    rows: np.ndarray  # (n,) the tasks
    rules: list[Strategy]  # their set-up rules, one per row


def rule_groups(rules: np.ndarray) -> list[RuleGroup]:
    """``rules`` (B, J; None where no rival sits) grouped by column and rule class."""
    groups = []
    for j in range(1, rules.shape[1]):
        by_class: dict[type[Strategy], list[int]] = {}
        for b, rule in enumerate(rules[:, j]):
            if rule is not None:
                by_class.setdefault(type(rule), []).append(b)
        for cls, rows in by_class.items():
            groups.append(RuleGroup(j, cls, np.array(rows, int), [rules[b, j] for b in rows]))
    return groups


def _check_batchable(task: Task) -> None:
    """Refuse a task the batched market cannot step (network, shocks, stock limits, non-logit demand)."""
    sc = task.scenario
    c = sc.consumers
    if (
        sc.network is not None
        or c.shocks
        or any(s.capacity is not None or s.inventory is not None for s in sc.expanded_sellers())
    ):
        raise MetaTrainError(f"task {task.index}: the batched market needs no network, shocks or stock limits")
    if c.choice.model != "logit" or c.choice.params or c.mu <= 0:
        raise MetaTrainError(f"task {task.index}: the batched market needs logit demand with mu > 0")


def oracle_profits(tasks: Sequence[Task], registry: Registry) -> np.ndarray:
    """(n, H) the clairvoyant's expected profit path in each task (noise-free rollout, ~10 ms a task)."""
    return np.array([expected_rollout(t, registry.create(ORACLE, oracle_params(t)), registry)[1] for t in tasks])
