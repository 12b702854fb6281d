"""marketsim-econometric: an econometric pricer, published as a marketsim strategy plugin.

marketsim imports this module through the ``marketsim`` entry-point group and calls its
``register_strategies`` hook. ``MARKETSIM_API`` says which strategy-API versions it was written for;
marketsim skips the plugin, with that reason, if its own version is outside the range.
"""

from __future__ import annotations

from collections.abc import Callable

from marketsim.hookspecs import hookimpl

from .pricer import EconometricPricer

__all__ = ["EconometricPricer", "register_strategies"]
__version__ = "0.1.0"

MARKETSIM_API = ">=1,<2"


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand the econometric pricer to marketsim's registry."""
    register(EconometricPricer)
