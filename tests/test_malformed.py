"""Malformed inputs (scenario, tournament and family files, command-line flags) are refused cheaply and cleanly.

Each case must give exactly one located line on stderr (``file:line:col: …``, ``file: …`` for a problem with
the whole file, ``error: …`` for a flag), exit status 2, no traceback, and leave the working folder exactly as
it was. Most cases call ``marketsim.cli.app.main`` in-process; the bombs also run as a child process under a
memory limit (RLIMIT_AS) and a CPU-time limit (RLIMIT_CPU), so that blowing up or hanging fails the test
whatever the machine's load. No test measures wall-clock time.
"""

from __future__ import annotations

import os
import pickle
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from marketsim.cli.app import main
from marketsim.config.errors import FieldError
from marketsim.config.yamlsource import Problem, SourceError
from marketsim.learning.checkpoint import CheckpointError
from marketsim.learning.experiment import ExperimentError
from marketsim.learning.training import TrainError
from marketsim.market.model import StrategyError
from marketsim.meta.evaluate import MetaEvalError
from marketsim.observers import ObserverError
from marketsim.registry import UnknownStrategyError
from marketsim.strategy import InvalidPriceError
from optional import HAS_TORCH

SCENARIO = """\
name: base
steps: 5
consumers:
  size: 200
sellers:
  - name: a
    strategy: fixed_price
    params: {price: 2.0}
  - name: b
    strategy: fixed_price
"""

TOURNAMENT = """\
name: cup
market:
  name: duopoly
  steps: 5
  demand: {mode: expected}
  sellers:
    - {name: seat, strategy: fixed_price, count: 2}
entrants:
  - {name: fixed, strategy: fixed_price, params: {price: 1.8}}
  - {name: random, strategy: random_price}
repetitions: 1
phases: {train_steps: 0, eval_steps: 5}
"""

FAMILY = """\
family:
  name: fam
  seed: 1
  horizon: 5
  learner: learner
  grid: {low: 1.1, high: 4.8, size: 5}
  sample:
    consumers.mu: {uniform: [0.15, 0.6]}
base:
  name: fam_task
  steps: 5
  consumers: {size: 100}
  sellers:
    - {name: learner, strategy: fixed_price, cost: 1.0}
    - {name: rival, strategy: fixed_price, cost: 1.0}
"""


def _bomb_value(levels: int) -> str:
    """A "billion laughs" YAML alias bomb of ``levels`` levels as one flow value (under 1 KB): 9**levels strings."""
    anchors = "abcdefghijkl"
    parts = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        parts.append(f"&{anchors[k]} [{', '.join([f'*{anchors[k - 1]}'] * 9)}]")
    return f"[{', '.join(parts)}]"


def _bomb(levels: int, where: str = "description") -> str:
    """A scenario whose ``where`` (its description or a seller's parameter) is an alias bomb, its only problem."""
    value = _bomb_value(levels)
    if where == "description":
        return f"name: bomb\ndescription: {value}\nsellers: [{{name: a, strategy: fixed_price}}]\n"
    return f"name: bomb\nsellers: [{{name: a, strategy: fixed_price, params: {{price: {value}}}}}]\n"


def _scenario(old: str, new: str) -> str:
    """The base scenario with one edit (which must apply)."""
    assert old in SCENARIO, old
    return SCENARIO.replace(old, new, 1)


def _tournament(old: str, new: str) -> str:
    """The base tournament with one edit (which must apply)."""
    assert old in TOURNAMENT, old
    return TOURNAMENT.replace(old, new, 1)


def _family(old: str, new: str) -> str:
    """The base family with one edit (which must apply)."""
    assert old in FAMILY, old
    return FAMILY.replace(old, new, 1)


def _snapshot(folder: Path) -> set[tuple[str, int]]:
    """Every path under ``folder`` with its size: "nothing written" means this does not change."""
    return {(str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*")}


def _one_refusal(argv: list[str], capsys: pytest.CaptureFixture[str], folder: Path) -> str:
    """Run the CLI in ``folder``; assert exit 2, one stderr line, no traceback, nothing written; return the line."""
    before = _snapshot(folder)
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr:\n{captured.err}\nstdout:\n{captured.out}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{captured.err}"
    assert "Traceback" not in captured.err + captured.out
    assert len(lines[0]) < 1200, f"message too long ({len(lines[0])} characters)"
    assert _snapshot(folder) == before, "something was written"
    return lines[0]


def _located(line: str, path: str) -> None:
    """Assert ``line`` names ``path`` and a line:col (``path:L:C: …``) or the whole file (``path: …``)."""
    assert re.match(rf"^{re.escape(path)}(:\d+:\d+)?: \S", line), line


NEEDS_TORCH = pytest.mark.skipif(not HAS_TORCH, reason="the case names a torch strategy (dqn): needs the deep extra")


def _params(cases: list[tuple[str, ...]]) -> list[object]:
    """The cases as pytest params (id first); a case naming the torch strategy ``dqn`` skips without torch."""
    return [pytest.param(*c[1:], id=c[0], marks=[NEEDS_TORCH] if "strategy: dqn" in c[1] else []) for c in cases]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder (with a ``cases`` subfolder for the inputs) that the CLI runs in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cases").mkdir()
    return tmp_path


# --- scenario files: each case is (id, file text, fragment the message must contain) -------------------------

SCENARIO_CASES = [
    ("alias-bomb-description", _bomb(9), "alias bomb"),
    ("alias-bomb-params", _bomb(9, "params"), "alias bomb"),
    ("alias-bomb-below-node-limit", _bomb(5), "description: should be a valid string"),
    ("alias-bomb-below-limit-in-params", _bomb(5, "params"), "bad value"),
    ("deep-nesting", "name: deep\ndescription: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    ("deep-mappings", "name: deep\nx: " + "{a: " * 300 + "1" + "}" * 300 + "\n", "nested more than"),
    ("recursive-alias", "name: loop\nx: &a [1, *a]\nsellers: [{name: a, strategy: fixed_price}]\n", "cycle"),
    (
        "sellers-count-100000",
        _scenario("strategy: fixed_price\n", "strategy: fixed_price\n    count: 100000\n"),
        "most one market may hold",
    ),
    (
        "watts-strogatz-k-huge",
        _scenario("sellers:", "network: {graph: {kind: watts_strogatz, k: 1000000}}\nsellers:"),
        "must be below consumers.size",
    ),
    (
        "barabasi-albert-m-huge",
        _scenario("sellers:", "network: {graph: {kind: barabasi_albert, m: 500}}\nsellers:"),
        "must be below consumers.size",
    ),
    (
        "erdos-renyi-degree-huge",
        _scenario("sellers:", "network: {graph: {kind: erdos_renyi, mean_degree: 1.0e+6}}\nsellers:"),
        "cannot exceed",
    ),
    (
        "watts-strogatz-p-above-1",
        _scenario("sellers:", "network: {graph: {kind: watts_strogatz, p: 1.5}}\nsellers:"),
        "network.graph.p",
    ),
    (
        "cost-above-price-max",
        _scenario("params: {price: 2.0}", "params: {price: 2.0}\n    cost: 50"),
        "above price_max",
    ),
    ("size-10-to-the-12", _scenario("size: 200", "size: 1000000000000"), "memory budget"),
    ("size-2e4", _scenario("size: 200", "size: 2e4"), "YAML 1.1 reads 2e4 as text; write 2.0e+4 or 20000"),
    ("steps-1e3", _scenario("steps: 5", "steps: 1e3"), "write 1.0e+3 or 1000"),
    ("param-5e-1", _scenario("price: 2.0", "price: 5e-1"), "write 5.0e-1"),
    (
        "quadrature-huge",
        _scenario("consumers:", "demand: {mode: expected, quadrature: 1000000000000}\nconsumers:"),
        "memory budget",
    ),
    (
        "graph-too-large",
        _scenario("size: 200", "size: 100000000").replace(
            "sellers:", "network: {graph: {kind: watts_strogatz, k: 40}}\nsellers:", 1
        ),
        "the social graph would need",
    ),
    (
        "q-learning-memory-40",
        _scenario("strategy: fixed_price\n    params: {price: 2.0}", "strategy: q_learning\n    params: {memory: 40}"),
        "10^",
    ),
    (
        "q-learning-grid-huge",
        _scenario(
            "strategy: fixed_price\n    params: {price: 2.0}", "strategy: q_learning\n    params: {grid_size: 100000}"
        ),
        "the tables of strategy 'q_learning'",
    ),
    (
        "checkpoint-missing",
        _scenario(
            "strategy: fixed_price\n    params: {price: 2.0}", "strategy: dqn\n    params: {checkpoint: nowhere.pt}"
        ),
        "checkpoint file",
    ),
    ("duplicate-key", _scenario("steps: 5", "steps: 5\nsteps: 6"), "duplicate key"),
    ("tab-indent", _scenario("  size: 200", "\tsize: 200"), "tabs"),
    ("unknown-field", _scenario("steps: 5", "stepz: 5"), "did you mean 'steps'"),
    (
        "unknown-strategy",
        _scenario("strategy: fixed_price\n    params", "strategy: fixd_price\n    params"),
        "unknown strategy",
    ),
    ("unknown-param", _scenario("{price: 2.0}", "{prise: 2.0}"), "unknown parameter 'prise'"),
    ("param-text", _scenario("{price: 2.0}", "{price: two}"), "bad value 'two'"),
    ("param-bool", _scenario("{price: 2.0}", "{price: yes}"), "boolean"),
    (
        "price-max-below-min",
        _scenario("params: {price: 2.0}", "params: {price: 2.0}\n    price_min: 5\n    price_max: 4"),
        "below price_min",
    ),
    (
        "initial-price-outside",
        _scenario("params: {price: 2.0}", "params: {price: 2.0}\n    initial_price: 50"),
        "outside",
    ),
    ("seed-negative", _scenario("steps: 5", "steps: 5\nseed: -1"), "seed"),
    ("steps-zero", _scenario("steps: 5", "steps: 0"), "steps"),
    ("size-quoted", _scenario("size: 200", "size: '200'"), "without quotes"),
    ("wtp-unknown", _scenario("size: 200", "size: 200\n  wtp: {distribution: cauchy}"), "unknown distribution"),
    (
        "wtp-uniform-reversed",
        _scenario("size: 200", "size: 200\n  wtp: {distribution: uniform, low: 2, high: 1}"),
        "must exceed low",
    ),
    (
        "network-expected-demand",
        _scenario("sellers:", "demand: {mode: expected}\nnetwork: {graph: {kind: erdos_renyi}}\nsellers:"),
        "needs demand.mode 'agents'",
    ),
    ("no-sellers", "name: empty\nsellers: []\n", "at least one seller"),
    ("top-level-list", "- 1\n- 2\n", "must be a YAML mapping"),
    ("empty-file", "", "the file is empty"),
    ("huge-key", _scenario("steps: 5", "steps: 5\n? " + "k" * 20000 + "\n: 1"), "unknown field"),
    ("huge-string-for-number", _scenario("size: 200", "size: " + "9" * 3000 + "x"), "should be a number"),
    ("duplicate-seller-names", _scenario("- name: b\n", "- name: a\n"), "already used"),
    ("unknown-choice-model", _scenario("size: 200", "size: 200\n  choice: {model: probit}"), "unknown choice model"),
    (
        "shock-until-before-at",
        _scenario("size: 200", "size: 200\n  shocks: [{kind: step, at: 5, until: 2}]"),
        "must be after at",
    ),
    ("bad-yaml-syntax", _scenario("sellers:", "sellers: [\n"), "invalid YAML"),
]


@pytest.mark.parametrize(("text", "fragment"), _params(SCENARIO_CASES))
def test_malformed_scenario_is_refused_by_run(
    text: str, fragment: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "cases/bad.yaml"
    (here / path).write_text(text, encoding="utf-8")
    line = _one_refusal(["run", path, "--quiet"], capsys, here)
    _located(line, path)
    assert fragment in line, line


EDGE_LIST_CASES = [
    (
        "not-an-edge-list",
        "SECRET:x:0:0:SECRET:/SECRET:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/false\n",
        "line 1 is not an edge",
    ),
    ("node-out-of-range", "0 1\n1 2\n2 99999\n", "line 3 names a node outside 0..199"),
    ("three-columns", "0 1\n1 2 3\n", "line 2 is not an edge"),
    ("negative-node", "0 1\n-1 2\n", "line 2 is not an edge"),
    ("binary", "0 1\n\x00\x01\x02 secret\n", "line 2 is not an edge"),
]


@pytest.mark.parametrize(("content", "fragment"), [c[1:] for c in EDGE_LIST_CASES], ids=[c[0] for c in EDGE_LIST_CASES])
def test_bad_edge_list_is_refused_without_echoing_it(
    content: str, fragment: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "cases" / "edges.txt").write_text(content, encoding="utf-8")
    text = _scenario("sellers:", "network: {graph: {kind: edge_list, path: edges.txt}}\nsellers:")
    (here / "cases" / "net.yaml").write_text(text)
    line = _one_refusal(["validate", "cases/net.yaml"], capsys, here)
    _located(line, "cases/net.yaml")
    assert fragment in line, line
    assert "SECRET" not in line and "secret" not in line and "99999" not in line


def test_edge_list_missing_directory_and_oversized(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _scenario("sellers:", "network: {graph: {kind: edge_list, path: edges.txt}}\nsellers:")
    (here / "cases" / "net.yaml").write_text(text)
    assert "not found" in _one_refusal(["validate", "cases/net.yaml"], capsys, here)
    (here / "cases" / "edges.txt").mkdir()
    assert "not a regular" in _one_refusal(["validate", "cases/net.yaml"], capsys, here)
    (here / "cases" / "edges.txt").rmdir()
    (here / "cases" / "edges.txt").write_text("0 1\n" * 1000)
    monkeypatch.setenv("MARKETSIM_MAX_FILE_BYTES", "1K")
    assert "larger than 1 KiB" in _one_refusal(["validate", "cases/net.yaml"], capsys, here)


def test_edge_list_path_is_relative_to_the_scenario_file(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (here / "cases" / "edges.txt").write_text("0 1\n1 2\n")
    text = _scenario("sellers:", "network: {graph: {kind: edge_list, path: edges.txt}}\nsellers:")
    (here / "cases" / "net.yaml").write_text(text)
    assert main(["validate", "cases/net.yaml"]) == 0  # found beside the file, not in the working folder


def test_file_level_problems(here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _one_refusal(["run", "cases/missing.yaml"], capsys, here).startswith("no such file: cases/missing.yaml")
    assert "cases is a folder, not a file" in _one_refusal(["run", "cases"], capsys, here)
    (here / "cases" / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    _located(_one_refusal(["run", "cases/latin1.yaml"], capsys, here), "cases/latin1.yaml")
    (here / "cases" / "big.yaml").write_text(SCENARIO + "# padding\n" * 300)
    monkeypatch.setenv("MARKETSIM_MAX_FILE_BYTES", "2000")
    line = _one_refusal(["run", "cases/big.yaml"], capsys, here)
    assert line.startswith("cases/big.yaml: file is larger than") and "MARKETSIM_MAX_FILE_BYTES" in line
    monkeypatch.setenv("MARKETSIM_MAX_FILE_BYTES", "lots")
    assert "MARKETSIM_MAX_FILE_BYTES" in _one_refusal(["run", "cases/big.yaml"], capsys, here)


def test_memory_budget_is_configurable_and_states_the_numbers(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "cases" / "s.yaml").write_text(_scenario("size: 200", "size: 100000"))
    assert main(["validate", "cases/s.yaml"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("MARKETSIM_MEMORY_BUDGET", "1M")
    line = _one_refusal(["validate", "cases/s.yaml"], capsys, here)
    assert "consumers.size" in line and "bytes" in line and "1 MiB (1,048,576 bytes)" in line


def test_seller_limit_is_configurable(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "cases" / "s.yaml").write_text(
        _scenario("strategy: fixed_price\n", "strategy: fixed_price\n    count: 5\n")
    )
    monkeypatch.setenv("MARKETSIM_MAX_SELLERS", "3")
    assert "sellers[0].count: 5 sellers in all is more than 3" in _one_refusal(
        ["validate", "cases/s.yaml"], capsys, here
    )


def test_checkpoint_in_a_scenario_is_relative_to_the_scenario_file(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from marketsim.learning.checkpoint import save_checkpoint

    save_checkpoint(here / "cases" / "brain.pt", {"x": 1}, {"strategy": "dqn"})
    text = _scenario(
        "strategy: fixed_price\n    params: {price: 2.0}", "strategy: dqn\n    params: {checkpoint: brain.pt}"
    )
    (here / "cases" / "s.yaml").write_text(text)
    from marketsim.config.validate import load_scenario

    seller = load_scenario(here / "cases" / "s.yaml").sellers[0]
    assert seller.params["checkpoint"] == str((here / "cases" / "brain.pt").resolve())
    (here / "s.yaml").write_text(text)  # the same file one folder up: the checkpoint is not beside it
    assert "checkpoint file" in _one_refusal(["validate", "s.yaml"], capsys, here)


# --- tournament files ---------------------------------------------------------------------------------------

TOURNAMENT_CASES = [
    (
        "entrant-checkpoint-missing",
        _tournament("strategy: random_price}", "strategy: dqn, checkpoint: gone.pt}"),
        "entrants[1].checkpoint: checkpoint file",
    ),
    (
        "entrant-param-checkpoint-missing",
        _tournament("strategy: random_price}", "strategy: dqn, params: {checkpoint: gone.pt}}"),
        "entrants[1].params.checkpoint",
    ),
    (
        "market-file-missing",
        _tournament(TOURNAMENT[TOURNAMENT.index("market:") : TOURNAMENT.index("entrants:")], "market: nowhere.yaml\n"),
        "not found",
    ),
    (
        "market-alias-bomb",
        _tournament("name: duopoly", "name: duopoly\n  description: " + _bomb_value(9)),
        "alias bomb",
    ),
    ("market-cost-above-max", _tournament("count: 2}", "count: 2, cost: 20}"), "market.sellers[0].cost"),
    ("market-sellers-100000", _tournament("count: 2}", "count: 100000}"), "most one market may hold"),
    ("market-size-2e4", _tournament("steps: 5\n", "steps: 5\n  consumers: {size: 2e4}\n"), "YAML 1.1 reads 2e4"),
    ("one-entrant", _tournament("  - {name: random, strategy: random_price}\n", ""), "entrants"),
    ("duplicate-entrants", _tournament("name: random,", "name: fixed,"), "must be unique"),
    ("unknown-entrant-strategy", _tournament("strategy: random_price", "strategy: randm_price"), "unknown strategy"),
    ("repetitions-zero", _tournament("repetitions: 1", "repetitions: 0"), "repetitions"),
    ("vs-field-without-field", _tournament("repetitions: 1", "repetitions: 1\nformat: vs_field"), "non-empty 'field'"),
    ("time-limit-negative", _tournament("repetitions: 1", "repetitions: 1\ntime_limit: -5"), "time_limit"),
    (
        "deep-nesting",
        _tournament("repetitions: 1", "repetitions: 1\ndescription: " + "[" * 500 + "]" * 500),
        "nested more than",
    ),
    (
        "entrant-q-learning-memory",
        _tournament("strategy: random_price}", "strategy: q_learning, params: {grid_size: -3}}"),
        "entrants[1].params",
    ),
    ("unknown-format", _tournament("repetitions: 1", "repetitions: 1\nformat: swiss"), "format"),
    (
        "entrant-q-learning-memory-40",
        _tournament("strategy: random_price}", "strategy: q_learning, params: {memory: 40}}"),
        "entrants[1].params: in a match of fixed vs random: the tables of strategy 'q_learning'",
    ),
    (
        "entrant-q-learning-grid-huge",
        _tournament("strategy: random_price}", "strategy: q_learning, params: {grid_size: 100000}}"),
        "memory budget",
    ),
    (
        "field-q-learning-memory-40",
        _tournament(
            "repetitions: 1",
            "repetitions: 1\nformat: vs_field\nfield:\n  - {name: rival, strategy: q_learning, params: {memory: 40}}",
        ),
        "field[0].params: in a match of fixed vs rival",
    ),
    (
        "market-population-with-all-seated",
        _tournament("demand: {mode: expected}", "consumers: {size: 30000000}")
        .replace("repetitions: 1", "repetitions: 1\nformat: all_play_all", 1)
        .replace(
            "  - {name: random, strategy: random_price}\n",
            "  - {name: random, strategy: random_price}\n  - {name: c, strategy: fixed_price}\n"
            "  - {name: d, strategy: fixed_price}\n",
            1,
        ),
        "market.consumers.size: in a match of fixed vs random vs c vs d: the consumer population",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), _params(TOURNAMENT_CASES))
def test_malformed_tournament_is_refused(
    text: str, fragment: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "cases/t.yaml"
    (here / path).write_text(text, encoding="utf-8")
    line = _one_refusal(["validate", path], capsys, here)
    _located(line, path)
    assert fragment in line, line


@NEEDS_TORCH
def test_tournament_run_refuses_a_missing_checkpoint_before_any_match(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _tournament("strategy: random_price}", "strategy: dqn, checkpoint: gone.pt}")
    (here / "cases" / "t.yaml").write_text(text)
    line = _one_refusal(["tournament", "cases/t.yaml", "--backend", "serial", "--quiet"], capsys, here)
    assert str((here / "cases" / "gone.pt").resolve()) in line  # relative to the tournament file


def test_tournament_run_refuses_an_entrant_too_large_for_memory(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _tournament("strategy: random_price}", "strategy: q_learning, params: {memory: 40}}")
    (here / "cases" / "t.yaml").write_text(text)
    line = _one_refusal(["tournament", "cases/t.yaml", "--backend", "serial", "--quiet"], capsys, here)
    _located(line, "cases/t.yaml")
    assert "entrants[1].params" in line and "10^" in line, line


def test_tournament_entrant_memory_uses_the_configured_budget(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _tournament("strategy: random_price}", "strategy: q_learning, params: {memory: 1, grid_size: 30}}")
    (here / "cases" / "t.yaml").write_text(text)
    assert main(["validate", "cases/t.yaml"]) == 0  # a small table fits the default budget
    capsys.readouterr()
    monkeypatch.setenv("MARKETSIM_MEMORY_BUDGET", "100K")  # the market alone fits; the 216 KiB table does not
    line = _one_refusal(["validate", "cases/t.yaml"], capsys, here)
    assert "entrants[1].params" in line and "100 KiB (102,400 bytes)" in line, line


def test_tournament_market_file_with_a_problem_names_that_file(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (here / "cases" / "m.yaml").write_text(_scenario("size: 200", "size: 2e4"))
    market = TOURNAMENT[TOURNAMENT.index("market:") : TOURNAMENT.index("entrants:")]
    (here / "cases" / "t.yaml").write_text(_tournament(market, "market: m.yaml\n"))
    line = _one_refusal(["validate", "cases/t.yaml"], capsys, here)
    _located(line, "cases/m.yaml")


# --- family files -------------------------------------------------------------------------------------------

FAMILY_CASES = [
    (
        "base-cost-above-max",
        _family("name: rival, strategy: fixed_price, cost: 1.0", "name: rival, strategy: fixed_price, cost: 90.0"),
        "base.sellers[1].cost",
    ),
    ("base-size-2e4", _family("size: 100", "size: 2e4"), "YAML 1.1 reads 2e4"),
    ("learner-missing", _family("learner: learner", "learner: nobody"), "no base seller named 'nobody'"),
    (
        "alias-bomb",
        _family("name: fam\n", "name: fam\n  description: " + _bomb_value(9) + "\n"),
        "alias bomb",
    ),
    ("bad-sample-path", _family("consumers.mu:", "consumers.muu:"), "consumers.muu"),
    (
        "base-checkpoint-missing",
        _family(
            "name: rival, strategy: fixed_price, cost: 1.0}",
            "name: rival, strategy: dqn, cost: 1.0, params: {checkpoint: none.pt}}",
        ),
        "checkpoint file",
    ),
    (
        "base-sellers-huge",
        _family(
            "name: rival, strategy: fixed_price, cost: 1.0}",
            "name: rival, strategy: fixed_price, cost: 1.0, count: 100000}",
        ),
        "most one market may hold",
    ),
    (
        "sampled-size-up-to-1e12",
        _family("consumers.mu: {uniform: [0.15, 0.6]}", "consumers.size: {loguniform: [100, 1.0e+12]}"),
        "family.sample.consumers.size: a drawn task with consumers.size = 1000000000000: the consumer population",
    ),
    (
        "sampled-size-choice",
        _family("consumers.mu: {uniform: [0.15, 0.6]}", "consumers.size: {choice: [100, 50000000000, 200]}"),
        "consumers.size = 50000000000",
    ),
    (
        "sampled-quadrature-uniform",
        _family("consumers.mu: {uniform: [0.15, 0.6]}", "demand.quadrature: {uniform: [10, 1.0e+13]}").replace(
            "  steps: 5\n", "  steps: 5\n  demand: {mode: expected}\n", 1
        ),
        "family.sample.demand.quadrature",
    ),
    (
        "sampled-table-parameter",
        _family("consumers.mu: {uniform: [0.15, 0.6]}", "sellers.rival.params.memory: {choice: [1, 40]}").replace(
            "name: rival, strategy: fixed_price", "name: rival, strategy: q_learning", 1
        ),
        "sellers.rival.params.memory = 40: the tables of strategy 'q_learning'",
    ),
    (
        "sampled-seller-count",
        _family("consumers.mu: {uniform: [0.15, 0.6]}", "sellers.rival.count: {choice: [1, 100000]}"),
        "family.sample.sellers.rival.count: a drawn task with sellers.rival.count = 100000: 100,001 sellers",
    ),
    (
        "ood-sampled-size",
        _family("  sample:\n", "  ood:\n    sample:\n      consumers.size: {uniform: [100, 1.0e+12]}\n  sample:\n"),
        "family.ood.sample.consumers.size",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), _params(FAMILY_CASES))
def test_malformed_family_is_refused_by_meta_eval(
    text: str, fragment: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "cases/f.yaml"
    (here / path).write_text(text, encoding="utf-8")
    line = _one_refusal(["meta-eval", path, "--tasks", "2", "--workers", "1", "--quiet"], capsys, here)
    _located(line, path)
    assert fragment in line, line


def test_family_rival_count_is_checked_at_its_largest(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = "    slots:\n      - {strategy: fixed_price}\n      - {strategy: undercut}\n"
    rivals = "  rivals:\n    count: {choice: [0, 2]}\n" + slots
    (here / "cases" / "f.yaml").write_text(_family("base:\n", rivals + "base:\n"))
    assert main(["validate", "cases/f.yaml"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("MARKETSIM_MEMORY_BUDGET", "12K")  # the base market (2 sellers) fits; with 2 rivals it does not
    line = _one_refusal(["validate", "cases/f.yaml"], capsys, here)
    _located(line, "cases/f.yaml")
    assert "family.rivals.count: with 2 rivals, a drawn task: the consumer population" in line, line


def test_family_whose_worst_draw_fits_is_accepted(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _family("consumers.mu: {uniform: [0.15, 0.6]}", "consumers.size: {choice: [100, 100000]}")
    (here / "cases" / "f.yaml").write_text(text)
    assert main(["validate", "cases/f.yaml"]) == 0, capsys.readouterr().err


# --- command-line flags -------------------------------------------------------------------------------------

FLAG_CASES = [
    ("meta-eval-checkpoint-missing", ["meta-eval", "cases/f.yaml", "--checkpoint", "cases/none.pt"], "does not exist"),
    ("meta-eval-unknown-strategy", ["meta-eval", "cases/f.yaml", "--strategy", "nobody"], "unknown strategy"),
    ("meta-eval-ood-undeclared", ["meta-eval", "cases/f.yaml", "--split", "ood"], "no ood slice"),
]


@pytest.mark.parametrize(("argv", "fragment"), [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_bad_flags_are_refused(argv: list[str], fragment: str, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (here / "cases" / "s.yaml").write_text(SCENARIO)
    (here / "cases" / "f.yaml").write_text(FAMILY)
    line = _one_refusal([*argv, "--quiet"], capsys, here)
    assert fragment in line, line


USAGE_CASES = [
    ("run-steps-zero", ["run", "cases/s.yaml", "--steps", "0"], "marketsim run", "--steps: should be at least 1"),
    ("run-steps-negative", ["run", "cases/s.yaml", "--steps", "-3"], "marketsim run", "got -3"),
    ("run-seed-negative", ["run", "cases/s.yaml", "--seed", "-1"], "marketsim run", "argument --seed: should be 0"),
    ("run-abbreviated-flag", ["run", "cases/s.yaml", "--step", "3"], "marketsim run", "did you mean --steps?"),
    ("meta-eval-workers-zero", ["meta-eval", "cases/f.yaml", "--workers", "0"], "marketsim meta-eval", "--workers"),
    ("meta-eval-tasks-zero", ["meta-eval", "cases/f.yaml", "--tasks", "0"], "marketsim meta-eval", "--tasks"),
    ("run-steps-text", ["run", "cases/s.yaml", "--steps", "abc"], "marketsim run", "whole number, got 'abc'"),
    ("run-unknown-flag", ["run", "cases/s.yaml", "--bogus"], "marketsim run", "unrecognized arguments: --bogus"),
    ("run-extra-argument", ["run", "cases/s.yaml", "more.yaml"], "marketsim run", "unrecognized arguments"),
    ("run-missing-scenario", ["run"], "marketsim run", "required: scenario"),
    (
        "experiment-sessions-zero",
        ["experiment", "cases/s.yaml", "--sessions", "0"],
        "marketsim experiment",
        "at least 1",
    ),
    ("experiment-sessions-negative", ["experiment", "cases/s.yaml", "--sessions", "-2"], "marketsim experiment", "-2"),
    ("experiment-workers-zero", ["experiment", "cases/s.yaml", "--workers", "0"], "marketsim experiment", "--workers"),
    ("experiment-max-steps-zero", ["experiment", "cases/s.yaml", "--max-steps", "0"], "marketsim experiment", "1"),
    ("train-missing-seller", ["train", "cases/s.yaml"], "marketsim train", "required: --seller"),
    ("train-steps-zero", ["train", "cases/s.yaml", "--seller", "a", "--steps", "0"], "marketsim train", "got 0"),
    ("train-steps-negative", ["train", "cases/s.yaml", "--seller", "a", "--steps", "-1"], "marketsim train", "-1"),
    ("train-workers-zero", ["train", "cases/s.yaml", "--seller", "a", "--workers", "0"], "marketsim train", "at least"),
    ("tournament-bad-backend", ["tournament", "t.yaml", "--backend", "mpi"], "marketsim tournament", "invalid choice"),
    ("meta-eval-tasks-text", ["meta-eval", "cases/f.yaml", "--tasks", "x"], "marketsim meta-eval", "whole number"),
    ("meta-train-missing-strategy", ["meta-train", "cases/f.yaml"], "marketsim meta-train", "required: --strategy"),
    ("unknown-command", ["frobnicate"], "marketsim", "invalid choice: 'frobnicate'"),
    ("no-command", [], "marketsim", "required: command"),
]


@pytest.mark.parametrize(("argv", "prog", "fragment"), [c[1:] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_command_line_errors_are_the_usage_line_and_one_error_line(
    argv: list[str], prog: str, fragment: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "cases" / "s.yaml").write_text(SCENARIO)
    (here / "cases" / "f.yaml").write_text(FAMILY)
    before = _snapshot(here)
    with pytest.raises(SystemExit) as info:  # argparse's convention, kept: usage errors exit from parsing
        main([*argv, "--quiet"] if argv and argv[0] != "frobnicate" else argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert info.value.code == 2
    assert len(lines) == 2 and lines[0].startswith(f"usage: {prog} [-h]"), captured.err  # that command's usage
    assert lines[1].startswith(f"{prog}: error: ") and lines[1].endswith(f"(see `{prog} --help`)"), lines[1]
    assert fragment in lines[1], lines[1]
    assert not captured.out and "Traceback" not in captured.err
    assert _snapshot(here) == before


def test_help_still_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0 and "usage: marketsim run" in capsys.readouterr().out


# --- exceptions travel between processes --------------------------------------------------------------------


class _OddError(Exception):
    """An exception whose constructor takes other arguments than its message (it does not unpickle)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


@pytest.mark.parametrize(
    "exc",
    [
        StrategyError(1, "seller", 3, _OddError(1, 2)),
        StrategyError(0, "seller", 0, CheckpointError("checkpoint x refused")),
        ObserverError("logger", 2, ValueError("no")),
        InvalidPriceError("fixed", float("nan"), 4),
        UnknownStrategyError("nope", ["a", "b"]),
        FieldError(("sellers", 0, "cost"), "too high"),
        SourceError([Problem("f.yaml", 3, 4, "steps", "bad")]),
        TrainError("no"),
        MetaEvalError("no"),
        ExperimentError("no"),
        CheckpointError("no"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_project_exceptions_survive_pickling(exc: BaseException) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc)
    assert {k for k in vars(back)} == {k for k in vars(exc)}
    if isinstance(exc, StrategyError):
        assert (back.seat, back.seller, back.step) == (exc.seat, exc.seller, exc.step)
        assert str(exc.error) in str(back.error)
    if isinstance(exc, SourceError):
        assert back.problems == exc.problems


# --- bombs in a child process, under memory and CPU-time limits ---------------------------------------------

MEMORY_LIMIT = 1536 * 1024**2
CPU_SECONDS = 60


def _limited() -> None:
    """Runs in the child before exec: cap its address space and CPU time (hangs and blow-ups then fail)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _child_refusal(argv: list[str], folder: Path) -> str:
    """Run ``marketsim ARGV`` as a limited child process in ``folder``; assert a clean refusal; return the line."""
    before = _snapshot(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "marketsim", *argv], cwd=folder, capture_output=True, text=True,
        preexec_fn=_limited, timeout=600, env=env,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _snapshot(folder) == before
    return lines[0]


@pytest.mark.parametrize(
    ("name", "text", "command"),
    [
        ("bomb-run", _bomb(9), "run"),
        ("bomb-params-validate", _bomb(9, "params"), "validate"),
        ("bomb-below-limit-run", _bomb(5), "run"),
        ("deep-validate", "name: deep\nx: " + "[" * 10000 + "]" * 10000 + "\n", "validate"),
    ],
    ids=["bomb-run", "bomb-params-validate", "bomb-below-limit-run", "deep-validate"],  # not the texts
)
def test_bombs_are_refused_within_memory_and_cpu_limits(name: str, text: str, command: str, here: Path) -> None:
    (here / "cases" / f"{name}.yaml").write_text(text)
    assert len(text) < 1024 or name.startswith("deep")
    line = _child_refusal([command, f"cases/{name}.yaml"], here)
    _located(line, f"cases/{name}.yaml")


def test_a_50_megabyte_file_is_refused_before_it_is_read(here: Path) -> None:
    with open(here / "cases" / "huge.yaml", "w") as handle:
        handle.write(SCENARIO)
        handle.write(("# " + "x" * 98 + "\n") * 500_000)
    line = _child_refusal(["validate", "cases/huge.yaml"], here)
    assert line.startswith("cases/huge.yaml: file is larger than 5 MiB"), line


@pytest.mark.slow  # about 9 s: a real two-worker meta-eval
def test_meta_eval_with_two_workers_refuses_an_unsafe_checkpoint_cleanly(here: Path) -> None:
    torch = pytest.importorskip("torch")
    (here / "cases" / "f.yaml").write_text(FAMILY)
    torch.save({"x": _OddError}, here / "cases" / "evil.pt")  # a pickled class: weights_only refuses it
    argv = ["meta-eval", "cases/f.yaml", "--checkpoint", "cases/evil.pt", "--strategy", "rl2"]
    line = _child_refusal([*argv, "--workers", "2", "--tasks", "2", "--quiet"], here)
    assert line.startswith("error: ") and "refused" in line, line
