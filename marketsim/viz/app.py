"""The live page: Mesa's SolaraViz around a LiveMarket, with ECharts charts and one slider per knob.

Solara imports this module as the app (``SOLARA_APP``); the scenario file comes in ``MARKETSIM_VIZ_SCENARIO``
(``marketsim viz`` sets both). Every browser session gets its own model. SolaraViz supplies play / pause /
step / reset, the play interval (speed) and the step counter; sliders take effect at reset, as in every
Mesa model.
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Callable
from pathlib import Path

import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from marketsim.config.paths import Knob, knobs, parse
from marketsim.config.scenario import Scenario
from marketsim.config.validate import load_scenario
from marketsim.registry import default_registry
from marketsim.viz import charts
from marketsim.viz.live import LiveMarket

SCENARIO_ENV = "MARKETSIM_VIZ_SCENARIO"
INTERVAL_ENV = "MARKETSIM_VIZ_INTERVAL"
#: Milliseconds between steps while playing (SolaraViz's play interval; the page's own slider changes it).
DEFAULT_INTERVAL = 20


@functools.cache
def _setup() -> tuple[Scenario, tuple[Knob, ...]]:
    """The scenario named in the environment, validated once per server, and its knobs."""
    path = Path(os.environ[SCENARIO_ENV])
    scenario = load_scenario(path)
    return scenario, tuple(knobs(scenario, default_registry()))


def model_params(scenario: Scenario, knob_list: tuple[Knob, ...]) -> dict:
    """SolaraViz's ``model_params``: the scenario (fixed) and one slider per knob, keyed by its dotted path."""
    params: dict = {"market": scenario}
    for knob in knob_list:
        kind = "SliderInt" if knob.integer else "SliderFloat"
        value = int(knob.value) if knob.integer else knob.value
        low, high, step = (
            (int(knob.low), int(knob.high), int(knob.step)) if knob.integer else (knob.low, knob.high, knob.step)
        )
        params[knob.path] = {"type": kind, "label": knob.label, "value": value, "min": low, "max": high, "step": step}
    return params


def _chart(name: str, build: Callable[[LiveMarket], dict]) -> Callable[[LiveMarket], solara.Element]:
    """A SolaraViz component drawing ``build(model)``, redrawn after every step (Mesa's update counter)."""

    @solara.component
    def Chart(model: LiveMarket) -> None:
        update_counter.get()
        solara.FigureEcharts(
            option=build(model), attributes={"style": "height: 100%; min-height: 280px;", "data-chart": name}
        )

    Chart.__name__ = f"{name.title()}Chart"
    return Chart


@solara.component
def MarketCard(model: LiveMarket) -> None:
    """The market being watched: benchmarks and the values it was built with (the sliders apply at reset)."""
    update_counter.get()
    if model.refused:
        solara.Error(f"The sliders' values were refused, so this is the scenario as written. {model.refused}")
    nash, mono = model.benchmarks.nash.prices, model.benchmarks.monopoly.prices
    step = f"{model.steps} of {model.config.steps}"  # Mesa's own counter reads "Step" (3.3) or "Time" (3.4+)
    rows = [("step", step), ("scenario", model.config.name), ("consumers", f"{model.config.consumers.size:,}")]
    if max(nash) - min(nash) < 1e-9 and max(mono) - min(mono) < 1e-9:
        rows.append(("Nash / monopoly price", f"{nash[0]:.3f} / {mono[0]:.3f}"))
    else:
        rows += [(f"{s.name}: Nash / monopoly", f"{n:.3f} / {m:.3f}") for s, n, m in zip(model.sellers, nash, mono)]
    config = model.config.model_dump(mode="json", by_alias=True)  # once per redraw, not once per knob
    rows += [(knob.label, f"{_current(config, knob):.6g}") for knob in _setup()[1]]
    body = "".join(
        f'<tr data-row="{html.escape(k)}"><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>' for k, v in rows
    )
    solara.HTML(
        tag="div",
        unsafe_innerHTML=f'<table class="marketsim-market" style="font-size: 13px;">{body}</table>',
        attributes={"style": "height: 100%; overflow: auto;"},
    )


def _current(config: dict, knob: Knob) -> float:
    """The value a knob has in the model's own (validated) scenario ``config`` (its dump), read back rather than
    from the slider. A strategy parameter the scenario does not set is the strategy's default, which the knob
    started from.
    """
    node: object = config
    for part in parse(knob.path):
        if isinstance(node, dict) and part not in node:
            return knob.value
        node = node[part]  # type: ignore[index]
    return float(node)  # type: ignore[arg-type]


def components(model: LiveMarket) -> list:
    """The page's panels: prices, Δ, shares, profits, surplus, then learners and the network when present."""
    panels = [
        _chart("prices", charts.price_chart),
        _chart("delta", charts.delta_chart),
        _chart("shares", lambda m: charts.seller_chart(m, "share", "Market shares", "share of shoppers")),
        _chart("profits", lambda m: charts.seller_chart(m, "profit", "Profit per step", "profit")),
        _chart("surplus", charts.surplus_chart),
    ]
    if model.learner_traces:
        panels.append(_chart("learners", charts.learner_chart))
    if model.network is not None:
        panels += [_chart("network", charts.network_chart), _chart("awareness", charts.awareness_chart)]
    return [(MarketCard, 0)] + [(panel, 0) for panel in panels]


@solara.component
def Page() -> None:
    """The whole page, one model per browser session."""
    scenario, knob_list = _setup()
    model = solara.use_memo(lambda: LiveMarket(market=scenario), [])
    interval = int(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    SolaraViz(
        model,
        components=components(model),
        model_params=model_params(scenario, knob_list),
        play_interval=interval,
        name=f"marketsim · {scenario.name}",
    )
