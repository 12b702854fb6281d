"""Discovery imports no heavy optional dependency: the deep, meta, sb3 and llm plugins register their strategies
without loading torch, Gymnasium, PettingZoo, Stable-Baselines3, openai or Ray (issue 15, item 5).

Each check runs in a fresh interpreter (this test process may have imported them already).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from marketsim.registry import ALLOW_ENV, DISABLE_AUTOLOAD_ENV

TORCH_STRATEGIES = ("dqn", "a3c", "rl2", "reptile_dqn")
#: optional dependencies that only a seller (or executor) that uses them may import
HEAVY = ("torch", "gymnasium", "pettingzoo", "stable_baselines3", "openai", "ray")

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (the deep extra) is missing")

DISCOVER = """
import json, sys
from marketsim.registry import default_registry
from marketsim.strategy import parameters


def describe(cls):
    return {
        "parameters": [[p.name, repr(p.default), p.required, repr(p.annotation)] for p in parameters(cls)],
        "classifier": repr(dict(cls.classifier)),
        "doc": cls.__doc__,
    }


registry = default_registry()
found = {}
for name in TORCH_STRATEGIES:
    if name in registry:
        cls = registry.get(name).cls
        registry.create(name)  # building one with its defaults (what validation does) needs no torch either
        found[name] = describe(cls)
print(json.dumps({
    "torch": "torch" in sys.modules,
    "heavy": [name for name in HEAVY if name in sys.modules],
    "names": registry.names(),
    "problems": {p.plugin: p.reason for p in registry.problems},
    "unavailable": {p.plugin: p.reason for p in registry.unavailable},
    "strategies": found,
}))
"""

# as if torch were not installed (sys.modules["torch"] = None would break scipy, which looks for torch there)
HIDE_TORCH = """
import importlib.util
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if name == "torch" else find_spec(name, package)
"""


def discover(before: str = "") -> dict[str, Any]:
    """What a fresh interpreter's registry holds (after running ``before``), and whether torch got imported."""
    code = "\n".join([before, f"TORCH_STRATEGIES = {TORCH_STRATEGIES!r}", f"HEAVY = {HEAVY!r}", DISCOVER])
    return json.loads(_fresh(code).splitlines()[-1])


def _fresh(code: str) -> str:
    """What ``code`` prints in a fresh interpreter that loads every installed plugin."""
    env = {k: v for k, v in os.environ.items() if k not in (DISABLE_AUTOLOAD_ENV, ALLOW_ENV)}  # every plugin
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_discovery_imports_no_heavy_optional_dependency() -> None:
    found = discover()
    assert found["heavy"] == [] and found["torch"] is False
    assert "sb3_policy" not in found["problems"]


CLI = """
import json, sys
from marketsim.cli.app import main
codes = [main(["plugins"]), main(["validate", "scenarios/tournament_quick.yaml"])]
print(json.dumps({"codes": codes, "heavy": [name for name in HEAVY if name in sys.modules]}))
"""


def test_listing_plugins_and_validating_a_tournament_import_no_heavy_dependency() -> None:
    """Every CLI call discovers plugins: the ones that play no seller need none of the heavy extras."""
    found = json.loads(_fresh(f"HEAVY = {HEAVY!r}\n{CLI}").splitlines()[-1])
    assert found["heavy"] == [], found
    assert found["codes"][1] == 0


@pytest.mark.slow  # two fresh interpreters, one importing torch (about 5 s)
@needs_torch
def test_torch_strategies_are_listed_with_their_parameters() -> None:
    lazy = discover()
    assert set(TORCH_STRATEGIES) <= set(lazy["names"])
    assert not {"deep", "meta"} & set(lazy["problems"])
    # the same metadata as the classes report once their torch implementation has been loaded
    loaded = discover("import marketsim_deep.a3c_nets, marketsim_meta.rl2_net")
    assert loaded["torch"] is True
    assert lazy["strategies"] == loaded["strategies"]
    for name in TORCH_STRATEGIES:
        params = {p[0]: p[1] for p in lazy["strategies"][name]["parameters"]}
        assert params["device"] == "'auto'" and params["checkpoint"] == "None", name
        assert lazy["strategies"][name]["doc"]


def test_without_torch_the_plugins_report_why() -> None:
    missing = discover(HIDE_TORCH)
    assert not set(TORCH_STRATEGIES) & set(missing["names"])
    assert "q_learning" in missing["names"]
    assert not {"deep", "meta"} & set(missing["problems"])  # a missing extra is not a fault of the plugin
    for plugin in ("deep", "meta"):
        assert "need torch: pip install 'marketsim[deep]'" in missing["unavailable"][plugin]
