"""The plugin author's reference and the file schemas are generated from the code and checked here.

docs/reference.md must equal what ``python -m marketsim.reference`` writes; every field of every contract type
has a description that ``help()`` shows; `marketsim schema --kind K` is valid Draft 2020-12 JSON Schema that the
bundled files of kind K pass and that refuses values outside a limit.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pydoc
import re
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema_specifications import REGISTRY

from marketsim import hookspecs, observers, reference, strategy, testing
from marketsim.cli.app import main as cli
from marketsim.config.family import is_family_file
from marketsim.config.scenario import Scenario, scenario_schema
from marketsim.config.schema import SCHEMA_KINDS, file_schema
from marketsim.hookspecs import hookimpl
from marketsim.market.model import MarketModel
from marketsim.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
generated = functools.cache(reference.generate)  # generating takes a few tenths of a second


# --- the reference page -----------------------------------------------------------------------------------


def test_the_committed_reference_is_what_the_code_generates() -> None:
    committed = reference.DEFAULT_PATH.read_text(encoding="utf-8")
    assert committed == generated(), "docs/reference.md is stale: run `python -m marketsim.reference`"


def test_check_mode_fails_on_a_stale_page_and_passes_on_a_fresh_one(tmp_path: Path) -> None:
    page = tmp_path / "reference.md"
    page.write_text("# old\n")
    assert reference.main(["--check", "--out", str(page)]) == 1
    assert reference.main(["--out", str(page)]) == 0
    assert reference.main(["--check", "--out", str(page)]) == 0


def public_dataclasses(module: types.ModuleType) -> set[type]:
    """The public dataclasses a contract module defines."""
    return {
        obj
        for name, obj in vars(module).items()
        if not name.startswith("_") and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
    }


def test_every_public_contract_dataclass_is_on_the_page() -> None:
    listed = set(reference.CONTRACT_TYPES) | {strategy.ClassifierKey}
    assert public_dataclasses(strategy) | public_dataclasses(observers) <= listed


@pytest.mark.parametrize("cls", [*reference.CONTRACT_TYPES, strategy.ClassifierKey], ids=lambda c: c.__name__)
def test_every_field_has_a_description_that_help_shows(cls: type) -> None:
    lines = pydoc.render_doc(cls, renderer=pydoc.plaintext).splitlines()  # help's " |" margin dropped, a type's kept
    shown = " ".join(" ".join(line.removeprefix(" |").split()) for line in lines)
    for f in dataclasses.fields(cls):
        doc = f.metadata.get(strategy.FIELD_DOC, "")
        assert len(doc) > 10, f"{cls.__name__}.{f.name} has no description"
        assert f"{f.name} ({f.type}): {' '.join(doc.split())}" in shown


def test_the_questions_plugin_authors_asked_are_answered_on_the_page() -> None:
    text = generated()
    outcome = {f.name: f.metadata[strategy.FIELD_DOC] for f in dataclasses.fields(strategy.Outcome)}
    assert "this step's, not last step's" in outcome["competitor_prices"]
    assert "next step" in outcome["next_observation"]
    for needle in ("setup(market, rng)", "fresh instances", "same name", "distribution:name", "MarketInfo"):
        assert needle in text, needle


def test_the_classifier_vocabulary_covers_every_key_and_the_kits_observes_values() -> None:
    assert [k.name for k in strategy.CLASSIFIER_KEYS] == list(strategy.DEFAULT_CLASSIFIER)
    assert set(strategy.OBSERVES_PARTS) == set(testing.OBSERVES)
    text = generated()
    for key in strategy.CLASSIFIER_KEYS:
        assert f"| `{key.name}` | {key.values}" in text
    for part in strategy.OBSERVES_PARTS:
        assert f"| `{part}` |" in text


def test_the_page_lists_every_hook_and_capability_protocol_with_its_members() -> None:
    text = generated()
    hooks = [n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "marketsim_spec")]
    assert {"register_strategies", "register_choice_models", "register_observers"} <= set(hooks)
    for name in hooks:
        assert f"### `{name}(register: Callable[[type], None]) -> None`" in text
    protocols = reference.protocols(strategy)
    assert {p.__name__ for p in protocols} >= {"Converging", "ParallelTrainable", "MetaTrainable", "Prefetching"}
    for proto in protocols:
        assert f"### `{proto.__name__}`" in text
    assert "#### `classmethod meta_learner(setup: MetaSetup, **options: Any) -> MetaLearner`" in text


def test_markdown_turns_docstring_sections_into_lists() -> None:
    doc = """Summary with ``code``.

    Attributes:
        name (str): One.
            Two.
        rng (Generator): Three.

    :param register: a callback
        that continues.
    """
    assert reference.markdown(doc).splitlines() == [
        "Summary with `code`.",
        "",
        "**Attributes:**",
        "",
        "- `name` (str): One.",
        "  Two.",
        "- `rng` (Generator): Three.",
        "",
        "- **register**: a callback",
        "  that continues.",
    ]


# --- RunInfo carries the sellers' costs -----------------------------------------------------------------------


class InfoRecorder(observers.Observer):
    """Keeps the RunInfo it is started with."""

    name = "info_recorder"
    info: observers.RunInfo | None = None

    def start(self, info: observers.RunInfo) -> None:
        self.info = info


def test_an_observer_learns_every_sellers_cost() -> None:
    module = types.ModuleType("info_plugin")
    module.register_observers = hookimpl(lambda register: register(InfoRecorder))
    registry = load_registry(plugins=[("info_plugin", module)])
    seller = {"strategy": "fixed_price", "price_min": 1.0, "price_max": 2.5}
    scenario = Scenario.model_validate(
        {
            "name": "costs",
            "steps": 2,
            "consumers": {"size": 1},
            "demand": {"mode": "expected"},
            "sellers": [{"name": "a", "cost": 1.0, **seller}, {"name": "b", "cost": 0.5, "count": 2, **seller}],
            "observers": [{"observer": "info_recorder"}],
        }
    )
    info = MarketModel(scenario, registry).observers[0].info
    assert info.sellers == ("a", "b_1", "b_2")
    assert info.costs == (1.0, 0.5, 0.5)


# --- `marketsim schema` ----------------------------------------------------------------------------------------

#: Every keyword of the Draft 2020-12 vocabularies (core, applicator, validation, annotations, ...).
VOCABULARY = frozenset(
    key
    for part in ("core", "applicator", "unevaluated", "validation", "meta-data", "format-annotation", "content")
    for key in REGISTRY.contents(f"https://json-schema.org/draft/2020-12/meta/{part}")["properties"]
)
DATA_KEYWORDS = ("default", "const", "enum", "examples")
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")


def keywords(schema: Any) -> set[str]:
    """Every keyword used in a schema, in every subschema (property names are not keywords)."""
    if isinstance(schema, list):
        return set().union(*(keywords(item) for item in schema))
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        if key in SCHEMA_MAPS:
            found |= set().union(*(keywords(sub) for sub in value.values()))
        elif key not in DATA_KEYWORDS:
            found |= keywords(value)
    return found


def kind_of(path: Path) -> str:
    """Which file kind a bundled file is (as `marketsim validate` tells them apart)."""
    if is_family_file(path):
        return "family"
    return "tournament" if "entrants" in yaml.safe_load(path.read_text()) else "scenario"


def bundled(kind: str) -> list[Path]:
    """The files of ``kind`` in scenarios/ (sweeps in scenarios/sweeps/)."""
    if kind == "sweep":
        return sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml"))
    return [p for p in sorted((ROOT / "scenarios").glob("*.yaml")) if kind_of(p) == kind]


def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(file_schema(kind))


@pytest.mark.parametrize("kind", list(SCHEMA_KINDS))
def test_each_kinds_schema_is_valid_draft_2020_12_with_standard_keywords_only(kind: str) -> None:
    schema = file_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert keywords(schema) <= VOCABULARY, sorted(keywords(schema) - VOCABULARY)  # no pydantic `ge`/`gt`


@pytest.mark.parametrize("kind", list(SCHEMA_KINDS))
def test_every_bundled_file_of_a_kind_validates_against_its_schema(kind: str) -> None:
    files = bundled(kind)
    assert files, f"no bundled {kind} file"
    check = validator(kind)
    for path in files:
        errors = [f"{e.json_path}: {e.message}" for e in check.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path.name}: {errors}"


def guide_file(name: str) -> Any:
    """The YAML file the plugin guide writes as ``name``."""
    match = re.search(rf"<!-- file: {re.escape(name)} -->\n```yaml\n(.*?)```", GUIDE.read_text(), re.S)
    assert match, f"the guide no longer writes {name}"
    return yaml.safe_load(match[1])


def test_the_guides_files_validate_against_their_schemas() -> None:
    assert validator("scenario").is_valid(guide_file("my-market.yaml"))
    assert validator("tournament").is_valid(guide_file("my-tournament.yaml"))


LOADERS = {"scenario": "quickstart.yaml", "tournament": "tournament_quick.yaml", "family": "meta_pricing.yaml"}


def with_value(kind: str, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """The bundled file of ``kind`` with the value at ``path`` replaced."""
    data = yaml.safe_load((ROOT / "scenarios" / LOADERS[kind]).read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def stock(every: int) -> dict[str, Any]:
    return {"initial": 5, "restock": {"up_to": 5, "every": every}}


@pytest.mark.parametrize(
    ("kind", "path", "good", "bad"),
    [
        ("scenario", ("steps",), 5, -5),
        ("scenario", ("consumers", "mu"), 0.0, -0.1),
        ("scenario", ("sellers", 0, "inventory"), stock(every=3), stock(every=0)),  # a limit inside `int | None`
        ("scenario", ("sellers", 0, "price_min"), 0.0, -1.0),
        ("tournament", ("repetitions",), 1, 0),
        ("tournament", ("phases", "eval_steps"), 1, 0),
        ("tournament", ("market", "steps"), 1, 0),  # the inline market is checked as a scenario
        ("family", ("family", "horizon"), 1, 0),
        ("family", ("family", "sample", "consumers.mu"), {"uniform": [0.1, 0.2]}, {"uniform": [0.1]}),
        ("family", ("base", "consumers", "size"), 3, -3),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else None,
)
def test_a_value_outside_a_limit_fails_the_schema_and_one_inside_passes(
    kind: str, path: tuple[Any, ...], good: Any, bad: Any
) -> None:
    check = validator(kind)
    assert check.is_valid(with_value(kind, path, good))
    assert not check.is_valid(with_value(kind, path, bad))


def test_the_schema_command_writes_each_kind_and_refuses_an_unknown_one(tmp_path: Path, capsys) -> None:
    out = tmp_path / "tournament.schema.json"
    assert cli(["schema", "--kind", "tournament", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == file_schema("tournament")
    assert cli(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == file_schema("scenario") == scenario_schema()
    with pytest.raises(SystemExit) as exc:
        cli(["schema", "--kind", "nonsense"])
    assert exc.value.code == 2
