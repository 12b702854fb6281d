"""``marketsim new-plugin NAME``: the files it writes, the names and folders it refuses (writing nothing), and, in a
fresh venv, a generated plugin that installs, passes its own tests and plays in a tournament by name."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from marketsim.cli.app import main
from marketsim.registry import load_registry
from marketsim.strategy import Observation
from venvs import make_venv, run

FILES = {
    "pyproject.toml",
    "README.md",
    ".gitignore",
    "src/{package}/__init__.py",
    "src/{package}/strategy.py",
    "tests/test_strategy.py",
    "tests/test_examples.py",
    "examples/scenario.yaml",
    "examples/tournament.yaml",
}


def written(folder: Path) -> set[str]:
    """Every file under ``folder``, as paths relative to it."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_writes_a_distribution_with_the_entry_point_and_says_what_to_run_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "work" / "plugins"  # created when missing
    assert main(["new-plugin", "acme-pricing", "--dir", str(parent)]) == 0
    folder = parent / "acme-pricing"
    assert written(folder) == {f.format(package="acme_pricing") for f in FILES}
    assert written(tmp_path) == {f"work/plugins/acme-pricing/{f}" for f in written(folder)}  # nothing left beside

    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == "acme-pricing"
    assert project["project"]["entry-points"]["marketsim"] == {"acme_pricing": "acme_pricing"}
    assert any(d.startswith("marketsim") for d in project["project"]["dependencies"])
    assert 'MARKETSIM_API = ">=1,<2"' in (folder / "src/acme_pricing/__init__.py").read_text()
    assert 'name = "acme_pricing_markup"' in (folder / "src/acme_pricing/strategy.py").read_text()
    for example in ("scenario.yaml", "tournament.yaml"):
        assert "strategy: acme_pricing_markup" in (folder / "examples" / example).read_text()
        assert isinstance(yaml.safe_load((folder / "examples" / example).read_text()), dict)

    shown = capsys.readouterr().out
    assert "src/acme_pricing/strategy.py" in shown
    commands = shown.split("next:")[1].split()
    assert " ".join(commands[:6]) == f"python -m pip install -e {parent}/acme-pricing"
    assert "marketsim tournament" in shown and "examples/tournament.yaml" in shown


def test_the_generated_package_registers_a_working_strategy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Imported from its source (not installed), the plugin module registers its strategy and the strategy prices."""
    assert main(["new-plugin", "acme", "--dir", str(tmp_path), "--strategy", "acme_follow"]) == 0
    monkeypatch.syspath_prepend(str(tmp_path / "acme" / "src"))
    try:
        module = importlib.import_module("acme")
        registry = load_registry([("acme", module)], entry_points=False)
        strategy = registry.create("acme_follow", {"markup": 0.2})
    finally:
        for name in [m for m in sys.modules if m == "acme" or m.startswith("acme.")]:
            del sys.modules[name]
    assert type(strategy).__name__ == "AcmeFollow" and strategy.params == {"markup": 0.2, "delta": 0.01}
    obs = Observation(
        step=1, own_price=1.8, cost=1.0, last_units=0.0, last_profit=0.0, inventory=float("inf"),
        capacity=float("inf"), competitor_prices=(1.5, 2.0), price_min=1.0, price_max=2.5,
    )  # fmt: skip
    assert strategy.price(obs) == pytest.approx(1.5 * 1.2)


def test_the_generated_code_passes_ruff(tmp_path: Path) -> None:
    pytest.importorskip("ruff")  # a dev dependency
    assert main(["new-plugin", "acme", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "acme"
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_an_existing_empty_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    assert main(["new-plugin", "acme", "--dir", str(tmp_path)]) == 0
    assert written(tmp_path / "acme") == {f.format(package="acme") for f in FILES}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``marketsim ARGV``, expecting exit 2 and one line on stderr; returns that line."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marketsim new-plugin: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def test_refuses_an_existing_non_empty_folder_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "notes.txt").write_text("mine")
    line = refused(["new-plugin", "acme", "--dir", str(tmp_path)], capsys)
    assert "already exists and is not empty" in line
    assert written(tmp_path) == {"acme/notes.txt"} and [p.name for p in tmp_path.iterdir()] == ["acme"]


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["a b"], "not a valid distribution name"),
        (["_acme"], "not a valid distribution name"),
        (["acme-"], "not a valid distribution name"),
        (["../acme"], "not a valid distribution name"),
        (["1acme"], "cannot derive a Python package name"),
        (["class"], "cannot derive a Python package name"),
        (["json"], "would shadow the installed module 'json'"),
        (["Marketsim"], "would shadow the installed module 'marketsim'"),
        (["acme", "--strategy", "AcmeRule"], "not a valid strategy name"),
        (["acme", "--strategy", "strategy"], "would give the class 'Strategy'"),
    ],
)
def test_refuses_a_bad_name_and_writes_nothing(
    argv: list[str], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(["new-plugin", *argv[:1], "--dir", str(tmp_path), *argv[1:]], capsys)
    assert reason in line, line
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_generated_plugin_installs_passes_its_tests_and_plays_a_tournament_by_name(tmp_path: Path) -> None:
    """Acceptance C of issue #15, as a plugin author would do it, in a fresh venv."""
    env = make_venv(tmp_path / "venv")
    run("marketsim new-plugin acme", tmp_path, env)
    run("python -m pip install ./acme", tmp_path, env)
    tests = run("python -m pytest acme -q -p no:cacheprovider", tmp_path, env).stdout
    assert " passed" in tests and "failed" not in tests and "skipped" not in tests, tests

    run("marketsim tournament acme/examples/tournament.yaml --workers 2 --out cup --quiet", tmp_path, env)
    board = (tmp_path / "cup" / "leaderboard.csv").read_text().splitlines()
    assert any(row.startswith("mine,") for row in board), board  # the entrant playing acme_markup
    faults = (tmp_path / "cup" / "faults.csv").read_text().strip().splitlines()
    assert len(faults) == 1, faults  # the header only: no match failed
