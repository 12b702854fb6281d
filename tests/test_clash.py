"""Two installed distributions register the same strategy name: both are refused, ``distribution:name`` picks one.

End to end through the command line, in fresh processes that see two fake distributions (a plugin module and a
``.dist-info`` folder each, found by ``importlib.metadata`` exactly as a pip-installed package is).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''\
from marketsim.hookspecs import hookimpl
from marketsim.strategy import Strategy


class Pro(Strategy):
    """Posts {price}: the {dist} build of the name."""

    name = "undercut_pro"

    def price(self, obs):
        return {price}


@hookimpl
def register_strategies(register):
    register(Pro)
'''

SCENARIO = """\
name: clash
seed: 1
steps: 5
consumers: {{size: 100, wtp: {{distribution: uniform, low: 0, high: 3}}, mu: 0.25}}
sellers:
  - {{name: a, strategy: "{strategy}", cost: 1.0, price_min: 1.0, price_max: 2.5}}
  - {{name: b, strategy: fixed_price, cost: 1.0, price_min: 1.0, price_max: 2.5}}
"""


def _distribution(site: Path, dist: str, module: str, price: float) -> None:
    """Write distribution ``dist`` 1.0 whose entry point ``module`` registers ``undercut_pro`` posting ``price``."""
    site.mkdir(parents=True)
    (site / f"{module}.py").write_text(PLUGIN.format(price=price, dist=dist))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[marketsim]\n{module} = {module}\n")


@pytest.fixture
def clash(tmp_path: Path) -> dict[str, str]:
    """The environment of a process that has both acme-pricing and shady-pricing installed."""
    _distribution(tmp_path / "site_a", "acme-pricing", "acme_plugin", 1.9)
    _distribution(tmp_path / "site_b", "shady-pricing", "shady_plugin", 1.1)
    path = os.pathsep.join([str(tmp_path / "site_b"), str(tmp_path / "site_a"), os.environ.get("PYTHONPATH", "")])
    env = {
        k: v for k, v in os.environ.items() if k not in ("MARKETSIM_LOAD_PLUGINS", "MARKETSIM_DISABLE_PLUGIN_AUTOLOAD")
    }
    return {**env, "PYTHONPATH": path}


def _marketsim(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m marketsim ARGS``; stderr with its lines joined (the console wraps long messages)."""
    done = subprocess.run(
        [sys.executable, "-m", "marketsim", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    done.stderr = " ".join(done.stderr.split())
    return done


def test_a_clashing_name_is_refused_for_both_and_a_qualified_name_picks_one(
    clash: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "bare.yaml").write_text(SCENARIO.format(strategy="undercut_pro"))
    (tmp_path / "qualified.yaml").write_text(SCENARIO.format(strategy="acme-pricing:undercut_pro"))

    check = _marketsim(clash, tmp_path, "plugins", "--check")
    assert check.returncode == 1, check.stderr
    assert "problem in plugin 'acme_plugin + shady_plugin'" in check.stderr  # no one plugin is blamed
    for fragment in (
        "acme_plugin (acme-pricing 1.0)",
        "shady_plugin (shady-pricing 1.0)",
        "'acme-pricing:undercut_pro'",
    ):
        assert fragment in check.stderr, (fragment, check.stderr)

    bare = _marketsim(clash, tmp_path, "run", "bare.yaml", "--out", "bare_out", "--quiet")
    assert bare.returncode == 2, bare.stderr
    assert "bare.yaml:6:" in bare.stderr and "sellers[0].strategy" in bare.stderr
    assert "acme-pricing" in bare.stderr and "shady-pricing" in bare.stderr
    assert "'shady-pricing:undercut_pro'" in bare.stderr and "MARKETSIM_LOAD_PLUGINS=" in bare.stderr
    assert "Traceback" not in bare.stderr and not (tmp_path / "bare_out").exists()

    picked = _marketsim(clash, tmp_path, "run", "qualified.yaml", "--out", "picked_out", "--quiet")
    assert picked.returncode == 0, picked.stderr
    summary = json.loads((tmp_path / "picked_out" / "summary.json").read_text())
    assert summary["sellers"][0]["mean_price"] == pytest.approx(1.9)  # acme's build, not shady's 1.1
    assert summary["provenance"]["strategies"]["acme-pricing:undercut_pro"] == {
        "name": "undercut_pro",
        "distribution": "acme-pricing",
        "version": "1.0",
        "plugin": "acme_plugin",
    }
    assert summary["provenance"]["strategies"]["fixed_price"]["distribution"] == "marketsim"


@pytest.mark.slow  # a fresh process; tests/test_registry.py checks the allow list in-process
def test_the_allow_list_keeps_only_the_trusted_distribution(clash: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bare.yaml").write_text(SCENARIO.format(strategy="undercut_pro"))
    trusted = {**clash, "MARKETSIM_LOAD_PLUGINS": "acme-pricing"}
    done = _marketsim(trusted, tmp_path, "run", "bare.yaml", "--out", "out", "--quiet")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["provenance"]["strategies"]["undercut_pro"]["distribution"] == "acme-pricing"
    assert textwrap.dedent(done.stderr).strip() == ""  # no problem left to warn about
