"""Scenario files: validation, located one-line errors, defaults, freezing, hashing and the schema.

The table of malformed scenarios is the acceptance test of "errors name file:line:col, the field path
and the reason; the CLI prints them without a traceback and exits non-zero".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketsim.cli.app import main
from marketsim.config.scenario import Scenario, ScenarioError, scenario_schema
from marketsim.config.validate import load_scenario, parse_scenario
from marketsim.config.yamlsource import SourceError
from marketsim.meta.tasks import is_family_file
from optional import bundled

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_FILES = sorted(
    p for p in (ROOT / "scenarios").glob("*.yaml") if not p.stem.startswith("tournament") and not is_family_file(p)
)

# A valid scenario; every malformed one below is derived from it. Line numbers on the right.
BASE = """\
name: base
description: a valid scenario the bad ones are derived from
seed: 3
steps: 10
consumers:
  size: 200
  wtp: {distribution: uniform, low: 0.0, high: 1.0}
  mu: 0.25
  arrival: 0.9
  shocks:
    - {kind: step, at: 2, until: 5, arrival_factor: 0.5}
demand:
  mode: agents
sellers:
  - name: steady
    strategy: fixed_price
    params: {price: 1.8}
    cost: 1.0
    price_min: 0.5
    price_max: 3.0
  - name: cutter
    strategy: undercut
    params:
      step: 0.02
    initial_price: 2.2
"""
# 1 name · 4 steps · 5 consumers · 7 wtp · 8 mu · 9 arrival · 11 the shock · 12 demand · 13 mode
# 14 sellers · 15 steady · 16 its strategy · 17 its params · 18 cost · 19 price_min · 20 price_max
# 21 cutter · 22 its strategy · 23 params: · 24 step · 25 initial_price

INVENTORY = "    initial_price: 2.2\n    inventory:\n      initial: 100\n"  # lines 25-27; 28 is the next one
NETWORK = "network:\n  graph: {kind: watts_strogatz, k: 4}\ndemand:\n"  # network on line 12, demand on 14


def variant(*edits: tuple[str, str]) -> str:
    """BASE with each ``(old, new)`` text replaced; ``old`` must occur exactly once."""
    text = BASE
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def base_without(first: str, last: str | None = None) -> str:
    """BASE with the lines from the one starting with ``first`` up to (excluding) ``last`` removed."""
    start = BASE.index(first)
    end = BASE.index(last) if last else len(BASE)
    return BASE[:start] + BASE[end:]


# (id, yaml text, expected line of the first problem, expected field path, fragments of the message)
BAD: list[tuple[str, str, int, str, tuple[str, ...]]] = [
    # --- YAML itself
    ("yaml-syntax", variant(("  mu: 0.25\n", "  mu: 0.25: 3\n")), 8, "", ("invalid YAML", "mapping values")),
    ("yaml-unclosed-flow", variant(("high: 1.0}", "high: 1.0")), 8, "",
     ("while parsing a flow mapping", "started on line 7")),
    ("yaml-unclosed-quote", variant(("description: a valid", 'description: "a valid')), 26, "",
     ("quoted scalar", "started on line 2")),
    ("yaml-tab", variant(("  mu: 0.25\n", "\tmu: 0.25\n")), 8, "", ("invalid YAML", "'\\t'")),
    ("yaml-nul-char", variant(("  mu: 0.25\n", "  mu: 0.25\x00\n")), 8, "", ("invalid YAML", "U+0000")),
    ("yaml-unhashable-key", variant(("seed: 3\n", "seed: 3\n{[1, 2]: x}: 1\n")), 4, "", ("unhashable",)),
    ("yaml-two-documents", variant(("seed: 3\n", "seed: 3\n---\n")), 4, "", ("single document",)),
    ("duplicate-top-level", variant(("steps: 10\n", "steps: 10\nseed: 4\n")), 5, "",
     ("duplicate key 'seed'", "line 3")),
    ("duplicate-nested", variant(("    cost: 1.0\n", "    cost: 1.0\n    cost: 2.0\n")), 19, "",
     ("duplicate key 'cost'", "line 18")),
    ("duplicate-in-flow", variant(("{price: 1.8}", "{price: 1.8, price: 2}")), 17, "", ("duplicate key 'price'",)),
    ("top-level-list", "- name: a\n- name: b\n", 1, "", ("must be a YAML mapping", "not a list")),
    ("top-level-scalar", "just some words\n", 1, "", ("must be a YAML mapping",)),
    ("empty-file", "# nothing but a comment\n", 1, "", ("empty",)),
    # --- unknown fields, at every level
    ("unknown-top-level", variant(("steps: 10\n", "steps: 10\nstpes: 4\n")), 5, "stpes",
     ("unknown field 'stpes'", "did you mean 'steps'", "allowed:", "sellers")),
    ("unknown-consumers-field", variant(("  mu: 0.25\n", "  mu: 0.25\n  colour: red\n")), 9, "consumers.colour",
     ("unknown field 'colour'", "outside_value")),
    ("unknown-seller-field", variant(("    cost: 1.0\n", "    cost: 1.0\n    prise_max: 4\n")), 19,
     "sellers[0].prise_max", ("unknown field 'prise_max'", "did you mean 'price_max'")),
    ("unknown-inventory-field", variant(("    initial_price: 2.2\n", INVENTORY + "      holding: 0.1\n")), 28,
     "sellers[1].inventory.holding", ("unknown field 'holding'", "holding_cost")),
    ("unknown-restock-field",
     variant(("    initial_price: 2.2\n", INVENTORY + "      restock: {up_to: 50, every: 5, when: 3}\n")), 28,
     "sellers[1].inventory.restock.when", ("unknown field 'when'", "reorder_point")),
    ("unknown-graph-field", variant(("demand:\n", NETWORK.replace("k: 4}", "k: 4, beta: 0.1}"))), 13,
     "network.graph.beta", ("unknown field 'beta'", "allowed: kind, k, p")),
    ("unknown-shock-field", variant(("arrival_factor: 0.5}", "arrival_factor: 0.5, size: 3}")), 11,
     "consumers.shocks[0].size", ("unknown field 'size'",)),
    # --- missing required fields: the line of the enclosing mapping
    ("missing-name", variant(("name: base\n", "")), 1, "", ("missing required field 'name'",)),
    ("missing-sellers", base_without("sellers:"), 1, "", ("missing required field 'sellers'",)),
    ("missing-strategy", variant(("    strategy: fixed_price\n", "")), 15, "sellers[0]",
     ("missing required field 'strategy'",)),
    ("missing-shock-at", variant(("{kind: step, at: 2, until: 5,", "{kind: step, until: 5,")), 11,
     "consumers.shocks[0]", ("missing required field 'at'",)),
    ("empty-sellers", base_without("sellers:") + "sellers: []\n", 14, "sellers", ("at least one seller",)),
    ("seller-not-a-mapping", variant(("  - name: cutter\n", "  - cutter\n  - name: cutter\n")), 21, "sellers[1]",
     ("valid dictionary", "'cutter'")),
    # --- wrong types
    ("steps-text", variant(("steps: 10\n", "steps: many\n")), 4, "steps", ("should be a number", "'many'")),
    ("steps-quoted-number", variant(("steps: 10\n", 'steps: "10"\n')), 4, "steps", ("without quotes", "'10'")),
    ("steps-boolean", variant(("steps: 10\n", "steps: yes\n")), 4, "steps", ("boolean", "True")),
    ("steps-fraction", variant(("steps: 10\n", "steps: 10.5\n")), 4, "steps", ("valid integer (got 10.5)",)),
    ("mu-list", variant(("  mu: 0.25\n", "  mu: [1]\n")), 8, "consumers.mu", ("should be a valid number", "[1]")),
    ("mu-nan", variant(("  mu: 0.25\n", "  mu: .nan\n")), 8, "consumers.mu", ("finite",)),
    ("name-number", variant(("name: base\n", "name: 2024\n")), 1, "name", ("valid string", "2024")),
    # --- out of range
    ("mu-negative", variant(("  mu: 0.25\n", "  mu: -0.5\n")), 8, "consumers.mu",
     ("greater than or equal to 0", "-0.5")),
    ("arrival-above-1", variant(("  arrival: 0.9\n", "  arrival: 1.5\n")), 9, "consumers.arrival",
     ("less than or equal to 1", "1.5")),
    ("steps-zero", variant(("steps: 10\n", "steps: 0\n")), 4, "steps", ("greater than 0", "got 0")),
    ("cost-negative", variant(("    cost: 1.0\n", "    cost: -1\n")), 18, "sellers[0].cost",
     ("greater than or equal to 0", "got -1")),
    ("awareness-2", variant(("demand:\n", NETWORK.replace("demand:", "  initial_awareness: 2\ndemand:"))), 14,
     "network.initial_awareness", ("less than or equal to 1", "got 2")),
    ("count-zero", variant(("    initial_price: 2.2\n", "    initial_price: 2.2\n    count: 0\n")), 26,
     "sellers[1].count", ("greater than or equal to 1",)),
    # --- consistency between fields: the line of the field that breaks it
    ("price-max-below-min", variant(("    price_max: 3.0\n", "    price_max: 0.4\n")), 20, "sellers[0].price_max",
     ("price_max (0.4) is below price_min (0.5)",)),
    ("initial-price-outside", variant(("    initial_price: 2.2\n", "    initial_price: 20\n")), 25,
     "sellers[1].initial_price", ("initial_price 20", "outside", "10.0")),
    ("uniform-high-not-above-low", variant(("low: 0.0, high: 1.0}", "low: 1.0, high: 1.0}")), 7, "consumers.wtp.high",
     ("high (1.0) must exceed low (1.0)",)),
    ("bad-distribution-tag", variant(("{distribution: uniform,", "{distribution: beta,")), 7,
     "consumers.wtp.distribution", ("unknown distribution 'beta'", "lognormal")),
    ("missing-distribution-tag", variant(("{distribution: uniform, low", "{low")), 7, "consumers.wtp",
     ("missing 'distribution'", "uniform")),
    ("bad-shock-kind", variant(("{kind: step, at: 2", "{kind: earthquake, at: 2")), 11, "consumers.shocks[0].kind",
     ("unknown kind 'earthquake'", "sinusoidal")),
    ("step-shock-until-before-at", variant(("until: 5,", "until: 2,")), 11, "consumers.shocks[0].until",
     ("until (2) must be after at (2)",)),
    ("restock-both-rules",
     variant(("    initial_price: 2.2\n", INVENTORY + "      restock: {up_to: 50, every: 5, reorder_point: 3}\n")),
     28, "sellers[1].inventory.restock", ("exactly one of 'every' or 'reorder_point'",)),
    ("restock-no-rule", variant(("    initial_price: 2.2\n", INVENTORY + "      restock:\n        up_to: 50\n")), 29,
     "sellers[1].inventory.restock", ("exactly one of 'every' or 'reorder_point'",)),
    ("duplicate-seller-names", variant(("  - name: cutter\n", "  - name: steady\n")), 21, "sellers[1].name",
     ("'steady'", "sellers[0]", "unique")),
    ("duplicate-seller-names-by-count",
     variant(("  - name: steady\n", "  - name: firm\n    count: 2\n"), ("  - name: cutter\n", "  - name: firm_2\n")),
     22, "sellers[1].name", ("'firm_2'", "sellers[0]")),
    ("network-with-expected-demand", variant(("demand:\n  mode: agents\n", NETWORK + "  mode: expected\n")), 15,
     "demand.mode", ("network needs demand.mode 'agents'", "'expected'")),
    # --- strategies: registered names and their parameters
    ("unknown-strategy", variant(("strategy: fixed_price\n", "strategy: fixed_prize\n")), 16, "sellers[0].strategy",
     ("unknown strategy 'fixed_prize'", "did you mean 'fixed_price'", "available:", "undercut", "cost_plus")),
    ("strategy-import-path", variant(("strategy: fixed_price\n", "strategy: marketsim_rules.FixedPrice\n")), 16,
     "sellers[0].strategy", ("unknown strategy", "fixed_price")),
    ("unknown-parameter", variant(("{price: 1.8}", "{price: 1.8, colour: red}")), 17, "sellers[0].params.colour",
     ("unknown parameter 'colour'", "'fixed_price'", "accepted: price=1.5")),
    ("parameter-wrong-type", variant(("{price: 1.8}", "{price: cheap}")), 17, "sellers[0].params.price",
     ("'cheap'", "fixed_price", "'price'", "float")),
    ("parameter-quoted-number", variant(("{price: 1.8}", '{price: "1.8"}')), 17, "sellers[0].params.price",
     ("'1.8'", "text")),
    ("parameter-rejected", variant(("      step: 0.02\n", "      step: -0.1\n")), 24, "sellers[1].params",
     ("'undercut' rejected its parameters", "step must be >= 0")),
    # --- files
    ("edge-list-missing",
     variant(("demand:\n", NETWORK.replace("watts_strogatz, k: 4", "edge_list, path: nowhere.txt"))), 13,
     "network.graph.path", ("edge-list file 'nowhere.txt' not found",)),
]  # fmt: skip


@pytest.fixture(scope="module")
def base() -> Scenario:
    return parse_scenario(BASE, "base.yaml")


def test_base_is_valid(base: Scenario) -> None:
    assert base.name == "base"
    assert [s.name for s in base.expanded_sellers()] == ["steady", "cutter"]


def test_enough_malformed_scenarios() -> None:
    assert len(BAD) >= 24
    assert len({case[0] for case in BAD}) == len(BAD)


@pytest.mark.parametrize(("text", "line", "field", "fragments"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_malformed_scenario_gives_one_located_line(
    text: str, line: int, field: str, fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    exc = info.value
    assert isinstance(exc, SourceError)
    first = exc.problems[0]
    message = str(exc)
    assert first.line == line, message
    assert first.field == field, message
    assert "\n" not in message, f"more than one line:\n{message}"
    assert message.startswith(f"bad.yaml:{line}:{first.column}: ")
    assert first.column >= 1
    if field:
        assert f": {field}: " in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "Traceback" not in message and "pydantic" not in message  # no internals, no docs URLs


def test_several_problems_come_in_file_order() -> None:
    text = variant(("    cost: 1.0\n", "    cost: -1\n"), ("steps: 10\n", "steps: 0\n"), ("  mu: 0.25\n", "  mu: x\n"))
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert [p.line for p in info.value.problems] == [4, 8, 18]
    assert [p.field for p in info.value.problems] == ["steps", "consumers.mu", "sellers[0].cost"]
    assert all("\n" not in str(p) for p in info.value.problems)


def test_leading_comments_do_not_shift_lines() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("# a comment\n# another\n" + variant(("steps: 10\n", "steps: 0\n")), "bad.yaml")
    assert info.value.problems[0].line == 6


def test_load_scenario_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "missing.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ScenarioError, match="not UTF-8") as info:
        load_scenario(latin1)
    assert str(info.value).startswith(f"{latin1}:1:")


# --- the command line prints the same one-liners and writes nothing ------------------------------------------

CLI_CASES = [  # one of each kind of check: YAML, pydantic, cross-field, registry, strategy constructor
    "yaml-syntax",
    "duplicate-nested",
    "unknown-seller-field",
    "price-max-below-min",
    "unknown-strategy",
    "parameter-rejected",
]
BAD_BY_ID = {case[0]: case for case in BAD}


def _marketsim(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _write_cases(folder: Path, ids: list[str]) -> list[tuple[str, int]]:
    """Write the named bad cases as ``<id>.yaml`` files; return (file name, expected line) pairs."""
    written = []
    for case_id in ids:
        _, text, line, _, _ = BAD_BY_ID[case_id]
        (folder / f"{case_id}.yaml").write_text(text, encoding="utf-8")
        written.append((f"{case_id}.yaml", line))
    return written


def test_cli_validate_reports_every_bad_file(tmp_path: Path) -> None:
    files = _write_cases(tmp_path, [case[0] for case in BAD])
    result = _marketsim("validate", *(name for name, _ in files), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(files), result.stderr  # one line per bad file, nothing else
    for (name, line), printed in zip(files, lines):
        assert printed.startswith(f"{name}:{line}:"), printed
    assert "ok" not in result.stdout


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_run_of_a_bad_file_fails_cleanly(
    tmp_path: Path, case_id: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # in-process (an exception escaping main() fails the test); test_cli_validate_reports_every_bad_file runs the
    # same files through a real `python -m marketsim` process
    ((name, line),) = _write_cases(tmp_path, [case_id])
    monkeypatch.chdir(tmp_path)
    assert main(["run", name, "--out", "out", "--quiet"]) == 2
    printed = capsys.readouterr()
    assert f"{name}:{line}:" in printed.err
    assert "Traceback" not in printed.err + printed.out
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "runs").exists()


def test_cli_prints_each_problem_on_one_line(tmp_path: Path) -> None:
    ((name, line),) = _write_cases(tmp_path, ["unknown-strategy"])
    result = _marketsim("validate", name, cwd=tmp_path, env={"COLUMNS": "80"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}:{line}:"), result.stderr


def test_cli_bad_override_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(BASE, encoding="utf-8")
    result = _marketsim("run", "ok.yaml", "--steps", "0", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--steps: should be at least 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# --- valid scenarios --------------------------------------------------------------------------------------------


def test_groups_expand_to_numbered_sellers() -> None:
    text = variant(("  - name: steady\n", "  - name: firm\n    count: 3\n"))
    scenario = parse_scenario(text, "group.yaml")
    expanded = scenario.expanded_sellers()
    assert [s.name for s in expanded] == ["firm_1", "firm_2", "firm_3", "cutter"]
    assert all(s.count == 1 for s in expanded)
    assert {s.strategy for s in expanded[:3]} == {"fixed_price"}
    assert len(scenario.sellers) == 2  # the declaration itself is kept as written


def test_defaults_are_filled() -> None:
    scenario = parse_scenario("name: tiny\nsellers:\n  - {name: a, strategy: fixed_price}\n", "tiny.yaml")
    assert scenario.steps == 1000 and scenario.seed == 0 and scenario.description == ""
    assert scenario.consumers.size == 10_000
    assert scenario.consumers.wtp.distribution == "constant"
    assert scenario.consumers.mu == 0.25 and scenario.consumers.arrival == 1.0 and scenario.consumers.shocks == ()
    assert scenario.demand.mode == "agents"
    assert scenario.network is None
    (seller,) = scenario.sellers
    assert (seller.cost, seller.quality, seller.price_min, seller.price_max) == (1.0, 2.0, 0.0, 10.0)
    assert seller.start_price == 5.0 and seller.capacity is None and seller.inventory is None
    assert seller.params == {}


def test_parameters_get_their_declared_types(base: Scenario) -> None:
    two = parse_scenario(variant(("{price: 1.8}", "{price: 2}")), "a.yaml")
    assert two.sellers[0].params == {"price": 2.0} and isinstance(two.sellers[0].params["price"], float)
    assert two.digest() == parse_scenario(variant(("{price: 1.8}", "{price: 2.0}")), "b.yaml").digest()


def test_scenario_is_frozen(base: Scenario) -> None:
    with pytest.raises(ValidationError):
        base.steps = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        base.sellers[0].cost = 0.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        base.consumers.mu = 1.0  # type: ignore[misc]
    assert isinstance(base.sellers, tuple) and isinstance(base.consumers.shocks, tuple)


def test_digest_is_stable_and_sensitive(base: Scenario) -> None:
    again = parse_scenario(BASE, "elsewhere.yaml")
    assert base.digest() == again.digest()
    assert len(base.digest()) == 64
    changed = parse_scenario(variant(("    cost: 1.0\n", "    cost: 1.1\n")), "changed.yaml")
    assert changed.digest() != base.digest()
    assert base.with_overrides(seed=4).digest() != base.digest()


def test_with_overrides(base: Scenario) -> None:
    short = base.with_overrides(steps=5)
    assert short.steps == 5 and base.steps == 10
    assert short.sellers == base.sellers and short.consumers == base.consumers
    assert short.digest() == parse_scenario(variant(("steps: 10\n", "steps: 5\n")), "five.yaml").digest()
    with pytest.raises(ScenarioError) as info:
        base.with_overrides(steps=0)
    assert str(info.value) == "override: steps: should be greater than 0 (got 0)"
    with pytest.raises(ScenarioError, match="unknown field 'stepz'"):
        base.with_overrides(stepz=3)


def test_edge_list_path_is_resolved_against_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "edges.txt").write_text("0 1\n1 2\n", encoding="utf-8")
    text = variant(("demand:\n", NETWORK.replace("{kind: watts_strogatz, k: 4}", "{kind: edge_list, path: edges.txt}")))
    (tmp_path / "net.yaml").write_text(text, encoding="utf-8")
    scenario = load_scenario(tmp_path / "net.yaml")
    assert Path(scenario.network.graph.path) == (tmp_path / "edges.txt").resolve()


@pytest.mark.parametrize("path", bundled(SCENARIO_FILES))
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name and scenario.description
    assert len(scenario.expanded_sellers()) >= 1
    assert scenario.digest() == load_scenario(path).digest()


def test_shipped_scenarios_exist() -> None:
    names = {p.stem for p in SCENARIO_FILES}
    assert {"quickstart", "calvano2020", "oligopoly", "social_network"} <= names


def test_schema_describes_every_field() -> None:
    schema = scenario_schema()
    assert schema["type"] == "object"
    assert {"name", "sellers", "consumers", "demand", "network", "steps", "seed"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "sellers"}
    assert schema.get("additionalProperties") is False
    models = {"Scenario": schema, **schema["$defs"]}
    undocumented = [
        f"{model}.{field}"
        for model, sub in models.items()
        for field, spec in sub.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undocumented == []
    assert all(sub.get("description") for sub in models.values())  # every model has a docstring
    assert "arrival_factor" in schema["$defs"]["StepShock"]["properties"]  # aliases, not Python names


def test_a_file_parameter_resolves_against_the_scenario_file_and_must_exist(tmp_path: Path) -> None:
    """A strategy parameter named ``path`` (sb3_policy's policy file) is a file relative to the scenario, like
    ``checkpoint``: resolved to an absolute path, and a missing file is a located error before anything runs."""
    folder = tmp_path / "market"
    folder.mkdir()
    text = (
        "name: p\nsteps: 3\nsellers:\n"
        "  - {name: a, strategy: fixed_price, params: {price: 1.5}}\n"
        "  - {name: b, strategy: sb3_policy, params: {path: policies/dqn.zip}}\n"
    )
    (folder / "m.yaml").write_text(text)
    with pytest.raises(SourceError) as info:
        load_scenario(folder / "m.yaml")
    message = str(info.value)
    assert "m.yaml:5:" in message and "sellers[1].params.path" in message and "not found" in message
    (folder / "policies").mkdir()
    (folder / "policies" / "dqn.zip").write_bytes(b"")
    scenario = load_scenario(folder / "m.yaml")
    assert scenario.sellers[1].params["path"] == str((folder / "policies" / "dqn.zip").resolve())


def test_an_llm_sellers_cache_and_prompt_file_resolve_against_the_scenario_file(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "mine.txt").write_text("Cost ${cost}. History:\n${history}\nNotes: ${notes}\n")
    text = (
        "name: p\nsteps: 3\nsellers:\n"
        "  - {name: a, strategy: llm_pricer, params: {cache: out/llm.sqlite, prompt: mine.txt}}\n"
        "  - {name: b, strategy: llm_pricer, params: {prompt: fish_p2}}\n"
    )
    (folder / "m.yaml").write_text(text)
    scenario = load_scenario(folder / "m.yaml")
    assert scenario.sellers[0].params["cache"] == str((folder / "out" / "llm.sqlite").resolve())
    assert scenario.sellers[0].params["prompt"] == str((folder / "mine.txt").resolve())
    assert scenario.sellers[1].params["prompt"] == "fish_p2"  # a bundled template's name stays a name
