"""Steps per second of the live page (``marketsim viz``) against the bare model it steps, in one run.

1. The bare ``MarketModel.step`` of the scenario (what ``marketsim run`` does per step, DataCollector included):
   the ceiling, since the page steps the same model.
2. The live page in headless Chromium (Debian's, driven by Playwright): press play for ``--seconds``, read the
   step counter, pause, and check that the price chart holds a point per step. At each play interval given
   (milliseconds slept between steps; 20 is the command's default). Target: ≥ 10 steps/s for the quickstart
   (20,000 consumers, 4 sellers).

    python benchmarks/viz.py [--scenario scenarios/quickstart.yaml] [--intervals 20 0] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketsim.config.validate import load_scenario
from marketsim.market.model import MarketModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import playing_rate, settled_step, wait_for_points, wait_for_step  # noqa: E402

from browser import FLAGS, chromium, free_port, wait_for_http  # noqa: E402  the tests' browser set-up

console = Console(width=110)


def model_rate(path: Path, steps: int = 300) -> float:
    """Steps per second of the bare model over ``steps`` steps (median of three)."""
    rates = []
    for _ in range(3):
        model = MarketModel(load_scenario(path).with_overrides(steps=steps))
        start = time.perf_counter()
        for _ in range(steps):
            model.step()
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def page_rate(path: Path, interval: int, seconds: float, rounds: int) -> tuple[float, bool]:
    """Median steps per second of the page while playing, and whether the chart kept a point per step."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    command = [sys.executable, "-m", "marketsim", "viz", str(path), "--port", str(port), "--interval", str(interval)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium()[0], args=list(FLAGS))
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            wait_for_step(page, 0)
            rates, kept_up = [], True
            for _ in range(rounds):
                rates.append(playing_rate(page, seconds))
                kept_up &= _caught_up(page, settled_step(page))
                page.get_by_role("button", name="Reset").click()
                wait_for_step(page, 0)
            browser.close()
        return statistics.median(rates), kept_up
    finally:
        server.terminate()
        server.wait(timeout=30)


def _caught_up(page, steps: int) -> bool:
    """True when, within 30 s, the price chart holds one point per step (no update was lost)."""
    try:
        wait_for_points(page, "prices", steps)
    except Exception:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "quickstart.yaml")
    parser.add_argument("--intervals", type=int, nargs="+", default=[20, 0], help="play intervals (ms) to measure")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of play per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if chromium()[0] is None:
        sys.exit(f"no browser: {chromium()[1]}")
    with console.status("the bare model"):
        ceiling = model_rate(args.scenario)
    table = Table(title=f"{args.scenario.name}: steps per second")
    for column in ("what", "steps/s", "× target 10/s", "share of the bare model", "chart kept up"):
        table.add_column(column, justify="right" if column != "what" else "left")
    table.add_row("MarketModel.step (marketsim run)", f"{ceiling:,.0f}", f"{ceiling / 10:,.0f}", "1.00", "")
    for interval in args.intervals:
        with console.status(f"the live page, play interval {interval} ms"):
            rate, kept_up = page_rate(args.scenario, interval, args.seconds, args.rounds)
        what = f"live page, play interval {interval} ms"
        table.add_row(what, f"{rate:.1f}", f"{rate / 10:.2f}", f"{rate / ceiling:.3f}", "yes" if kept_up else "NO")
    console.print(table)


if __name__ == "__main__":
    main()
