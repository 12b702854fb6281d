"""``marketsim new-plugin NAME``: write a strategy-plugin distribution that installs and passes its own tests.

The files are rendered from the templates in ``marketsim/scaffold_templates`` (package data) with
``string.Template`` (``$name`` placeholders). Every name and the target folder are checked before anything is
written, and the folder is assembled under a temporary name beside it and moved into place, so a refusal or a
failure leaves nothing behind.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import keyword
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template

from marketsim.strategy import STRATEGY_API_VERSION

#: A distribution name as PEP 508 allows it: letters, digits, ``-``, ``_`` and ``.``, alphanumeric at both ends.
DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: A strategy name as the conformance kit requires it: snake_case, starting with a letter.
STRATEGY_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: Names the generated strategy module imports, which the strategy's class must not shadow.
RESERVED_CLASSES = frozenset({"Any", "ClassVar", "Mapping", "Observation", "Outcome", "Strategy"})

#: Each generated file (``{package}`` stands for the import package) and the template it is rendered from.
FILES: tuple[tuple[str, str], ...] = (
    ("pyproject.toml", "pyproject.toml.tmpl"),
    ("README.md", "README.md.tmpl"),
    (".gitignore", "gitignore.tmpl"),
    ("src/{package}/__init__.py", "init.py.tmpl"),
    ("src/{package}/strategy.py", "strategy.py.tmpl"),
    ("tests/test_strategy.py", "test_strategy.py.tmpl"),
    ("tests/test_examples.py", "test_examples.py.tmpl"),
    ("examples/scenario.yaml", "scenario.yaml.tmpl"),
    ("examples/tournament.yaml", "tournament.yaml.tmpl"),
)


class ScaffoldError(ValueError):
    """A name or folder ``new-plugin`` refuses; the message is one line and nothing has been written."""


@dataclass(frozen=True)
class PluginNames:
    """The names one generated plugin goes by."""

    distribution: str  # what pip installs (``pip install NAME``), as the user typed it
    package: str  # the import package and entry-point name derived from it
    strategy: str  # the registered strategy name (prefixed with the package by default, against clashes)
    class_name: str  # the strategy's class

    def template_values(self) -> dict[str, str]:
        """The ``$placeholders`` of the templates."""
        major = int(STRATEGY_API_VERSION.split(".")[0])
        return {
            "distribution": self.distribution,
            "package": self.package,
            "strategy_name": self.strategy,
            "class_name": self.class_name,
            "api_range": f">={major},<{major + 1}",
            "marketsim_requirement": marketsim_requirement(),
        }


def marketsim_requirement() -> str:
    """The generated plugin's dependency on marketsim: at least this release's major.minor."""
    try:
        version = importlib.metadata.version("marketsim")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "marketsim"
    return f"marketsim>={'.'.join(version.split('.')[:2])}"


def package_name(distribution: str) -> str:
    """The import package of a distribution name (``acme-pricing`` -> ``acme_pricing``); refuses what cannot be one."""
    if not DISTRIBUTION_NAME.fullmatch(distribution):
        raise ScaffoldError(
            f"{distribution!r} is not a valid distribution name: use letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    package = re.sub(r"[-_.]+", "_", distribution).lower()
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ScaffoldError(
            f"cannot derive a Python package name from {distribution!r} ({package!r} is not an identifier): "
            "start the name with a letter"
        )
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin is not None:  # a real module, not a namespace folder in the current dir
        raise ScaffoldError(
            f"the package name {package!r} would shadow the installed module {package!r} ({spec.origin}); "
            "choose another NAME"
        )
    return package


def class_name(strategy: str) -> str:
    """The CamelCase class of a snake_case strategy name (``acme_markup`` -> ``AcmeMarkup``)."""
    return "".join(part[:1].upper() + part[1:] for part in strategy.split("_") if part)


def plugin_names(distribution: str, strategy: str | None = None) -> PluginNames:
    """Every name of the plugin, validated; the strategy defaults to ``<package>_markup``."""
    package = package_name(distribution)
    strategy = f"{package}_markup" if strategy is None else strategy
    if not STRATEGY_NAME.fullmatch(strategy) or keyword.iskeyword(strategy):
        raise ScaffoldError(
            f"{strategy!r} is not a valid strategy name: use snake_case (lower-case letters, digits and '_', "
            "starting with a letter)"
        )
    cls = class_name(strategy)
    if cls in RESERVED_CLASSES:
        raise ScaffoldError(f"the strategy name {strategy!r} would give the class {cls!r}, a name marketsim uses")
    return PluginNames(distribution, package, strategy, cls)


def render(names: PluginNames) -> dict[str, str]:
    """Every generated file's text, by its path relative to the distribution folder."""
    templates = files("marketsim") / "scaffold_templates"
    values = names.template_values()
    rendered = {}
    for path, template in FILES:
        text = (templates / template).read_text(encoding="utf-8")
        rendered[path.format(package=names.package)] = Template(text).substitute(values)
    return rendered


def target_folder(parent: Path, distribution: str) -> Path:
    """``parent/distribution``; refuses a path that exists, unless it is an empty folder."""
    folder = parent / distribution
    if folder.is_dir() and any(folder.iterdir()):
        raise ScaffoldError(f"{folder} already exists and is not empty; choose another NAME or --dir (nothing written)")
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} already exists and is not a folder (nothing written)")
    if parent.exists() and not parent.is_dir():
        raise ScaffoldError(f"{parent} is not a folder (nothing written)")
    return folder


def write_plugin(distribution: str, parent: str | Path = ".", strategy: str | None = None) -> tuple[Path, list[str]]:
    """Write the plugin folder ``parent/distribution``; returns it and the files written (relative paths).

    Raises ``ScaffoldError`` for a refused name or folder (nothing written) and ``OSError`` when writing
    fails (the temporary folder is removed).
    """
    names = plugin_names(distribution, strategy)
    folder = target_folder(Path(parent), distribution)
    texts = render(names)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{distribution}.new-{uuid.uuid4().hex[:8]}"
    try:
        for path, text in texts.items():
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            (staging / path).write_text(text, encoding="utf-8")
        if folder.is_dir():  # empty (checked above): replaced by the staged folder
            folder.rmdir()
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder, list(texts)
