"""The command line answers at once: help, --version and usage errors load none of the numerical libraries.

Each start-up check runs in a fresh interpreter (this test process has imported everything already) and
lists the heavy modules that ended up in ``sys.modules``; nothing here measures time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import marketsim
from marketsim.cli import parser as cli_parser
from marketsim.cli.app import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mesa", "scipy", "pandas", "matplotlib", "torch", "networkx", "pydantic", "numpy")

FRESH = """
import json, sys
from marketsim.cli.app import main

codes = []
for argv in json.loads(sys.argv[1]):
    try:
        codes.append(main(argv))
    except SystemExit as exc:
        codes.append(exc.code)
print(json.dumps({"codes": codes, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def _fresh(*calls: list[str]) -> tuple[dict, str]:
    """Run ``main(argv)`` for each of ``calls`` in one fresh interpreter; (exit codes and heavy modules, output)."""
    code = f"HEAVY = {HEAVY!r}\n{FRESH}"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(calls)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    *printed, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(printed) + done.stderr


def test_help_version_and_usage_errors_import_nothing_heavy() -> None:
    """One interpreter for every answer keeps this cheap: each call could only add modules, never remove them."""
    calls = [[], ["--help"], ["--version"], ["run", "x.yaml", "--step", "3"], ["bogus"]]
    calls += [[command, "--help"] for command in sorted(build_parser().commands)]
    found, _ = _fresh(*calls)
    assert found["heavy"] == [], found
    assert found["codes"] == [2, 0, 0, 2, 2] + [0] * (len(calls) - 5), found


@pytest.mark.parametrize(
    ("argv", "status", "shown"),
    [
        (["--version"], 0, f"marketsim {marketsim.__version__}"),
        (["--help"], 0, "usage: marketsim"),
        (["run", "x.yaml", "--steps", "1", "--bogus"], 2, "usage: marketsim run [-h]"),
    ],
)
def test_each_answer_alone_in_a_fresh_interpreter(argv: list[str], status: int, shown: str) -> None:
    found, printed = _fresh(argv)
    assert found == {"codes": [status], "heavy": []}
    assert shown in printed


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert marketsim.__version__ == version("marketsim")


def test_every_public_name_imports_and_import_marketsim_alone_stays_light() -> None:
    for name in marketsim.__all__:
        assert getattr(marketsim, name) is not None, name
    assert set(marketsim.__all__) <= set(dir(marketsim))
    probe = f"import sys, marketsim; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        marketsim.nothing_here  # noqa: B018


@pytest.mark.parametrize("command", sorted(build_parser().commands))
def test_every_command_refuses_abbreviations_and_shows_its_defaults(command: str) -> None:
    sub = build_parser().commands[command]
    assert sub.allow_abbrev is False
    text = sub.format_help()
    for action in sub._actions:  # noqa: SLF001
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in " ".join((action.help or "").split()) or f"(default: {action.default})" in " ".join(
                text.split()
            ), f"{command} {action.option_strings[0]}"


def test_an_abbreviated_flag_is_a_usage_error_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "scenarios/quickstart.yaml", "--step", "20"])
    lines = capsys.readouterr().err.splitlines()
    assert info.value.code == 2 and len(lines) == 2
    assert lines[0].startswith("usage: marketsim run [-h]")
    assert lines[1] == (
        "marketsim run: error: unrecognized arguments: --step 20; did you mean --steps? (see `marketsim run --help`)"
    )


def test_workers_means_the_same_in_every_command() -> None:
    parser = build_parser()
    for argv in (["experiment", "s.yaml"], ["train", "s.yaml", "--seller", "a"], ["tournament", "t.yaml"],
                 ["meta-eval", "f.yaml"]):  # fmt: skip
        assert parser.parse_args(argv).workers == 1, argv
        assert parser.parse_args([*argv, "--workers", "auto"]).workers == cli_parser.workers("auto") >= 1
        assert parser.parse_args([*argv, "--workers", "3"]).workers == 3


def test_the_parsers_copies_of_fault_and_schema_kinds_match_their_sources() -> None:
    from marketsim.config.schema import SCHEMA_KINDS
    from marketsim.tournament.matches import FAULT_KINDS

    assert cli_parser.FAULT_KINDS == tuple(FAULT_KINDS)
    assert cli_parser.SCHEMA_KINDS == tuple(SCHEMA_KINDS)


def test_a_bad_flag_value_is_blamed_on_the_flag() -> None:
    from marketsim.cli.run import with_flags
    from marketsim.config.validate import load_scenario
    from marketsim.config.yamlsource import SourceError

    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    assert with_flags(scenario, steps=5, seed=None).steps == 5
    with pytest.raises(SourceError) as info:
        with_flags(scenario, seed=-1)
    assert str(info.value).startswith("your --seed flag: ")
    assert "override" not in str(info.value)
