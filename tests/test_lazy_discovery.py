"""Discovery imports no torch: the deep and meta plugins register their strategies without loading it.

Each check runs in a fresh interpreter (this test process may have imported torch already).
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
    "names": registry.names(),
    "problems": {p.plugin: p.reason for p in registry.problems},
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
    code = "\n".join([before, f"TORCH_STRATEGIES = {TORCH_STRATEGIES!r}", DISCOVER])
    env = {k: v for k, v in os.environ.items() if k not in (DISABLE_AUTOLOAD_ENV, ALLOW_ENV)}  # every plugin
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_discovery_imports_no_torch() -> None:
    assert discover()["torch"] is False


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
    for plugin in ("deep", "meta"):
        assert "need torch: pip install 'marketsim[deep]'" in missing["problems"][plugin]
