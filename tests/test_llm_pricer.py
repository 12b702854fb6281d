"""The ``llm_pricer`` seller (issue 17, items 1, 2 and 6; acceptance E at unit level): the prompt it builds from
the market (numbers scaled, notes carried, a bounded history window), the strict parser, invalid answers retried
then handled by the fallback (and counted), template files validated, a state that restores the identical next
request, the contract kit against the loopback stub server, and an API key that never shows in any output."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import marketsim_llm
from llm_stub import StubServer
from marketsim import MarketInfo, Observation, Outcome
from marketsim.registry import load_registry
from marketsim.testing import assert_conforms
from marketsim_llm import LLMPricer, NoValidPriceError, PromptTemplateError
from marketsim_llm.client import ChatReply, LLMServerError, Usage
from marketsim_llm.parse import InvalidAnswer, parse_answer, valid_price
from marketsim_llm.prompts import MAX_TEMPLATE_BYTES, load_template

#: The tests that talk to the stub server need the real client (the 'llm' extra); the rest run without it.
needs_openai = pytest.mark.skipif(importlib.util.find_spec("openai") is None, reason="the 'llm' extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-K3Y-9f8e7d6c5b4a-never-print-me"
GOOD = '{"price": 2.0, "notes": "plan: hold 2"}'


class FakeClient:
    """Stands in for ChatClient: answers from a script (the last answer repeats) and records every request."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers, self.requests, self.usage = list(answers), [], Usage()

    def complete(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return ChatReply(answer, prompt_tokens=10, completion_tokens=5, latency_s=0.0, cached=False, retries=0)


def market(n_sellers: int = 2) -> MarketInfo:
    return MarketInfo(
        index=0, n_sellers=n_sellers, costs=(1.0,) * n_sellers, price_min=1.0, price_max=2.5,
        nash_prices=(1.47,) * n_sellers, monopoly_prices=(1.92,) * n_sellers,
        expected_profit=no_profit,
    )  # fmt: skip


def no_profit(prices: np.ndarray) -> np.ndarray:
    return np.zeros(len(prices))


def obs(step: int, own: float = 1.5, rivals: tuple[float, ...] = (1.6,), units: float = 0.4, profit: float = 0.2):
    return Observation(
        step=step, own_price=own, cost=1.0, last_units=units, last_profit=profit, inventory=math.inf,
        capacity=math.inf, competitor_prices=rivals, price_min=1.0, price_max=2.5,
    )  # fmt: skip


def pricer(monkeypatch, client: FakeClient, seed: int = 0, **params) -> LLMPricer:
    """An llm_pricer set up in a duopoly, talking to ``client``."""
    monkeypatch.setattr(LLMPricer, "make_client", lambda self: client)
    seller = LLMPricer(**params)
    seller.setup(market(), np.random.default_rng(seed))
    return seller


def prompt_of(request) -> str:
    return request.messages[0][1]


# --- the plugin -------------------------------------------------------------------------------------------------


def test_registers_and_imports_without_openai():
    registry = load_registry(plugins=[("llm", marketsim_llm)], entry_points=False)
    assert registry.get("llm_pricer").cls is LLMPricer
    script = (
        "import sys; sys.modules['openai'] = None\n"  # `import openai` now fails as if it were not installed
        "import numpy as np, marketsim_llm\n"
        "from marketsim.exceptions import MissingExtraError\n"
        "from test_llm_pricer import market\n"
        "seller = marketsim_llm.LLMPricer(prompt='neutral')\n"
        "try:\n    seller.setup(market(), np.random.default_rng(0))\n"
        "except MissingExtraError as exc:\n    print('missing extra:', exc)\n"
    )
    paths = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "tests")]
    env = {"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "missing extra:" in done.stdout and "pip install -e '.[llm]'" in done.stdout


# --- the prompt -------------------------------------------------------------------------------------------------


def test_prompt_carries_scaled_market_numbers_notes_and_a_bounded_history(monkeypatch):
    client = FakeClient('{"price": 5.0, "notes": "plan A: test 5.0"}', '{"price": 6.0, "notes": "plan B"}')
    seller = pricer(monkeypatch, client, price_scale=3.2, history=2, prompt="fish_p2")
    prices = [seller.price(obs(0))]
    for t in range(1, 5):
        prices.append(seller.price(obs(t, own=1.0 + t / 10, rivals=(1.5 + t / 10,), units=0.5 * t, profit=0.1 * t)))
    assert prices[0] == pytest.approx(5.0 / 3.2) and prices[1] == pytest.approx(6.0 / 3.2)
    first, second, last = (prompt_of(r) for r in (client.requests[0], client.requests[1], client.requests[-1]))
    assert "(no rounds yet)" in first and "(empty)" in first and "Round" not in first
    assert "- The cost I pay to produce each unit is 3.200." in first  # cost 1.0 x alpha 3.2
    assert "no less than 3.200 and no more than 8.000 per unit" in first  # the bounds 1.0 and 2.5, scaled
    assert "including possibly risky or aggressive options" in first  # prefix P2
    assert "Prompt prefix" not in first  # the template's comment lines are not sent
    assert "plan A: test 5.0" in second and "plan B" not in second  # last period's notes, carried
    assert "Round 1:\n- My price: 3.520\n- Competitor's price: 5.120\n- My quantity sold: 0.5000" in second
    assert "- My profit earned: 0.3200" in second  # profit 0.1 x 3.2 (quantities are not scaled)
    assert "Round 2:" not in last and "Round 3:" in last and "Round 4:" in last  # history=2: the last two rounds
    assert "the last 2 rounds" in last and "plan B" in last
    assert '"price"' in last and "at most 2000 characters are kept" in last  # the answer format, appended


def test_request_asks_for_structured_output_with_a_seed_drawn_from_the_generator(monkeypatch):
    a, b, c, d = FakeClient(GOOD), FakeClient(GOOD), FakeClient(GOOD), FakeClient(GOOD)
    pricer(monkeypatch, a, seed=5, max_tokens=99, temperature=0.7).price(obs(0))
    pricer(monkeypatch, b, seed=5, max_tokens=99, temperature=0.7).price(obs(0))
    request = a.requests[0]
    assert request == b.requests[0]  # the same generator: the same request, seed included
    assert isinstance(request.seed, int) and request.max_tokens == 99 and request.temperature == 0.7
    assert set(request.json_schema["required"]) == {"price", "notes"}
    pricer(monkeypatch, c, seed=6, max_tokens=99, temperature=0.7).price(obs(0))
    assert c.requests[0].seed != request.seed  # another generator, another seed
    monkeypatch.setattr(LLMPricer, "make_client", lambda self: d)
    fixed = LLMPricer(seed=1234)
    fixed.setup(market(), np.random.default_rng(99))
    fixed.price(obs(0))
    assert d.requests[0].seed == 1234  # a given seed is used as is


def test_three_sellers_and_a_monopoly_render_their_rivals(monkeypatch):
    client = FakeClient(GOOD)
    seller = pricer(monkeypatch, client, prompt="neutral")
    seller.price(obs(1, rivals=(1.25, 2.0)))
    seller.price(obs(2, rivals=()))
    assert "- Competitors' prices: 1.250, 2.00" in prompt_of(client.requests[0])
    assert "- Number of competitors: 2" in prompt_of(client.requests[0])
    monopoly = prompt_of(client.requests[1])
    assert "Round 2:\n- My price: 1.500\n- My quantity sold" in monopoly and "- Number of competitors: 0" in monopoly


def test_learn_and_observations_record_the_same_history(monkeypatch):
    with_learn, without = FakeClient(GOOD), FakeClient(GOOD)
    a, b = pricer(monkeypatch, with_learn), pricer(monkeypatch, without)
    current = obs(0)
    for t in range(4):
        a.price(current)
        b.price(current)
        following = obs(t + 1, own=1.1 + t / 10, rivals=(1.3 + t / 10,), units=0.3 + t, profit=0.05 * t)
        a.learn(Outcome(t, following.own_price, following.last_units, 0.0, 0.0, 0.0, following.last_profit,
                        math.inf, following.competitor_prices, following))  # fmt: skip
        current = following
    assert [prompt_of(r) for r in with_learn.requests] == [prompt_of(r) for r in without.requests]
    assert a.state_dict()["history"][:3] == b.state_dict()["history"]  # b records period 3 when it next prices
    assert "Round 3:" in prompt_of(with_learn.requests[-1])


# --- strict parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "price", "notes"),
    [
        ('{"price": 1.85, "notes": "raise slowly"}', 1.85, "raise slowly"),
        ('  {"price": 2, "notes": ""}\n', 2.0, ""),
        ('{"price": 1.5}', 1.5, ""),
        ('Here is my answer:\n```json\n{"price": 1.7, "notes": "n"}\n```\nGood luck.', 1.7, "n"),
        ('```\n{"price": 1.6, "notes": "plain fence"}\n```', 1.6, "plain fence"),
        ("1.75", 1.75, ""),
        ("  2e0 ", 2.0, ""),
        ("-1", -1.0, ""),  # parsed; refused as a price by valid_price
    ],
)
def test_parser_accepts_json_one_fenced_object_or_a_lone_number(text, price, notes):
    answer = parse_answer(text)
    assert (answer.price, answer.notes) == (price, notes)


@pytest.mark.parametrize(
    "text",
    [
        "I would set the price at 1.85 this round.",  # prose with a number: never guessed
        "1.85 is my price",
        "Price: 1.85",
        "",
        "   ",
        "NaN",
        "Infinity",
        "1e999",  # overflows to infinity
        '{"price": NaN, "notes": ""}',
        '{"price": Infinity}',
        '{"price": "1.85", "notes": ""}',  # a string is not a number
        '{"price": true}',
        '{"notes": "no price"}',
        '{"price": 1.5, "notes": 7}',
        "[1.5]",
        '{"price": 1' + "0" * 400 + "}",  # too large for a float
        '```json\n{"price": 1.5}\n```\n```json\n{"price": 1.6}\n```',  # two fenced blocks: ambiguous
        "```\n1.5\n```",  # a fenced block that is not a JSON object
        "x" * 300_000,
    ],
)
def test_parser_refuses_anything_else(text):
    with pytest.raises(InvalidAnswer):
        parse_answer(text)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1.0, "positive"),
        (0.0, "positive"),
        (1e6, "between"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (2.9, "between"),
    ],
)
def test_valid_price_refuses_non_positive_non_finite_and_out_of_range(value, problem):
    with pytest.raises(InvalidAnswer, match=problem):
        valid_price(value, 1.0, 2.5)
    assert valid_price(2.5, 1.0, 2.5) == 2.5


# --- retries and fallbacks --------------------------------------------------------------------------------------


def test_an_invalid_answer_is_asked_again_with_the_reason(monkeypatch):
    client = FakeClient("I'd go with 1.9.", '{"price": 6.4, "notes": "second try"}')
    seller = pricer(monkeypatch, client, price_scale=3.2)
    assert seller.price(obs(0)) == pytest.approx(2.0)
    assert len(client.requests) == 2
    retry = client.requests[1].messages
    assert retry[0] == client.requests[0].messages[0] and retry[-1][0] == "user"
    assert "could not be used: the answer is not the JSON object asked for" in retry[-1][1]
    assert seller.notes == "second try"
    assert {k: seller.counts[k] for k in ("requests", "invalid", "retries", "fallbacks")} == {
        "requests": 2,
        "invalid": 1,
        "retries": 1,
        "fallbacks": 0,
    }


@pytest.mark.parametrize(("fallback", "expected"), [("last_price", 1.37), ("fixed:1.7", 1.7)])
@pytest.mark.parametrize("answer", ['{"price": -1, "notes": "neg"}', '{"price": 1e6, "notes": "high"}', "prose"])
def test_three_invalid_answers_then_the_fallback(monkeypatch, fallback, expected, answer):
    client = FakeClient(answer)
    seller = pricer(monkeypatch, client, fallback=fallback, notes_chars=50)
    seller.notes = "kept"
    assert seller.price(obs(3, own=1.37)) == expected
    assert len(client.requests) == 3  # the first answer and two retries
    assert {k: seller.counts[k] for k in ("requests", "invalid", "retries", "fallbacks", "errors")} == {
        "requests": 3, "invalid": 3, "retries": 2, "fallbacks": 1, "errors": 0,
    }  # fmt: skip
    assert seller.notes == "kept"  # an invalid answer's notes are not kept


def test_fallback_fault_raises_and_an_endpoint_failure_skips_the_retries(monkeypatch):
    seller = pricer(monkeypatch, FakeClient("prose"), fallback="fault")
    with pytest.raises(NoValidPriceError, match="no valid price in 3 answers"):
        seller.price(obs(0))
    client = FakeClient(LLMServerError("http://127.0.0.1:1/v1 answered 500: broken", retries=3))
    failing = pricer(monkeypatch, client, fallback="fault")
    with pytest.raises(NoValidPriceError, match="LLMServerError"):
        failing.price(obs(0))
    assert len(client.requests) == 1 and failing.counts["errors"] == 1 and failing.counts["retries"] == 0
    err = pickle.loads(pickle.dumps(NoValidPriceError("x")))  # crosses process boundaries in tournaments
    assert isinstance(err, NoValidPriceError)
    lenient = pricer(monkeypatch, FakeClient(LLMServerError("down")), fallback="last_price")
    assert lenient.price(obs(2, own=1.44)) == 1.44 and lenient.counts["fallbacks"] == 1


def test_notes_are_capped_and_stripped_of_control_characters(monkeypatch):
    long = json.dumps({"price": 2.0, "notes": "a\x00b\x1b[31m" + "z" * 500})
    seller = pricer(monkeypatch, FakeClient(long), notes_chars=20)
    seller.price(obs(0))
    assert seller.notes == "ab[31m" + "z" * 14


# --- templates and parameters -----------------------------------------------------------------------------------


def test_bundled_templates_load_and_a_custom_file_is_used(tmp_path, monkeypatch):
    for name in ("fish_p1", "fish_p2", "neutral"):
        assert "${history}" in load_template(name).text
    custom = tmp_path / "mine.txt"
    custom.write_text("# comment\nCost $$ ${cost}, a $5 coupon. Notes: ${notes}\n${history}", encoding="utf-8")
    client = FakeClient(GOOD)
    pricer(monkeypatch, client, prompt=str(custom), price_scale=2.0).price(obs(0))
    assert prompt_of(client.requests[0]).startswith("Cost $ 2.000, a $5 coupon. Notes: (empty)\n(no rounds yet)")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "neither a bundled template"),
        (b"\xff\xfe ${cost} ${notes} ${history}", "not UTF-8"),
        (b"x" * (MAX_TEMPLATE_BYTES + 1), "larger than the 65,536 bytes allowed"),
        (b"${cost} ${notes} ${history} ${secret}", "unknown placeholders \\['secret'\\]"),
        (b"${cost} ${history}", "required placeholders missing: \\['notes'\\]"),
        (b"${cost} ${notes} ${history} ${price", "is not closed"),
        (b"${cost.__class__} ${notes} ${history}", "unknown placeholders"),
    ],
)
def test_template_files_are_validated_at_construction(tmp_path, content, problem):
    path = tmp_path / "template.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PromptTemplateError, match=problem):
        LLMPricer(prompt=str(path))
    with pytest.raises(PromptTemplateError, match="not a file"):
        LLMPricer(prompt=str(tmp_path))


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"fallback": "zero"}, "fallback must be"),
        ({"fallback": "fixed:-2"}, "fallback must be"),
        ({"price_scale": 0}, "price_scale"),
        ({"history": 0}, "history"),
        ({"temperature": -1}, "temperature"),
        ({"notes_chars": -1}, "notes_chars"),
        ({"base_url": "ftp://host"}, "base_url"),
    ],
)
def test_bad_parameters_are_refused(params, problem):
    with pytest.raises(ValueError, match=problem):
        LLMPricer(**params)


def test_a_key_given_where_a_name_belongs_is_refused_without_echo():
    for params in ({"api_key_env": KEY}, {"base_url": f"http://user:{KEY}@127.0.0.1:8000/v1"}):
        with pytest.raises(ValueError) as info:
            LLMPricer(**params)
        assert KEY not in str(info.value) and "K3Y" not in str(info.value)


# --- state ------------------------------------------------------------------------------------------------------


def test_a_restored_seller_sends_the_identical_next_request(monkeypatch):
    client = FakeClient(*(json.dumps({"price": 1.5 + t / 100, "notes": f"notes {t}"}) for t in range(6)))
    seller = pricer(monkeypatch, client, seed=3, history=3)
    for t in range(4):
        seller.price(obs(t, own=1.2 + t / 10))
    state = seller.state_dict()
    assert json.loads(json.dumps(state)) == state  # plain data
    assert state["notes"] == "notes 3" and len(state["history"]) == 3 and state["counts"]["requests"] == 4
    twin_client = FakeClient(*client.answers)
    twin = pricer(monkeypatch, twin_client, seed=777, history=3)  # another generator: the seed comes from the state
    twin.load_state_dict(copy.deepcopy(state))
    assert twin.state_dict() == state
    seller.price(obs(4, own=1.6))
    twin.price(obs(4, own=1.6))
    assert twin_client.requests[-1] == client.requests[-1]
    with pytest.raises(ValueError, match="state must have keys"):
        twin.load_state_dict({"notes": ""})


def test_a_copy_drops_the_client_and_rebuilds_it(monkeypatch):
    client = FakeClient(GOOD)
    seller = pricer(monkeypatch, client)
    seller.price(obs(0))
    clone = copy.deepcopy(seller)
    assert clone._client is None and pickle.loads(pickle.dumps(seller))._client is None
    clone.price(obs(1))  # make_client (patched) hands the clone a client again
    assert len(client.requests) == 2


# --- against the loopback stub server ---------------------------------------------------------------------------


def stub_params(stub: StubServer, **params) -> dict:
    return {"base_url": stub.url, "model": "stub", "timeout": 10.0, "max_retries": 0, **params}


@needs_openai
def test_conforms_against_the_stub_server():
    with StubServer("rule") as stub:
        assert_conforms(LLMPricer, stub_params(stub, price_scale=3.2), steps=12)
        assert stub.count > 0
        body = stub.requests[-1].json()
        assert body["response_format"]["type"] == "json_schema" and isinstance(body["seed"], int)


@needs_openai
@pytest.mark.parametrize(
    ("behaviour", "counted"),
    [("garbage", "invalid"), ("negative", "invalid"), ("out_of_range", "invalid"), ("server_error", "errors")],
)
def test_bad_models_fall_back_and_are_counted(behaviour, counted):
    with StubServer(behaviour) as stub:
        seller = LLMPricer(**stub_params(stub, fallback="fixed:1.8"))
        seller.setup(market(), np.random.default_rng(0))
        assert [seller.price(obs(t)) for t in range(2)] == [1.8, 1.8]
        assert seller.counts["fallbacks"] == 2 and seller.counts[counted] >= 2
        assert stub.count == (6 if counted == "invalid" else 2)


@needs_openai
def test_the_key_never_leaks(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LLM_TEST_KEY", KEY)
    cache = tmp_path / "cache.sqlite"
    outputs = []
    for behaviour in ("rule", "garbage", "server_error", "unauthorized"):
        with StubServer(behaviour) as stub:
            seller = LLMPricer(**stub_params(stub, api_key_env="LLM_TEST_KEY", fallback="fault", cache=str(cache)))
            seller.setup(market(), np.random.default_rng(0))
            try:
                outputs.append(str(seller.price(obs(0))))
            except NoValidPriceError as exc:
                outputs += [str(exc), repr(exc), str(pickle.dumps(exc))]
            outputs += [repr(seller), json.dumps(seller.state_dict()), str(seller.stats()), str(pickle.dumps(seller))]
            assert stub.requests[0].header("Authorization") == f"Bearer {KEY}"  # sent, to the server only
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, cache.read_bytes().decode("latin-1")]
    assert len(outputs) > 10 and not any(KEY in text or "K3Y" in text for text in outputs)
