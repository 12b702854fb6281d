"""Limits that keep a small or hostile input file from costing a lot: file size, YAML expansion, memory.

Each limit has a default and an environment variable that overrides it, so a user with a large machine
(or a CI job that wants to be strict) can move it without a code change:

- ``MARKETSIM_MAX_FILE_BYTES`` (default 5 MB): the largest scenario, tournament, family or edge-list file read.
- ``MARKETSIM_MAX_YAML_NODES`` (default 1,000,000): the most YAML nodes a file may hold once its aliases
  (``*name``) are expanded, which stops "billion laughs" alias bombs.
- ``MARKETSIM_MAX_YAML_DEPTH`` (default 64): the deepest nesting of lists and mappings.
- ``MARKETSIM_MEMORY_BUDGET`` (default 4 GiB): the most memory a scenario's consumer population, social graph
  and strategy state tables may need, by estimate, before anything runs.
- ``MARKETSIM_MAX_SELLERS`` (default 1000): the most sellers one market may hold (groups expanded).

Sizes accept a plain number of bytes or a number with a K, M, G or T suffix (powers of 1024), e.g. ``8G``.
"""

from __future__ import annotations

import math
import os
import re

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


class LimitSettingError(ValueError):
    """An environment variable that sets a limit holds something that is not a size or a count."""


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``5000000``, ``5M``, ``8G``, ``1.5GiB`` (K/M/G/T are powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise LimitSettingError(f"{text!r} is not a size (write bytes, or a number with K, M, G or T)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _setting(name: str, default: int, size: bool) -> int:
    """The limit in environment variable ``name`` (a size or a count), or ``default`` when it is unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse_size(raw) if size else int(raw)
    except (LimitSettingError, ValueError):
        raise LimitSettingError(f"environment variable {name}={raw[:40]!r} is not a whole number") from None
    if value <= 0:
        raise LimitSettingError(f"environment variable {name} must be positive, got {raw[:40]!r}")
    return value


def max_file_bytes() -> int:
    """Largest input file read (``MARKETSIM_MAX_FILE_BYTES``, default 5 MB)."""
    return _setting("MARKETSIM_MAX_FILE_BYTES", 5 * 1024**2, size=True)


def max_yaml_nodes() -> int:
    """Most YAML nodes in a file with its aliases expanded (``MARKETSIM_MAX_YAML_NODES``, default 1,000,000)."""
    return _setting("MARKETSIM_MAX_YAML_NODES", 1_000_000, size=False)


def max_yaml_depth() -> int:
    """Deepest nesting of YAML lists and mappings (``MARKETSIM_MAX_YAML_DEPTH``, default 64)."""
    return _setting("MARKETSIM_MAX_YAML_DEPTH", 64, size=False)


def memory_budget() -> int:
    """Most bytes a market's estimated state may need (``MARKETSIM_MEMORY_BUDGET``, default 4 GiB)."""
    return _setting("MARKETSIM_MEMORY_BUDGET", 4 * 1024**3, size=True)


def max_sellers() -> int:
    """Most sellers in one market, groups expanded (``MARKETSIM_MAX_SELLERS``, default 1000)."""
    return _setting("MARKETSIM_MAX_SELLERS", 1000, size=False)


def human_bytes(n: float, exact: bool = True) -> str:
    """``n`` bytes for a message: ``3.2 GiB (3,435,973,837 bytes)``; astronomical sizes as a power of ten."""
    if not math.isfinite(n) or n >= 1e18:
        return "over 10^300 bytes" if not math.isfinite(n) else f"10^{int(math.log10(n))} bytes"
    count = f"{int(n):,} bytes"
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:,.3g} {unit}" + (f" ({count})" if exact else "")
    return count
