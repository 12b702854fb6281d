"""The base of every file-format model (scenario, tournament, family) and its strict number types.

Every model refuses unknown keys, is frozen and refuses NaN/inf; numbers refuse text and booleans, which
YAML produces from quoted values and from ``yes``/``no``/``on``/``off``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

__all__ = ["FileSchema", "Float", "Int", "Spec", "standard_keywords", "text_number_hint"]


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


# --- JSON Schema -------------------------------------------------------------------------------------------

#: pydantic's names for limits, which it leaks into a schema when a limited type carries a validator (our
#: Float/Int inside ``X | None``), and the JSON Schema keywords that mean the same.
_LIMITS = {
    "gt": "exclusiveMinimum",
    "ge": "minimum",
    "lt": "exclusiveMaximum",
    "le": "maximum",
    "multiple_of": "multipleOf",
}
#: pydantic's length limits, by the JSON type they apply to.
_LENGTHS = {
    "min_length": {"string": "minLength", "array": "minItems", "object": "minProperties"},
    "max_length": {"string": "maxLength", "array": "maxItems", "object": "maxProperties"},
}
#: Keywords whose value is a map of names to subschemas (the names are not keywords).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
#: OpenAPI's keyword, which pydantic adds beside a tagged union's ``oneOf``: not JSON Schema.
_NOT_JSON_SCHEMA = ("discriminator",)


def standard_keywords(schema: Any) -> Any:
    """A copy of ``schema`` with pydantic's limit names turned into Draft 2020-12 keywords and OpenAPI's dropped."""
    if isinstance(schema, list):
        return [standard_keywords(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _NOT_JSON_SCHEMA:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: standard_keywords(sub) for name, sub in value.items()}
        elif key in ("default", "const", "enum", "examples"):
            out[key] = value  # data, not schemas
        else:
            out[_keyword(key, schema.get("type"))] = standard_keywords(value)
    return out


def _keyword(key: str, json_type: Any) -> str:
    """The Draft 2020-12 keyword for pydantic's ``key`` in a schema of ``json_type`` (``key`` when standard)."""
    if key in _LIMITS:
        return _LIMITS[key]
    if key in _LENGTHS and json_type in _LENGTHS[key]:
        return _LENGTHS[key][json_type]
    return key


class FileSchema(GenerateJsonSchema):
    """pydantic's JSON Schema generator emitting Draft 2020-12 keywords only, with ``$schema`` declared."""

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        out = standard_keywords(super().generate(schema, mode))
        return {"$schema": self.schema_dialect, **out}
