"""The live page's parts without a browser: dotted paths and knobs, the LiveMarket model, the charts' data,
the ``Exploring`` capability and ``marketsim viz``'s refusals. The page itself is driven in tests/test_browser.py."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets import duopoly
from marketsim.cli.app import main
from marketsim.config.paths import PathError, format_path, knobs, parse, with_values
from marketsim.config.validate import load_scenario
from marketsim.learning import tabular
from marketsim.market.run import simulate
from marketsim.registry import default_registry
from marketsim.strategy import Exploring
from marketsim.viz import charts
from marketsim.viz.live import NETWORK_SAMPLE, LiveMarket

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
RUNNABLE = [p for p in SCENARIOS if p.stem in {"quickstart", "oligopoly", "social_network", "calvano2020"}]


def _quickstart():
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml")


# --- dotted paths and knobs -------------------------------------------------------------------------------


@given(st.lists(st.one_of(st.sampled_from(["sellers", "params", "mu", "x_1"]), st.integers(0, 30)), min_size=1))
def test_paths_parse_what_they_format(parts: list) -> None:
    key = tuple(parts) if isinstance(parts[0], str) else ("sellers", *parts)
    assert parse(format_path(key)) == key


@pytest.mark.parametrize("bad", ["", "sellers..cost", "sellers[x].cost", "1abc", "consumers.mu "])
def test_a_malformed_path_is_refused(bad: str) -> None:
    with pytest.raises(PathError, match="dotted path"):
        parse(bad)


def test_values_replace_what_their_paths_name_and_the_scenario_is_validated_again() -> None:
    base = _quickstart()
    new = with_values(base, {"consumers.mu": 0.4, "sellers[1].cost": 0.5, "sellers[0].params.price": 2.0})
    assert (new.consumers.mu, new.sellers[1].cost, new.sellers[0].params["price"]) == (0.4, 0.5, 2.0)
    assert (base.consumers.mu, base.sellers[1].cost) == (0.25, 1.0)  # the original is untouched
    assert with_values(base, {"sellers[3].params.grid": 21}).sellers[3].params == {"grid": 21}  # a declared default
    refusals = {
        "consumer.mu": "no 'consumer'",
        "sellers[9].cost": "no item 9",
        "sellers[0].nope": "no 'sellers[0].nope'",
        "sellers[0].cost": "above price_max",
    }
    for path, message in refusals.items():
        with pytest.raises(PathError, match=re.escape(message)):
            with_values(base, {path: 5.0 if path.endswith("cost") else 1.0})
    with pytest.raises(PathError, match=r"consumers\.mu: .*greater than or equal to 0"):
        with_values(base, {"consumers.mu": -1.0})


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.stem)
def test_every_knob_of_a_bundled_scenario_names_a_value_inside_its_range(path: Path) -> None:
    scenario = load_scenario(path)
    found = knobs(scenario, default_registry())
    assert [k.path for k in found[:2]] == ["consumers.mu", "consumers.arrival"]
    assert {f"sellers[{i}].cost" for i in range(len(scenario.sellers))} <= {k.path for k in found}
    for knob in found:
        assert knob.low <= knob.value <= knob.high and knob.step > 0, knob
        on_grid = (knob.value - knob.low) / knob.step  # a slider snaps to low + k·step: the value must be there
        assert on_grid == pytest.approx(round(on_grid), abs=1e-9), knob
        assert with_values(scenario, {knob.path: knob.value}) is not None  # the path resolves and validates


def test_a_rule_offers_its_declared_parameters_and_a_learner_only_those_written() -> None:
    quick = {k.path for k in knobs(_quickstart(), default_registry())}
    assert "sellers[3].params.grid" in quick  # myopic_best_response's declared grid, not written in the file
    calvano = {k.path for k in knobs(load_scenario(ROOT / "scenarios" / "calvano2020.yaml"), default_registry())}
    assert "sellers[0].params.alpha" in calvano and "sellers[0].params.epsilon" not in calvano


# --- the live model ---------------------------------------------------------------------------------------


def test_the_live_market_is_the_market_marketsim_run_simulates() -> None:
    scenario = _quickstart().with_overrides(steps=30)
    live = LiveMarket(market=scenario)
    while live.running:
        live.step()
    assert live.steps == 30  # it stops after the scenario's steps, as a run does
    ran = simulate(scenario).steps
    for seller in live.sellers:
        assert live.series(f"{seller.name}.price") == ran[f"{seller.name}.price"].tolist()
        assert live.series(f"{seller.name}.profit") == ran[f"{seller.name}.profit"].tolist()


def test_slider_values_rebuild_the_market_and_mesa_s_own_scenario_argument_is_ignored() -> None:
    live = LiveMarket(market=_quickstart(), scenario=object(), **{"consumers.mu": 0.4, "sellers[0].params.price": 2.2})
    assert live.config.consumers.mu == 0.4 and live.values["consumers.mu"] == 0.4
    for _ in range(3):
        live.step()
    assert live.series("steady.price") == [2.2, 2.2, 2.2]
    refused = LiveMarket(market=_quickstart(), **{"sellers[0].cost": 9.0})  # above its price_max
    assert refused.config == _quickstart() and "sellers[0]: " in refused.refused and "price_max" in refused.refused
    refused = LiveMarket(market=_quickstart(), **{"sellers[3].params.grid": 1})  # the strategy's own refusal
    assert refused.config == _quickstart() and "grid" in refused.refused
    assert LiveMarket(market=_quickstart()).refused is None


def test_the_network_sample_is_connected_laid_out_and_drawn_without_the_model_s_generator() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "social_network.yaml").with_overrides(steps=5)
    live = LiveMarket(market=scenario)
    sample = live.network
    assert len(sample.nodes) == NETWORK_SAMPLE == len(set(sample.nodes.tolist()))
    assert sample.xy.shape == (NETWORK_SAMPLE, 2) and np.isfinite(sample.xy).all()
    adjacency = live.population.adjacency
    assert all(adjacency[sample.nodes[a], sample.nodes[b]] for a, b in sample.edges)
    import networkx as nx

    graph = nx.Graph(sample.edges)
    graph.add_nodes_from(range(NETWORK_SAMPLE))
    assert nx.is_connected(graph)  # reached breadth-first from one consumer
    for _ in range(5):
        live.step()
    ran = simulate(scenario).steps  # drawing the sample changed nothing in the market
    assert live.series("entrant.price") == ran["entrant.price"].tolist()
    assert [len(row) for row in live.awareness] == [5, 5, 5]
    assert live.awareness[0][-1] == pytest.approx(float(live.population.aware[0].mean()))


# --- the charts' data -------------------------------------------------------------------------------------


def _stepped(scenario, steps: int) -> LiveMarket:
    live = LiveMarket(market=scenario)
    for _ in range(steps):
        live.step()
    return live


def test_the_price_chart_has_a_line_per_seller_and_the_benchmarks_in_view() -> None:
    live = _stepped(_quickstart(), 12)
    option = charts.price_chart(live)
    assert [s["name"] for s in option["series"]] == ["steady", "cutter", "rival", "oracle"]
    assert all(len(s["data"]) == 12 for s in option["series"])
    assert option["series"][1]["data"][-1] == [11, pytest.approx(live.series("cutter.price")[-1])]
    marks = option["series"][0]["markLine"]["data"]  # a symmetric market: each benchmark drawn once
    assert [m["name"] for m in marks] == ["Nash", "monopoly"]
    assert marks[0]["yAxis"] == pytest.approx(live.benchmarks.nash.prices[0], abs=1e-6)
    assert [m["lineStyle"]["type"] for m in marks] == ["dashed", "dotted"]
    assert all("markLine" not in s for s in option["series"][1:])
    axis = option["yAxis"]
    assert axis["min"] <= min(live.benchmarks.nash.prices) and axis["max"] >= max(live.benchmarks.monopoly.prices)
    assert axis["min"] <= min(min(v for _, v in s["data"]) for s in option["series"])


def test_an_asymmetric_market_names_each_benchmark_after_the_sellers_it_belongs_to() -> None:
    scenario = duopoly({"strategy": "fixed_price", "cost": 0.8}, {"strategy": "fixed_price"}, steps=3)
    live = _stepped(scenario, 3)
    marks = charts.price_chart(live)["series"][0]["markLine"]["data"]
    assert [m["name"] for m in marks] == ["Nash a", "Nash b", "monopoly a", "monopoly b"]
    nash = live.benchmarks.nash.prices
    assert [m["yAxis"] for m in marks[:2]] == pytest.approx(list(nash), abs=1e-6)
    social = load_scenario(ROOT / "scenarios" / "social_network.yaml").with_overrides(steps=1)
    marks = charts.price_chart(_stepped(social, 1))["series"][0]["markLine"]["data"]
    assert [m["name"] for m in marks] == ["Nash incumbent", "Nash entrant, promoter", "monopoly"]


def test_the_profit_gain_is_the_market_mean_against_the_benchmarks() -> None:
    live = _stepped(_quickstart(), 8)
    profits = np.array([live.series(f"{s.name}.profit") for s in live.sellers]).mean(axis=0)
    nash, mono = np.mean(live.benchmarks.nash.profits), np.mean(live.benchmarks.monopoly.profits)
    assert charts.profit_gain(live) == pytest.approx((profits - nash) / (mono - nash))
    series = charts.delta_chart(live)["series"]
    assert [m["yAxis"] for m in series[0]["markLine"]["data"]] == [0, 1]
    smooth = [v for _, v in series[1]["data"]]
    assert smooth[-1] == pytest.approx(float(np.mean(charts.profit_gain(live))), abs=1e-6)  # 8 steps < the window


def test_the_time_charts_keep_the_most_recent_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "WINDOW", 5)
    live = _stepped(_quickstart(), 9)
    data = charts.seller_chart(live, "share", "Shares", "share")["series"][0]["data"]
    assert [step for step, _ in data] == [4, 5, 6, 7, 8]


def test_surplus_learner_network_and_awareness_charts() -> None:
    live = _stepped(_quickstart(), 4)
    surplus = charts.surplus_chart(live)["series"][0]
    assert [v for _, v in surplus["data"]] == pytest.approx(live.series("consumer_surplus"))
    calvano = load_scenario(ROOT / "scenarios" / "calvano2020.yaml")
    learners = _stepped(calvano.with_overrides(steps=6), 6)
    option = charts.learner_chart(learners)
    assert [s["name"] for s in option["series"]] == [
        "firm_1 ε",
        "firm_1 greedy price",
        "firm_2 ε",
        "firm_2 greedy price",
    ]
    eps = [v for _, v in option["series"][0]["data"]]
    assert eps == pytest.approx([math.exp(-4e-6 * t) for t in range(1, 7)])
    social = _stepped(load_scenario(ROOT / "scenarios" / "social_network.yaml").with_overrides(steps=3), 3)
    net = charts.network_chart(social)["series"][0]
    assert len(net["data"]) == NETWORK_SAMPLE and len(net["links"]) == len(social.network.edges)
    known = social.population.aware[:, social.network.nodes].sum(axis=0)
    assert [n["category"] for n in net["data"]] == known.tolist()
    assert len(charts.awareness_chart(social)["series"]) == 3


# --- the Exploring capability -------------------------------------------------------------------------------


def test_tabular_learners_report_epsilon_and_greedy_price_without_changing_the_run() -> None:
    scenario = duopoly({"strategy": "q_learning", "params": {"beta": 1e-3}}, {"strategy": "sarsa"}, steps=40)
    watched, plain = LiveMarket(market=scenario), LiveMarket(market=scenario)
    for _ in range(40):
        for seller in watched.sellers:  # read before and after every step: no randomness drawn, nothing changed
            _ = seller.strategy.exploration_rate, seller.strategy.greedy_price
        watched.step()
        plain.step()
    assert watched.series("a.price") == plain.series("a.price") and watched.series("b.price") == plain.series("b.price")
    learner = watched.sellers[0].strategy
    assert isinstance(learner, Exploring)
    assert learner.exploration_rate == pytest.approx(tabular.epsilon(learner.config, learner.t))
    assert learner.greedy_price == learner.grids[0][int(learner.q[learner.state].argmax())]
    learner.set_training(False)
    assert learner.exploration_rate == 0.0
    fresh = default_registry().create("q_learning", {})
    assert fresh.greedy_price is None and fresh.exploration_rate == 1.0  # before setup: its first decision's


def test_a_boltzmann_learner_reports_its_chance_of_a_non_greedy_price() -> None:
    scenario = duopoly({"strategy": "q_learning", "params": {"exploration": "boltzmann"}}, {"strategy": "fixed_price"})
    live = _stepped(scenario, 3)
    learner = live.sellers[0].strategy
    row = learner.q[learner.state]
    weights = np.exp((row - row.max()) / tabular.temperature(learner.config, learner.t))
    assert learner.exploration_rate == pytest.approx(1 - weights.max() / weights.sum())
    assert 0 < learner.exploration_rate < 1


# --- the command's refusals -------------------------------------------------------------------------------


def test_viz_refuses_a_missing_file_a_wrong_kind_and_a_bad_scenario(tmp_path: Path, capsys) -> None:
    assert main(["viz", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["viz", str(ROOT / "scenarios" / "tournament_quick.yaml")]) == 2
    assert "marketsim tournament" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(_quickstart_text().replace("mu: 0.25", "mu: -1"))
    assert main(["viz", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{bad}:") and "consumers.mu" in err[0]
    assert list(tmp_path.iterdir()) == [bad]  # nothing written


def _quickstart_text() -> str:
    return (ROOT / "scenarios" / "quickstart.yaml").read_text()


def test_viz_refuses_a_port_in_use(capsys) -> None:
    pytest.importorskip("solara", reason="the viz extra")
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["viz", str(ROOT / "scenarios" / "quickstart.yaml"), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_the_page_s_front_end_files_are_installed_for_offline_use() -> None:
    pytest.importorskip("solara", reason="the viz extra")
    from marketsim.viz import server

    needed = server.required_assets()
    assert any("solara-vuetify-app" in p and p.endswith(".min.js") for p in needed)
    assert "/requirejs@2.3.6/require.js" in needed
    assert server.missing_assets() == [], f"install the viz extra (solara-assets) into {server.cache_dir()}"


def test_viz_without_the_extra_or_its_front_end_files_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    pytest.importorskip("solara", reason="the viz extra")
    import sys

    from marketsim.viz import server

    quickstart = str(ROOT / "scenarios" / "quickstart.yaml")
    monkeypatch.setattr(server, "cache_dir", lambda: tmp_path)  # an empty asset folder: nothing installed
    assert main(["viz", quickstart]) == 2
    err = capsys.readouterr().err
    assert "front-end files are not installed" in err and "solara-vuetify-app" in err and "marketsim[viz]" in err
    monkeypatch.delitem(sys.modules, "marketsim.viz.server")
    monkeypatch.delattr(sys.modules["marketsim.viz"], "server")
    monkeypatch.setitem(sys.modules, "solara.server.settings", None)  # as if Solara were not installed
    assert main(["viz", quickstart]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: marketsim viz needs the 'viz' extra") and "marketsim[viz]" in err
