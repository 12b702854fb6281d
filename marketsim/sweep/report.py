"""A sweep's results folder: ``points.csv``, plots over the axes, ``summary.json`` and ``report.html``.

Plots follow the design: with one axis, each metric as a line with its 95% band; with two, a heatmap per metric;
with a third, one heatmap panel per value of it (facets); sampled designs (random, Latin hypercube) as scatter
plots coloured by the metric. Every file is written from the stored points, so a resumed sweep's folder equals an
uninterrupted one's.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketsim.config.sweep import LoadedSweep, Range
from marketsim.sweep.points import PointResult
from marketsim.tables import write_csv

STATS = ("mean", "ci_low", "ci_high", "n")


def points_frame(sweep: LoadedSweep, points: list[PointResult]) -> pd.DataFrame:
    """One row per point: its key, seed, status, the axis values, and each metric's mean, interval and count.

    Nothing that depends on the machine (a point's running time stays in the store), so the table of a sweep is
    the same on every backend and worker count, resumed or not.
    """
    rows = []
    for p in points:
        row: dict[str, Any] = {"key": p.key, "index": p.index, "seed": p.seed, "status": p.status}
        row |= {path: value for path, value in p.values}
        for name, stats in sorted(p.metrics.items()):
            row[name] = stats["mean"]
            row |= {f"{name}_{k}": stats[k] for k in STATS[1:]}
        row["fault"] = p.fault.message if p.fault is not None else ""
        rows.append(row)
    return pd.DataFrame(rows).sort_values("index", kind="stable").reset_index(drop=True)


def metric_columns(frame: pd.DataFrame, axes: list[str]) -> list[str]:
    """The metric columns of a points table (each has its ``_ci_low`` twin)."""
    return [c for c in frame.columns if f"{c}_ci_low" in frame.columns and c not in axes]


def write_report(sweep: LoadedSweep, points: list[PointResult], out: Path) -> dict[str, Any]:
    """Write every table, plot and page of the folder; the summary (also written as summary.json)."""
    frame = points_frame(sweep, points)
    axes = list(sweep.spec.axes)
    write_csv(frame, out / "points.csv")
    images = plot_sweep(sweep, frame, out)
    summary = _summary(sweep, frame, points, axes)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False, default=_plain) + "\n")
    (out / "report.html").write_text(_html(sweep, frame, summary, images))
    return summary


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _summary(sweep: LoadedSweep, frame: pd.DataFrame, points: list[PointResult], axes: list[str]) -> dict:
    ok = frame[frame["status"] == "ok"]
    best = {}
    for metric in metric_columns(frame, axes):
        column = ok[metric].astype(float)
        if column.notna().any():
            row = ok.loc[column.idxmax()]
            best[metric] = {"max": float(row[metric]), "at": {a: _clean(row[a]) for a in axes}}
    search = sweep.spec.search
    found = None
    if search is not None and search.metric in ok and ok[search.metric].notna().any():
        column = ok[search.metric].astype(float)
        row = ok.loc[column.idxmax() if search.direction == "maximize" else column.idxmin()]
        found = {"metric": search.metric, "direction": search.direction, "value": float(row[search.metric])}
        found["at"] = {a: _clean(row[a]) for a in axes}
    return {
        "name": sweep.spec.name,
        "search": found,
        "digest": sweep.digest(),
        "base": {"file": str(sweep.base_path), "kind": sweep.base_kind, "sha256": sweep.record().data["base_sha256"]},
        "job": sweep.job,
        "combine": "search" if sweep.spec.search else sweep.spec.combine,
        "repetitions": sweep.spec.repetitions,
        "metrics": list(sweep.metrics),
        "points": len(frame),
        "ok": int((frame["status"] == "ok").sum()),
        "faulted": int((frame["status"] == "fault").sum()),
        "best": best,
        "provenance": _provenance(sweep, points),
    }


def _clean(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _provenance(sweep: LoadedSweep, points: list[PointResult]) -> dict[str, Any]:
    from importlib import metadata

    from marketsim.registry import default_registry

    registry = default_registry()
    try:
        version = metadata.version("marketsim")
    except metadata.PackageNotFoundError:
        version = None
    per_point = [{"key": p.key, "seed": p.seed, "values": dict(p.values), **p.provenance} for p in points]
    strategies = {}
    if sweep.base_kind == "scenario":
        from marketsim.config.validate import load_scenario

        strategies = registry.scenario_provenance(load_scenario(sweep.base_path, registry))
    return {"marketsim": version, "base": strategies, "points": per_point}


# --- plots ------------------------------------------------------------------------------------------------


def plot_sweep(sweep: LoadedSweep, frame: pd.DataFrame, out: Path) -> list[Path]:
    """The design's plots, one file per metric; the paths written."""
    from marketsim.market.plots import plt, save

    axes = list(sweep.spec.axes)
    ok = frame[frame["status"] == "ok"]
    written = []
    for metric in metric_columns(frame, axes):
        if ok.empty or ok[metric].isna().all():
            continue
        name = metric.replace(".", "_").replace("[", "_").replace("]", "")
        if sweep.spec.combine in ("random", "latin_hypercube") or sweep.spec.search is not None:
            fig = _scatter(plt, ok, axes, metric)
        elif len(axes) == 1:
            fig = _lines(plt, ok, axes[0], metric, _is_log(sweep, axes[0]))
        else:
            fig = _heatmaps(plt, ok, axes, metric)
        written.append(save(fig, out / f"sweep_{name}.png"))
    return written


def _is_log(sweep: LoadedSweep, axis: str) -> bool:
    spec = sweep.spec.axes[axis]
    return isinstance(spec, Range) and spec.scale == "log"


def _lines(plt: Any, ok: pd.DataFrame, axis: str, metric: str, log: bool) -> Any:
    data = ok.sort_values(axis)
    x = data[axis].to_numpy()
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.plot(x, data[metric], marker="o", color="tab:blue", label=f"{metric} (mean)")
    ax.fill_between(x, data[f"{metric}_ci_low"], data[f"{metric}_ci_high"], color="tab:blue", alpha=0.2, label="95% CI")
    ax.set_xlabel(axis)
    ax.set_ylabel(metric)
    if log:
        ax.set_xscale("log")
    ax.legend(loc="best")
    ax.set_title(f"{metric} over {axis}")
    return fig


def _heatmaps(plt: Any, ok: pd.DataFrame, axes: list[str], metric: str) -> Any:
    """A heatmap of the metric over the first two axes; one panel per combination of any further axes."""
    x_axis, y_axis, facets = axes[0], axes[1], axes[2:]
    groups = list(ok.groupby(facets, sort=True)) if facets else [((), ok)]
    low, high = float(ok[metric].min()), float(ok[metric].max())
    fig, panels = plt.subplots(1, len(groups), figsize=(6.2 * len(groups), 5), squeeze=False, layout="constrained")
    for ax, (label, group) in zip(panels[0], groups):
        grid = group.pivot_table(index=y_axis, columns=x_axis, values=metric, aggfunc="mean")
        image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis", vmin=low, vmax=high)
        ax.set_xticks(range(grid.shape[1]), [_tick(v) for v in grid.columns], rotation=45, ha="right")
        ax.set_yticks(range(grid.shape[0]), [_tick(v) for v in grid.index])
        ax.set_xlabel(x_axis)
        ax.set_ylabel(y_axis)
        if grid.size <= 144:
            middle = (low + high) / 2
            for (i, j), value in np.ndenumerate(grid.to_numpy()):
                shade = "black" if value > middle else "white"  # readable on viridis' light and dark ends
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=shade)
        if facets:
            labels = label if isinstance(label, tuple) else (label,)
            ax.set_title(", ".join(f"{f} = {_tick(v)}" for f, v in zip(facets, labels)))
    fig.colorbar(image, ax=panels[0].tolist(), label=metric)
    fig.suptitle(f"{metric} (mean over the repetitions of each point)")
    return fig


def _scatter(plt: Any, ok: pd.DataFrame, axes: list[str], metric: str) -> Any:
    fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    if len(axes) == 1:
        ax.scatter(ok[axes[0]], ok[metric], c="tab:blue")
        ax.set_xlabel(axes[0])
        ax.set_ylabel(metric)
    else:
        points = ax.scatter(ok[axes[0]], ok[axes[1]], c=ok[metric], cmap="viridis")
        ax.set_xlabel(axes[0])
        ax.set_ylabel(axes[1])
        fig.colorbar(points, ax=ax, label=metric)
    ax.set_title(f"{metric} at each sampled point")
    return fig


def _tick(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- the page ---------------------------------------------------------------------------------------------


def _html(sweep: LoadedSweep, frame: pd.DataFrame, summary: dict, images: list[Path]) -> str:
    """A self-contained page: what was swept, the best point of each metric, the points table and the plots."""
    best = "".join(
        f"<li><b>{html.escape(m)}</b>: highest {b['max']:.4g} at "
        f"{html.escape(', '.join(f'{k} = {_tick(v)}' for k, v in b['at'].items()))}</li>"
        for m, b in summary["best"].items()
    )
    shown = frame.drop(columns=["fault"]) if not frame["fault"].astype(bool).any() else frame
    table = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
    pictures = "".join(f"<div><img src='{p.name}' alt='{p.stem}'></div>" for p in images)
    title = html.escape(f"Sweep {sweep.spec.name}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "th{background:#f3f3f3}img{max-width:100%;margin:1em 0}.wide{overflow-x:auto}</style></head><body>"
        f"<h1>{title}</h1><p>{html.escape(sweep.spec.description)}</p>"
        f"<p>{html.escape(sweep.job)} of <code>{html.escape(sweep.base_path.name)}</code> at {summary['points']} "
        f"points ({summary['ok']} ok, {summary['faulted']} faulted), {sweep.spec.repetitions} repetitions each.</p>"
        f"<h2>Best points</h2><ul>{best or '<li>none</li>'}</ul><h2>Plots</h2>{pictures}"
        f"<h2>Points</h2><div class='wide'>{table}</div></body></html>"
    )
