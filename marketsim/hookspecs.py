"""The pluggy hook specifications of marketsim: how a plugin hands the host its strategies.

A plugin is any module registered under the ``marketsim`` entry-point group. It implements hooks
marked with ``marketsim.hookimpl``; the host owns the registry and passes a ``register`` callback.
Hooks run when the host discovers plugins (once per process, on first use of the registry), never in
the step loop, so they must be cheap: register classes and import no heavy dependency (torch) there.
A module may implement any subset of the hooks; a hook whose name is not one of these is reported.
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

    :param register: callback that adds one ``marketsim.Strategy`` subclass to the host's registry under
        its ``name``. A class that is not a Strategy subclass, has no ``name`` (or one holding ``:``) or does
        not implement ``price`` is refused and reported, and the plugin's other classes still register. A
        name that two distributions register is refused for both (bare name unusable; each stays usable as
        ``distribution:name``), and ``marketsim plugins`` reports the clash.

    Return value: ignored (return ``None``). If the hook raises, every class it registered is dropped and
    the plugin is reported as broken; the other plugins still load.
    """


@hookspec
def register_choice_models(register: Callable[[type], None]) -> None:
    """Register consumer-choice (demand) models by calling ``register(ChoiceModelClass)`` once per class.

    :param register: callback that adds one ``marketsim.ChoiceModel`` subclass with a non-empty ``name``.
        A scenario picks a model with ``consumers: {choice: {model: NAME, params: {...}}}``; the market
        builds it once per run as ``cls(mu=consumers.mu, **params)`` and calls its vectorised methods
        (``probabilities`` is required; ``choose``, ``surplus``, ``expected_units`` and ``reroute`` have
        defaults derived from it). The built-in ``logit`` registers through this same hook. Refusals and
        clashes are handled as for strategies.

    Return value: ignored. If the hook raises, the plugin's choice models are dropped and it is reported.
    """


@hookspec
def register_observers(register: Callable[[type], None]) -> None:
    """Register step observers (loggers, custom metrics) by calling ``register(ObserverClass)``.

    :param register: callback that adds one ``marketsim.Observer`` subclass with a non-empty ``name``.
        A scenario attaches observers with ``observers: [{observer: NAME, params: {...}}]``. Each is
        built once per run as ``cls(**params)``, gets ``start(info)`` with a ``RunInfo``, then
        ``on_step(record)`` with a frozen ``StepRecord`` at the end of every step, and ``finish()`` returns
        the metrics (JSON-serialisable) stored under ``summary.json["observers"][NAME]``. An observer that
        raises stops the run with its name and step. Refusals and clashes are handled as for strategies.

    Return value: ignored. If the hook raises, the plugin's observers are dropped and it is reported.
    """
