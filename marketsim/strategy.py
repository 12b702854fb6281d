"""The strategy contract: what a seller's pricing brain sees, returns and learns from.

This is the API third parties code against, so it is small and versioned (`STRATEGY_API_VERSION`).
A strategy is a small class with a unique ``name``, a ``classifier`` of facts, keyword parameters with
defaults, ``price(observation) -> float`` and optionally ``learn(outcome)``. Data handed to it is frozen.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import reprlib
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from marketsim.exceptions import PortableError

STRATEGY_API_VERSION = "1.0"

#: The keys every classifier has, with their defaults (Axelrod-style facts about a strategy).
DEFAULT_CLASSIFIER: Mapping[str, Any] = {
    "learns": False,  # does learn() change future prices?
    "stochastic": False,  # does it draw from its random generator?
    "needs_torch": False,  # does it import torch?
    "observes": ("own",),  # which parts of the observation it reads: own, competitors, demand_model
    "reactive": False,  # is the price a function of last period's prices (and cost, bounds) alone?
}

#: The values a classifier's ``observes`` tuple may hold, and what each part is.
OBSERVES_PARTS: Mapping[str, str] = {
    "own": "its own fields of the Observation: own_price, cost, last_units, last_profit, inventory, capacity, "
    "step and the price range",
    "competitors": "the rivals' prices: Observation.competitor_prices (and Outcome.competitor_prices)",
    "demand_model": "the market's demand through MarketInfo: expected_profit / own_profit, nash_prices, "
    "monopoly_prices, the rivals' costs",
}

#: Metadata key under which a contract field carries its description (see ``described``).
FIELD_DOC = "doc"

_T = TypeVar("_T", bound=type)


def described(doc: str, **kwargs: Any) -> Any:
    """A dataclass field whose one-line description lives in ``metadata["doc"]``, for ``help()`` and the reference."""
    return field(metadata={FIELD_DOC: doc}, **kwargs)


def documented(cls: _T) -> _T:
    """Append a ``Fields:`` section, built from the fields' descriptions, to the docstring ``help()`` shows."""
    lines = [
        textwrap.fill(f"{f.name} ({f.type}): {f.metadata.get(FIELD_DOC, '')}", 110, subsequent_indent="    ")
        for f in dataclasses.fields(cls)
    ]
    cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\nFields:\n" + textwrap.indent("\n".join(lines), "    ")
    return cls


@documented
@dataclass(frozen=True, slots=True)
class ClassifierKey:
    """One key of the classifier vocabulary: what a strategy declares about itself and what the host does with it."""

    name: str = described("The key, as written in a strategy's ``classifier`` mapping.")
    values: str = described("The values it may take.")
    meaning: str = described("What the strategy declares by it.")
    host: str = described("What marketsim does with it (which commands and checks read it).")

    @property
    def default(self) -> Any:
        """The value a strategy that leaves the key out gets (from ``DEFAULT_CLASSIFIER``)."""
        return DEFAULT_CLASSIFIER[self.name]


#: Every classifier key with its values, meaning and use by the host, in ``DEFAULT_CLASSIFIER`` order.
CLASSIFIER_KEYS: tuple[ClassifierKey, ...] = (
    ClassifierKey(
        "learns",
        "True or False",
        "learn(outcome) changes the prices it posts later.",
        "The conformance kit fails a strategy whose learn() changes its prices although it says False. "
        "`marketsim train` refuses a seller that does not learn; a tournament's `exploit.strategy` "
        "(the best-responder) must learn; the batched engines (`marketsim experiment` rivals, task-family "
        "rival slots, the vector env's rivals) refuse learners as rivals. `marketsim plugins` shows it.",
    ),
    ClassifierKey(
        "stochastic",
        "True or False",
        "It draws from its generator (self.rng), so its prices depend on the seed.",
        "The kit fails a strategy whose prices depend on the seed although it says False; the batched "
        "engines refuse stochastic rivals (they tabulate deterministic rules). `marketsim plugins` shows it.",
    ),
    ClassifierKey(
        "needs_torch",
        "True or False",
        "Its implementation imports torch (installed with the `deep` extra).",
        "Tournament workers import torch as they start only when some entrant says True, so a match's CPU "
        "budget does not pay for the import and other tournaments start without it; the kit imports torch "
        "before it snapshots the global random state. Still import torch only when a seller uses the "
        "strategy, never at discovery.",
    ),
    ClassifierKey(
        "observes",
        "a tuple drawn from " + ", ".join(OBSERVES_PARTS) + " (see OBSERVES_PARTS)",
        "Which parts of what it is handed its prices depend on.",
        "Documentation for users (`marketsim plugins show`); the kit checks the values. The host hands every "
        "strategy the full Observation and MarketInfo whatever it declares.",
    ),
    ClassifierKey(
        "reactive",
        "True or False",
        "Its price is a function of last period's prices (own and rivals'), its cost and price bounds alone: "
        "no sales, stock, step count or memory.",
        "Only deterministic (stochastic False), non-learning reactive rules may be rivals in the batched "
        "engines (`marketsim experiment`, task families' rival slots, the vector env), which ask them for many "
        "rows at once through `price_batch` and tabulate their reaction for the oracle.",
    ),
)


class InvalidPriceError(PortableError, ValueError):
    """A strategy returned something that is not a finite, non-negative number."""

    def __init__(self, strategy: str, value: object, step: int | None = None) -> None:
        where = f" at step {step}" if step is not None else ""
        super().__init__(
            f"strategy {strategy!r} returned an invalid price {reprlib.repr(value)}{where}: "
            "a price must be a finite, non-negative real number"
        )
        self.strategy = strategy
        self.value = value
        self.step = step


@documented
@dataclass(frozen=True, slots=True)
class Observation:
    """What a seller knows when it posts a price, handed to ``price``. Prices are last step's posted prices.

    Every seller gets its own observation of the same moment; all sellers post their prices for a step at
    once, so no one sees a rival's price for the step it is pricing.
    """

    step: int = described(
        "The step being priced: how many steps the market has cleared so far (0 for the first price)."
    )
    own_price: float = described(
        "The price this seller posted last step, after clipping to its range; at step 0 the seller's "
        "initial_price (by default the midpoint of [price_min, price_max])."
    )
    cost: float = described("This seller's marginal cost of one unit sold (constant during a run).")
    last_units: float = described(
        "Units this seller sold last step (0 at step 0); a fractional mass under expected demand."
    )
    last_profit: float = described(
        "This seller's profit last step: revenue − variable cost − holding cost (0 at step 0)."
    )
    inventory: float = described(
        "Units in stock now, after last step's sales and restocking; math.inf when the seller has no inventory limit."
    )
    capacity: float = described("Most units this seller can sell in one step; math.inf when unlimited.")
    competitor_prices: tuple[float, ...] = described(
        "The other sellers' prices posted last step (clipped), in seat order without this seller; at step 0 "
        "their initial prices. Empty for a monopolist."
    )
    price_min: float = described("Lowest price this seller may post; a lower price is clipped up to it.")
    price_max: float = described("Highest price this seller may post; a higher price is clipped down to it.")


@documented
@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a seller when the market cleared, handed to ``learn`` right after the step.

    For a learner it is one transition: the state it priced in (the observation of ``step``), its action
    (``price``), its reward (``profit``) and the next state (``next_observation``).
    """

    step: int = described("The step just cleared: the ``step`` of the observation this price was posted on.")
    price: float = described("The price this seller posted this step, after clipping to [price_min, price_max].")
    units: float = described(
        "Units this seller sold this step (at most its capacity and stock); a fractional mass under expected demand."
    )
    revenue: float = described("price × units.")
    variable_cost: float = described("cost × units.")
    holding_cost: float = described(
        "The holding cost rate × the units left in stock after this step's sales (0 without inventory)."
    )
    profit: float = described("revenue − variable_cost − holding_cost: this step's reward.")
    inventory: float = described(
        "Units in stock after this step's sales and any restocking (math.inf when the seller has no inventory limit)."
    )
    competitor_prices: tuple[float, ...] = described(
        "The other sellers' prices posted in this same step, at the same time as ``price`` (clipped), in seat "
        "order without this seller: this step's, not last step's (equal to next_observation.competitor_prices)."
    )
    next_observation: Observation = described(
        "The observation this seller gets for the next step (its ``step`` is this step + 1): the next state a "
        "learner bootstraps from. The next ``price`` call is handed an equal observation."
    )


@documented
@dataclass(frozen=True)
class MarketInfo:
    """Facts about the market a strategy is placed in, handed once to ``setup`` with the strategy's generator.

    ``expected_profit(prices)`` is the noise-free one-step profit of every seller for a full price
    vector (own price at ``index``); it lets oracle strategies and learners compute best responses
    without touching the model. ``nash_prices``/``monopoly_prices`` are the one-shot benchmarks.
    Seat-order tuples hold every seller, this one included, at position ``index``.
    """

    index: int = described("This seller's seat: its position in every seat-order tuple and price vector.")
    n_sellers: int = described("Number of sellers in the market, this one included.")
    costs: tuple[float, ...] = described("Every seller's marginal cost, in seat order.")
    price_min: float = described("This seller's lowest allowed price (as in every Observation).")
    price_max: float = described("This seller's highest allowed price (as in every Observation).")
    nash_prices: tuple[float, ...] = described(
        "The one-shot Bertrand–Nash equilibrium prices of the expected demand, in seat order, within the "
        "sellers' price ranges."
    )
    monopoly_prices: tuple[float, ...] = described(
        "The prices that maximise the sellers' joint expected profit (joint monopoly), in seat order."
    )
    expected_profit: Callable[[np.ndarray], np.ndarray] = described(
        "prices (n_sellers,) → every seller's expected one-step profit (n_sellers,) on the noise-free demand "
        "(no sampling noise, capacity, stock or holding cost).",
        repr=False,
        compare=False,
    )
    expected_profit_at: Callable[[int, np.ndarray], np.ndarray] | None = described(
        "(step, prices) → every seller's expected profit at that step (0 = the first) with the scenario's "
        "seasonality and demand shocks applied; None when demand does not change over time (then "
        "``expected_profit`` holds at every step).",
        default=None,
        repr=False,
        compare=False,
    )

    def own_profit(self, own_price: float, competitor_prices: tuple[float, ...]) -> float:
        """Expected one-step profit of this seller at ``own_price`` against the given rivals' prices."""
        prices = np.insert(np.asarray(competitor_prices, dtype=float), self.index, own_price)
        return float(self.expected_profit(prices)[self.index])


@documented
@dataclass(frozen=True)
class ObservationBatch:
    """Many observations of one seat at once, for reactive rules asked by the batched engines.

    Row ``b`` is what a reactive rule reads: last period's own and rivals' prices, its cost and price bounds.
    ``competitor_prices`` has one column per rival seat, NaN where a seat is empty in that row.
    """

    own_price: np.ndarray = described("(B,) each row's own price posted last period.")
    competitor_prices: np.ndarray = described("(B, R) rival seats' prices posted last period; NaN for an empty seat.")
    cost: np.ndarray = described("(B,) each row's own marginal cost.")
    price_min: np.ndarray = described("(B,) each row's lowest allowed price.")
    price_max: np.ndarray = described("(B,) each row's highest allowed price.")

    def __len__(self) -> int:
        return len(self.own_price)

    def row(self, b: int) -> Observation:
        """Row ``b`` as the scalar Observation a rule's ``price`` reads (no sales or stock: a reaction to prices)."""
        rivals = tuple(float(p) for p in self.competitor_prices[b] if not math.isnan(p))
        return Observation(
            step=1, own_price=float(self.own_price[b]), cost=float(self.cost[b]), last_units=0.0, last_profit=0.0,
            inventory=math.inf, capacity=math.inf, competitor_prices=rivals,
            price_min=float(self.price_min[b]), price_max=float(self.price_max[b]),
        )  # fmt: skip


class Strategy:
    """Base class of every pricing strategy.

    Subclasses set ``name`` (unique, snake_case), ``classifier`` (merged over DEFAULT_CLASSIFIER),
    take their parameters as keyword arguments with defaults, and implement ``price``.
    Strategies never touch global random state: their randomness comes from ``self.rng``.

    Life cycle, as every host (``marketsim run``, a tournament match, an experiment session, a task, an
    environment reset) drives it:

    1. Construction: ``cls(**params)`` with the file's ``params:``, checked against the signature first.
       Store each parameter under the attribute of the same name: ``params`` reads them back from there.
       Build nothing that depends on the market here.
    2. ``setup(market, rng)`` once, before the first price: the MarketInfo of its seat and its own generator
       (spawned from the run's seed). Every run, match (each repetition, each seating), session, task and
       environment reset builds fresh instances, so ``setup`` starts each of them from scratch and nothing
       learned carries over between matches unless the strategy loads it (a ``checkpoint`` parameter). Size
       tables and load checkpoints in ``setup``, and call ``super().setup(market, rng)``. A library caller
       may set one instance up again for another market (``marketsim.meta.evaluate.run_agent`` handed an
       instance), so ``setup`` resets every per-market state.
    3. Every step: ``price(obs)`` for every seller, all posted at once; the market clips each price into the
       seller's range and clears; then ``learn(outcome)`` for every seller, while learning is on.
       ``set_training(False)`` starts an evaluation phase (act greedily, no ``learn`` calls).
    4. ``state_dict()`` whenever the host saves what was learned (``marketsim train`` writes it to a
       checkpoint); ``load_state_dict(state)`` on a fresh instance after its ``setup`` must restore it so
       that the copy prices exactly as the original would.

    Attributes:
        name (ClassVar[str]): Unique snake_case name that files and the registry use.
        classifier (ClassVar[Mapping]): Facts about the strategy (see CLASSIFIER_KEYS); keys left out take
            DEFAULT_CLASSIFIER's values.
        api_version (ClassVar[str]): The strategy-API version it was written for (STRATEGY_API_VERSION).
        market (MarketInfo): Set by ``setup``: the facts of its seat.
        rng (numpy.random.Generator): Set by ``setup``: its only source of randomness.
        training (bool): False during evaluation phases (set by ``set_training``).
    """

    name: ClassVar[str] = ""
    classifier: ClassVar[Mapping[str, Any]] = DEFAULT_CLASSIFIER
    api_version: ClassVar[str] = STRATEGY_API_VERSION

    market: MarketInfo  # set by setup()
    rng: np.random.Generator  # set by setup(): the only source of randomness a strategy may use
    training: bool = True  # False in evaluation phases: act greedily, expect no learn() calls

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.classifier = {**DEFAULT_CLASSIFIER, **cls.classifier}

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Receive the market facts and this strategy's generator. Override to size tables; call super()."""
        self.market = market
        self.rng = rng

    def price(self, obs: Observation) -> float:
        """Return the price to post this step."""
        raise NotImplementedError

    def set_training(self, training: bool) -> None:
        """Enter (True) or leave (False) training; learners act greedily when not training."""
        self.training = training

    def learn(self, outcome: Outcome) -> None:
        """Update from the step's outcome. Rule-based strategies ignore it."""

    @classmethod
    def price_batch(cls, rules: Sequence[Strategy], obs: ObservationBatch) -> np.ndarray:
        """Reactive rules (classifier ``reactive: True``): the price of rule ``rules[b]`` for row ``b`` of ``obs``.

        The batched engines (experiments, task batches) ask a rule for many rows at once through this
        method, so they run the rule's own code. ``rules`` are set-up instances of this class, one per row
        (parameters may differ per row). The default asks each instance's scalar ``price``; a rule may
        override it with array code, which must give the same numbers. The engine clips to the seller's bounds.
        """
        return np.array([float(rule.price(obs.row(b))) for b, rule in enumerate(rules)], dtype=float)

    def state_dict(self) -> dict[str, Any]:
        """Learned state as plain data (numbers, lists, numpy arrays); empty for stateless rules."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        if state:
            raise ValueError(f"strategy {self.name!r} has no state to load")

    @property
    def params(self) -> dict[str, Any]:
        """The keyword parameters this instance was built with, read back from the attributes of the same names.

        A parameter stored under another attribute name reads as its default here (and in ``repr`` and a
        checkpoint's sidecar).
        """
        return {p.name: getattr(self, p.name, p.default) for p in parameters(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


# --- capabilities: optional parts of the contract the host relies on, each checked with isinstance ----------


@runtime_checkable
class Converging(Protocol):
    """Capability: a learner that says when its greedy policy has stopped changing.

    ``marketsim run`` stops early once every such learner reports ``converged`` (Calvano et al.'s criterion).
    """

    @property
    def converged(self) -> bool:
        """True once the greedy policy has been stable for the learner's convergence window."""
        ...


@runtime_checkable
class TabularQLearner(Protocol):
    """Capability: a Q-table learner that the batched experiment engine can run in many sessions at once.

    After ``setup``: ``config`` (a ``marketsim.learning.tabular.TabularConfig``), ``q`` its initial table
    (states × grid prices) and ``grids`` every seller's price grid (sellers × grid prices).
    """

    config: Any
    q: np.ndarray
    grids: np.ndarray


@runtime_checkable
class GreedyTabulable(Protocol):
    """Capability: a learner on a price grid whose greedy policy can be read in every memory-1 grid state.

    ``marketsim train`` uses it to score the learner exactly against the oracle (``marketsim.market.oracle``).
    ``prices`` is its own grid after ``setup``; ``grid_params`` rebuilds that grid (``{"grid_size", "xi"}``
    or ``{"grid"}``); ``discount`` is its discount factor.
    """

    prices: np.ndarray
    discount: float

    @property
    def grid_params(self) -> Mapping[str, Any]:
        """The parameters that rebuild this learner's grid."""
        ...

    def greedy_table(self, grids: np.ndarray) -> np.ndarray:
        """The greedy grid action in every memory-1 state (joint last actions), as oracle policies are indexed."""
        ...


# --- capability: trained across worker processes (anchor: learning wing) ----------------------------------


@runtime_checkable
class ParallelTrainable(Protocol):
    """Capability: a learner that several worker processes train together through one shared model (A3C).

    ``marketsim train --workers N`` runs it (``marketsim.learning.parallel``): the host builds the market in
    the parent and asks the seat's learner to ``share_model()``; it starts N processes, each with its own
    market (own seed), and hands every worker's copy of the learner the shared model (``attach_worker``);
    the workers then step their markets and the learners update the shared model as they learn. At the end
    the parent's learner is told what the workers did (``finish_workers``) and its ``state_dict`` is saved.
    """

    def share_model(self) -> Any:
        """Move this learner's trainable state to shared memory; return a picklable handle to it for workers."""
        ...

    def attach_worker(self, shared: Any, on_update: Callable[[], None]) -> None:
        """Make this learner (in a worker's market) train ``shared``; call ``on_update`` after each update."""
        ...

    def finish_workers(self, steps: int, updates: int) -> int:
        """Record the workers' environment ``steps`` and ``updates``; return the shared optimiser's step count."""
        ...


# --- capability: meta-trainable (anchor: meta wing) -------------------------------------------------------


@documented
@dataclass(frozen=True, kw_only=True)
class MetaSetup:
    """What the host hands a meta-learner it builds: the family's price grid and horizon, the seed, the device."""

    grid: tuple[float, ...] = described("The task family's price grid (its `grid:`), ascending.")
    horizon: int = described("H: steps per task.")
    seed: int = described("Root seed of the meta-training run.")
    device: str = described(
        "Torch device to train on: 'auto' (the best available) or a device name such as 'cpu'.", default="auto"
    )


@documented
@dataclass(frozen=True, kw_only=True)
class MetaCheckpoint:
    """What a meta-learner leaves when training ends: the checkpoint's state, the parameters that rebuild the
    strategy from it, facts for the sidecar (``info``) and extra checkpoints by name (``(state, meta)``)."""

    state: dict[str, Any] = described("The trained state (plain data and tensors), saved as the checkpoint.")
    params: dict[str, Any] = described("Keyword parameters that rebuild the strategy to load ``state`` into.")
    info: dict[str, Any] = described("Facts for the checkpoint's JSON sidecar (plain data).", default_factory=dict)
    extra: dict[str, tuple[dict[str, Any], dict[str, Any]]] = described(
        "Further checkpoints by name, each (state, meta): e.g. the best one seen during training.",
        default_factory=dict,
    )


@runtime_checkable
class MetaLearner(Protocol):
    """One meta-training run of a learner, driven by the host's loop (``marketsim.meta.loop``).

    The host samples ``pool`` training tasks and ``validation`` held-aside ones and steps them as batched task
    markets (``env``: ``len``, ``horizon``, ``subset(idx)``, ``reset_episode(rng)``, ``step(last, own, rng)``,
    ``present``/``cost``/``pmin``/``pmax`` arrays with the learner in column 0). It calls ``begin`` once,
    ``update`` every iteration (``iterations`` when the caller gives none), ``validate`` every ``log_every``
    iterations (the host turns its expected profits into regret against the oracle) and ``finish`` at the end.
    """

    iterations: int
    pool: int
    validation: int
    log_every: int

    def begin(self, env: Any) -> None:
        """Build what training needs from the training tasks' batched market."""
        ...

    def update(self, iteration: int, iterations: int, env: Any, rng: np.random.Generator) -> Mapping[str, float]:
        """One meta-iteration on tasks drawn from ``env`` with ``rng``; the metrics a logged curve row shows."""
        ...

    def validate(self, env: Any) -> np.ndarray:
        """(tasks, H) expected profit of each step of the learner as it stands, in every task of ``env``."""
        ...

    def finish(
        self,
        iterations: int,
        env: Any,
        validation: Any,
        rng: np.random.Generator,
        regret: Callable[[np.ndarray], np.ndarray],
    ) -> MetaCheckpoint:
        """The trained state; ``regret(expected)`` gives the cumulative regret paths of validation profits."""
        ...


@runtime_checkable
class MetaTrainable(Protocol):
    """Capability: a strategy class meta-trained across a task family's markets (``marketsim meta-train``).

    The host owns the loop (task sampling, batched markets, progress, the curve, timing, checkpoints) and asks
    the class for a ``MetaLearner`` built from ``setup`` and the command's options (keyword hyper-parameters).
    """

    @classmethod
    def meta_learner(cls, setup: MetaSetup, **options: Any) -> MetaLearner:
        """A learner ready to be meta-trained (``ValueError``/``TypeError`` on bad options)."""
        ...


@runtime_checkable
class SizedState(Protocol):
    """Capability: a strategy whose state grows with the market (a tabular learner's tables) says how much.

    Scenario validation sums these estimates with the population's and refuses a market above the memory
    budget (``MARKETSIM_MEMORY_BUDGET``) before anything is allocated.
    """

    def state_bytes(self, n_sellers: int) -> float:
        """Estimated bytes this strategy will allocate in a market of ``n_sellers`` sellers (may be inf)."""
        ...


@runtime_checkable
class Reporting(Protocol):
    """Capability: a strategy with run metrics of its own (a remote model's token usage, latency, invalid answers).

    ``marketsim run`` puts ``report()`` (plain JSON data) in ``summary.json`` beside the seller's results.
    """

    def report(self) -> Mapping[str, Any]:
        """This seller's own metrics of the run so far, as JSON-serialisable plain data."""
        ...


@runtime_checkable
class Exploring(Protocol):
    """Capability: a learner that says how much it explores now and what its greedy policy would post next.

    ``marketsim viz`` charts both for every such seller after each step. Reading them must draw no randomness
    and change no state, so watching a run does not alter it.
    """

    @property
    def exploration_rate(self) -> float:
        """The probability of an exploratory price at the next decision (ε), in [0, 1]; 0 when not training."""
        ...

    @property
    def greedy_price(self) -> float | None:
        """The price the greedy policy would post at the next decision; None before the first observation."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """Capability: a strategy whose price needs a slow outside call (a remote language model) starts it early.

    Each step the host calls ``prefetch(obs)`` on every such seller before it asks any seller for its price, so
    the sellers' calls are in flight together; ``price(obs)`` then collects the answer for that same observation.
    A strategy must give the same price whether or not ``prefetch`` was called first.
    """

    def prefetch(self, obs: Observation) -> None:
        """Start working out the price for ``obs`` without waiting for it."""
        ...


@documented
@dataclass(frozen=True, slots=True)
class Parameter:
    """One keyword parameter of a strategy, read from its ``__init__`` signature (see ``parameters``)."""

    name: str = described("The keyword, which is also the attribute ``Strategy.params`` reads the value back from.")
    default: Any = described("Its default (None when required).")
    annotation: Any = described("Its evaluated type annotation (Any when it has none); files are checked against it.")
    required: bool = described("True when it has no default (a strategy must give every parameter a default).")


def parameters(cls: type[Strategy]) -> list[Parameter]:
    """The keyword parameters a strategy class accepts, in declaration order."""
    init = cls.__init__
    sig = inspect.signature(init)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # one unresolvable annotation must not cost the others theirs
        hints = None
    out = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        required = p.default is inspect.Parameter.empty
        annotation = hints.get(p.name, Any) if hints is not None else _resolve(init, p.name, p.annotation)
        out.append(Parameter(p.name, None if required else p.default, annotation, required))
    return out


def _resolve(func: Callable[..., Any], name: str, annotation: Any) -> Any:
    """One parameter's annotation of ``func`` evaluated (string annotations too); Any when it cannot be."""
    if annotation is inspect.Parameter.empty:
        return Any
    holder = types.SimpleNamespace(__annotations__={name: annotation})
    try:
        return typing.get_type_hints(holder, globalns=getattr(func, "__globals__", None))[name]
    except Exception:
        return Any


def checked_price(strategy: str, value: object, step: int | None = None) -> float:
    """Return ``value`` as a float, or raise InvalidPriceError naming the strategy."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidPriceError(strategy, value, step)
    try:
        price = float(value)
    except (OverflowError, TypeError, ValueError):  # e.g. an int too large for a float
        raise InvalidPriceError(strategy, value, step) from None
    if not math.isfinite(price) or price < 0:
        raise InvalidPriceError(strategy, value, step)
    return price + 0.0  # -0.0 becomes 0.0
