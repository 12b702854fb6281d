"""Dotted parameter paths into a scenario (``consumers.mu``, ``sellers[0].cost``, ``sellers[1].params.step``).

A path names one value of a validated scenario. ``with_values`` returns a copy with some of them replaced and
the whole scenario validated again (a cost above ``price_max`` is refused as it would be in a file), and
``knobs`` lists the numeric values a person would want to turn, with a sensible range for each: the live
dashboard (``marketsim viz``) makes them sliders.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from marketsim.config.scenario import Scenario
from marketsim.registry import Registry
from marketsim.strategy import parameters

Key = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


class PathError(ValueError):
    """A dotted path that does not name a value of the scenario, or a value the scenario refuses."""


def parse(path: str) -> Key:
    """``"sellers[0].params.step"`` → ``("sellers", 0, "params", "step")``; PathError when malformed."""
    key: list[str | int] = []
    for part in path.split("."):
        match = _PART.fullmatch(part)
        if match is None:
            raise PathError(f"{path!r} is not a dotted path like consumers.mu or sellers[0].params.step")
        key.append(match.group(1))
        key += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    return tuple(key)


def format_path(key: Key) -> str:
    """The inverse of ``parse``."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def set_value(data: Any, path: str, value: Any) -> None:
    """Set the value at ``path`` in plain YAML data (a file as written), adding the last key if it is missing.

    The file's own parser then judges the result: a key it does not know is refused there, located.
    """
    _set(data, parse(path), value, path, new_leaf=True)


def _set(data: Any, key: Key, value: Any, path: str, new_leaf: bool = False) -> None:
    """Set ``data[key...] = value`` in a plain dump; the last part may add a strategy parameter (any key with
    ``new_leaf``)."""
    node = data
    for depth, part in enumerate(key):
        last = depth == len(key) - 1
        addable = last and (new_leaf or key[-2:-1] == ("params",))
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise PathError(f"{path}: there is no item {part} (the list has {len(node) if node else 0})")
        elif not isinstance(node, dict) or (part not in node and not addable):
            raise PathError(f"{path}: the scenario has no {format_path(key[: depth + 1])!r}")
        if last:
            node[part] = value
        else:
            node = node[part]


def with_values(scenario: M, values: Mapping[str, Any]) -> M:
    """A validated copy of ``scenario`` (or of any file model: a tournament, a family) with each path's value replaced.

    Strategy parameters are checked when the strategy is built (``Registry.create``), as for a file.
    """
    if not values:
        return scenario
    data = scenario.model_dump(mode="json", by_alias=True)  # lists and plain numbers: settable in place
    for path, value in values.items():
        _set(data, parse(path), value, path)
    try:
        return type(scenario).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = format_path(tuple(first["loc"])) if first.get("loc") else "scenario"
        raise PathError(f"{where}: {first['msg']}") from None


@dataclass(frozen=True)
class Knob:
    """A numeric value of a scenario that can be turned, with the range a slider offers for it."""

    path: str
    label: str
    value: float
    low: float
    high: float
    step: float
    integer: bool = False


def _span(value: float, integer: bool) -> tuple[float, float, float]:
    """A slider's (low, high, step) around a value: [0, 2·value] ([0, 1] for 0), with the value on the grid.

    A slider snaps to low + k·step, so the step must divide the value as written, or merely showing the slider
    would move it (2.1 on a 0.04 grid becomes 2.12): see ``_decimal_step``.
    """
    high = 2.0 * abs(value) if value else 1.0
    if integer:
        step = 10 ** max(int(math.log10(high / 50)), 0) if high >= 50 else 1
        step = step if value % step == 0 else 1
        return (0.0 if step > 1 else min(1.0, value)), max(float(round(high)), 1.0), float(step)
    return 0.0, high, _decimal_step(value, high)


def _decimal_step(value: float, high: float) -> float:
    """The power of ten of the value's last written digit, refined until [0, high] has at least 40 steps."""
    exponent = decimal.Decimal(repr(float(value))).normalize().as_tuple().exponent
    step = decimal.Decimal(1).scaleb(min(int(exponent), 0))
    while high / float(step) < 40:
        step = step.scaleb(-1)
    return float(step)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def knobs(scenario: Scenario, registry: Registry) -> list[Knob]:
    """The values worth a slider: the logit scale, the arrival rate, each seller's cost and its parameters.

    A seller's parameters are the numeric ones written in the file, and for a strategy that does not learn also
    the numeric ones it declares with a default (a rule's whole behaviour is in them; a learner has many).
    """
    mu, arrival = scenario.consumers.mu, scenario.consumers.arrival
    mu_high = max(1.0, 4 * mu)
    out = [
        Knob("consumers.mu", "logit scale mu", mu, 0.0, mu_high, _decimal_step(mu, mu_high)),
        Knob(
            "consumers.arrival",
            "arrival probability",
            arrival,
            _decimal_step(arrival, 1.0),
            1.0,
            _decimal_step(arrival, 1.0),
        ),
    ]
    for i, seller in enumerate(scenario.sellers):
        high = min(seller.price_max, max(2 * seller.cost, 1.0))
        out.append(
            Knob(f"sellers[{i}].cost", f"{seller.name}: cost", seller.cost, 0.0, high, _decimal_step(seller.cost, high))
        )
        out += _param_knobs(i, seller.name, seller.strategy, seller.params, registry)
    return out


def _param_knobs(i: int, name: str, strategy: str, written: Mapping[str, Any], registry: Registry) -> list[Knob]:
    cls = registry.get(strategy).cls
    learns = bool(getattr(cls, "classifier", {}).get("learns", False))
    declared = {p.name: p for p in parameters(cls)}
    values = {k: v for k, v in written.items() if _numeric(v)}
    if not learns:
        values |= {k: p.default for k, p in declared.items() if k not in values and _numeric(p.default)}
    out = []
    for key, value in values.items():
        integer = isinstance(value, int) and declared.get(key) is not None and declared[key].annotation is int
        low, high, step = _span(float(value), integer)
        out.append(Knob(f"sellers[{i}].params.{key}", f"{name}: {key}", float(value), low, high, step, integer))
    return out


def paths(knob_list: Sequence[Knob]) -> list[str]:
    """The paths of a list of knobs, in order."""
    return [k.path for k in knob_list]
