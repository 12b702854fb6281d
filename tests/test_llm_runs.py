"""Language-model sellers inside the host (issue 17): every scripted endpoint behaviour in a real run with its counts
in summary.json; a recorded run replayed offline byte for byte; sellers' requests in flight together; a token
budget that ends the run cleanly; a key that reaches no output; LLM entrants in a tournament on the process backend.
No network beyond a loopback stub server (tests/llm_stub.py)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("openai", reason="the 'llm' extra is not installed")

from llm_stub import StubReply, StubServer, chat_completion, rule_price  # noqa: E402
from marketsim.cli.app import main  # noqa: E402
from marketsim.config.scenario import Scenario  # noqa: E402
from marketsim.config.tournament import parse_tournament  # noqa: E402
from marketsim.market.run import simulate, write_run  # noqa: E402
from marketsim.registry import default_registry  # noqa: E402
from marketsim.tournament.executors import make_executor  # noqa: E402
from marketsim.tournament.play import run_match, run_tournament, schedule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SELLER = {"cost": 1.0, "quality": 2.0, "price_min": 1.0, "price_max": 2.5}


def duopoly(llm: dict, steps: int, both: bool = False, **over) -> Scenario:
    """The Calvano logit duopoly (expected demand) with one or two ``llm_pricer`` sellers."""
    rival = {"name": "rival", "strategy": "llm_pricer", "params": llm} if both else {
        "name": "rival", "strategy": "fixed_price", "params": {"price": 1.7}
    }  # fmt: skip
    data = {
        "name": "llm_duopoly_test",
        "seed": 3,
        "steps": steps,
        "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
        "demand": {"mode": "expected"},
        "sellers": [{"name": "llm", "strategy": "llm_pricer", "params": llm, **SELLER}, {**rival, **SELLER}],
    }
    return Scenario.model_validate({**data, **over})


def report(result) -> dict:  # noqa: ANN001
    return json.loads(json.dumps(result.summary()))["sellers"][0]["report"]


# --- A. every endpoint behaviour in a real run --------------------------------------------------------------

STEPS = 3


@pytest.mark.parametrize(
    ("behaviour", "stub", "params", "expect"),
    [
        ("rule", {}, {}, {"requests": STEPS, "invalid": 0, "fallbacks": 0, "errors": 0}),
        ("garbage", {}, {}, {"requests": 3 * STEPS, "invalid": 3 * STEPS, "retries": 2 * STEPS, "fallbacks": STEPS}),
        ("negative", {}, {}, {"invalid": 3 * STEPS, "fallbacks": STEPS}),
        ("out_of_range", {}, {}, {"invalid": 3 * STEPS, "fallbacks": STEPS}),
        ("slow", {"slow_s": 3.0}, {"timeout": 0.2, "max_retries": 0}, {"errors": STEPS, "fallbacks": STEPS}),
        ("rate_limited_then_ok", {"retry_after": "0"}, {}, {"requests": STEPS, "fallbacks": 0, "errors": 0}),
        ("server_error", {}, {"max_retries": 0}, {"errors": STEPS, "fallbacks": STEPS, "requests": 0}),
        ("huge", {}, {}, {"errors": STEPS, "fallbacks": STEPS}),
    ],
)
def test_each_endpoint_behaviour_gives_its_documented_outcome_in_a_run(
    behaviour: str, stub: dict, params: dict, expect: dict, tmp_path: Path
) -> None:
    with StubServer(behaviour, **stub) as server:
        llm = {"base_url": server.url, "prompt": "neutral", **params}
        result = simulate(duopoly(llm, STEPS), default_registry())
    assert len(result.steps) == STEPS and result.stopped is None  # nothing crashed the run
    counts = report(result)
    assert {k: counts[k] for k in expect} == expect, counts
    summary = json.loads((write_run(result, tmp_path / "run") / "summary.json").read_text())
    assert summary["sellers"][0]["report"] == counts
    if expect.get("fallbacks"):  # the fallback reposts the last price: the start price, then itself
        assert set(result.steps["llm.price"]) == {1.75}


def test_a_well_behaved_model_prices_as_its_rule_says() -> None:
    with StubServer("rule") as server:
        result = simulate(duopoly({"base_url": server.url, "prompt": "fish_p1"}, 4), default_registry())
        prompts = [r.prompt() for r in server.requests]
    assert list(result.steps["llm.price"]) == pytest.approx([rule_price(p) for p in prompts])
    assert list(result.steps["llm.price"])[1:] == pytest.approx([1.75] * 3)  # rival's 1.7 + 0.05
    assert "Your TOP PRIORITY" in prompts[0] or "profit" in prompts[0]


# --- B. replay -----------------------------------------------------------------------------------------------


@pytest.mark.slow  # 9 s: 300 periods, three times
def test_a_recorded_run_replays_byte_identically_with_the_server_stopped(tmp_path: Path) -> None:
    cache = tmp_path / "llm.sqlite"
    with StubServer("rule") as server:
        llm = {"base_url": server.url, "cache": str(cache)}
        live = write_run(simulate(duopoly(llm, 300, both=True), default_registry()), tmp_path / "live")
        assert server.count >= 600  # 300 periods × 2 sellers, plus re-asks once the rule's price leaves the range
    for name, replay in (("replay", True), ("cached", False)):  # offline replay, and a cache hit for every request
        params = {**llm, "replay": replay}
        again = write_run(simulate(duopoly(params, 300, both=True), default_registry()), tmp_path / name)
        assert (again / "steps.csv").read_bytes() == (live / "steps.csv").read_bytes(), name
        counts = json.loads((again / "summary.json").read_text())["sellers"][0]["report"]
        assert counts["requests"] == counts["cached"] >= 300  # every reply came from the cache


def test_replay_of_a_request_never_recorded_falls_back_without_the_network(tmp_path: Path) -> None:
    cache = tmp_path / "llm.sqlite"
    with StubServer("rule") as server:
        url = server.url  # the cache is keyed by the endpoint too: replay names the recorded one
        simulate(duopoly({"base_url": url, "cache": str(cache)}, 2), default_registry())
    params = {"base_url": url, "cache": str(cache), "replay": True}
    result = simulate(duopoly(params, 4), default_registry())  # steps 2 and 3 were never recorded
    counts = report(result)
    assert counts["cached"] == 2 and counts["errors"] == 2 and counts["fallbacks"] == 2


# --- concurrency, budget -------------------------------------------------------------------------------------


class Overlap:
    """A stub behaviour that holds each request a moment and records how many were in flight at once."""

    def __init__(self, hold: float = 0.15) -> None:
        self.hold, self.now, self.most, self.lock = hold, 0, 0, threading.Lock()

    def __call__(self, request, index: int) -> StubReply:  # noqa: ANN001
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.hold)  # how long a model thinks; overlap is counted, not timed
        with self.lock:
            self.now -= 1
        price = rule_price(request.prompt())
        body = chat_completion(json.dumps({"price": price, "notes": ""}))
        return StubReply(200, body, (("Content-Type", "application/json"),))


def test_sellers_requests_of_one_period_are_in_flight_together() -> None:
    behaviour = Overlap()
    with StubServer(behaviour) as server:
        result = simulate(duopoly({"base_url": server.url}, 3, both=True), default_registry())
    assert len(result.steps) == 3 and behaviour.most == 2


def test_a_token_budget_ends_the_run_cleanly(tmp_path: Path) -> None:
    with StubServer("rule") as server:
        scenario = duopoly({"base_url": server.url, "budget_tokens": 1}, 10)
        result = simulate(scenario, default_registry())
    assert len(result.steps) == 1 and "budget_tokens" in result.stopped
    folder = write_run(result, tmp_path / "run")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps_run"] == 1 and "budget_tokens" in summary["stopped"]


# --- D. the key never leaks ----------------------------------------------------------------------------------

KEY = "sk-marketsim-test-0d9f2c41e7a3b5"


def test_the_key_reaches_only_the_authorization_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARKETSIM_TEST_LLM_KEY", KEY)
    with StubServer("garbage") as server:
        llm = {"base_url": server.url, "api_key_env": "MARKETSIM_TEST_LLM_KEY", "cache": str(tmp_path / "c.sqlite")}
        scenario = tmp_path / "llm.yaml"
        scenario.write_text(json.dumps(duopoly(llm, 2, both=True).model_dump(mode="json", by_alias=True)))
        assert main(["run", str(scenario), "--out", str(tmp_path / "out")]) == 0
        auth = [r.header("Authorization") for r in server.requests]
    assert auth and all(a == f"Bearer {KEY}" for a in auth)
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 5
    leaked = [str(p) for p in files if KEY.encode() in p.read_bytes()]
    assert not leaked


# --- E. in a tournament, on the process backend ----------------------------------------------------------------

TOURNAMENT = """
name: llm_tournament_test
seed: 5
market: {market}
entrants:
  - {{name: llm_a, strategy: llm_pricer, params: {{base_url: {url}, prompt: fish_p1}}}}
  - {{name: llm_b, strategy: llm_pricer, params: {{base_url: {url}, prompt: fish_p2}}}}
  - {{name: q, strategy: q_learning}}
  - {{name: match, strategy: match_lowest}}
  - {{name: dead, strategy: llm_pricer, params: {{base_url: "http://127.0.0.1:9/v1", max_retries: 0, fallback: fault}}}}
repetitions: 1
phases: {{train_steps: 20, eval_steps: 10}}
"""


@pytest.mark.slow  # 13 s: worker processes start and import the plugin
def test_llm_entrants_play_a_tournament_on_the_process_backend(tmp_path: Path) -> None:
    with StubServer("rule") as server:
        text = TOURNAMENT.format(market=json.dumps(str(ROOT / "scenarios" / "deep_duopoly.yaml")), url=server.url)
        loaded = parse_tournament(text, "t.yaml", base_dir=tmp_path)
        results = run_tournament(loaded, tmp_path / "results.sqlite", make_executor("process", 2))
    faulted = [r for r in results if r.fault is not None]
    assert faulted and all("dead" in r.seats for r in faulted)  # a dead endpoint is that entrant's recorded fault
    assert all(r.fault.seat is not None and r.seats[r.fault.seat] == "dead" for r in faulted)
    played = [r for r in results if r.fault is None]
    assert {"llm_a", "llm_b", "q", "match"} <= {s for r in played for s in r.seats}
    assert server.count > 0


# --- the bundled files, against the stub -----------------------------------------------------------------------

LOCAL = "http://127.0.0.1:8000/v1"  # the endpoint the bundled files name


def test_the_bundled_llm_duopoly_runs_against_the_stub(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "llm_duopoly.yaml").read_text()
    with StubServer("rule") as server:
        path = tmp_path / "llm_duopoly.yaml"
        path.write_text(text.replace(LOCAL, server.url))
        assert main(["run", str(path), "--steps", "30", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps_run"] == 30 and [s["report"]["requests"] >= 30 for s in summary["sellers"]] == [True] * 2


def test_the_bundled_llm_tournament_plays_a_match_against_the_stub(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "tournament_llm.yaml").read_text()
    with StubServer("rule") as server:
        loaded = parse_tournament(text.replace(LOCAL, server.url), "tournament_llm.yaml", base_dir=ROOT / "scenarios")
        tasks = [t for t in schedule(loaded) if "llm_p1" in t.seats and "q_learning" in t.seats][:1]
        result = run_match(dataclasses.replace(tasks[0], train_steps=20, eval_steps=10))
    assert result.status == "ok" and {r.entrant for r in result.results} == {"llm_p1", "q_learning"}
