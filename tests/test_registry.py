"""The strategy registry and its pluggy plumbing (``marketsim.registry``, ``marketsim.hookspecs``).

Plugin discovery is tested end to end with *real* fake distributions: a temporary folder holding a
plugin module and a ``<name>-<version>.dist-info`` folder (METADATA + entry_points.txt) is put on
``sys.path``, so ``importlib.metadata`` finds it exactly as it finds a pip-installed package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy
import pytest

import marketsim_rules
from marketsim import hookspecs
from marketsim.hookspecs import hookimpl
from marketsim.market.consumers import Logit
from marketsim.registry import (
    ALLOW_ENV,
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    AmbiguousNameError,
    DuplicateStrategyError,
    PluginProblem,
    Registry,
    StrategyEntry,
    UnknownStrategyError,
    default_registry,
    load_registry,
    make_plugin_manager,
)
from marketsim.strategy import Observation, Strategy
from marketsim_rules import ALL_STRATEGIES, CostPlus, FixedPrice
from optional import unexpected

BUILTIN_NAMES = {cls.name for cls in ALL_STRATEGIES}

# Header of every fake plugin module: submodule imports work however ``marketsim`` itself is installed.
HEADER = """\
from marketsim.hookspecs import hookimpl
from marketsim.strategy import Strategy


class Constant(Strategy):
    \"\"\"Posts 1.0.\"\"\"

    name = "{strategy}"

    def price(self, obs):
        return 1.0
"""

GOOD_HOOK = """
@hookimpl
def register_strategies(register):
    register(Constant)
"""

_counter = itertools.count()


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Factory: ``fake_dist(source, plugin=..., dist=..., strategy=...)`` installs a fake distribution.

    ``source`` is the body of the plugin module (appended to HEADER unless ``header=False``), it is
    exposed under entry point ``plugin`` of group ``marketsim`` by distribution ``dist`` 1.0.
    Each call gets a fresh site folder prepended to ``sys.path`` and a unique module name.
    Returns the module name.
    """
    modules: list[str] = []

    def make(
        source: str = GOOD_HOOK,
        *,
        plugin: str = "fake",
        dist: str = "fake-dist",
        strategy: str = "fake_constant",
        header: bool = True,
    ) -> str:
        n = next(_counter)
        module = f"fake_pkg_{n}"
        site = tmp_path / f"site{n}"
        site.mkdir()
        text = (HEADER.format(strategy=strategy) if header else "") + textwrap.dedent(source)
        (site / f"{module}.py").write_text(text)
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{plugin} = {module}\n")
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        modules.append(module)
        return module

    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    yield make
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def problems_of(registry: Registry, plugin: str) -> list[str]:
    return [p.reason for p in registry.problems if p.plugin == plugin]


def assert_builtins_intact(registry: Registry) -> None:
    assert BUILTIN_NAMES <= set(registry.names())
    for cls in ALL_STRATEGIES:
        entry = registry.get(cls.name)
        assert entry.cls is cls
        assert entry.plugin == "rules"
        assert entry.distribution == "marketsim"
    assert not problems_of(registry, "rules")


# --- built-ins go through the entry-point path ---------------------------------------------------


def test_builtins_are_declared_as_an_entry_point() -> None:
    eps = importlib.metadata.entry_points(group="marketsim")
    rules = [ep for ep in eps if ep.name == "rules"]
    assert len(rules) == 1
    assert rules[0].value == "marketsim_rules"
    assert rules[0].dist is not None and rules[0].dist.name == "marketsim"
    assert rules[0].load() is marketsim_rules


def test_default_registry_holds_builtins_from_the_rules_entry_point() -> None:
    registry = default_registry()
    assert registry is default_registry()  # built once
    from_rules = [e for e in registry if e.plugin == "rules"]
    assert {e.name for e in from_rules} == BUILTIN_NAMES
    assert all(e.distribution == "marketsim" and e.version for e in from_rules)
    assert {"fixed_price", "myopic_best_response"} <= set(registry.names())
    assert not problems_of(registry, "rules")


def test_good_third_party_distribution_is_discovered(fake_dist: Callable[..., str]) -> None:
    module = fake_dist(plugin="acme", dist="acme-pricing", strategy="acme_constant")
    registry = load_registry()
    assert unexpected(registry.problems) == []
    entry = registry.get("acme_constant")
    assert entry.plugin == "acme"
    assert (entry.distribution, entry.version) == ("acme-pricing", "1.0")
    assert entry.cls.__module__ == module
    assert entry.source == "acme (acme-pricing 1.0)"
    assert entry.cls().price(None) == 1.0  # type: ignore[arg-type]
    assert_builtins_intact(registry)


# --- a broken plugin is reported and skipped, the rest keep working --------------------------------

FAILURES = {
    "import_error": (
        "import no_such_dependency_for_marketsim_tests\n" + GOOD_HOOK,
        ["import failed", "ModuleNotFoundError", "no_such_dependency_for_marketsim_tests"],
    ),
    "raises_import_error": (
        """
        raise ImportError("needs libfoo >= 2")
        """,
        ["import failed", "ImportError", "needs libfoo >= 2"],
    ),
    "syntax_error": (
        """
        def broken(:
            pass
        """,
        ["import failed", "SyntaxError"],
    ),
    "unknown_argument": (
        """
        @hookimpl
        def register_strategies(register, bogus_argument):
            register(Constant)
        """,
        ["invalid plugin", "PluginValidationError", "bogus_argument"],
    ),
    "wrong_type": (
        """
        @hookimpl
        def register_strategies(register):
            register(Constant())  # an instance, not the class
        """,
        ["not a Strategy subclass"],
    ),
    "not_a_strategy_class": (
        """
        class Pricer:
            name = "pricer"

            def price(self, obs):
                return 1.0


        @hookimpl
        def register_strategies(register):
            register(Pricer)
        """,
        ["Pricer", "not a Strategy subclass"],
    ),
    "hook_raises": (
        """
        @hookimpl
        def register_strategies(register):
            raise RuntimeError("boom: licence server unreachable")
        """,
        ["register_strategies raised", "RuntimeError", "boom: licence server unreachable"],
    ),
}


IMPOSTOR = """
        class Impostor(Strategy):
            \"\"\"Claims a built-in name.\"\"\"

            name = "fixed_price"

            def price(self, obs):
                return 0.0


        @hookimpl
        def register_strategies(register):
            register(Impostor)
        """


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_broken_plugin_is_reported_and_skipped(kind: str, fake_dist: Callable[..., str]) -> None:
    source, expected = FAILURES[kind]
    fake_dist(source, plugin="broken", dist="broken-dist", strategy="broken_constant")
    fake_dist(plugin="healthy", dist="healthy-dist", strategy="healthy_constant")

    registry = load_registry()

    reasons = problems_of(registry, "broken")
    assert len(reasons) == 1, registry.problems
    for fragment in expected:
        assert fragment in reasons[0], (fragment, reasons[0])
    assert all(p.plugin == "broken" for p in unexpected(registry.problems)), registry.problems
    assert "broken_constant" not in registry  # nothing half-registered
    assert all(e.plugin != "broken" for e in registry)
    assert registry.get("healthy_constant").plugin == "healthy"  # the rest keep working
    assert_builtins_intact(registry)


def test_a_builtin_name_claimed_by_another_distribution_is_refused_for_both(fake_dist: Callable[..., str]) -> None:
    # The fake site folder is *prepended* to sys.path, so importlib.metadata lists it before marketsim.
    fake_dist(IMPOSTOR, plugin="aaa_first", dist="aaa-dist")
    registry = load_registry()
    assert "fixed_price" not in registry and "fixed_price" not in registry.names()
    with pytest.raises(AmbiguousNameError) as info:
        registry.get("fixed_price")
    message = str(info.value)
    for fragment in ("rules (marketsim 0.1.0)", "aaa_first (aaa-dist 1.0)", "FixedPrice", "Impostor"):
        assert fragment in message, (fragment, message)
    assert "'marketsim:fixed_price'" in message and "'aaa-dist:fixed_price'" in message
    assert "MARKETSIM_LOAD_PLUGINS=aaa-dist" in message
    assert registry.get("marketsim:fixed_price").cls is FixedPrice  # the qualified names pick one each
    assert registry.get("aaa-dist:fixed_price").plugin == "aaa_first"
    assert registry.get("AAA_Dist:fixed_price").plugin == "aaa_first"  # distribution names compare in PEP 503 form
    (reason,) = problems_of(registry, "rules + aaa_first")
    assert reason == message
    assert set(registry.clashes()) == {"fixed_price"}
    assert registry.get("undercut").cls.name == "undercut"  # the other built-ins are untouched


@pytest.mark.parametrize("order", [("alpha", "zeta"), ("zeta", "alpha")])
def test_a_clash_between_third_parties_refuses_both_whatever_the_path_order(
    fake_dist: Callable[..., str], order: tuple[str, str]
) -> None:
    clash = """
    @hookimpl
    def register_strategies(register):
        register(Constant)
    """
    for name in order:
        fake_dist(clash, plugin=name, dist=f"{name}-dist", strategy="clash")
    registry = load_registry()
    with pytest.raises(AmbiguousNameError) as info:
        registry.get("clash")
    assert "alpha (alpha-dist 1.0)" in str(info.value) and "zeta (zeta-dist 1.0)" in str(info.value)
    assert str(info.value).index("alpha") < str(info.value).index("zeta")  # same text whatever sys.path says
    assert "MARKETSIM_LOAD_PLUGINS=alpha-dist,zeta-dist" in str(info.value)
    assert {registry.get(f"{n}-dist:clash").plugin for n in order} == {"alpha", "zeta"}
    qualified = [e.qualified_name for e in registry.all_entries() if e.name == "clash"]
    assert qualified == ["alpha-dist:clash", "zeta-dist:clash"]


def test_the_allow_list_resolves_a_clash(fake_dist: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist(IMPOSTOR, plugin="aaa_first", dist="aaa-dist")
    fake_dist(plugin="healthy", dist="healthy-dist", strategy="healthy_constant")
    monkeypatch.setenv(ALLOW_ENV, "healthy-dist")
    registry = load_registry()
    assert registry.get("fixed_price").cls is FixedPrice
    assert registry.problems == []


def test_a_clash_of_choice_models_is_refused_for_both() -> None:
    class Plugin:
        @hookimpl
        def register_choice_models(self, register: Callable[[type], None]) -> None:
            register(Logit)

    registry = load_registry(plugins=[("copycat", Plugin())], entry_points=False)
    with pytest.raises(AmbiguousNameError, match="copycat"):
        registry.extension("choice model", "logit")
    assert registry.extension("choice_model", "marketsim:logit").cls is Logit
    assert registry.extension("choice-model", "copycat:logit").plugin == "copycat"
    assert set(registry.clashes()) == {"choice model:logit"}


@pytest.mark.parametrize("kind", ["choice model", "choice_model", "Choice-Model", "observer", "observers", "strategy"])
def test_extension_accepts_every_spelling_of_a_kind(kind: str) -> None:
    name = {"c": "logit", "o": "price_dispersion", "s": "undercut"}[kind[0].lower()]
    assert default_registry().extension(kind, name).name == name


def test_extension_refuses_an_unknown_kind_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown kind 'choice'.*'strategy', 'choice model', 'observer'"):
        default_registry().extension("choice", "logit")


def test_plugin_keeps_its_good_classes_when_one_is_refused(fake_dist: Callable[..., str]) -> None:
    fake_dist(
        """
        @hookimpl
        def register_strategies(register):
            register(int)
            register(Constant)
        """,
        plugin="mixed",
        strategy="mixed_constant",
    )
    registry = load_registry()
    assert registry.get("mixed_constant").plugin == "mixed"
    (reason,) = problems_of(registry, "mixed")
    assert "not a Strategy subclass" in reason


def test_hook_raising_after_registering_rolls_its_strategies_back(fake_dist: Callable[..., str]) -> None:
    fake_dist(
        """
        @hookimpl
        def register_strategies(register):
            register(Constant)
            raise ValueError("half way")
        """,
        plugin="halfway",
        strategy="halfway_constant",
    )
    registry = load_registry()
    assert "halfway_constant" not in registry
    (reason,) = problems_of(registry, "halfway")
    assert "ValueError: half way" in reason


def test_misspelt_hook_name_is_reported(fake_dist: Callable[..., str]) -> None:
    fake_dist(
        """
        @hookimpl
        def register_strategy(register):
            register(Constant)
        """,
        plugin="typo",
    )
    registry = load_registry()
    (reason,) = problems_of(registry, "typo")
    assert "register_strategy" in reason and "register_strategies" in reason


def test_entry_point_to_a_missing_module_is_reported(fake_dist: Callable[..., str], tmp_path: Path) -> None:
    module = fake_dist(plugin="ghost")
    next(tmp_path.glob(f"site*/{module}.py")).unlink()
    importlib.invalidate_caches()
    registry = load_registry()
    (reason,) = problems_of(registry, "ghost")
    assert "import failed" in reason and module in reason
    assert_builtins_intact(registry)


# --- switches and explicit plugins -------------------------------------------------------------------


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch, fake_dist: Callable[..., str]) -> None:
    fake_dist(FAILURES["import_error"][0], plugin="broken")
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    registry = load_registry()
    assert len(registry) == 0
    assert registry.names() == []
    assert registry.problems == []
    # explicit plugins still register with autoload off
    registry = load_registry(plugins=[("rules", marketsim_rules)])
    assert set(registry.names()) == BUILTIN_NAMES


@pytest.mark.parametrize("value", ["", "0"])
def test_autoload_stays_on_for_empty_or_zero(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, value)
    assert BUILTIN_NAMES <= set(load_registry().names())


def test_entry_points_false_skips_discovery() -> None:
    assert len(load_registry(entry_points=False)) == 0


def _module_plugin(strategy_name: str) -> tuple[types.ModuleType, type[Strategy]]:
    class Mine(Strategy):
        """Posts 2.0."""

        name = strategy_name

        def price(self, obs: Observation) -> float:
            return 2.0

    module = types.ModuleType("my_plugin_module")

    @hookimpl
    def register_strategies(register: Callable[[type], None]) -> None:
        register(Mine)

    module.register_strategies = register_strategies  # type: ignore[attr-defined]
    return module, Mine


def test_explicit_module_plugin() -> None:
    module, mine = _module_plugin("mine")
    registry = load_registry(plugins=[("mine", module)], entry_points=False)
    assert registry.problems == []
    assert registry.names() == ["mine"]
    entry = registry.get("mine")
    assert entry == StrategyEntry("mine", mine, "mine", None, None)
    assert entry.source == "mine"


def test_explicit_object_plugin_and_ordering_against_entry_points() -> None:
    class Plugin:
        @hookimpl
        def register_strategies(self, register: Callable[[type], None]) -> None:
            register(FixedPrice)  # already registered by the rules entry point

    registry = load_registry(plugins=[("late", Plugin())])
    assert "fixed_price" not in registry  # even the very same class: two sources claim the name
    assert registry.get("marketsim:fixed_price").plugin == "rules"
    assert registry.get("late:fixed_price").plugin == "late"  # a plugin without a distribution: its own name
    (reason,) = problems_of(registry, "rules + late")
    assert "rules" in reason and "late" in reason


def test_explicit_plugin_validation_error_is_reported() -> None:
    bad = types.ModuleType("bad_plugin")

    @hookimpl
    def register_strategies(register: Callable[[type], None], extra: int) -> None:
        raise AssertionError("never called")

    bad.register_strategies = register_strategies  # type: ignore[attr-defined]
    good, _ = _module_plugin("good")
    registry = load_registry(plugins=[("bad", bad), ("good", good)], entry_points=False)
    assert registry.names() == ["good"]
    (reason,) = problems_of(registry, "bad")
    assert "PluginValidationError" in reason and "extra" in reason


def test_same_plugin_name_twice_is_reported() -> None:
    first, _ = _module_plugin("first")
    second, _ = _module_plugin("second")
    registry = load_registry(plugins=[("dup", first), ("dup", second)], entry_points=False)
    assert registry.names() == ["first"]
    (reason,) = problems_of(registry, "dup")
    assert "invalid plugin" in reason


def test_hook_wrapper_is_refused() -> None:
    wrapper = types.ModuleType("wrapper_plugin")

    @hookimpl(wrapper=True)
    def register_strategies(register: Callable[[type], None]) -> Iterator[None]:
        register(CostPlus)
        return (yield)

    wrapper.register_strategies = register_strategies  # type: ignore[attr-defined]
    registry = load_registry(plugins=[("wrapper", wrapper)], entry_points=False)
    assert len(registry) == 0
    (reason,) = problems_of(registry, "wrapper")
    assert "wrapper" in reason


# --- Registry itself -----------------------------------------------------------------------------------


def test_register_refuses_duplicates_naming_both_sources() -> None:
    registry = Registry()
    registry.register(FixedPrice, "rules", "marketsim", "0.1.0")

    class Other(Strategy):
        """Same name."""

        name = "fixed_price"

        def price(self, obs: Observation) -> float:
            return 1.0

    with pytest.raises(DuplicateStrategyError) as info:
        registry.register(Other, "acme", "acme-pricing", "2.0")
    message = str(info.value)
    assert "rules (marketsim 0.1.0)" in message and "acme (acme-pricing 2.0)" in message
    assert "FixedPrice" in message and "Other" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(AmbiguousNameError) as ambiguous:
        registry.get("fixed_price")
    assert str(ambiguous.value) == message
    assert registry.get("marketsim:fixed_price").cls is FixedPrice
    assert registry.get("acme-pricing:fixed_price").cls is Other
    with pytest.raises(DuplicateStrategyError):
        registry.register(FixedPrice, "rules", "marketsim")  # the very same class again: its qualified name too
    with pytest.raises(AmbiguousNameError):
        registry.get("marketsim:fixed_price")


class _Nameless(Strategy):
    """No name."""

    def price(self, obs: Observation) -> float:
        return 1.0


class _NoPrice(Strategy):
    """Forgot price()."""

    name = "no_price"


class _NumberName(Strategy):
    """Name is not a string."""

    name = 7  # type: ignore[assignment]

    def price(self, obs: Observation) -> float:
        return 1.0


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (int, "not a Strategy subclass"),
        (FixedPrice(), "not a Strategy subclass"),
        ("fixed_price", "not a Strategy subclass"),
        (None, "not a Strategy subclass"),
        (Strategy, "without a name"),
        (_Nameless, "without a name"),
        (_NumberName, "without a name"),
        (_NoPrice, "does not implement price()"),
    ],
)
def test_register_refuses_what_is_not_a_usable_strategy(obj: object, fragment: str) -> None:
    registry = Registry()
    with pytest.raises(TypeError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
        registry.register(obj, "acme")  # type: ignore[arg-type]
    assert "'acme'" in str(info.value)
    assert len(registry) == 0


def test_unknown_strategy_error_lists_what_is_available() -> None:
    registry = load_registry(plugins=[("rules", marketsim_rules)], entry_points=False)
    with pytest.raises(UnknownStrategyError) as info:
        registry.get("fixed_prize")
    err = info.value
    assert isinstance(err, KeyError)
    assert err.name == "fixed_prize"
    assert err.available == sorted(BUILTIN_NAMES)
    text = str(err)
    assert "fixed_prize" in text
    for name in BUILTIN_NAMES:
        assert name in text
    with pytest.raises(UnknownStrategyError):
        registry.create("nope")
    assert "(none)" in str(UnknownStrategyError("x", []))


def test_create_returns_fresh_independent_instances() -> None:
    registry = load_registry(plugins=[("rules", marketsim_rules)], entry_points=False)
    a = registry.create("cost_plus", {"markup": 0.5})
    b = registry.create("cost_plus", {"markup": 0.5})
    c = registry.create("cost_plus")
    assert isinstance(a, CostPlus) and a is not b
    assert a.params == b.params == {"markup": 0.5}
    assert c.params == {"markup": 0.3}
    a.markup = 9.0
    assert b.markup == 0.5
    params = {"markup": 0.1}
    registry.create("cost_plus", params)
    assert params == {"markup": 0.1}  # the mapping handed in is not consumed
    with pytest.raises(TypeError):
        registry.create("cost_plus", {"no_such_param": 1})


def test_registry_container_protocol() -> None:
    registry = Registry()
    registry.register(FixedPrice, "rules")
    registry.register(CostPlus, "rules")
    assert len(registry) == 2
    assert "cost_plus" in registry and "undercut" not in registry and 3 not in registry
    assert [e.name for e in registry] == ["cost_plus", "fixed_price"] == registry.names()
    assert registry.problems == []


def test_plugin_problem_is_plain_data() -> None:
    problem = PluginProblem("x", "why")
    assert (problem.plugin, problem.reason) == ("x", "why")


# --- hookspecs and the plugin manager ----------------------------------------------------------------


def test_make_plugin_manager_returns_a_fresh_manager_with_the_specs() -> None:
    pm1, pm2 = make_plugin_manager(), make_plugin_manager()
    assert pm1 is not pm2
    assert isinstance(pm1, pluggy.PluginManager)
    assert pm1.project_name == hookspecs.PROJECT == "marketsim"
    caller = pm1.hook.register_strategies
    assert caller.has_spec()
    assert caller.spec is not None and tuple(caller.spec.argnames) == ("register",)

    module, _ = _module_plugin("solo")
    pm1.register(module, name="solo")
    assert pm1.has_plugin("solo") and not pm2.has_plugin("solo")
    assert pm2.hook.register_strategies.get_hookimpls() == []


def test_hook_call_through_pluggy_registers_into_a_registry() -> None:
    pm = make_plugin_manager()
    pm.register(marketsim_rules, name="rules")
    registry = Registry()
    pm.hook.register_strategies(register=registry.register)
    assert set(registry.names()) == BUILTIN_NAMES


def test_hookimpl_with_unknown_argument_fails_pluggy_validation() -> None:
    plugin = types.ModuleType("p")

    @hookimpl
    def register_strategies(register: Callable[[type], None], nope: int) -> None: ...

    plugin.register_strategies = register_strategies  # type: ignore[attr-defined]
    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager().register(plugin, name="p")


def test_hookimpl_marker_is_the_public_one() -> None:
    import marketsim

    assert marketsim.hookimpl is hookimpl is hookspecs.hookimpl
    assert isinstance(hookspecs.hookspec, pluggy.HookspecMarker)


# --- plugin API versions and the allow-list ------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "loads", "reason"),
    [
        ('">=1,<2"', True, None),
        (None, True, None),
        ('">=2"', False, "supports strategy API >=2, but this marketsim provides 1.0"),
        ('"one point oh"', False, "invalid MARKETSIM_API"),
    ],
)
def test_plugins_declare_the_strategy_api_they_support(
    fake_dist: Callable[..., str], declared: str | None, loads: bool, reason: str | None
) -> None:
    source = (f"MARKETSIM_API = {declared}\n" if declared else "") + GOOD_HOOK
    fake_dist(source, plugin="versioned", dist="versioned-dist", strategy="versioned_constant")
    registry = load_registry()
    assert ("versioned_constant" in registry) is loads
    if reason is not None:
        assert any(reason in p for p in problems_of(registry, "versioned")), registry.problems
    assert_builtins_intact(registry)


def test_builtins_declare_a_range_that_includes_this_api() -> None:
    from packaging.specifiers import SpecifierSet

    import marketsim_rules
    import marketsim_tabular
    from marketsim.strategy import STRATEGY_API_VERSION

    for module in (marketsim_rules, marketsim_tabular):
        assert STRATEGY_API_VERSION in SpecifierSet(module.MARKETSIM_API)


def test_allow_list_loads_only_the_named_distributions(
    fake_dist: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dist(plugin="alpha", dist="alpha-plugin", strategy="alpha_constant")
    fake_dist(plugin="beta", dist="beta-plugin", strategy="beta_constant")
    monkeypatch.setenv("MARKETSIM_LOAD_PLUGINS", "Alpha_Plugin")  # names compare in PEP 503 normal form
    registry = load_registry()
    assert "alpha_constant" in registry and "beta_constant" not in registry
    assert_builtins_intact(registry)
    monkeypatch.setenv("MARKETSIM_LOAD_PLUGINS", "")
    only_builtins = load_registry()
    assert "alpha_constant" not in only_builtins and "beta_constant" not in only_builtins
    assert_builtins_intact(only_builtins)
