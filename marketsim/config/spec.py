"""The base of every file-format model (scenario, tournament, family) and its strict number types.

Every model refuses unknown keys, is frozen and refuses NaN/inf; numbers refuse text and booleans, which
YAML produces from quoted values and from ``yes``/``no``/``on``/``off``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

__all__ = ["Float", "Int", "Spec", "text_number_hint"]


class Spec(BaseModel):
    """A strict, frozen part of a file format: unknown keys are errors, numbers must be finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Messages for an empty (too short) list field of this model, by field name, in place of pydantic's.
    too_short_messages: ClassVar[Mapping[str, str]] = {}


_E_NOTATION = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def text_number_hint(text: str) -> str:
    """How to write ``text`` as a number: YAML 1.1 reads ``2e4`` (no dot, no exponent sign) as text."""
    if len(text) < 40 and _E_NOTATION.match(text.strip()):
        mantissa, exponent = text.strip().lower().split("e")
        mantissa += "" if "." in mantissa else ".0"
        exponent = exponent if exponent[0] in "+-" else "+" + exponent
        value = float(text)
        plain = f" or {int(value)}" if value.is_integer() and abs(value) < 1e15 else ""
        return f"YAML 1.1 reads {text.strip()} as text; write {mantissa}e{exponent}{plain}"
    return "write numbers without quotes"


def _no_text_or_bool(value: Any) -> Any:
    """Refuse text and booleans where a number is expected (lax pydantic would turn "2" or `yes` into numbers)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "should be a number, not a boolean (YAML reads yes/no/on/off as one)")
    if isinstance(value, str):
        raise PydanticCustomError("number_type", f"should be a number, not text ({text_number_hint(value)})")
    return value


#: A real number; ints and numpy scalars are fine, text and booleans are not.
Float = Annotated[float, BeforeValidator(_no_text_or_bool)]
#: An integer; numpy integers are fine, text, booleans and fractions are not.
Int = Annotated[int, BeforeValidator(_no_text_or_bool)]
