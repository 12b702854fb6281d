"""The plugin ecosystem end to end, in fresh virtual environments: the example third-party plugin
installs with pip and plays in a tournament by name, and docs/plugins.md runs as written.

Each venv sees this environment's packages (marketsim and its
dependencies), so only the plugin itself is installed (pip fetches setuptools for its isolated build,
as it would for any plugin author).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from venvs import make_venv, run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "econometric_pricer"
GUIDE = ROOT / "docs" / "plugins.md"


def listed(cwd: Path, env: dict[str, str]) -> dict[str, dict]:
    out = run("marketsim plugins --json", cwd, env).stdout
    return {row["name"]: row for row in json.loads(out)["strategies"]}


TOURNAMENT = textwrap.dedent(
    """
    name: econometric_cup
    seed: 11
    market:
      name: logit_duopoly
      steps: 1
      consumers: {size: 1, wtp: {distribution: constant, value: 0.0}, mu: 0.25}
      demand: {mode: expected}
      sellers:
        - {name: seat, strategy: fixed_price, price_min: 1.0, price_max: 2.5}
    entrants:
      - {name: econometric, strategy: econometric_pricer, params: {window: 40}}
      - {name: fixed, strategy: fixed_price, params: {price: 1.8}}
      - {name: match, strategy: match_lowest}
    format: round_robin
    repetitions: 2
    phases: {train_steps: 200, eval_steps: 100}
    """
)


@pytest.mark.slow
def test_example_plugin_installs_with_pip_and_plays_a_tournament_by_name(tmp_path: Path) -> None:
    env = make_venv(tmp_path / "venv")
    assert "econometric_pricer" not in listed(tmp_path, env)

    run(f"python -m pip install {EXAMPLE}", tmp_path, env)
    row = listed(tmp_path, env)["econometric_pricer"]
    assert (row["distribution"], row["version"]) == ("marketsim-econometric", "0.1.0")

    (tmp_path / "cup.yaml").write_text(TOURNAMENT)
    run("marketsim tournament cup.yaml --workers 2 --out cup --quiet", tmp_path, env)
    board = (tmp_path / "cup" / "leaderboard.csv").read_text()
    assert "econometric" in board
    faults = (tmp_path / "cup" / "faults.csv").read_text().strip().splitlines()
    assert len(faults) <= 1, faults  # the header only: no match failed

    # the plugin's own suite (behaviour + marketsim's conformance kit) passes where it is installed
    run(f"python -m pytest {EXAMPLE} -q -p no:cacheprovider", tmp_path, env)


def guide_steps(text: str) -> list[tuple[str, str, str]]:
    """The guide's executable parts in order: ("file", path, content) and ("run", "", commands)."""
    pattern = re.compile(r"<!-- (file: (?P<path>\S+)|run) -->\n```\w*\n(?P<body>.*?)```", re.S)
    return [("file", m["path"], m["body"]) if m["path"] else ("run", "", m["body"]) for m in pattern.finditer(text)]


@pytest.mark.slow
def test_the_plugin_author_guide_runs_as_written(tmp_path: Path) -> None:
    steps = guide_steps(GUIDE.read_text())
    assert sum(kind == "run" for kind, _, _ in steps) >= 2 and sum(kind == "file" for kind, _, _ in steps) >= 4
    env = make_venv(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    for kind, path, body in steps:
        if kind == "file":
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(body)
        else:
            for command in body.strip().splitlines():
                run(command, work, env)
    assert (work / "runs" / "my-market" / "summary.json").is_file()
    board = (work / "runs" / "my-tournament" / "leaderboard.csv").read_text()
    assert "premium" in board

    # the guide's example of a misspelt parameter is what `marketsim validate` prints
    shown = re.search(r"\$ marketsim validate bad.yaml\n(.*)\n", GUIDE.read_text())[1]
    (work / "bad.yaml").write_text(guide_file(GUIDE.read_text(), "my-market.yaml").replace("premium:", "premum:"))
    done = subprocess.run("marketsim validate bad.yaml", shell=True, cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == shown


def guide_file(text: str, path: str) -> str:
    """The content the guide gives for ``path``."""
    return next(body for kind, p, body in guide_steps(text) if kind == "file" and p == path)
