"""marketsim: an agent-based market simulator whose sellers' pricing strategies are plugins.

The public API is the names in ``__all__``; everything else is internal.
"""

from marketsim.config.scenario import Scenario, ScenarioError
from marketsim.config.validate import load_scenario, parse_scenario
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

#: The main jobs beyond one run, imported on first use so that ``import marketsim`` stays light.
_LAZY = {
    "load_tournament": "marketsim.config.tournament",
    "run_tournament": "marketsim.tournament.play",
    "run_experiment": "marketsim.learning.experiment",
    "write_experiment": "marketsim.learning.experiment",
    "train": "marketsim.learning.training",
    "write_training": "marketsim.learning.training",
    "save_checkpoint": "marketsim.learning.checkpoint",
    "load_checkpoint": "marketsim.learning.checkpoint",
}


def __getattr__(name: str) -> object:
    """The lazily imported public names (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "load_checkpoint",
    "load_tournament",
    "run_experiment",
    "run_tournament",
    "save_checkpoint",
    "train",
    "write_experiment",
    "write_training",
    "load_registry",
    "load_scenario",
    "make_plugin_manager",
    "parse_scenario",
    "simulate",
    "write_run",
]
