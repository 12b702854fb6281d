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
