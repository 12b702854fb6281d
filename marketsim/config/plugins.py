"""The registry of a tournament: the installed plugins plus extra plugin modules from allowed directories only.

A tournament file may name local, uninstalled plugin modules; they are imported from the directories the
user allowed (``--plugin-dir``), never from elsewhere on ``sys.path``, and the registry is cached per
process so every match in a worker shares it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType

from marketsim.registry import Registry, default_registry, load_registry

__all__ = ["plugin_registry"]


@functools.lru_cache(maxsize=8)
def plugin_registry(plugins: tuple[str, ...], plugin_dirs: tuple[str, ...] = ()) -> Registry:
    """The installed plugins plus the tournament's extra plugin modules from ``plugin_dirs`` (cached per process)."""
    if not plugins:
        return default_registry()
    return load_registry(plugins=[(name, _import_plugin(name, plugin_dirs)) for name in plugins])


def _import_plugin(name: str, plugin_dirs: tuple[str, ...]) -> ModuleType:
    """Import module ``name`` from one of the allowed ``plugin_dirs`` only, never from elsewhere on sys.path."""
    top = name.split(".")[0]
    found = PathFinder.find_spec(top, list(plugin_dirs))
    if found is None or found.loader is None:
        raise ImportError(f"plugin module {name!r} is not in the allowed plugin directories {list(plugin_dirs)}")
    loaded = sys.modules.get(top)
    if loaded is None:
        module = importlib.util.module_from_spec(found)
        sys.modules[top] = module
        try:
            found.loader.exec_module(module)
        except BaseException:
            del sys.modules[top]
            raise
    elif Path(getattr(loaded, "__file__", None) or "/").resolve() != Path(found.origin or "").resolve():
        raise ImportError(f"module {top!r} is already imported from {loaded.__file__}, not from {found.origin}")
    return importlib.import_module(name)  # a submodule is found through its package's __path__, inside the dir
