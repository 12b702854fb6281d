"""Language-model sellers' requests overlap: sessions of the LLM duopoly against a loopback stub whose every answer
takes 200 ms.

1. One session: 2 LLM sellers × 50 periods, each answer a valid price. Each period both sellers' requests are in
   flight together (``prefetch``), so it takes about 50 × 200 ms, not 100 × 200 ms.
2. Eight such sessions at once (threads of one process, as ``simulate`` calls from Python): target ≤ 1.5× the time
   of one session, since every session's requests overlap with the others'.

    python benchmarks/llm.py [--sessions 8] [--periods 50] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from llm_stub import StubReply, StubServer, chat_completion  # noqa: E402
from marketsim.config.scenario import Scenario  # noqa: E402
from marketsim.market.run import simulate  # noqa: E402
from marketsim.registry import default_registry  # noqa: E402

SELLER = {"cost": 1.0, "quality": 2.0, "price_min": 1.0, "price_max": 2.5}


def steady(request: object, index: int) -> StubReply:
    """A model that always answers one valid price (so every period costs one request per seller)."""
    return StubReply(200, chat_completion('{"price": 1.8, "notes": "hold"}'), (("Content-Type", "application/json"),))


def duopoly(url: str, periods: int, seed: int) -> Scenario:
    """The logit duopoly with two ``llm_pricer`` sellers asking the stub at ``url``."""
    llm = {"base_url": url, "prompt": "fish_p1", "max_retries": 0}
    return Scenario.model_validate(
        {
            "name": f"llm_bench_{seed}",
            "seed": seed,
            "steps": periods,
            "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
            "demand": {"mode": "expected"},
            "sellers": [{"name": "firm", "count": 2, "strategy": "llm_pricer", "params": llm, **SELLER}],
        }
    )


def timed_sessions(url: str, sessions: int, periods: int) -> tuple[float, int]:
    """Wall seconds for ``sessions`` sessions run at once (threads), and the requests they sent."""
    registry = default_registry()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        results = list(pool.map(lambda k: simulate(duopoly(url, periods, k), registry), range(sessions)))
    seconds = time.perf_counter() - start
    return seconds, sum(s.report["requests"] for r in results for s in r.sellers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="sessions at once (default 8)")
    parser.add_argument("--periods", type=int, default=50, help="periods per session (default 50)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the stub takes per answer (default 0.2)")
    args = parser.parse_args()
    console = Console()
    with StubServer(steady, latency_s=args.latency) as stub:
        with console.status("one session…"):
            one, one_requests = timed_sessions(stub.url, 1, args.periods)
        with console.status(f"{args.sessions} sessions at once…"):
            many, many_requests = timed_sessions(stub.url, args.sessions, args.periods)
    serial = one_requests * args.latency  # every request waited for in turn
    table = Table(title=f"2 LLM sellers × {args.periods} periods, {args.latency * 1000:.0f} ms per answer")
    for col in ("sessions", "requests", "wall seconds", "one after another would take", "vs one session"):
        table.add_column(col, justify="right")
    table.add_row("1", f"{one_requests:,}", f"{one:.1f}", f"{serial:.1f}", "1.00×")
    table.add_row(
        str(args.sessions), f"{many_requests:,}", f"{many:.1f}", f"{serial * args.sessions:.1f}",
        f"{many / one:.2f}× (target ≤ 1.5×)",
    )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
