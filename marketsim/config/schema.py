"""JSON Schema (Draft 2020-12) of every file kind marketsim reads, for editors, CI validators and `marketsim schema`.

Each kind's schema comes from its pydantic model (``FileSchema`` keeps to standard keywords). A tournament's inline
``market`` and a family's ``base`` are whole scenarios, so their schemas embed the scenario schema there; a file's
cross-field and registry checks (strategy names, parameters, memory) stay with ``marketsim validate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from marketsim.config.spec import FileSchema

__all__ = ["SCHEMA_KINDS", "file_schema"]

_REF = "#/$defs/{model}"


def _scenario() -> type[BaseModel]:
    from marketsim.config.scenario import Scenario

    return Scenario


def _tournament() -> type[BaseModel]:
    from marketsim.config.tournament import Tournament

    return Tournament


def _family() -> type[BaseModel]:
    from marketsim.config.family import _FamilyFile

    return _FamilyFile


def _sweep() -> type[BaseModel]:
    from marketsim.config.sweep import Sweep

    return Sweep


#: kind → (its model, the top-level properties that hold an inline scenario). Add a kind here to serve it.
SCHEMA_KINDS: dict[str, tuple[Callable[[], type[BaseModel]], tuple[str, ...]]] = {
    "scenario": (_scenario, ()),
    "tournament": (_tournament, ("market",)),
    "family": (_family, ("base",)),
    "sweep": (_sweep, ()),
}


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema with its sub-models under ``$defs``."""
    return model.model_json_schema(by_alias=True, schema_generator=FileSchema, ref_template=_REF)


def file_schema(kind: str = "scenario") -> dict[str, Any]:
    """The JSON Schema of a ``kind`` file (one of SCHEMA_KINDS); ValueError for another kind."""
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"unknown file kind {kind!r}: expected one of {', '.join(SCHEMA_KINDS)}")
    load, inline = SCHEMA_KINDS[kind]
    schema = _model_schema(load())
    schema["title"] = kind.capitalize()  # the model's name for scenario and tournament; the family's is private
    return _with_scenarios(schema, inline) if inline else schema


def _with_scenarios(schema: dict[str, Any], properties: tuple[str, ...]) -> dict[str, Any]:
    """Point each of ``properties``' object form at the scenario schema, added to ``$defs``."""
    scenario = _model_schema(_scenario())
    defs = schema.setdefault("$defs", {})
    extra = {**scenario.pop("$defs", {}), "Scenario": {k: v for k, v in scenario.items() if k != "$schema"}}
    taken = sorted(set(defs) & set(extra))
    if taken:  # two models of the same name: the references would be ambiguous
        raise RuntimeError(f"schema definitions clash with the scenario's: {taken}")
    defs.update(extra)
    for name in properties:
        prop = schema["properties"][name]
        branches = prop.get("anyOf", [prop])
        prop_objects = [b for b in branches if b.get("type") == "object"]
        if len(prop_objects) != 1:
            raise RuntimeError(f"property {name!r} has no single object form to describe as a scenario")
        for key in ("type", "additionalProperties"):
            prop_objects[0].pop(key, None)
        prop_objects[0]["$ref"] = "#/$defs/Scenario"
    return schema
