"""The pluggy hook specifications of marketsim: how a plugin hands the host its strategies.

A plugin is any module registered under the ``marketsim`` entry-point group. It implements hooks
marked with ``marketsim.hookimpl``; the host owns the registry and passes a ``register`` callback.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "marketsim"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_strategies(register: Callable[[type], None]) -> None:
    """Register pricing strategies by calling ``register(StrategyClass)`` once per class.

    :param register: callback that adds one ``marketsim.Strategy`` subclass to the host's registry.
        A class whose name is already taken, or that is not a Strategy subclass with a non-empty
        ``name``, is refused and reported (``marketsim plugins`` lists it); the others still register.

    Return value: ignored (return ``None``). Hooks run at discovery time, never in the step loop.
    """


@hookspec
def register_choice_models(register: Callable[[type], None]) -> None:
    """Register consumer-choice (demand) models by calling ``register(ChoiceModelClass)`` once per class.

    :param register: callback that adds one ``marketsim.ChoiceModel`` subclass with a non-empty ``name``.
        A scenario picks a model with ``consumers: {choice: {model: NAME, params: {...}}}``; the market
        builds it once per run as ``cls(mu=consumers.mu, **params)`` and calls its vectorised methods
        (``probabilities`` is required; ``choose``, ``surplus``, ``expected_units`` and ``reroute`` have
        defaults derived from it). The built-in ``logit`` registers through this same hook.

    Return value: ignored. Refused classes (duplicate name, wrong type) are reported, not fatal.
    """


@hookspec
def register_observers(register: Callable[[type], None]) -> None:
    """Register step observers (loggers, custom metrics) by calling ``register(ObserverClass)``.

    :param register: callback that adds one ``marketsim.Observer`` subclass with a non-empty ``name``.
        A scenario attaches observers with ``observers: [{observer: NAME, params: {...}}]``. Each is
        built once per run, gets ``start(info)``, then ``on_step(record)`` with a frozen ``StepRecord`` at
        the end of every step, and ``finish()`` returns the metrics stored under
        ``summary.json["observers"][NAME]``. An observer that raises stops the run with its name.

    Return value: ignored.
    """
