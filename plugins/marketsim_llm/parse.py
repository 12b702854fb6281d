"""Strict parsing of a model's pricing answer: a JSON object ``{"price": number, "notes": string}``.

What is accepted, and nothing else: the whole answer is that JSON object (or a bare JSON number); or the answer
holds exactly one fenced block (```json ... ```) whose content is that object; or the whole answer is a single
number. Prose with a number in it, several fenced blocks, a price given as a string, NaN or infinity are invalid:
a pricing agent must never post a number guessed out of free text. The notes are cut to a length cap and stripped
of control characters; they are only ever shown back to the model as text (never executed, never used as a path).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ANSWER_SCHEMA", "Answer", "InvalidAnswer", "clean_notes", "parse_answer", "valid_price"]

MAX_ANSWER_CHARS = 200_000  # longer answers are refused before any parsing (the client caps the body as well)
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than tab and newline

#: The structured-output schema of an answer (strict-mode compatible: every property required, no others; the notes'
#: length is capped by the seller, not the schema, since strict servers refuse ``maxLength``).
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"price": {"type": "number"}, "notes": {"type": "string"}},
    "required": ["price", "notes"],
    "additionalProperties": False,
}


class InvalidAnswer(ValueError):  # noqa: N818 - a verdict on the model's answer, raised and caught by the seller
    """The model's answer is not a valid price; the message says why in words that can be shown to the model."""


@dataclass(frozen=True)
class Answer:
    """A parsed answer: the price in the units the model was shown, and its notes (may be empty)."""

    price: float
    notes: str


def _refuse_constant(name: str) -> float:
    """``json.loads`` hook: NaN and infinities are not numbers a price can be."""
    raise InvalidAnswer(f"the price must be a finite number, not {name}")


def _load(text: str) -> Any:
    """``text`` as strict JSON (NaN/Infinity refused); InvalidAnswer when it is not JSON."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except InvalidAnswer:
        raise
    except ValueError:  # not JSON, or an integer with more digits than Python converts
        raise InvalidAnswer("the answer is not the JSON object asked for") from None
    except RecursionError:
        raise InvalidAnswer("the answer is nested too deeply to be the JSON object asked for") from None


def _number(value: Any) -> float:
    """A JSON number as a float; booleans, strings and numbers too large for a float are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAnswer("the price must be a JSON number")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidAnswer("the price is too large") from None
    if not math.isfinite(number):
        raise InvalidAnswer("the price must be a finite number")
    return number


def _from_json(value: Any) -> Answer:
    """An Answer from decoded JSON: an object with a numeric ``price`` and a string ``notes``, or a lone number."""
    if isinstance(value, dict):
        if "price" not in value:
            raise InvalidAnswer('the JSON object has no "price"')
        notes = value.get("notes", "")
        if not isinstance(notes, str):
            raise InvalidAnswer('"notes" must be a string')
        return Answer(_number(value["price"]), notes)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Answer(_number(value), "")
    raise InvalidAnswer("the answer must be a JSON object with a price and notes")


def parse_answer(text: str) -> Answer:
    """Parse a model's answer strictly (JSON, one fenced JSON object, or a lone number); InvalidAnswer otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidAnswer("the answer is empty")
    if len(text) > MAX_ANSWER_CHARS:
        raise InvalidAnswer("the answer is too long")
    body = text.strip()
    if NUMBER.fullmatch(body):
        return Answer(_number(float(body)), "")
    if body.startswith(("{", "[", '"')) or body[0].isdigit():
        return _from_json(_load(body))
    fences = FENCE.findall(text)
    if len(fences) == 1 and fences[0].strip().startswith("{"):
        return _from_json(_load(fences[0].strip()))
    if len(fences) > 1:
        raise InvalidAnswer("the answer holds several fenced blocks; give one JSON object")
    raise InvalidAnswer("the answer is not the JSON object asked for")


def valid_price(shown: float, low: float, high: float) -> float:
    """``shown`` if it is a positive finite price within ``[low, high]`` (the bounds as the model was shown them)."""
    if not math.isfinite(shown):
        raise InvalidAnswer("the price must be a finite number")
    if shown <= 0:
        raise InvalidAnswer("the price must be positive")
    if not low <= shown <= high:
        raise InvalidAnswer(f"the price must be between {low:g} and {high:g}")
    return shown


def clean_notes(notes: str, limit: int) -> str:
    """The notes kept for the next prompt: control characters removed, cut to ``limit`` characters."""
    return CONTROL.sub("", notes)[: max(int(limit), 0)]
