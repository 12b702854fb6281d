"""The choice-model and observer hooks: plugins add demand models and step observers by name, the
built-in logit registers through the same hook, and bad ones are reported, not fatal."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marketsim.cli.app import main
from marketsim.config.scenario import Scenario
from marketsim.config.validate import load_scenario
from marketsim.config.yamlsource import SourceError
from marketsim.hookspecs import hookimpl
from marketsim.market import consumers
from marketsim.market.consumers import ChoiceModel, Logit
from marketsim.market.economics import expected_demand
from marketsim.market.model import MarketModel
from marketsim.market.run import simulate
from marketsim.observers import Observer, RunInfo, StepRecord
from marketsim.registry import load_registry


class LinearShares(ChoiceModel):
    """Linear-probability demand: P_j ∝ (w + x_j − a0)⁺, against an outside weight (not a logit)."""

    name = "linear_shares"

    def __init__(self, mu: float = 0.0, outside_weight: float = 0.5) -> None:
        if outside_weight <= 0:
            raise ValueError("outside_weight must be > 0")
        self.outside_weight = outside_weight

    def probabilities(self, w, x, a0, allowed=None):
        gain = np.maximum(w[None, :] + x[:, None] - a0, 0.0)
        if allowed is not None:
            gain = gain * allowed
        return gain / (self.outside_weight + gain.sum(axis=0))


class Recorder(Observer):
    """Counts steps and sums units (a custom metric)."""

    name = "recorder"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale, self.records, self.info = scale, [], None

    def start(self, info: RunInfo) -> None:
        self.info = info

    def on_step(self, record: StepRecord) -> None:
        self.records.append(record)

    def finish(self) -> Mapping[str, Any]:
        return {"steps": len(self.records), "units": self.scale * sum(sum(r.units) for r in self.records)}


class Exploding(Observer):
    """Raises at step 3."""

    name = "exploding"

    def on_step(self, record: StepRecord) -> None:
        if record.step == 3:
            raise RuntimeError("disk full")


def plugin_module() -> types.ModuleType:
    module = types.ModuleType("hooks_plugin")

    @hookimpl
    def register_choice_models(register):
        register(LinearShares)

    @hookimpl
    def register_observers(register):
        register(Recorder)
        register(Exploding)

    module.register_choice_models = register_choice_models
    module.register_observers = register_observers
    return module


@pytest.fixture
def registry():
    return load_registry(plugins=[("hooks_plugin", plugin_module())])


def market(choice: dict | None = None, mode: str = "expected", size: int = 1, **extra: Any) -> Scenario:
    consumers_ = {"size": size, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25}
    if choice is not None:
        consumers_["choice"] = choice
    sellers = [
        {"name": "a", "strategy": "fixed_price", "params": {"price": 1.5}, "price_min": 1.0, "price_max": 2.5},
        {"name": "b", "strategy": "fixed_price", "params": {"price": 1.8}, "price_min": 1.0, "price_max": 2.5},
    ]
    return Scenario.model_validate(
        {"name": "hooks", "seed": 3, "steps": 20, "consumers": consumers_, "demand": {"mode": mode}, "sellers": sellers}
        | extra
    )


def test_the_builtin_logit_registers_through_the_choice_model_hook() -> None:
    registry = load_registry(entry_points=False)  # even with no plugin at all
    entry = registry.extension("choice model", "logit")
    assert entry.cls is Logit and entry.plugin == "marketsim"
    assert "price_dispersion" in registry.extensions["observer"]


def test_a_plugin_choice_model_drives_expected_demand_exactly(registry) -> None:
    model = MarketModel(market({"model": "linear_shares", "params": {"outside_weight": 0.5}}), registry)
    model.step()
    gains = np.array([2.0 - 1.5, 2.0 - 1.8])  # w + quality − price − a0
    expected = gains / (0.5 + gains.sum())
    np.testing.assert_allclose([s.units for s in model.sellers], expected)
    # the benchmarks come from the same model: they differ from the logit's
    logit = MarketModel(market(), registry)
    assert model.benchmarks.nash.prices != pytest.approx(logit.benchmarks.nash.prices, abs=1e-3)


def test_a_plugin_choice_model_drives_sampled_consumers(registry) -> None:
    model = MarketModel(market({"model": "linear_shares"}, mode="agents", size=200_000), registry)
    model.step()
    gains = np.array([0.5, 0.2])
    shares = np.array([s.units for s in model.sellers]) / 200_000
    np.testing.assert_allclose(shares, gains / (0.5 + gains.sum()), atol=0.01)


def test_rationing_reroutes_shoppers_under_a_plugin_model(registry) -> None:
    base = market({"model": "linear_shares"}, mode="agents", size=10_000)
    sellers = (base.sellers[0].model_copy(update={"capacity": 1000.0}), base.sellers[1])
    model = MarketModel(base.model_copy(update={"sellers": sellers}), registry)
    free = MarketModel(base, registry)
    model.step()
    free.step()
    a, b = (s.units for s in model.sellers)
    assert a == 1000  # the cheap seller sells out
    assert b > free.sellers[1].units + 500  # and turned-away shoppers buy from the other


def test_generic_choose_is_the_inverse_cdf_of_the_probabilities() -> None:
    w, x = np.zeros(3), np.array([0.5, 0.2])
    u = np.array([0.1, 0.5, 0.99])  # P = (0.4167, 0.1667): cumulative 0.4167, 0.5833; then the outside
    np.testing.assert_array_equal(LinearShares().choose(w, x, 0.0, u), [0, 1, -1])
    # the logit's own kernels stay behind the same interface
    np.testing.assert_allclose(Logit(0.25).probabilities(w, x, 0.0), consumers.probabilities(w, x, 0.0, 0.25))


def test_observers_see_every_step_and_report_into_the_summary(registry) -> None:
    scenario = market(observers=[{"observer": "recorder", "params": {"scale": 2.0}}, {"observer": "price_dispersion"}])
    result = simulate(scenario, registry)
    summary = result.summary()
    assert summary["observers"]["recorder"]["steps"] == 20
    total = sum(result.steps[f"{n}.units"].sum() for n in ("a", "b"))
    assert summary["observers"]["recorder"]["units"] == pytest.approx(2.0 * total)
    assert summary["observers"]["price_dispersion"]["mean_spread"] == pytest.approx(0.3)


def test_an_observer_gets_frozen_records_matching_the_steps(registry) -> None:
    model = MarketModel(market(observers=[{"observer": "recorder"}]), registry)
    for _ in range(5):
        model.step()
    recorder = model.observers[0]
    assert recorder.info.sellers == ("a", "b") and recorder.info.strategies == ("fixed_price", "fixed_price")
    assert [r.step for r in recorder.records] == [0, 1, 2, 3, 4]
    assert recorder.records[-1].prices == (1.5, 1.8)
    with pytest.raises(AttributeError):
        recorder.records[0].step = 9  # type: ignore[misc]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


SCENARIO = """name: hooks
steps: 10
consumers:
  size: 1
  choice: {{model: {model}}}
demand: {{mode: expected}}
sellers:
  - {{name: a, strategy: fixed_price}}
observers:
  - {{observer: {observer}}}
"""


def test_unknown_choice_model_and_observer_are_located_errors(tmp_path: Path, registry) -> None:
    path = write(tmp_path, SCENARIO.format(model="probitt", observer="recordr"))
    with pytest.raises(SourceError) as err:
        load_scenario(path, registry)
    lines = [str(p) for p in err.value.problems]
    assert any(":5:" in line and "unknown choice model 'probitt'" in line and "logit" in line for line in lines)
    assert any(
        ":10:" in line and "unknown observer 'recordr'" in line and "did you mean 'recorder'" in line for line in lines
    )


def test_refused_choice_model_parameters_are_located_errors(tmp_path: Path, registry) -> None:
    text = SCENARIO.format(model="linear_shares", observer="recorder").replace(
        "{model: linear_shares}", "{model: linear_shares, params: {outside_weight: -1}}"
    )
    with pytest.raises(SourceError) as err:
        load_scenario(write(tmp_path, text), registry)
    assert ":5:" in str(err.value.problems[0])
    assert "choice model 'linear_shares' rejected its parameters: outside_weight must be > 0" in str(
        err.value.problems[0]
    )


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("logit", "{mu: 0.1}", "consumers.choice.params.mu: the logit scale is set once, as consumers.mu"),
        ("linear_shares", "{outside_wieght: 2}", "unknown parameter 'outside_wieght' (did you mean 'outside_weight'?)"),
        ("linear_shares", "{outside_weight: yes}", "a boolean, not a number"),
    ],
)
def test_choice_model_parameters_are_checked_like_a_strategys(
    tmp_path: Path, registry, model: str, params: str, expected: str
) -> None:
    # {mu: 0.1} once passed validation and crashed the run: Logit() got multiple values for keyword argument 'mu'
    text = SCENARIO.format(model=model, observer="recorder").replace(
        f"{{model: {model}}}", f"{{model: {model}, params: {params}}}"
    )
    with pytest.raises(SourceError) as err:
        load_scenario(write(tmp_path, text), registry)
    (problem,) = err.value.problems
    assert ":5:" in str(problem) and expected in str(problem), str(problem)
    assert "accepted: outside_weight=" in str(problem) or model == "logit" or "boolean" in expected  # never mu


def test_unknown_observer_parameter_gets_did_you_mean(tmp_path: Path, registry) -> None:
    text = SCENARIO.format(model="logit", observer="price_dispersion").replace(
        "{observer: price_dispersion}", "{observer: price_dispersion, params: {tale: 5}}"
    )
    with pytest.raises(SourceError) as err:
        load_scenario(write(tmp_path, text), registry)
    (problem,) = err.value.problems
    assert str(problem).endswith(
        "observers[0].params.tale: unknown parameter 'tale' (did you mean 'tail'?) for observer 'price_dispersion'; "
        "accepted: tail=100"
    ), str(problem)


def test_a_failing_observer_stops_the_run_with_its_name(tmp_path: Path, capsys, monkeypatch, registry) -> None:
    for module in [m for n, m in list(sys.modules.items()) if n.startswith("marketsim") and m is not None]:
        if hasattr(module, "default_registry"):  # every module that falls back to the default registry
            monkeypatch.setattr(module, "default_registry", lambda: registry)
    path = write(tmp_path, SCENARIO.format(model="logit", observer="exploding"))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 1  # a run-time failure
    err = capsys.readouterr().err
    assert "observer 'exploding' failed at step 3: RuntimeError: disk full" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_broken_registrations_are_reported_and_the_rest_still_loads() -> None:
    module = types.ModuleType("bad_hooks")

    @hookimpl
    def register_choice_models(register):
        register(dict)  # not a ChoiceModel
        register(LinearShares)

    @hookimpl
    def register_observers(register):
        raise RuntimeError("licence server unreachable")

    module.register_choice_models = register_choice_models
    module.register_observers = register_observers
    registry = load_registry(plugins=[("bad_hooks", module)], entry_points=False)
    reasons = [p.reason for p in registry.problems if p.plugin == "bad_hooks"]
    assert any("not a ChoiceModel subclass" in r for r in reasons)
    assert any("register_observers raised RuntimeError: licence server unreachable" in r for r in reasons)
    assert "linear_shares" in registry.extensions["choice model"]  # the good class of the same hook
    assert registry.extension("choice model", "logit").cls is Logit


def test_duplicate_choice_model_names_are_refused_with_both_sources() -> None:
    module = types.ModuleType("impostor")

    class FakeLogit(LinearShares):
        name = "logit"

    @hookimpl
    def register_choice_models(register):
        register(FakeLogit)

    module.register_choice_models = register_choice_models
    registry = load_registry(plugins=[("impostor", module)], entry_points=False)
    assert "logit" not in registry.extensions["choice model"]
    assert registry.extension("choice model", "marketsim:logit").cls is Logit
    assert registry.extension("choice model", "impostor:logit").cls is FakeLogit
    (reason,) = [p.reason for p in registry.problems if p.plugin == "marketsim + impostor"]
    assert "more than one plugin" in reason and "marketsim (marketsim" in reason and "impostor" in reason


def test_plugins_json_lists_choice_models_and_observers(capsys) -> None:
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listing["choice_models"]] == ["logit"]
    assert listing["choice_models"][0]["parameters"] == {"mu": 0.25}
    assert "price_dispersion" in [r["name"] for r in listing["observers"]]


def test_expected_demand_takes_its_choice_model_from_the_registry_passed(registry) -> None:
    scenario = market({"model": "linear_shares", "params": {"outside_weight": 0.5}})
    assert isinstance(expected_demand(scenario, registry).choice, LinearShares)  # registered only in `registry`
    with pytest.raises(TypeError):
        expected_demand(scenario)  # type: ignore[call-arg]  # the registry is required, never the default
