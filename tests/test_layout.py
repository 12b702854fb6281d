"""The package's shape, read from its source with ast: no import cycles, the market wing at the bottom, the
command line on top, and plugins that use only the public API and the documented extension modules (and
other plugins' public names, never their private ones)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "marketsim"
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("marketsim_*") if (p / "__init__.py").is_file())

WINGS = ("config", "market", "learning", "tournament", "sweep", "meta", "envs", "viz", "cli")
#: What a plugin may import from marketsim: the public API and the documented extension modules (docs/plugins.md).
PLUGIN_API = {
    "marketsim",
    "marketsim.strategy",
    "marketsim.hookspecs",
    "marketsim.registry",
    "marketsim.observers",
    "marketsim.testing",
    "marketsim.exceptions",
    "marketsim.seeds",
    "marketsim.market.engine",
    "marketsim.market.step",
    "marketsim.market.rivals",
    "marketsim.learning.tabular",
    "marketsim.learning.torchkit",
    "marketsim.learning.checkpoint",
    "marketsim.envs.layout",
}


def _module_name(path: Path, base: Path, package: str) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _modules(base: Path, package: str) -> dict[str, Path]:
    return {_module_name(p, base, package): p for p in sorted(base.rglob("*.py")) if "__pycache__" not in p.parts}


PACKAGE_MODULES = _modules(PACKAGE, "marketsim")


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits under ``if TYPE_CHECKING:`` (an annotation-only import, never executed)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path, module: str, annotations: bool = False) -> Iterator[str]:
    """Every module ``path`` imports at run time (module level or inside functions), resolved to names; with
    ``annotations`` also those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or (
            not annotations and _type_checking_only(node, parents)
        ):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in PACKAGE_MODULES]
        if len(submodules) < len(node.names):  # some names come from the module itself
            yield base
        yield from submodules  # `from marketsim.tournament import results` imports a module


def private_imports(path: Path) -> Iterator[str]:
    """Modules from which ``path`` imports an underscore name (``from x import _y``) or a private module."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if any(a.name.startswith("_") for a in node.names) or any(
                part.startswith("_") for part in node.module.split(".")
            ):
                yield node.module


def package_graph(annotations: bool = False) -> nx.DiGraph:
    graph = nx.DiGraph()
    for module, path in PACKAGE_MODULES.items():
        graph.add_node(module)
        for target in imports_of(path, module, annotations):
            if target in PACKAGE_MODULES and target != module:
                graph.add_edge(module, target)
    return graph


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def test_the_walker_sees_the_package() -> None:
    graph = package_graph()
    assert {"marketsim.market.model", "marketsim.cli.app", "marketsim.strategy"} <= set(graph)
    assert graph.has_edge("marketsim.cli.run", "marketsim.config.scenario")


def test_no_import_cycles() -> None:
    """Not even through annotation-only (``TYPE_CHECKING``) imports: each edge of the graph points one way."""
    cycles = [sorted(c) for c in nx.strongly_connected_components(package_graph(annotations=True)) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_market_wing_imports_no_higher_wing() -> None:
    graph = package_graph()
    bad = [
        (a, b) for a, b in graph.edges if wing(a) == "market" and wing(b) in ("learning", "tournament", "meta", "cli")
    ]
    assert not bad, bad


def test_only_the_command_line_imports_the_live_page() -> None:
    """``marketsim.viz`` needs the viz extra (Solara): no other wing may depend on it."""
    graph = package_graph()
    bad = [(a, b) for a, b in graph.edges if wing(b) == "viz" and wing(a) not in ("viz", "cli")]
    assert not bad, bad


def test_no_library_module_imports_the_cli() -> None:
    graph = package_graph()
    bad = [(a, b) for a, b in graph.edges if wing(b) == "cli" and wing(a) != "cli" and a != "marketsim.__main__"]
    assert not bad, bad


def test_config_reads_files_without_running_anything() -> None:
    graph = package_graph()
    bad = [
        (a, b) for a, b in graph.edges if wing(a) == "config" and wing(b) in ("learning", "tournament", "meta", "cli")
    ]
    assert not bad, bad


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugins_use_only_the_public_api(plugin: Path) -> None:
    own = plugin.name
    bad = []
    for module, path in _modules(plugin, own).items():
        private = set(private_imports(path))
        for target in imports_of(path, module):
            top = target.split(".")[0]
            if top == "marketsim" and target not in PLUGIN_API:
                bad.append((module, target))
            elif top.startswith("marketsim_") and top != own and target in private:
                bad.append((module, target))  # another plugin's private names
    assert not bad, f"{own} imports host internals or another plugin: {bad}"


def test_the_envs_stand_on_the_market_and_nothing_stands_on_them() -> None:
    """The RL environments (optional extra ``rl``) wrap the market; no other wing imports them, so nothing else
    needs Gymnasium or PettingZoo, and they know nothing of tournaments, meta-training or the command line."""
    graph = package_graph()
    below = [(a, b) for a, b in graph.edges if wing(a) == "envs" and wing(b) in ("tournament", "meta", "cli")]
    above = [(a, b) for a, b in graph.edges if wing(b) == "envs" and wing(a) != "envs"]
    assert not below and not above, (below, above)
    layout_imports = {b for a, b in graph.edges if a == "marketsim.envs.layout"}
    assert layout_imports <= {"marketsim.strategy", "marketsim.learning.tabular"}  # plugins import it bare


def test_the_walker_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The rules above are not vacuous: a plugin importing the Mesa model is caught."""
    plugin = tmp_path / "marketsim_x"
    plugin.mkdir()
    (plugin / "__init__.py").write_text("def f():\n    from marketsim.market.model import MarketModel\n")
    found = [t for m, p in _modules(plugin, "marketsim_x").items() for t in imports_of(p, m)]
    assert "marketsim.market.model" in found and "marketsim.market.model" not in PLUGIN_API


def test_every_public_name_resolves() -> None:
    """``marketsim.__all__`` is the public API, the main jobs included (some imported on first use)."""
    import marketsim

    missing = [name for name in marketsim.__all__ if not hasattr(marketsim, name)]
    assert not missing, missing
    assert {"simulate", "run_tournament", "load_tournament", "run_experiment", "train", "load_checkpoint"} <= set(
        marketsim.__all__
    )


def test_the_wheel_lists_every_package_of_the_source_tree() -> None:
    """pyproject's explicit package list is what a non-editable install ships: a subpackage missing from it
    imports in the editable checkout and fails after `pip install marketsim`."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    for name, folder in setuptools["package-dir"].items():
        base = ROOT / folder
        if name != "marketsim" and (base / "__init__.py").is_file():
            found |= {".".join((name, *p.parent.relative_to(base).parts)) for p in base.rglob("__init__.py")}
    assert listed == found, {"missing": sorted(found - listed), "stale": sorted(listed - found)}
