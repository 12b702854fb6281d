"""Markets the tests share: the logit duopoly of Calvano et al. (2020) with expected demand."""

from __future__ import annotations

from typing import Any

from marketsim.config.scenario import Scenario

NASH, MONOPOLY = 1.4729266, 1.9249809  # its one-shot Nash and joint-monopoly prices
BOUNDS = {"price_min": 1.0, "price_max": 2.5}


def duopoly_dict(a: dict, b: dict, seed: int = 100, steps: int = 10) -> dict[str, Any]:
    """The duopoly (a_i = 2, c = 1, mu = 0.25, expected demand) with sellers ``a`` and ``b``, as YAML data."""
    return {
        "name": "duopoly",
        "seed": seed,
        "steps": steps,
        "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
        "demand": {"mode": "expected"},
        "sellers": [{"name": "a", **BOUNDS, **a}, {"name": "b", **BOUNDS, **b}],
    }


def duopoly(a: dict, b: dict, seed: int = 100, steps: int = 10) -> Scenario:
    """The duopoly as a validated Scenario."""
    return Scenario.model_validate(duopoly_dict(a, b, seed, steps))
