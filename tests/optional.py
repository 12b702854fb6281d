"""What the optional extras change: without torch (the ``deep`` extra, e.g. the Python 3.12 core run)
the deep-RL plugin is correctly listed as failed to load; every other plugin problem is a real one."""

from __future__ import annotations

import importlib.util
from typing import Any

HAS_TORCH = importlib.util.find_spec("torch") is not None


def unexpected(problems: list[Any]) -> list[Any]:
    """Plugin problems, less the deep plugin's 'needs torch' when torch is not installed."""

    def plugin(p: Any) -> str:
        return p["plugin"] if isinstance(p, dict) else p.plugin

    return [p for p in problems if HAS_TORCH or plugin(p) != "deep"]
