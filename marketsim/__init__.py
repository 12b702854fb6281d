"""marketsim: an agent-based market simulator whose sellers' pricing strategies are plugins.

The public API is the names in ``__all__``; everything else is internal. Every public name is imported on
first use (PEP 562), so ``import marketsim`` (and with it ``marketsim --help``) loads none of mesa, scipy,
pandas, matplotlib or torch; ``from marketsim import X`` works for every name in ``__all__``.
"""

from __future__ import annotations

import importlib

#: Each public name and the module that defines it, imported on first use.
_LAZY = {
    "STRATEGY_API_VERSION": "marketsim.strategy",
    "InvalidPriceError": "marketsim.strategy",
    "MarketInfo": "marketsim.strategy",
    "Observation": "marketsim.strategy",
    "Outcome": "marketsim.strategy",
    "Strategy": "marketsim.strategy",
    "hookimpl": "marketsim.hookspecs",
    "Observer": "marketsim.observers",
    "RunInfo": "marketsim.observers",
    "StepRecord": "marketsim.observers",
    "DuplicateStrategyError": "marketsim.registry",
    "Registry": "marketsim.registry",
    "UnknownStrategyError": "marketsim.registry",
    "default_registry": "marketsim.registry",
    "load_registry": "marketsim.registry",
    "make_plugin_manager": "marketsim.registry",
    "Scenario": "marketsim.config.scenario",
    "ScenarioError": "marketsim.config.scenario",
    "load_scenario": "marketsim.config.validate",
    "parse_scenario": "marketsim.config.validate",
    "ChoiceModel": "marketsim.market.consumers",
    "Logit": "marketsim.market.consumers",
    "Benchmark": "marketsim.market.economics",
    "Benchmarks": "marketsim.market.economics",
    "ExpectedDemand": "marketsim.market.economics",
    "compute_benchmarks": "marketsim.market.economics",
    "hhi": "marketsim.market.economics",
    "ConsumerPopulation": "marketsim.market.model",
    "MarketModel": "marketsim.market.model",
    "Seller": "marketsim.market.model",
    "RunResult": "marketsim.market.run",
    "simulate": "marketsim.market.run",
    "write_run": "marketsim.market.run",
    "load_tournament": "marketsim.config.tournament",
    "run_tournament": "marketsim.tournament.play",
    "run_experiment": "marketsim.learning.experiment",
    "write_experiment": "marketsim.learning.experiment",
    "train": "marketsim.api",  # the learning.training function, widened to take a file (see marketsim.api)
    "write_training": "marketsim.learning.training",
    "save_checkpoint": "marketsim.learning.checkpoint",
    "load_checkpoint": "marketsim.learning.checkpoint",
    "run": "marketsim.api",
    "experiment": "marketsim.api",
    "play_tournament": "marketsim.api",
    "meta_eval": "marketsim.api",
    "TournamentResult": "marketsim.api",
    "ExperimentResult": "marketsim.learning.experiment",
    "TrainResult": "marketsim.learning.training",
    "EvalResult": "marketsim.meta.evaluate",
}


def _installed_version() -> str:
    """The version of the installed distribution (what ``marketsim --version`` prints)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("marketsim")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> object:
    """Import a public name on first use and keep it in the module, so the import happens once (PEP 562)."""
    if name == "__version__":
        value: object = _installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names with the lazy public ones, for ``dir()`` and completion."""
    return sorted({*globals(), *_LAZY, "__version__"})


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
    "run",
    "experiment",
    "play_tournament",
    "meta_eval",
    "TournamentResult",
    "ExperimentResult",
    "TrainResult",
    "EvalResult",
]
