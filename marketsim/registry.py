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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from marketsim import builtins, hookspecs
from marketsim.exceptions import MissingExtraError, PortableError
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
    """Two plugins registered a strategy (or choice model, observer) under the same name: both are refused."""

    def __init__(self, message: str, claimants: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.claimants = tuple(claimants)  # the plugins that claimed the name, in load order


class UnknownStrategyError(PortableError, KeyError):
    """A scenario or call named a strategy (or choice model, observer) that no plugin registered."""

    def __init__(self, name: str, available: Iterable[str], kind: str = "strategy") -> None:
        self.name, self.kind = name, kind
        self.available = sorted(available)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown {self.kind} {self.name!r}; available: {', '.join(self.available) or '(none)'}"


class AmbiguousNameError(UnknownStrategyError):
    """A bare name that two distributions registered: usable only qualified, as ``distribution:name``."""

    def __init__(self, name: str, message: str, kind: str = "strategy") -> None:
        self.message = message
        super().__init__(name, (), kind)

    def __str__(self) -> str:
        return self.message


#: hook name → (what it registers, the base class its classes must subclass)
EXTENSIONS: dict[str, tuple[str, type]] = {
    "register_choice_models": ("choice model", ChoiceModel),
    "register_observers": ("observer", Observer),
}
#: The kinds ``Registry.extension`` and ``Registry.table`` accept (spaces, hyphens or underscores alike).
KINDS = ("strategy", "choice model", "observer")


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    """A registered strategy (or choice model, observer) class and where it came from."""

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

    @property
    def qualifier(self) -> str:
        """What goes before the colon of a qualified name: the distribution (PEP 503 form), else the plugin."""
        return _normal(self.distribution) if self.distribution else self.plugin

    @property
    def qualified_name(self) -> str:
        """``distribution:name``: names this class even when another distribution registered the same name."""
        return f"{self.qualifier}:{self.name}"

    @property
    def provenance(self) -> dict[str, str | None]:
        """What run folders, tournaments and sweeps record about who provided this class."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version, "plugin": self.plugin}


def clash_message(kind: str, name: str, entries: Sequence[StrategyEntry]) -> str:
    """Why bare ``name`` is refused, naming every source and how to pick one."""
    sources = " and ".join(f"{e.source} ({e.cls.__module__}.{e.cls.__qualname__})" for e in entries)
    choices = " or ".join(repr(e.qualified_name) for e in entries)
    dists = sorted({_normal(e.distribution) for e in entries if e.distribution} - {BUILTIN_DISTRIBUTION})
    only = f", or load only the plugins you trust with {ALLOW_ENV}={','.join(dists)}" if dists else ""
    return (
        f"{kind} name {name!r} is registered by more than one plugin: {sources}; neither is used under the bare "
        f"name. Choose one by writing {choices} in the file{only}"
    )


class _Table:
    """The classes of one kind: bare names that one source registered, every class under its qualified name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._bare: dict[str, StrategyEntry] = {}
        self._qualified: dict[str, StrategyEntry] = {}
        self.clashes: dict[str, list[StrategyEntry]] = {}  # bare or qualified name → every entry claiming it

    def add(self, entry: StrategyEntry) -> None:
        """Add ``entry``; a name already taken is refused for every claimant (DuplicateStrategyError)."""
        bare = self._claim(self._bare, entry.name, entry)
        qualified = self._claim(self._qualified, entry.qualified_name, entry)
        if bare or qualified:
            name = entry.name if bare else entry.qualified_name
            claimants = dict.fromkeys(e.plugin for e in self.clashes[name])
            raise DuplicateStrategyError(clash_message(self.kind, name, self.clashes[name]), list(claimants))

    def _claim(self, table: dict[str, StrategyEntry], key: str, entry: StrategyEntry) -> bool:
        """Put ``entry`` under ``key``, or move the key to ``clashes`` if it is taken; True on a clash."""
        if key in self.clashes:
            self.clashes[key].append(entry)
            return True
        if key in table:
            self.clashes[key] = [table.pop(key), entry]
            return True
        table[key] = entry
        return False

    def remove(self, entry: StrategyEntry) -> None:
        """Forget ``entry`` (its plugin failed part-way); clashes it caused stay recorded."""
        for table, key in ((self._bare, entry.name), (self._qualified, entry.qualified_name)):
            if table.get(key) is entry:
                del table[key]

    def find(self, name: str) -> StrategyEntry:
        """The entry for a bare or qualified name; AmbiguousNameError or UnknownStrategyError otherwise."""
        keys = [name]
        if ":" in name:
            qualifier, _, bare = name.rpartition(":")
            keys.append(f"{_normal(qualifier)}:{bare}")
        for key in keys:
            if key in self.clashes:
                raise AmbiguousNameError(name, clash_message(self.kind, key, self.clashes[key]), self.kind)
            entry = (self._qualified if ":" in key else self._bare).get(key)
            if entry is not None:
                return entry
        raise UnknownStrategyError(name, self.names(), self.kind)

    def names(self) -> list[str]:
        """Usable bare names, sorted (a clashing name is usable only qualified)."""
        return sorted(self._bare)

    def entries(self) -> list[StrategyEntry]:
        """Every registered class, clashing ones included, sorted by name and source."""
        return sorted(self._qualified.values(), key=lambda e: (e.name, e.qualified_name))

    def __contains__(self, name: object) -> bool:
        try:
            self.find(name)  # type: ignore[arg-type]
        except (UnknownStrategyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._bare)

    def values(self) -> list[StrategyEntry]:
        """The entries of the usable bare names."""
        return [self._bare[n] for n in self.names()]


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plugin that could not be loaded or registered, and why."""

    plugin: str
    reason: str


class Registry:
    """Strategy, choice-model and observer names → classes, filled by plugins through the registration hooks.

    A name is looked up bare (``undercut``) or qualified by its distribution (``marketsim:undercut``); a bare
    name that two plugins registered is refused for both (``AmbiguousNameError``) and only the qualified
    names work. ``problems`` lists plugins that are broken or clash; ``unavailable`` those whose optional
    extra is not installed (not a fault).
    """

    def __init__(self) -> None:
        self._entries = _Table("strategy")
        self.extensions: dict[str, _Table] = {kind: _Table(kind) for kind, _ in EXTENSIONS.values()}
        self.problems: list[PluginProblem] = []
        self.unavailable: list[PluginProblem] = []

    def table(self, kind: str) -> _Table:
        """The table of ``kind``: 'strategy', 'choice model' or 'observer' (also with _ or -); ValueError else."""
        key = re.sub(r"[-_\s]+", " ", str(kind).strip().lower())
        key = {"strategies": "strategy", "choice models": "choice model", "observers": "observer"}.get(key, key)
        if key == "strategy":
            return self._entries
        if key not in self.extensions:
            raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(map(repr, KINDS))}")
        return self.extensions[key]

    def register_extension(
        self,
        hook: str,
        cls: type,
        plugin: str = "<direct>",
        distribution: str | None = None,
        version: str | None = None,
    ) -> StrategyEntry:
        """Add a choice model or observer class (by the hook that registers it); refuse bad or clashing ones."""
        kind, base = EXTENSIONS[hook]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"plugin {plugin!r} registered {cls!r}, which is not a {base.__name__} subclass")
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__} without a name (got {cls.name!r})")
        entry = StrategyEntry(cls.name, cls, plugin, distribution, version)
        self.extensions[kind].add(entry)
        return entry

    def extension(self, kind: str, name: str) -> StrategyEntry:
        """The class of ``kind`` ('choice model', 'observer' or 'strategy') registered as bare or qualified ``name``.

        UnknownStrategyError lists the others; AmbiguousNameError names the clashing sources; ValueError for a
        kind that does not exist.
        """
        return self.table(kind).find(name)

    def register(
        self,
        cls: type,
        plugin: str = "<direct>",
        distribution: str | None = None,
        version: str | None = None,
    ) -> StrategyEntry:
        """Add one strategy class; refuse non-strategies, and refuse a taken name for every claimant."""
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"plugin {plugin!r} registered {cls!r}, which is not a Strategy subclass")
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__} without a name (got {cls.name!r})")
        if ":" in cls.name:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__} as {cls.name!r}: names hold no ':'")
        if cls.price is Strategy.price:
            raise TypeError(f"plugin {plugin!r} registered {cls.__qualname__}, which does not implement price()")
        entry = StrategyEntry(cls.name, cls, plugin, distribution, version)
        self._entries.add(entry)
        return entry

    def _unregister(self, entries: Iterable[StrategyEntry], hook: str = "register_strategies") -> None:
        """Drop ``entries`` again (a plugin whose hook raised part-way is skipped as a whole)."""
        table = self._entries if hook == "register_strategies" else self.extensions[EXTENSIONS[hook][0]]
        for entry in entries:
            table.remove(entry)

    def get(self, name: str) -> StrategyEntry:
        """The strategy registered as bare or qualified ``name``; UnknownStrategyError lists what is available."""
        return self._entries.find(name)

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> Strategy:
        """A fresh instance of strategy ``name`` built with ``params``."""
        return self.get(name).cls(**dict(params or {}))

    def names(self) -> list[str]:
        """Usable bare strategy names, sorted (a clashing name is usable only qualified)."""
        return self._entries.names()

    def provenance(self, kind: str, names: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """Each name of ``kind`` (as a file wrote it, bare or qualified) → the distribution and version behind it."""
        return {name: self.extension(kind, name).provenance for name in dict.fromkeys(names)}

    def scenario_provenance(self, scenario: Any) -> dict[str, dict]:
        """Who provided each strategy, the choice model and each observer a scenario names (for summary.json)."""
        return {
            "strategies": self.provenance("strategy", (s.strategy for s in scenario.sellers)),
            "choice_models": self.provenance("choice model", [scenario.consumers.choice.model]),
            "observers": self.provenance("observer", (o.observer for o in scenario.observers)),
        }

    def clashes(self) -> dict[str, list[StrategyEntry]]:
        """Every refused name of every kind → the entries that claimed it (keys ``kind:name`` for extensions)."""
        found = dict(self._entries.clashes)
        for kind, table in self.extensions.items():
            found |= {f"{kind}:{name}": entries for name, entries in table.clashes.items()}
        return found

    def all_entries(self) -> list[StrategyEntry]:
        """Every registered strategy, clashing ones included (listings show those by qualified name)."""
        return self._entries.entries()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[StrategyEntry]:
        return iter(self._entries.values())

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


def _load_order(ep: importlib.metadata.EntryPoint) -> tuple[int, str, str]:
    """Sort key of entry points: marketsim's own built-ins first, then by plugin and distribution name.

    A clash refuses a name for every claimant whatever the order, but the order fixes how problems and
    clash messages read, so it must not depend on the order of ``sys.path`` (or the working directory).
    """
    dist = _normal(ep.dist.name) if ep.dist else ""
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
        except MissingExtraError as exc:  # an optional part not installed: a note, not a fault
            registry.unavailable.append(PluginProblem(ep.name, str(exc)))
            continue
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
    added: list[StrategyEntry] = []

    def register(cls: type) -> None:
        try:
            if hook == "register_strategies":
                entry = registry.register(cls, plugin, dist, version)
            else:
                entry = registry.register_extension(hook, cls, plugin, dist, version)
        except DuplicateStrategyError as exc:  # a clash is no one plugin's fault: name every claimant
            registry.problems.append(PluginProblem(" + ".join(exc.claimants) or plugin, str(exc)))
        except TypeError as exc:  # refuse this class, keep the rest
            registry.problems.append(PluginProblem(plugin, str(exc)))
        else:
            added.append(entry)

    try:
        impl.function(*[{"register": register}[a] for a in impl.argnames])
    except Exception as exc:
        registry._unregister(added, hook)
        registry.problems.append(PluginProblem(plugin, f"{hook} raised {_short(exc)}"))


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry of installed plugins, built once on first use."""
    return load_registry()
