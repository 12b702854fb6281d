"""The live page's charts as ECharts options: plain data built from a LiveMarket's records.

The browser draws them (Solara's ``FigureEcharts``), so a step costs the server a few lists, not a rendered
image. Each line holds ``[step, value]`` points of the last ``WINDOW`` steps; reference lines (Nash, monopoly)
are ECharts mark lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from marketsim.viz.live import LiveMarket

#: Steps shown on the time charts: the most recent ones, so a long run stays light to send and to draw.
WINDOW = 1000
#: Steps in the moving average drawn over the per-step profit gain.
SMOOTHING = 20
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
Option = dict[str, Any]


def color(i: int) -> str:
    """Seller ``i``'s colour, the same on every chart."""
    return PALETTE[i % len(PALETTE)]


def _points(steps: Sequence[float], values: Sequence[float]) -> list[list[float | None]]:
    """``[step, value]`` pairs of the last WINDOW steps; NaN becomes a gap (None)."""
    start = max(len(values) - WINDOW, 0)
    return [
        [steps[k], None if not math.isfinite(values[k]) else round(values[k], 6)] for k in range(start, len(values))
    ]


def _frame(title: str, y_name: str, series: list[Option], **extra: Any) -> Option:
    return {
        "animation": False,
        "title": {"text": title, "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 24, "type": "scroll"},
        "grid": {"top": 64, "left": 56, "right": 24, "bottom": 44},
        "xAxis": {
            "type": "value",
            "name": "step",
            "nameLocation": "middle",
            "nameGap": 26,
            "min": "dataMin",
            "max": "dataMax",
        },
        "yAxis": {"type": "value", "name": y_name, "scale": True},
        "series": series,
        **extra,
    }


def _line(name: str, points: list, colour: str, **extra: Any) -> Option:
    return {"type": "line", "name": name, "data": points, "showSymbol": False, "color": colour, **extra}


def price_chart(model: LiveMarket) -> Option:
    """Every seller's price, with the Nash (dashed) and joint-monopoly (dotted) prices as reference lines.

    A benchmark price shared by several sellers is drawn once and named after them; in a symmetric market that
    is one Nash and one monopoly line.
    """
    steps = model.series("step")
    nash, mono = model.benchmarks.nash.prices, model.benchmarks.monopoly.prices
    series = [
        _line(s.name, _points(steps, model.series(f"{s.name}.price")), color(i)) for i, s in enumerate(model.sellers)
    ]
    series[0]["markLine"] = _marks(nash, mono, [s.name for s in model.sellers])
    option = _frame("Prices", "price", series)
    option["yAxis"] |= _bounds_including([*nash, *mono], [p for line in series for _, p in line["data"]])
    return option


def _marks(nash: Sequence[float], monopoly: Sequence[float], names: Sequence[str]) -> Option:
    """ECharts mark lines at the Nash (dashed) and monopoly (dotted) values, one per distinct value."""
    data = _reference_lines("Nash", nash, names, "dashed") + _reference_lines("monopoly", monopoly, names, "dotted")
    return {"silent": True, "symbol": "none", "label": {"formatter": "{b}", "position": "insideEndTop"}, "data": data}


def _reference_lines(kind: str, prices: Sequence[float], names: Sequence[str], style: str) -> list[Option]:
    """One mark line per distinct price, named ``kind`` alone when every seller shares it, else with the sellers'."""
    groups: dict[float, list[str]] = {}
    for price, name in zip(prices, names):
        groups.setdefault(round(float(price), 6), []).append(name)
    out = []
    for price, who in groups.items():
        label = kind if len(groups) == 1 else f"{kind} {', '.join(who)}"
        out.append({"name": label, "yAxis": price, "lineStyle": {"type": style, "color": "#555"}})
    return out


def _bounds_including(references: Sequence[float], values: Sequence[float | None]) -> Option:
    """Axis bounds that show every value and every reference line (ECharts' own would cut a line off)."""
    seen = [float(v) for v in [*references, *values] if v is not None and math.isfinite(v)]
    low, high = min(seen), max(seen)
    unit = 10 ** math.floor(math.log10(max(high - low, 1e-9 + 0.05 * abs(high)) / 5))  # round ticks at the ends
    return {
        "min": round(math.floor(low / unit - 0.5) * unit, 10),
        "max": round(math.ceil(high / unit + 0.5) * unit, 10),
        "scale": False,
    }


def seller_chart(model: LiveMarket, column: str, title: str, y_name: str) -> Option:
    """One line per seller of a per-seller column (``share``, ``profit``)."""
    steps = model.series("step")
    series = [
        _line(s.name, _points(steps, model.series(f"{s.name}.{column}")), color(i)) for i, s in enumerate(model.sellers)
    ]
    return _frame(title, y_name, series)


def profit_gain(model: LiveMarket) -> np.ndarray:
    """The market's profit gain each step: Δ = (π̄ − π̄_Nash)/(π̄_monopoly − π̄_Nash) of the sellers' mean profit."""
    profits = np.array([model.series(f"{s.name}.profit") for s in model.sellers], dtype=float)
    nash = float(np.mean(model.benchmarks.nash.profits))
    mono = float(np.mean(model.benchmarks.monopoly.profits))
    if profits.size == 0 or abs(mono - nash) < 1e-12:
        return np.full(profits.shape[1] if profits.ndim == 2 else 0, np.nan)
    return (profits.mean(axis=0) - nash) / (mono - nash)


def delta_chart(model: LiveMarket) -> Option:
    """Δ per step and its moving average, with 0 (Nash) and 1 (monopoly) marked."""
    steps, gain = model.series("step"), profit_gain(model)
    smooth = _moving_average(gain, SMOOTHING)
    series = [
        _line("Δ", _points(steps, gain.tolist()), "#bbbbbb", markLine=_marks([0.0], [1.0], ["all"])),
        _line(f"Δ, {SMOOTHING}-step mean", _points(steps, smooth.tolist()), "#d62728"),
    ]
    option = _frame("Profit gain Δ", "Δ", series)
    option["yAxis"] |= _bounds_including([0.0, 1.0], [v for _, v in series[0]["data"]])
    return option


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    if values.size == 0:
        return values
    kernel = np.ones(min(width, values.size))
    filled = np.nan_to_num(values)
    sums, counts = np.convolve(filled, kernel)[: values.size], np.convolve(np.isfinite(values), kernel)[: values.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def surplus_chart(model: LiveMarket) -> Option:
    """Consumer surplus per step, with its expected value at the Nash and at the monopoly prices."""
    steps = model.series("step")
    line = _line("consumer surplus", _points(steps, model.series("consumer_surplus")), "#2ca02c")
    nash, mono = model.benchmarks.nash.consumer_surplus, model.benchmarks.monopoly.consumer_surplus
    line["markLine"] = _marks([nash], [mono], ["all"])
    option = _frame("Consumer surplus", "surplus", [line])
    option["yAxis"] |= _bounds_including([nash, mono], [v for _, v in line["data"]])
    return option


def learner_chart(model: LiveMarket) -> Option:
    """Each learner's exploration rate (left axis) and greedy price (right axis)."""
    steps = model.series("step")
    series = []
    for trace in model.learner_traces:
        i = next(k for k, s in enumerate(model.sellers) if s.name == trace.name)
        series.append(_line(f"{trace.name} ε", _points(steps, trace.exploration), color(i), yAxisIndex=0))
        greedy = _line(f"{trace.name} greedy price", _points(steps, trace.greedy), color(i), yAxisIndex=1)
        greedy["lineStyle"] = {"type": "dashed"}
        series.append(greedy)
    option = _frame("Learners", "ε", series)
    option["yAxis"] = [
        {"type": "value", "name": "ε", "min": 0, "max": 1},
        {"type": "value", "name": "greedy price", "scale": True},
    ]
    return option


def awareness_chart(model: LiveMarket) -> Option:
    """The share of consumers who know each seller (network scenarios)."""
    steps = model.series("step")
    series = [_line(s.name, _points(steps, model.awareness[i]), color(i)) for i, s in enumerate(model.sellers)]
    option = _frame("Awareness", "share of consumers", series)
    option["yAxis"] |= {"min": 0, "max": 1, "scale": False}
    return option


def network_chart(model: LiveMarket) -> Option:
    """The sampled social graph; a node's colour is how many sellers that consumer knows now."""
    sample, aware = model.network, model.population.aware
    known = aware[:, sample.nodes].sum(axis=0)
    categories = [{"name": f"knows {k}"} for k in range(len(model.sellers) + 1)]
    nodes = [
        {"name": str(int(c)), "x": round(float(x), 4), "y": round(float(y), 4), "category": int(k), "symbolSize": 7}
        for c, (x, y), k in zip(sample.nodes, sample.xy, known)
    ]
    links = [{"source": str(int(sample.nodes[a])), "target": str(int(sample.nodes[b]))} for a, b in sample.edges]
    series = {
        "type": "graph",
        "layout": "none",
        "data": nodes,
        "links": links,
        "categories": categories,
        "lineStyle": {"color": "#bbbbbb", "width": 0.6},
        "emphasis": {"focus": "adjacency"},
    }
    return {
        "animation": False,
        "title": {
            "text": f"Word of mouth: {len(nodes)} of {aware.shape[1]:,} consumers",
            "textStyle": {"fontSize": 14},
        },
        "tooltip": {},
        "legend": {"top": 24, "data": [c["name"] for c in categories]},
        "color": ["#cccccc", *PALETTE],
        "series": [series],
    }
