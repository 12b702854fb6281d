"""Every HTML output opened in headless Chromium: the live page of ``marketsim viz`` and the tournament report.

Each page must load with no console error, no uncaught exception and no failed request: the machine has no
internet, so a page that reached for a CDN fails here. Screenshots and the live page's measured speed are saved
in test-artifacts/browser/ (see tests/browser.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from browser import SPEED_FILE, artifacts, browser_page, free_port, wait_for_http
from marketsim.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8  # pressed one at a time
PLAY_SECONDS = 2.0
#: Finds the ECharts instance behind a chart's container (Solara wraps the template component once).
CHART_POINTS = """name => {
    const el = document.querySelector(`[data-chart="${name}"]`);
    const vm = el && el.__vue__ && (el.__vue__.chart ? el.__vue__ : el.__vue__.$children[0]);
    return vm && vm.chart ? vm.chart.getOption().series.map(s => [s.name, s.data.length]) : null;
}"""


@contextmanager
def serving(scenario: str) -> Iterator[str]:
    """``marketsim viz scenarios/SCENARIO`` served on a free loopback port, as a user starts it; its URL."""
    pytest.importorskip("solara", reason="marketsim viz needs the viz extra")
    port = free_port()
    path = str(ROOT / "scenarios" / scenario)
    command = [sys.executable, "-m", "marketsim", "viz", path, "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def live_page_url() -> Iterator[str]:
    """The quickstart's live page."""
    with serving("quickstart.yaml") as url:
        yield url


STEP_CELL = 'tr[data-row="step"] td:last-child'


def step_count(page) -> int:
    """The page's step counter (the market card's, the same under every Mesa version)."""
    return int(page.locator(STEP_CELL).inner_text().split()[0])


def wait_for_step(page, step: int) -> None:
    script = "([cell, step]) => { const c = document.querySelector(cell); return c && c.innerText.startsWith(step); }"
    page.wait_for_function(script, arg=[STEP_CELL, f"{step} of"], timeout=60_000)


def wait_for_points(page, name: str, count: int) -> None:
    """Wait until every line of chart ``name`` holds ``count`` points."""
    script = f"() => {{ const p = ({CHART_POINTS})('{name}'); return p !== null && p.every(s => s[1] === {count}); }}"
    page.wait_for_function(script, timeout=30_000)


def _chart_points(page, name: str) -> list[list]:
    page.wait_for_function(f"() => ({CHART_POINTS})('{name}') !== null", timeout=30_000)
    return page.evaluate(CHART_POINTS, name)


def playing_rate(page, seconds: float) -> float:
    """Press play and return the steps per second the page's counter shows over ``seconds`` (after a 1 s start)."""
    page.get_by_role("button", name="▶").click()
    page.wait_for_timeout(1000)
    first, started = step_count(page), time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    last, elapsed = step_count(page), time.monotonic() - started
    page.get_by_role("button", name="❚❚").click()
    return (last - first) / elapsed


def settled_step(page, timeout: float = 30.0) -> int:
    """The step counter once it has stopped moving (a pause takes effect after the steps already under way)."""
    deadline, last = time.monotonic() + timeout, step_count(page)
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        now = step_count(page)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the step counter still moved {timeout:.0f} s after pause")


def test_the_live_page_steps_plays_and_restarts_with_a_slider_s_value(live_page_url: str) -> None:
    with browser_page() as (page, watched):
        page.goto(live_page_url)
        wait_for_step(page, 0)
        sellers = ["steady", "cutter", "rival", "oracle"]
        assert _chart_points(page, "prices") == [[s, 0] for s in sellers]
        for _ in range(STEPS):
            page.get_by_role("button", name="Step", exact=True).click()
        wait_for_step(page, STEPS)
        wait_for_points(page, "prices", STEPS)
        assert _chart_points(page, "prices") == [[s, STEPS] for s in sellers]
        for chart in ("delta", "shares", "profits", "surplus"):  # each chart redraws on its own: wait for each
            wait_for_points(page, chart, STEPS)
            assert all(n == STEPS for _, n in _chart_points(page, chart)), chart

        rate = playing_rate(page, PLAY_SECONDS)  # the page's own speed (criterion C)
        after = settled_step(page)
        artifacts()
        SPEED_FILE.write_text(json.dumps({"rate": rate, "seconds": PLAY_SECONDS}))
        print(f"live page, quickstart (20,000 consumers, 4 sellers): {rate:.1f} steps/s while playing")
        assert after > STEPS
        wait_for_points(page, "prices", after)
        page.screenshot(path=str(artifacts() / "viz_quickstart.png"))

        mu = page.locator('tr[data-row="logit scale mu"] td').nth(1)
        assert mu.inner_text() == "0.25"
        slider = page.locator(".v-input", has_text="logit scale mu").get_by_role("slider")
        slider.focus()
        for _ in range(10):  # 10 × its step of 0.01
            slider.press("ArrowRight")
        page.get_by_role("button", name="Reset").click()
        wait_for_step(page, 0)
        page.wait_for_function("() => document.querySelector('tr[data-row=\"logit scale mu\"] td:last-child')"
                               ".innerText === '0.35'", timeout=30_000)  # fmt: skip
        assert _chart_points(page, "prices") == [[s, 0] for s in sellers]
        page.get_by_role("button", name="Step", exact=True).click()
        wait_for_step(page, 1)
        page.screenshot(path=str(artifacts() / "viz_after_reset.png"), full_page=True)
        assert watched.errors == [] and watched.failed == []


def test_a_network_scenario_shows_its_word_of_mouth_graph_and_awareness() -> None:
    with serving("social_network.yaml") as url, browser_page() as (page, watched):
        page.goto(url)
        wait_for_step(page, 0)
        for _ in range(3):
            page.get_by_role("button", name="Step", exact=True).click()
        wait_for_step(page, 3)
        wait_for_points(page, "awareness", 3)
        assert [n for _, n in _chart_points(page, "network")] == [120]  # the sampled consumers
        assert [name for name, _ in _chart_points(page, "awareness")] == ["incumbent", "entrant", "promoter"]
        page.screenshot(path=str(artifacts() / "viz_social_network.png"), full_page=True)
        assert watched.errors == [] and watched.failed == []


TOURNAMENT = """
name: browser
seed: 5
market: scenarios/quickstart.yaml
entrants:
  - {name: steady, strategy: fixed_price, params: {price: 1.8}}
  - {name: cutter, strategy: undercut, params: {step: 0.05, floor_margin: 0.1}}
  - {name: markup, strategy: cost_plus}
repetitions: 1
phases: {train_steps: 10, eval_steps: 10}
"""


def test_the_tournament_report_shows_every_entrant_and_the_heatmap_offline(tmp_path: Path) -> None:
    spec = tmp_path / "browser.yaml"
    spec.write_text(TOURNAMENT.replace("scenarios/quickstart.yaml", str(ROOT / "scenarios" / "quickstart.yaml")))
    out = tmp_path / "results"
    assert main(["tournament", str(spec), "--out", str(out), "--quiet"]) == 0
    with browser_page() as (page, watched):
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        board = page.locator("table").first
        names = board.locator("tbody tr td:first-child, tr td:first-child").all_inner_texts()
        assert {"steady", "cutter", "markup"} <= set(names)
        heatmap = page.locator("img[alt='payoff_heatmap']")
        assert heatmap.count() == 1
        assert page.evaluate("img => img.complete && img.naturalWidth > 100", heatmap.element_handle())
        page.screenshot(path=str(artifacts() / "tournament_report.png"))
        page.screenshot(path=str(artifacts() / "tournament_report_full.png"), full_page=True)
        assert watched.errors == [] and watched.failed == []


def test_the_sweep_report_shows_the_best_points_the_plots_and_every_point_offline(tmp_path: Path) -> None:
    import yaml

    from markets import duopoly_dict

    market = duopoly_dict({"strategy": "fixed_price", "params": {"price": 1.8}}, {"strategy": "undercut"}, steps=20)
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(market))
    (tmp_path / "s.yaml").write_text(
        "name: page\nbase: q.yaml\nrepetitions: 2\naxes:\n  consumers.mu: [0.1, 0.25]\n"
        "  sellers[0].params.price: [1.6, 2.0]\n"
    )
    out = tmp_path / "results"
    assert main(["sweep", str(tmp_path / "s.yaml"), "--backend", "serial", "--out", str(out), "--quiet"]) == 0
    with browser_page() as (page, watched):
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert page.locator("h1").inner_text() == "Sweep page"
        rows = page.locator("table tbody tr")
        assert rows.count() == 4
        images = page.locator("img")
        assert images.count() == 2  # delta and mean_price heatmaps
        for k in range(images.count()):
            assert page.evaluate("img => img.complete && img.naturalWidth > 100", images.nth(k).element_handle())
        page.screenshot(path=str(artifacts() / "sweep_report.png"), full_page=True)
        assert watched.errors == [] and watched.failed == []
