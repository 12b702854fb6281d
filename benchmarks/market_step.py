"""Consumer decisions per second of one full model step, against the per-consumer Mesa reference.

Measures MarketModel.step() (prices posted, market cleared, sellers settled, strategies learn,
DataCollector records) for N = 1e4, 1e5, 1e6 consumers × 10 sellers, and the per-consumer reference
(one Mesa agent per consumer, tests/reference_market.py) at N = 1e4, in the same run.
Targets: a 1e6 × 10 step in ≤ 150 ms; ≥ 30× the reference at 1e4.

    python benchmarks/market_step.py [--repeats 5] [--capacity]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from marketsim.config.scenario import Scenario  # noqa: E402
from marketsim.market.model import MarketModel  # noqa: E402
from reference_market import ReferenceMarket  # noqa: E402

SELLERS = 10


def scenario(n: int, capacity: bool) -> Scenario:
    """A 10-seller market with uniform WTP and logit tastes; rule-based sellers of several kinds."""
    kinds = ["fixed_price", "undercut", "follow_average", "cost_plus", "random_price"]
    sellers = [
        {
            "name": f"s{j}",
            "strategy": kinds[j % len(kinds)],
            "quality": 2.0 + 0.05 * j,
            "price_min": 1.0,
            "price_max": 3.0,
            **({"capacity": n / (SELLERS * 1.5)} if capacity else {}),
        }
        for j in range(SELLERS)
    ]
    return Scenario.model_validate(
        {
            "name": f"bench-{n}",
            "seed": 1,
            "steps": 10,
            "consumers": {"size": n, "wtp": {"distribution": "uniform", "low": 0, "high": 1}, "mu": 0.25},
            "sellers": sellers,
        }
    )


def time_steps(model_cls: type[MarketModel], n: int, repeats: int, capacity: bool) -> float:
    """Median wall time of one step, after one warm-up step."""
    model = model_cls(scenario(n, capacity))
    model.step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per size (median reported)")
    parser.add_argument("--capacity", action="store_true", help="give every seller a binding capacity (rationing)")
    args = parser.parse_args()
    console = Console(width=120)
    table = Table(title=f"One model step, {SELLERS} sellers{' with binding capacities' if args.capacity else ''}")
    for col in ("implementation", "consumers", "ms / step", "decisions / s", "vs reference"):
        table.add_column(col, justify="right")
    with console.status("per-consumer reference at N = 10,000 …"):
        ref = time_steps(ReferenceMarket, 10_000, max(2, args.repeats // 2), args.capacity)
    table.add_row("per-consumer Mesa reference", "10,000", f"{ref * 1e3:.1f}", f"{10_000 / ref:,.0f}", "1.0×")
    results = {}
    for n in (10_000, 100_000, 1_000_000):
        with console.status(f"vectorized at N = {n:,} …"):
            results[n] = time_steps(MarketModel, n, args.repeats, args.capacity)
        speedup = (n / results[n]) / (10_000 / ref)
        table.add_row(
            "vectorized MarketModel", f"{n:,}", f"{results[n] * 1e3:.1f}", f"{n / results[n]:,.0f}", f"{speedup:,.0f}×"
        )
    console.print(table)
    ratio_1e4 = ref / results[10_000]
    target = (
        "rationing worst case; the 150 ms target is for the unconstrained step" if args.capacity else "target ≤ 150 ms"
    )
    console.print(
        f"1e6 × {SELLERS} step: {results[1_000_000] * 1e3:.0f} ms ({target}) · "
        f"speed-up over the reference at 1e4: {ratio_1e4:,.0f}× (target ≥ 30×)"
    )


if __name__ == "__main__":
    main()
