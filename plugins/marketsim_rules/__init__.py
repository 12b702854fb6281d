"""marketsim's built-in rule-based pricing strategies, registered through the plugin hook like any
third-party plugin (entry point ``rules = "marketsim_rules"`` in group ``marketsim``)."""

from __future__ import annotations

from collections.abc import Callable

from marketsim.hookspecs import hookimpl

from .strategies import (
    ALL_STRATEGIES,
    CostPlus,
    DemandResponsive,
    FixedPrice,
    FollowAverage,
    InventoryMarkdown,
    MatchLowest,
    MyopicBestResponse,
    RandomPrice,
    ScheduledPromotions,
    Undercut,
)

__all__ = [
    "ALL_STRATEGIES",
    "CostPlus",
    "DemandResponsive",
    "FixedPrice",
    "FollowAverage",
    "InventoryMarkdown",
    "MatchLowest",
    "MyopicBestResponse",
    "RandomPrice",
    "ScheduledPromotions",
    "Undercut",
    "register_strategies",
]


MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand every built-in rule-based strategy to the host's registry."""
    for cls in ALL_STRATEGIES:
        register(cls)
