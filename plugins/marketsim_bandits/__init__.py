"""Bandit and oracle pricing baselines for meta-learning evaluations: Thompson sampling,
UCB1, the best fixed price under a task prior and a clairvoyant oracle. Registered through the plugin
hook like any third-party plugin (entry point ``bandits = "marketsim_bandits"`` in group ``marketsim``)."""

from __future__ import annotations

from collections.abc import Callable

from marketsim.hookspecs import hookimpl

from .strategies import ALL_STRATEGIES, BestFixedPrice, Clairvoyant, ThompsonPricing, UCBPricing

__all__ = ["ALL_STRATEGIES", "BestFixedPrice", "Clairvoyant", "ThompsonPricing", "UCBPricing", "register_strategies"]

MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand every bandit baseline to the host's registry."""
    for cls in ALL_STRATEGIES:
        register(cls)
