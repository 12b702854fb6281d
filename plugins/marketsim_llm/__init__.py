"""Large-language-model sellers: ``llm_pricer`` asks any OpenAI-compatible endpoint for each period's price.

Registered through the ``marketsim`` entry-point group like any plugin. The plugin imports without ``openai``
(the ``llm`` extra, ``pip install -e '.[llm]'``), so discovery never fails on it; a seller that uses
``llm_pricer`` without it fails its setup with a ``MissingExtraError`` naming the extra.
"""

from __future__ import annotations

from collections.abc import Callable

from marketsim.hookspecs import hookimpl

from .parse import InvalidAnswer
from .prompts import PromptTemplateError
from .strategy import LLMPricer, NoValidPriceError

__all__ = ["InvalidAnswer", "LLMPricer", "NoValidPriceError", "PromptTemplateError", "register_strategies"]

MARKETSIM_API = ">=1,<2"  # the strategy-API versions this plugin supports


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    """Hand the host's registry the ``llm_pricer`` seller."""
    register(LLMPricer)
