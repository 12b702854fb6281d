"""What the optional extras change: without torch (the ``deep`` extra, e.g. the Python 3.12 core run)
the deep-RL and meta-RL plugins are correctly listed as failed to load; every other problem is a real one."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

HAS_TORCH = importlib.util.find_spec("torch") is not None
TORCH_PLUGINS = {"deep", "meta"}  # entry-point names of the plugins that need torch


def unexpected(problems: list[Any]) -> list[Any]:
    """Plugin problems, less the torch plugins' 'needs torch' when torch is not installed."""

    def plugin(p: Any) -> str:
        return p["plugin"] if isinstance(p, dict) else p.plugin

    return [p for p in problems if HAS_TORCH or plugin(p) not in TORCH_PLUGINS]


TORCH_STRATEGIES = re.compile(r"strategy:\s*(dqn|a3c|rl2|reptile_dqn)\b")
#: Files naming a language-model seller need an endpoint: tests/test_llm_runs.py runs them against a loopback stub.
LLM_STRATEGIES = re.compile(r"strategy:\s*llm_pricer\b")


def needs_endpoint(path: Path) -> bool:
    """Whether a bundled file names an LLM seller (run against the stub server, not as is)."""
    return bool(LLM_STRATEGIES.search(path.read_text()))


def bundled(paths: list[Path]) -> list[Any]:
    """Bundled scenario files as pytest params; those naming torch strategies skip without torch."""
    import pytest

    def needs_torch(path: Path) -> bool:
        return bool(TORCH_STRATEGIES.search(path.read_text()))

    skip = pytest.mark.skip(reason="names a torch strategy and torch (the deep extra) is not installed")
    llm = pytest.mark.skip(reason="names llm_pricer: tests/test_llm_runs.py runs it against the loopback stub")

    def marks(path: Path) -> list[Any]:
        return [llm] if needs_endpoint(path) else [skip] if needs_torch(path) and not HAS_TORCH else []

    return [pytest.param(p, id=p.stem, marks=marks(p)) for p in paths]
