"""The LLM sellers' chat client, its reply cache and the loopback stub server (issue 17, items 1, 3, 4, 6 and
acceptance A, B and D at client level): every scripted server behaviour gives its documented outcome (a reply, or
which ``LLMError`` after how many retries and which recorded back-off sleeps, ``Retry-After`` honoured); the cache
replays byte-identically with the server gone; the key reaches only the Authorization header; the usage counters
add up, also from eight threads at once. No network beyond 127.0.0.1, no real key, no real waiting."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llm_stub import StubReply, StubServer, chat_completion, rule_price
from marketsim.exceptions import MissingExtraError
from marketsim_llm.cache import RequestCache
from marketsim_llm.client import (
    ChatClient,
    ChatReply,
    ChatRequest,
    LLMBadResponse,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMResponseTooLarge,
    LLMServerError,
    LLMTimeout,
    _capped,
    _TooLarge,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("openai") is None, reason="needs the llm extra (openai)")

KEY_ENV = "MARKETSIM_TEST_LLM_KEY"
CANARY = "sk-test-CANARY-7f3a9c41e2b84d0f"  # recognisable, and no real key
SCHEMA = {"type": "object", "properties": {"price": {"type": "number"}, "notes": {"type": "string"}}}


def request(prompt: str = "Rival prices: 1.5, 1.62. Your cost: 1.0", **kw: object) -> ChatRequest:
    """A pricing-style request whose last rival price (1.62) the stub's rule reads."""
    return ChatRequest("stub-model", (("system", "You price a product."), ("user", prompt)), **kw)  # type: ignore[arg-type]


def client(url: str, sleeps: list[float], **kw: object) -> ChatClient:
    """A client that records its back-off sleeps instead of sleeping."""
    return ChatClient(url, kw.pop("api_key_env", None), sleep=sleeps.append, **kw)  # type: ignore[arg-type]


# --- each scripted behaviour gives its documented outcome ---------------------------------------------------------


def test_a_good_model_answers_its_rule_and_the_request_carries_every_field() -> None:
    sleeps: list[float] = []
    with StubServer("rule") as stub:
        reply = client(stub.url, sleeps).complete(request(seed=7, max_tokens=64, temperature=0.3, json_schema=SCHEMA))
    assert json.loads(reply.text)["price"] == pytest.approx(1.62 + 0.05)
    assert (reply.prompt_tokens, reply.completion_tokens, reply.cached, reply.retries) == (11, 7, False, 0)
    assert sleeps == [] and stub.count == 1
    sent = stub.requests[0]
    assert sent.path == "/v1/chat/completions"
    body = sent.json()
    assert body["model"] == "stub-model" and body["seed"] == 7 and body["max_tokens"] == 64
    assert body["temperature"] == 0.3
    assert body["messages"][-1] == {"role": "user", "content": "Rival prices: 1.5, 1.62. Your cost: 1.0"}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }


def test_a_full_json_schema_object_is_passed_as_is_and_no_schema_means_free_text() -> None:
    named = {"name": "pricing", "schema": SCHEMA, "strict": True}
    assert request(json_schema=named).response_format() == {"type": "json_schema", "json_schema": named}
    with StubServer("rule") as stub:
        client(stub.url, []).complete(request())
    assert "response_format" not in stub.requests[0].json() and "seed" not in stub.requests[0].json()


@pytest.mark.parametrize(
    ("behaviour", "text"),
    [
        ("garbage", "Prices are a social construct; I would rather not say."),
        ("negative", '{"price": -1.0, "notes": "negative"}'),
        ("out_of_range", '{"price": 1000000.0, "notes": "far too high"}'),
    ],
)
def test_bad_answers_come_back_as_text_for_the_strategy_to_judge(behaviour: str, text: str) -> None:
    """Judging a price is the strategy's job: the client hands back any well-formed completion, once."""
    sleeps: list[float] = []
    with StubServer(behaviour) as stub:
        reply = client(stub.url, sleeps).complete(request())
    assert reply.text == text and reply.retries == 0 and sleeps == [] and stub.count == 1


def test_a_slow_server_times_out_after_the_retries_with_exponential_back_off() -> None:
    sleeps: list[float] = []
    with StubServer("slow", slow_s=30.0) as stub:  # cut short when the stub stops: the test never waits 30 s
        chat = client(stub.url, sleeps, timeout=0.25, max_retries=2, backoff=0.5)
        with pytest.raises(LLMTimeout, match="within 0.25 s") as info:
            chat.complete(request())
    assert info.value.retries == 2 and sleeps == [0.5, 1.0] and stub.count == 3
    assert chat.usage.as_dict() | {"latency_s": 0} == {
        "requests": 1,
        "cached": 0,
        "failures": 1,
        "retries": 2,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_s": 0,
    }


def test_rate_limits_are_retried_after_the_servers_retry_after_then_succeed() -> None:
    sleeps: list[float] = []
    with StubServer("rate_limited_then_ok", rate_limited=2, retry_after="1") as stub:
        reply = client(stub.url, sleeps, max_retries=3, backoff=0.125).complete(request())
    assert sleeps == [1.0, 1.0]  # Retry-After, not the back-off's 0.125 and 0.25
    assert reply.retries == 2 and stub.count == 3 and json.loads(reply.text)["price"] == pytest.approx(1.67)


def test_retry_after_is_capped_and_persistent_rate_limits_raise() -> None:
    sleeps: list[float] = []
    with StubServer("rate_limited_then_ok", rate_limited=100, retry_after="120") as stub:
        with pytest.raises(LLMRateLimited, match="429") as info:
            client(stub.url, sleeps, max_retries=2, max_backoff=5.0).complete(request())
    assert sleeps == [5.0, 5.0] and info.value.retries == 2 and stub.count == 3


def test_server_errors_back_off_exponentially_up_to_the_cap_then_raise() -> None:
    sleeps: list[float] = []
    with StubServer("server_error") as stub:
        with pytest.raises(LLMServerError, match="500: the stub is broken") as info:
            client(stub.url, sleeps, max_retries=4, backoff=1.0, max_backoff=3.0).complete(request())
    assert sleeps == [1.0, 2.0, 3.0, 3.0] and info.value.retries == 4 and stub.count == 5


@pytest.mark.parametrize("behaviour", ["huge", "huge_chunked"])
def test_a_10_mb_body_is_refused_and_not_retried(behaviour: str) -> None:
    """Announced (Content-Length) or not (chunked), a body over the cap raises, once."""
    sleeps: list[float] = []
    with StubServer(behaviour) as stub:
        with pytest.raises(LLMResponseTooLarge, match="over 1000000 bytes") as info:
            client(stub.url, sleeps, max_response_bytes=1_000_000).complete(request())
    assert info.value.retries == 0 and sleeps == [] and stub.count == 1


def test_the_cap_stops_reading_at_the_limit() -> None:
    """The body is never read whole: the capped stream pulls at most one chunk past the limit."""
    pulled = 0

    def endless() -> object:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(_TooLarge):
        for _ in _capped(endless(), 10_000):  # type: ignore[arg-type]
            pass
    assert pulled == 11
    assert b"".join(_capped(iter([b"ab", b"cd"]), 4)) == b"abcd"


@pytest.mark.parametrize(
    ("behaviour", "message"), [("unauthorized", "401: bad key"), ("malformed", "unreadable response")]
)
def test_a_client_error_or_a_malformed_body_fails_at_once(behaviour: str, message: str) -> None:
    sleeps: list[float] = []
    with StubServer(behaviour) as stub:
        with pytest.raises(LLMBadResponse, match=message) as info:
            client(stub.url, sleeps).complete(request())
    assert info.value.retries == 0 and sleeps == [] and stub.count == 1


def test_a_dead_endpoint_is_a_connection_error_after_the_retries() -> None:
    with StubServer("rule") as stub:
        url = stub.url
    sleeps: list[float] = []
    with pytest.raises(LLMConnectionError, match="cannot reach") as info:
        client(url, sleeps, max_retries=2, backoff=0.25).complete(request())
    assert info.value.retries == 2 and sleeps == [0.25, 0.5]


def test_a_completion_without_message_text_is_a_bad_response() -> None:
    def no_text(req: object, index: int) -> StubReply:
        body = json.loads(chat_completion("x"))
        body["choices"][0]["message"]["content"] = None
        return StubReply(200, json.dumps(body).encode(), (("Content-Type", "application/json"),))

    with StubServer(no_text) as stub:
        with pytest.raises(LLMBadResponse, match="no message text"):
            client(stub.url, []).complete(request())


def test_the_stub_bounds_its_request_count() -> None:
    with StubServer("rule", max_requests=1) as stub:
        chat = client(stub.url, [], max_retries=1)
        chat.complete(request())
        with pytest.raises(LLMServerError, match="limit reached"):
            chat.complete(request("another"))
    assert stub.count == 3


def test_the_rule_reads_the_last_rival_price() -> None:
    assert rule_price("own price 2.0\ncompetitor price: 1.40\nrival price 1.7") == pytest.approx(1.75)
    assert rule_price("Competitor's price: 1.7, my quantity: 3.0") == pytest.approx(1.75)
    assert rule_price("Rival prices: 1.5, 1.62.") == pytest.approx(1.67)
    assert rule_price("Allowed prices: from 1.0 to 2.5\nno rounds yet") == pytest.approx(1.75)  # the middle
    assert rule_price("I can charge no less than $1 and no more than $3") == pytest.approx(2.0)
    assert rule_price("none named, numbers 3 and 4.5") == pytest.approx(4.5)
    assert rule_price("nothing") == 1.0


# --- the cache: keys, replay, offline --------------------------------------------------------------------------


def test_the_key_covers_every_field_and_the_endpoint() -> None:
    base = request(seed=1, json_schema=SCHEMA)
    url = "http://127.0.0.1:1/v1"
    variants = [
        ChatRequest("other", base.messages, seed=1, json_schema=SCHEMA),
        request("Rival prices: 1.5, 1.63. Your cost: 1.0", seed=1, json_schema=SCHEMA),
        request(seed=2, json_schema=SCHEMA),
        request(seed=1, json_schema=SCHEMA, temperature=0.5),
        request(seed=1, json_schema=SCHEMA, max_tokens=100),
        request(seed=1),
        request(seed=1, json_schema={**SCHEMA, "required": ["price"]}),
    ]
    keys = {base.key(url)} | {v.key(url) for v in variants} | {base.key("http://127.0.0.1:2/v1")}
    assert len(keys) == len(variants) + 2
    assert base.key(url) == request(seed=1, json_schema=dict(SCHEMA)).key(url + "/")
    assert len(base.key(url)) == 64 and int(base.key(url), 16) >= 0
    with pytest.raises(ValueError, match="roles"):
        ChatRequest("m", (("robot", "hi"),))


TRICKY = 'caf\u00e9 \U0001f600 \ud800 \r\n  {"price": 1.5}  \x00 '  # non-ASCII, a lone surrogate, CR LF, NUL, spaces


def _tricky(req: object, index: int) -> StubReply:
    return StubReply(200, chat_completion(TRICKY + str(index)), (("Content-Type", "application/json"),))


def test_the_cache_replays_byte_identically_with_the_server_stopped(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite"
    requests = [request(f"rival price {p}") for p in (1.0, 1.1, 1.2)]
    with StubServer(_tricky) as stub, RequestCache(path) as cache:
        chat = client(stub.url, [], cache=cache)
        live = [chat.complete(r) for r in requests]
        again = chat.complete(requests[0])  # a repeat is a hit: the server is not asked twice
        url = stub.url
    assert stub.count == 3 and again.cached and again.text == live[0].text
    assert [r.text for r in live] == [TRICKY + str(i) for i in range(3)]

    with RequestCache(path, offline=True) as replay_cache:
        replay = client(url, [], cache=replay_cache)
        replayed = [replay.complete(r) for r in requests]
        assert [r.text.encode("utf-8", "surrogatepass") for r in replayed] == [
            r.text.encode("utf-8", "surrogatepass") for r in live
        ]
        assert [(r.prompt_tokens, r.completion_tokens) for r in replayed] == [(11, 7)] * 3
        assert all(r.cached and r.latency_s == 0.0 and r.retries == 0 for r in replayed)
        with pytest.raises(LLMConnectionError, match="not in the cache") as info:
            replay.complete(request("never asked"))
        assert info.value.retries == 0
        assert replay.usage.as_dict() | {"latency_s": 0} == {
            "requests": 4,
            "cached": 3,
            "failures": 1,
            "retries": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "latency_s": 0,
        }
    with RequestCache(path) as online_cache:  # not offline, server gone: hits still need no network
        assert client(url, [], cache=online_cache).complete(requests[2]).text == live[2].text


def test_offline_replay_needs_an_existing_cache(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="offline replay"):
        RequestCache(tmp_path / "missing.sqlite", offline=True)


def test_the_first_stored_reply_wins_and_the_cache_pickles(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    first = cache.put("k", ChatReply("first", 1, 2, 0.5, False, 1))
    second = cache.put("k", ChatReply("second", 3, 4, 0.5, False, 0))
    assert first == second == ChatReply("first", 1, 2, 0.0, True, 0)
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.get("k") == first and len(copy) == 1 and copy.get("other") is None


_WRITER = """
import json, sys
from marketsim_llm.cache import RequestCache
from marketsim_llm.client import ChatReply
cache = RequestCache(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
got = {f"k{i}": cache.put(f"k{i}", ChatReply(sys.argv[2], 1, 1, 0.0, False, 0)).text for i in range(200)}
print(json.dumps(got))
"""


@pytest.mark.slow  # 5 s: two fresh interpreters
def test_processes_share_one_cache_and_agree_on_every_reply(tmp_path: Path) -> None:
    """Two processes write the same 200 keys at once: no error, and both get back the row that won."""
    path = tmp_path / "shared.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("A", "B")
    ]
    assert [p.stdout.readline() for p in procs] == ["ready\n", "ready\n"]  # type: ignore[union-attr]
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert results[0] == results[1] and len(results[0]) == 200
    cache = RequestCache(path)
    assert len(cache) == 200 and all(cache.get(k).text == v for k, v in results[0].items())  # type: ignore[union-attr]


# --- the key never leaks -----------------------------------------------------------------------------------------


def _echo_auth(req: object, index: int) -> StubReply:
    """A hostile server: echoes the Authorization header it got in a 400's message."""
    auth = req.header("authorization")  # type: ignore[attr-defined]
    body = json.dumps({"error": {"message": f"invalid credentials {auth}"}}).encode()
    return StubReply(400, body, (("Content-Type", "application/json"),))


def test_the_key_goes_only_into_the_authorization_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, CANARY)
    path = tmp_path / "replies.sqlite"
    texts: list[str] = []
    with StubServer("rule") as stub, RequestCache(path) as cache:
        chat = client(stub.url, [], api_key_env=KEY_ENV, cache=cache)
        chat.complete(request())
        texts += [repr(chat), repr(cache), repr(chat.usage), json.dumps(chat.usage.as_dict())]
    sent = stub.requests[0]
    assert sent.header("authorization") == f"Bearer {CANARY}"
    assert not [name for name, value in sent.headers if CANARY in value and name.lower() != "authorization"]
    assert CANARY.encode() not in sent.body
    for behaviour in ("server_error", _echo_auth):
        with StubServer(behaviour) as stub:
            with pytest.raises(LLMError) as info:
                client(stub.url, [], api_key_env=KEY_ENV, max_retries=1).complete(request())
        texts += [str(info.value), repr(info.value)]
    assert "invalid credentials Bearer ***" in texts[-2]
    pickled = pickle.dumps(chat)  # settings only: the copy reads the key from the environment again
    assert CANARY.encode() not in pickled and repr(pickle.loads(pickled)) == repr(chat)
    files = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    assert files and not [b for b in files if CANARY.encode() in b]
    assert not [t for t in texts if CANARY in t]


def test_a_local_server_gets_a_placeholder_never_the_environments_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    with StubServer("rule") as stub:
        client(stub.url, []).complete(request())
    assert stub.requests[0].header("authorization") == "Bearer unused"
    assert not [v for _, v in stub.requests[0].headers if CANARY in v]


def test_an_unset_key_variable_is_named_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(LLMError, match=f"{KEY_ENV} \\(api_key_env\\) is not set"):
        ChatClient("http://127.0.0.1:1/v1", KEY_ENV)


def test_without_openai_the_error_names_the_llm_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[llm\]'"):
        ChatClient("http://127.0.0.1:1/v1", None)


# --- usage and threads ------------------------------------------------------------------------------------------


def test_usage_adds_up_over_hits_misses_and_failures(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with StubServer("rate_limited_then_ok", rate_limited=1) as stub, RequestCache(tmp_path / "c.sqlite") as cache:
        chat = client(stub.url, sleeps, cache=cache, max_retries=2)
        replies = [chat.complete(request("rival 1.0")), chat.complete(request("rival 2.0"))]
        replies.append(chat.complete(request("rival 1.0")))
    with pytest.raises(LLMConnectionError):
        chat.complete(request("rival 3.0"))  # the stub is gone: 2 retries, then a failure
    usage = chat.usage.as_dict()
    assert [r.retries for r in replies] == [1, 0, 0] and [r.cached for r in replies] == [False, False, True]
    assert {k: v for k, v in usage.items() if k != "latency_s"} == {
        "requests": 4,
        "cached": 1,
        "failures": 1,
        "retries": 3,
        "prompt_tokens": 22,
        "completion_tokens": 14,
    }
    assert usage["latency_s"] == pytest.approx(replies[0].latency_s + replies[1].latency_s)
    assert pickle.loads(pickle.dumps(chat.usage)).as_dict() == usage
    error = pickle.loads(pickle.dumps(LLMTimeout("late", retries=3)))
    assert isinstance(error, LLMTimeout) and error.retries == 3 and str(error) == "late"


def test_eight_threads_through_one_client_and_cache_keep_consistent_counts(tmp_path: Path) -> None:
    """Each thread asks 12 requests drawn from 24 distinct ones (so threads collide on keys)."""
    per_thread, distinct = 12, 24
    results: dict[int, list[ChatReply]] = {}
    errors: list[BaseException] = []
    with StubServer("rule") as stub, RequestCache(tmp_path / "c.sqlite") as cache:
        chat = client(stub.url, [], cache=cache)
        barrier = threading.Barrier(8)

        def work(t: int) -> None:
            try:
                barrier.wait(timeout=60)
                results[t] = [chat.complete(request(f"rival {(t * 5 + i) % distinct}.0")) for i in range(per_thread)]
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors and not any(thread.is_alive() for thread in threads)
        usage = chat.usage.as_dict()
        replies = [reply for t in range(8) for reply in results[t]]
        fetched = [reply for reply in replies if not reply.cached]
        assert usage["requests"] == 8 * per_thread == len(replies)
        assert usage["cached"] == len(replies) - len(fetched) and usage["failures"] == 0
        assert stub.count == len(fetched) >= distinct == len(cache)
        assert usage["prompt_tokens"] == 11 * len(fetched) and usage["completion_tokens"] == 7 * len(fetched)
        by_prompt: dict[int, set[str]] = {}
        for t in range(8):
            for i, reply in enumerate(results[t]):
                by_prompt.setdefault((t * 5 + i) % distinct, set()).add(reply.text)
        assert len(by_prompt) == distinct and all(len(texts) == 1 for texts in by_prompt.values())  # first one wins
        assert all(json.loads(t)["price"] == rule_price(f"rival {n}.0") for n, (t,) in by_prompt.items())
