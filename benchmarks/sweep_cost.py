"""What each point of a finished sweep cost, per session, and what the paper's full design would cost from that.

Reads a sweep's results folder (``points.sqlite`` keeps each point's running time; ``points.csv`` its axes):
prints the seconds per session of every point (a point's wall time in its worker process, one core, divided
by its sessions), their spread, and a projection — labelled as such, no cluster was used — of Calvano et al.
(2020)'s full design (100 × 100 points × 1,000 sessions) on N cores, assuming the measured mean cost per session
over the measured grid and perfect scaling over points (each point is one independent task).

    python benchmarks/sweep_cost.py runs/calvano_alpha_beta [--cores 64 256 1024]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

PAPER_POINTS, PAPER_SESSIONS = 100 * 100, 1000


def point_costs(folder: Path) -> list[dict]:
    """Every stored point's values, elapsed seconds and seconds per session (the sweep's repetitions)."""
    sweep = json.loads((folder / "summary.json").read_text())
    sessions = sweep["repetitions"]
    with sqlite3.connect(folder / "points.sqlite") as conn:
        rows = [json.loads(payload) for (payload,) in conn.execute("SELECT payload FROM matches ORDER BY idx")]
    return [
        {"values": dict(r["values"]), "elapsed": r["elapsed"], "per_session": r["elapsed"] / sessions}
        for r in rows
        if r["status"] == "ok"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a sweep's results folder")
    parser.add_argument("--cores", type=int, nargs="+", default=[64, 256, 1024])
    args = parser.parse_args()
    console = Console(width=120)
    costs = point_costs(args.folder)
    per = [c["per_session"] for c in costs]
    table = Table(title=f"{args.folder.name}: seconds per session at each point (one core)")
    axes = list(costs[0]["values"])
    for column in (*axes, "point s", "s / session"):
        table.add_column(column, justify="right")
    for c in costs:
        table.add_row(*(f"{v:.3g}" for v in c["values"].values()), f"{c['elapsed']:.1f}", f"{c['per_session']:.3f}")
    console.print(table)
    mean, low, high = statistics.mean(per), min(per), max(per)
    console.print(
        f"{len(costs)} points: {mean:.3f} s per session on average (fastest point {low:.3f}, slowest {high:.3f})"
    )
    total = mean * PAPER_POINTS * PAPER_SESSIONS
    projection = Table(title="projection (not measured): the paper's 100 × 100 points × 1,000 sessions")
    for column in ("cores", "hours", "days"):
        projection.add_column(column, justify="right")
    for cores in [2, *args.cores]:
        hours = total / cores / 3600
        projection.add_row(str(cores), f"{hours:,.1f}", f"{hours / 24:,.2f}")
    console.print(projection)
    console.print(f"one core: {total / 3600:,.0f} CPU-hours ({total:,.0f} s) at {mean:.3f} s per session")


if __name__ == "__main__":
    main()
