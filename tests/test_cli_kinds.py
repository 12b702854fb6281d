"""A file of the wrong kind gets one line naming the command that runs it; a missing file gets the closest names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketsim.cli.app import main
from marketsim.config.kinds import COMMANDS, KINDS, bundled_files, detect_kind, missing_file

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
SWEEP = """\
name: mu_sweep
base: quickstart.yaml
axes:
  consumers.mu: [0.1, 0.25, 0.5]
"""
FILES = {  # one file of each kind, as a user would have it
    "scenario": "quickstart.yaml",
    "tournament": "tournament_quick.yaml",
    "family": "meta_pricing.yaml",
    "sweep": "sweep.yaml",
}
#: each command with the arguments it needs besides the file
ARGS = {
    "run": ["--quiet"],
    "experiment": ["--sessions", "2", "--quiet"],
    "train": ["--seller", "steady", "--quiet"],
    "tournament": ["--quiet"],
    "meta-train": ["--strategy", "rl2", "--quiet"],
    "meta-eval": ["--tasks", "2", "--quiet"],
    "viz": [],
    "sweep": ["--quiet"],
}
RIGHT = {  # what each kind's message must name
    "scenario": "is a scenario file: run it with `marketsim run` "
    "(or `marketsim experiment`, `marketsim train`, `marketsim viz`)",
    "tournament": "is a tournament file: run it with `marketsim tournament`",
    "family": "is a task-family file: run it with `marketsim meta-train` (or `marketsim meta-eval`)",
    "sweep": "is a sweep file: run it with `marketsim sweep`",
}
WRONG = [(kind, command) for kind in FILES for command in ARGS if command not in COMMANDS[kind]]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding one file of each kind (and the scenario the sweep names)."""
    for name in ("quickstart.yaml", "tournament_quick.yaml", "meta_pricing.yaml"):
        shutil.copy(SCENARIOS / name, tmp_path / name)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_every_kind_and_command_is_covered() -> None:
    assert set(FILES) == set(KINDS) == set(RIGHT) == set(COMMANDS)
    assert {c for commands in COMMANDS.values() for c in commands} == set(ARGS)
    assert len(WRONG) == 4 * 8 - 8  # every command has its one kind


@pytest.mark.parametrize(("kind", "command"), WRONG, ids=[f"{k}-to-{c}" for k, c in WRONG])
def test_a_file_of_the_wrong_kind_names_the_right_command(
    kind: str, command: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _listing(here)
    assert main([command, FILES[kind], *ARGS[command]]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"{FILES[kind]} {RIGHT[kind]}\n" and captured.out == ""
    assert _listing(here) == before  # nothing written


@pytest.mark.parametrize("command", sorted(ARGS))
def test_a_missing_file_is_named_with_the_closest_bundled_files(
    command: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "scenarios/quickstrat.yaml", *ARGS[command]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("no such file: scenarios/quickstrat.yaml; closest bundled files: ")
    assert "quickstart.yaml" in err and len(err.splitlines()) == 1 and ":1:1:" not in err
    assert _listing(here) == sorted(FILES.values())


def test_a_missing_file_without_a_close_name_lists_files_the_command_runs() -> None:
    message = missing_file("zzz.yaml", "tournament")
    assert message.startswith("no such file: zzz.yaml; bundled files it runs: ")
    assert "tournament_quick.yaml" in message and "quickstart" not in message
    assert missing_file("zzz.yaml") == "no such file: zzz.yaml"


def test_every_bundled_file_has_a_kind_and_runs_with_its_command() -> None:
    files = bundled_files()
    assert {f.name for f in SCENARIOS.glob("*.yaml")} <= {f.name for f in files}
    for path in files:
        assert detect_kind(path) in ("scenario", "tournament", "family", "sweep"), path
    assert detect_kind(SCENARIOS / "meta_pricing.yaml") == "family"
    assert detect_kind(SCENARIOS / "sweeps" / "calvano_alpha_beta.yaml") == "sweep"
    assert detect_kind(SCENARIOS / "tournament_full.yaml") == "tournament"


def test_kinds_come_from_top_level_keys_only(tmp_path: Path) -> None:
    cases = {
        "nested: {sellers: []}\nname: x\n": None,  # a key below the top level does not count
        "# a comment\nsteps: 10\n  entrants: broken yaml below\n": "scenario",
        "name: t\nmarket: m.yaml\n": "tournament",
        "family: {}\nbase: {}\n": "family",
        "base: s.yaml\naxes: {}\n": "sweep",
        "base: s.yaml\n": None,
        "": None,
    }
    for k, (text, kind) in enumerate(cases.items()):
        path = tmp_path / f"{k}.yaml"
        path.write_text(text)
        assert detect_kind(path) == kind, text
    assert detect_kind(tmp_path / "absent.yaml") is None


def test_validate_names_each_kind_and_checks_a_sweep_against_its_base(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "quickstart.yaml", "tournament_quick.yaml", "meta_pricing.yaml", "sweep.yaml"]) == 0
    out = capsys.readouterr().out
    assert "ok quickstart.yaml" in out and "tournament," in out and "task family" in out
    assert "ok sweep.yaml: mu_sweep, sweep of run over quickstart.yaml, 3 points" in out
    assert main(["validate", "nothing.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == ["no such file: nothing.yaml"]
