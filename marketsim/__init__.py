"""marketsim: an agent-based market simulator whose sellers' pricing strategies are plugins.

The public API is the names in ``__all__``; everything else is internal.
"""

from marketsim.config.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from marketsim.hookspecs import hookimpl
from marketsim.market.consumers import ChoiceModel, Logit
from marketsim.market.economics import Benchmark, Benchmarks, ExpectedDemand, compute_benchmarks, hhi
from marketsim.market.model import ConsumerPopulation, MarketModel, Seller
from marketsim.market.run import RunResult, simulate, write_run
from marketsim.observers import Observer, RunInfo, StepRecord
from marketsim.registry import (
    DuplicateStrategyError,
    Registry,
    UnknownStrategyError,
    default_registry,
    load_registry,
    make_plugin_manager,
)
from marketsim.strategy import (
    STRATEGY_API_VERSION,
    InvalidPriceError,
    MarketInfo,
    Observation,
    Outcome,
    Strategy,
)

__version__ = "0.1.0"

__all__ = [
    "STRATEGY_API_VERSION",
    "Benchmark",
    "Benchmarks",
    "ChoiceModel",
    "ConsumerPopulation",
    "DuplicateStrategyError",
    "ExpectedDemand",
    "InvalidPriceError",
    "Logit",
    "MarketInfo",
    "MarketModel",
    "Observation",
    "Observer",
    "Outcome",
    "Registry",
    "RunInfo",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Seller",
    "StepRecord",
    "Strategy",
    "UnknownStrategyError",
    "compute_benchmarks",
    "default_registry",
    "hhi",
    "hookimpl",
    "load_registry",
    "load_scenario",
    "make_plugin_manager",
    "parse_scenario",
    "simulate",
    "write_run",
]
