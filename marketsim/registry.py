"""The registry: discovers plugins through pluggy and the ``marketsim`` entry-point group.

Plugins register strategies, consumer-choice models and step observers through three hooks. Built-in
strategies come through exactly the same entry-point path as third-party ones; the built-in choice
models and observers (``marketsim.builtins``) through the same hooks, always loaded.
One broken plugin is recorded in ``Registry.problems`` and skipped; a duplicate name is refused
with an error naming both sources.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from marketsim import builtins, hookspecs
from marketsim.exceptions import PortableError
from marketsim.market.consumers import ChoiceModel
from marketsim.observers import Observer
from marketsim.strategy import STRATEGY_API_VERSION, Strategy

ENTRY_POINT_GROUP = "marketsim"
#: Set to 1 to load no entry-point plugins at all (tests, debugging a broken environment).
DISABLE_AUTOLOAD_ENV = "MARKETSIM_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated distribution names: load only these third-party plugins (the built-ins always load).
ALLOW_ENV = "MARKETSIM_LOAD_PLUGINS"
#: A plugin module may declare the strategy-API versions it supports, e.g. ``MARKETSIM_API = ">=1,<2"``.
API_ATTRIBUTE = "MARKETSIM_API"
#: The distribution whose entry points are the built-in strategies; they load before any other plugin.
BUILTIN_DISTRIBUTION = "marketsim"


class DuplicateStrategyError(ValueError):
    """Two plugins registered strategies under the same name."""


class UnknownStrategyError(PortableError, KeyError):
    """A scenario or call named a strategy (or choice model, observer) that no plugin registered."""

    def __init__(self, name: str, available: Iterable[str], kind: str = "strategy") -> None:
        self.name, self.kind = name, kind
        self.available = sorted(available)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown {self.kind} {self.name!r}; available: {', '.join(self.available) or '(none)'}"


#: hook name → (what it registers, the base class its classes must subclass)
EXTENSIONS: dict[str, tuple[str, type]] = {
    "register_choice_models": ("choice model", ChoiceModel),
    "register_observers": ("observer", Observer),
}


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    """A registered strategy class and where it came from."""

    name: str
    cls: type[Strategy]
    plugin: str
    distribution: str | None = None
    version: str | None = None

    @property
    def source(self) -> str:
        """Human-readable origin: plugin name and distribution with version when known."""
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"{self.plugin}{dist}"


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plugin that could not be loaded or registered, and why."""

    plugin: str
    reason: str


class Registry:
    """Strategy name → class, filled by plugins through the ``register_strategies`` hook."""

    def __init__(self) -> None:
        self._entries: dict[str, StrategyEntry] = {}
        self.extensions: dict[str, dict[str, StrategyEntry]] = {kind: {} for kind, _ in EXTENSIONS.values()}
        self.problems: list[PluginProblem] = []

    def register_extension(
        self,
        hook: str,
        cls: type,
        plugin: str = "<direct>",
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Add a choice model or observer class (by the hook that registers it); refuse bad or duplicate ones."""
        kind, base = EXTENSIONS[hook]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"plugin {plugin!r} registered {cls!r}, which is not a {base.__name__} subclass")
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__} without a name (got {cls.name!r})")
        table = self.extensions[kind]
        if cls.name in table:
            raise DuplicateStrategyError(
                f"{kind} name {cls.name!r} registered twice: by {table[cls.name].source} and by {plugin}"
            )
        table[cls.name] = StrategyEntry(cls.name, cls, plugin, distribution, version)

    def extension(self, kind: str, name: str) -> StrategyEntry:
        """The choice model or observer registered as ``name``; UnknownStrategyError lists the others."""
        try:
            return self.extensions[kind][name]
        except KeyError:
            raise UnknownStrategyError(name, self.extensions[kind], kind) from None

    def register(
        self,
        cls: type,
        plugin: str = "<direct>",
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Add one strategy class; refuse non-strategies and duplicate names loudly."""
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"plugin {plugin!r} registered {cls!r}, which is not a Strategy subclass")
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__} without a name (got {cls.name!r})")
        if cls.price is Strategy.price:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__}, which does not implement price()")
        if cls.name in self._entries:
            first = self._entries[cls.name]
            raise DuplicateStrategyError(
                f"strategy name {cls.name!r} registered twice: by {first.source} "
                f"({first.cls.__module__}.{first.cls.__qualname__}) and by "
                f"{plugin}{f' ({distribution} {version})' if distribution else ''} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
        self._entries[cls.name] = StrategyEntry(cls.name, cls, plugin, distribution, version)

    def _unregister(self, names: Iterable[str], hook: str = "register_strategies") -> None:
        """Drop ``names`` again (a plugin whose hook raised part-way is skipped as a whole)."""
        table = self._entries if hook == "register_strategies" else self.extensions[EXTENSIONS[hook][0]]
        for name in names:
            table.pop(name, None)

    def get(self, name: str) -> StrategyEntry:
        """The entry for ``name``; UnknownStrategyError lists what is available."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownStrategyError(name, self._entries) from None

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> Strategy:
        """A fresh instance of strategy ``name`` built with ``params``."""
        return self.get(name).cls(**dict(params or {}))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[StrategyEntry]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with marketsim's hook specs (tests make their own)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _short(exc: BaseException) -> str:
    """One line describing an exception, with the innermost frame that raised it."""
    tb = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen ")]
    where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _normalise(dist_name: str) -> str:
    """A distribution name in its canonical form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _load_order(ep: importlib.metadata.EntryPoint) -> tuple[int, str, str]:
    """Sort key of entry points: marketsim's own built-ins first, then by plugin and distribution name.

    The order decides which of two clashing names wins, so it must not depend on the order of
    ``sys.path`` (or the working directory): a third-party plugin can never shadow a built-in.
    """
    dist = _normalise(ep.dist.name) if ep.dist else ""
    return (0 if dist == BUILTIN_DISTRIBUTION else 1, ep.name, dist)


def _entry_point_plugins(registry: Registry) -> Iterator[tuple[str, ModuleType, str | None, str | None]]:
    """Import each ``marketsim`` entry point, yielding (name, module, dist, version); failures are recorded."""
    if os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() not in ("", "0"):
        return
    allowed = _allow_list()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=_load_order):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        if allowed is not None and _normal(dist) not in allowed | {"marketsim"}:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            registry.problems.append(PluginProblem(ep.name, f"import failed: {_short(exc)}"))
            continue
        yield ep.name, module, dist, version


def _normal(name: str | None) -> str:
    """A distribution name in PEP 503 normal form (``My_Plugin`` and ``my-plugin`` are the same)."""
    return re.sub(r"[-_.]+", "-", name or "").lower()


def _allow_list() -> set[str] | None:
    """Distributions named in MARKETSIM_LOAD_PLUGINS, or None when the variable is unset."""
    raw = os.environ.get(ALLOW_ENV)
    return None if raw is None else {_normal(n) for n in raw.split(",") if n.strip()}


def _api_problem(obj: object) -> str | None:
    """Why a plugin cannot be used with this strategy API, or None when it can (or declares nothing)."""
    declared = getattr(obj, API_ATTRIBUTE, None)
    if declared is None:
        return None
    try:
        supported = SpecifierSet(str(declared))
    except InvalidSpecifier:
        return f"declares an invalid {API_ATTRIBUTE} {declared!r} (expected e.g. '>=1,<2')"
    if STRATEGY_API_VERSION not in supported:
        return f"supports strategy API {declared}, but this marketsim provides {STRATEGY_API_VERSION}"
    return None


def load_registry(plugins: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> Registry:
    """Build a registry from entry-point plugins (unless disabled) plus ``plugins`` given as (name, object).

    Entry points load first (built-ins before third parties), then ``plugins`` in the order given;
    on a name clash the first registration wins and the later one is reported in ``problems``.
    A plugin that fails to import, fails pluggy's validation or raises in its hook is reported and
    skipped as a whole; a refused class (duplicate name, not a Strategy) skips only that class.
    """
    registry = Registry()
    pm = make_plugin_manager()
    origin: dict[str, tuple[str | None, str | None]] = {}
    version = importlib.metadata.version(BUILTIN_DISTRIBUTION)
    found = [("marketsim", builtins, BUILTIN_DISTRIBUTION, version)]  # always: the market needs a choice model
    found += list(_entry_point_plugins(registry)) if entry_points else []
    found += [(name, obj, None, None) for name, obj in plugins]
    for name, obj, dist, version in found:
        if (incompatible := _api_problem(obj)) is not None:
            registry.problems.append(PluginProblem(name, f"skipped: {incompatible}"))
            continue
        try:
            pm.register(obj, name=name)
        except Exception as exc:  # e.g. PluginValidationError: hook with an unknown argument
            registry.problems.append(PluginProblem(name, f"invalid plugin: {_short(exc)}"))
            continue
        origin[name] = (dist, version)
        for caller in pm.get_hookcallers(obj) or []:
            if not caller.has_spec():  # a misspelt hook name would otherwise be silently ignored
                known = ", ".join(sorted(n for n, c in vars(pm.hook).items() if c.has_spec()))
                reason = f"implements unknown hook {caller.name!r} (known: {known})"
                registry.problems.append(PluginProblem(name, reason))
    for hook in ("register_strategies", *EXTENSIONS):
        for impl in getattr(pm.hook, hook).get_hookimpls():
            _call_hook(registry, hook, impl, origin)
    return registry


def _call_hook(registry: Registry, hook: str, impl: Any, origin: Mapping[str, tuple[str | None, str | None]]) -> None:
    """Run one plugin's registration hook; refuse bad classes one by one, skip the plugin if it raises."""
    plugin = impl.plugin_name
    dist, version = origin.get(plugin, (None, None))
    if impl.hookwrapper or impl.wrapper:
        registry.problems.append(PluginProblem(plugin, f"{hook} must not be a hook wrapper"))
        return
    added: list[str] = []

    def register(cls: type) -> None:
        try:
            if hook == "register_strategies":
                registry.register(cls, plugin, dist, version)
            else:
                registry.register_extension(hook, cls, plugin, dist, version)
        except (DuplicateStrategyError, TypeError) as exc:  # refuse this class, keep the rest
            registry.problems.append(PluginProblem(plugin, str(exc)))
        else:
            added.append(cls.name)  # type: ignore[attr-defined]  # checked on registration

    try:
        impl.function(*[{"register": register}[a] for a in impl.argnames])
    except Exception as exc:
        registry._unregister(added, hook)
        registry.problems.append(PluginProblem(plugin, f"{hook} raised {_short(exc)}"))


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry of installed plugins, built once on first use."""
    return load_registry()
