"""The ``llm_pricer`` seller: a large language model behind any OpenAI-compatible endpoint sets the price.

The agent design is that of Fish, Gonczarowski & Shorrer (2024, "Algorithmic Collusion by Large Language Models"):
each period the model is shown the market history (own and rivals' prices, own quantity and profit), the
seller's marginal cost and the notes it wrote last period (its plans and insights), and answers with a price and
new notes. The answer is requested as structured output and parsed strictly (``parse.py``); an answer that is not
a valid price is asked again (twice, with the reason appended), and then the ``fallback`` decides. Every step is
counted. The client (``client.py``, the ``openai`` library) is built at ``setup``, never at plugin discovery.
"""

from __future__ import annotations

import math
import os
import re
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from marketsim.exceptions import PortableError, StopRun
from marketsim.strategy import MarketInfo, Observation, Outcome, Strategy

from .parse import ANSWER_SCHEMA, InvalidAnswer, clean_notes, parse_answer, valid_price
from .prompts import EMPTY_NOTES, Period, PromptTemplate, history_block, load_template, number

__all__ = ["COUNTS", "LLMPricer", "NoValidPriceError", "fallback_price"]

INVALID_RETRIES = 2  # fresh requests after an answer that is not a valid price, before the fallback
MAX_RESPONSE_BYTES = 1_000_000  # a response body longer than this is refused by the client
MAX_NOTES_CHARS = 100_000
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FALLBACKS = ("last_price", "fault")  # and "fixed:<price>"
#: The counters a seller keeps (in its state): replies received (``cached`` of them from the cache), answers that
#: were not a valid price, re-asks, fallbacks taken, requests that failed at the endpoint, and tokens spent.
COUNTS = ("requests", "cached", "invalid", "retries", "fallbacks", "errors", "prompt_tokens", "completion_tokens")
STATE_KEYS = frozenset({"notes", "seed", "history", "counts"})
RETRY_NOTE = "Your previous answer could not be used: {reason}. Answer again with only the JSON object asked for."


class NoValidPriceError(PortableError, RuntimeError):
    """``fallback: fault``: no valid price came from the model (or the endpoint failed); the run records a fault."""


class _NoAnswer(Exception):
    """Internal: the model gave no valid price this period (the message says why, key-free)."""


def fallback_price(fallback: str) -> float | None:
    """The fixed price of ``fixed:<price>``, None for ``last_price``/``fault``; ValueError for anything else."""
    if fallback in FALLBACKS:
        return None
    if isinstance(fallback, str) and fallback.startswith("fixed:"):
        try:
            value = float(fallback.removeprefix("fixed:"))
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value > 0:
            return value
    raise ValueError(f"fallback must be 'last_price', 'fault' or 'fixed:<price>' (a positive number), got {fallback!r}")


def _check_endpoint(pricer: LLMPricer) -> None:
    """Refuse an endpoint, model or key name no request could be sent with (never echoing a possible secret)."""
    if not isinstance(pricer.base_url, str) or urlsplit(pricer.base_url).scheme not in ("http", "https"):
        raise ValueError("base_url must be an http:// or https:// URL (e.g. http://127.0.0.1:8000/v1)")
    parts = urlsplit(pricer.base_url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "base_url must not carry credentials: put the key in an environment variable, named by api_key_env"
        )
    if not isinstance(pricer.model, str) or not pricer.model:
        raise ValueError("model must be the name of a model the endpoint serves")
    if pricer.api_key_env is not None and not (
        isinstance(pricer.api_key_env, str) and ENV_NAME.fullmatch(pricer.api_key_env)
    ):
        raise ValueError("api_key_env must be the NAME of an environment variable (letters, digits, _), never a key")
    if pricer.cache is not None and (not isinstance(pricer.cache, str) or not pricer.cache):
        raise ValueError("cache must be the path of a SQLite file, or None")


def _integer(value: object, name: str, low: int) -> None:
    """Refuse a parameter that is not an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_numbers(pricer: LLMPricer) -> None:
    """Refuse numeric parameters out of their range, naming the parameter."""
    if not (isinstance(pricer.temperature, int | float) and 0 <= pricer.temperature <= 2):
        raise ValueError(f"temperature must be between 0 and 2, got {pricer.temperature!r}")
    if not (
        isinstance(pricer.price_scale, int | float) and math.isfinite(pricer.price_scale) and pricer.price_scale > 0
    ):
        raise ValueError(f"price_scale must be a positive number, got {pricer.price_scale!r}")
    if not (isinstance(pricer.timeout, int | float) and math.isfinite(pricer.timeout) and pricer.timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {pricer.timeout!r}")
    if pricer.seed is not None:
        _integer(pricer.seed, "seed", 0)
    _integer(pricer.max_tokens, "max_tokens", 1)
    _integer(pricer.history, "history", 1)
    _integer(pricer.max_retries, "max_retries", 0)
    _integer(pricer.notes_chars, "notes_chars", 0)
    if pricer.budget_tokens is not None:
        _integer(pricer.budget_tokens, "budget_tokens", 1)
    if pricer.replay and pricer.cache is None:
        raise ValueError("replay: true needs a cache (the SQLite file a previous run recorded)")
    if pricer.notes_chars > MAX_NOTES_CHARS:
        raise ValueError(f"notes_chars must be at most {MAX_NOTES_CHARS:,}, got {pricer.notes_chars}")


class LLMPricer(Strategy):
    """A large language model sets the price each period, shown the market as Fish et al. (2024) show it.

    Each period the prompt (the template ``prompt``: ``fish_p1``, ``fish_p2`` or ``neutral``, or a template file)
    carries the last ``history`` periods (own price, rivals' prices, own quantity sold, own profit), the marginal
    cost, the price bounds and the notes the model wrote last period (at most ``notes_chars`` characters kept). The
    answer ``{"price": number, "notes": string}`` is requested as structured output from ``model`` at ``base_url``
    (an OpenAI-compatible endpoint; the key is read from the environment variable *named* ``api_key_env``, None for
    local servers) with ``temperature``, ``seed`` (None: drawn from the seller's generator at setup, so seeded runs
    send identical requests) and ``max_tokens``; ``timeout`` bounds each attempt and ``max_retries`` the client's
    retries on 429/5xx/timeouts. ``cache`` (a SQLite path) replays identical requests offline.

    ``price_scale`` is Fish et al.'s α: their economic units are multiplied by α before the model sees them, so the
    model sees prices, the cost and profits multiplied by ``price_scale`` (quantities unchanged) and its price is
    divided by ``price_scale`` before it is posted. An answer that is not a valid price (not a number, not finite,
    not positive, or outside the price bounds shown) is asked again up to twice with the reason appended; then
    ``fallback`` applies: ``last_price`` (post last period's price again), ``fixed:<price>`` (that price, in market
    units) or ``fault`` (raise ``NoValidPriceError``; a tournament records the fault). A failed endpoint (after the
    client's retries) goes straight to the fallback. Counts of requests, invalid answers, retries, fallbacks,
    errors and tokens are kept in the state, with the notes and the history window.

    ``replay: true`` answers only from ``cache`` (a request it never recorded fails, no network is touched), so a
    recorded run replays byte-identically offline. ``budget_tokens`` ends the run cleanly (``StopRun``: the
    completed steps are kept and the reason recorded) once the seller has spent that many tokens. Each step the
    host asks every such seller to start its request (``prefetch``) before collecting any price, so sellers'
    requests are in flight together; ``report()`` puts the counts, tokens and latency in ``summary.json``.
    """

    name = "llm_pricer"
    # stochastic: the request seed comes from the seller's generator. learns: False, because learn() only records
    # what the next observation also carries, so prices are the same whether or not learn() is called.
    classifier = {"learns": False, "stochastic": True, "observes": ("own", "competitors")}

    def __init__(  # noqa: PLR0913 - the keyword parameters are the strategy's public API (scenario params)
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "local",
        api_key_env: str | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int = 512,
        history: int = 100,
        prompt: str = "fish_p1",
        price_scale: float = 1.0,
        timeout: float = 30.0,
        max_retries: int = 3,
        fallback: str = "last_price",
        cache: str | None = None,
        notes_chars: int = 2000,
        replay: bool = False,
        budget_tokens: int | None = None,
    ) -> None:
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.temperature, self.seed, self.max_tokens, self.history = temperature, seed, max_tokens, history
        self.prompt, self.price_scale, self.timeout, self.max_retries = prompt, price_scale, timeout, max_retries
        self.fallback, self.cache, self.notes_chars = fallback, cache, notes_chars
        self.replay, self.budget_tokens = replay, budget_tokens
        _check_endpoint(self)
        _check_numbers(self)
        self.fixed_price = fallback_price(fallback)
        self.template: PromptTemplate = load_template(prompt)  # validated now: a bad file fails before any run
        self.request_seed: int | None = seed
        self._client: Any = None
        self._worker: ThreadPoolExecutor | None = None  # one thread: this seller's request in flight (prefetch)
        self._pending: tuple[Any, Future] | None = None  # (request, its future) started by prefetch
        self._reset()

    def _reset(self) -> None:
        """Forget the notes, the history and the counts (a fresh seller)."""
        self.notes = ""
        self.periods: deque[Period] = deque(maxlen=int(self.history))
        self.counts = dict.fromkeys(COUNTS, 0)

    # --- the client ---------------------------------------------------------------------------------------------

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Draw the request seed (unless ``seed`` is given) and build the client; the notes and history start empty."""
        super().setup(market, rng)
        self.request_seed = int(self.seed) if self.seed is not None else int(rng.integers(2**31 - 1))
        self._reset()
        self._client = self.make_client()

    def make_client(self) -> Any:
        """The chat client of this seller (``openai`` is imported here, so discovery never needs it)."""
        from .cache import RequestCache
        from .client import ChatClient

        cache = RequestCache(self.cache, offline=bool(self.replay)) if self.cache is not None else None
        return ChatClient(
            self.base_url,
            self.api_key_env,
            timeout=float(self.timeout),
            max_retries=int(self.max_retries),
            cache=cache,
            max_response_bytes=MAX_RESPONSE_BYTES,
        )

    @property
    def client(self) -> Any:
        """The chat client (rebuilt on first use in a copy: clients hold connections and are never copied)."""
        if self._client is None:
            if not hasattr(self, "market"):
                raise RuntimeError("llm_pricer has not been set up: call setup(market, rng) first")
            self._client = self.make_client()
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and deepcopy without the client (it holds connections and, possibly, a key) or a pending call."""
        state = self.__dict__.copy()
        state["_client"], state["_pending"], state["_worker"] = None, None, None
        return state

    # --- the prompt ---------------------------------------------------------------------------------------------

    def shown(self, value: float) -> str:
        """A market price, cost or profit as the model is shown it (multiplied by ``price_scale``)."""
        return number(value * self.price_scale)

    def messages(self, obs: Observation) -> tuple[tuple[str, str], ...]:
        """The chat messages for this period: one user message, the filled template and the answer format."""
        values = {
            "cost": self.shown(obs.cost),
            "price_min": self.shown(obs.price_min),
            "price_max": self.shown(obs.price_max),
            "history": history_block(list(self.periods), self.price_scale),
            "notes": self.notes or EMPTY_NOTES,
            "rivals": str(len(obs.competitor_prices)),
            "periods": str(len(self.periods)),
        }
        return (("user", self.template.render(values, self.notes_chars)),)

    def request(self, obs: Observation, messages: tuple[tuple[str, str], ...] | None = None) -> Any:
        """The ``ChatRequest`` for this period (``messages`` default to :meth:`messages`)."""
        from .client import ChatRequest

        return ChatRequest(
            model=self.model,
            messages=messages if messages is not None else self.messages(obs),
            temperature=float(self.temperature),
            seed=self.request_seed,
            max_tokens=int(self.max_tokens),
            json_schema=ANSWER_SCHEMA,
        )

    # --- pricing ------------------------------------------------------------------------------------------------

    def prefetch(self, obs: Observation) -> None:
        """Send this period's first request now, in this seller's own thread; ``price(obs)`` collects the reply."""
        self._observe(obs)
        self._check_budget()
        request = self.request(obs)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm_pricer")
        self._pending = (request, self._worker.submit(self.client.complete, request))

    def _check_budget(self) -> None:
        """End the run cleanly (``StopRun``) once ``budget_tokens`` tokens have been spent."""
        spent = self.counts["prompt_tokens"] + self.counts["completion_tokens"]
        if self.budget_tokens is not None and spent >= self.budget_tokens:
            raise StopRun(f"llm_pricer spent {spent:,} tokens of its budget_tokens {self.budget_tokens:,}")

    def price(self, obs: Observation) -> float:
        """Ask the model for this period's price; retry invalid answers, then apply the fallback."""
        self._observe(obs)
        messages = self.messages(obs)
        low, high = float(self.shown(obs.price_min)), float(self.shown(obs.price_max))
        try:
            shown = self._ask(obs, messages, low, high)
        except _NoAnswer as failure:
            return self._fall_back(obs, failure)
        return min(max(shown / self.price_scale, obs.price_min), obs.price_max)

    def _ask(self, obs: Observation, messages: tuple[tuple[str, str], ...], low: float, high: float) -> float:
        """The first valid price (shown units) among up to ``1 + INVALID_RETRIES`` answers; the notes are kept."""
        request, reason = self.request(obs, messages), ""
        for attempt in range(INVALID_RETRIES + 1):
            if attempt:
                self.counts["retries"] += 1
                request = self.request(obs, (*messages, ("user", RETRY_NOTE.format(reason=reason))))
            text = self._complete(request)
            try:
                answer = parse_answer(text)
                shown = valid_price(answer.price, low, high)
            except InvalidAnswer as exc:
                self.counts["invalid"] += 1
                reason = str(exc)
                continue
            self.notes = clean_notes(answer.notes, self.notes_chars)
            return shown
        raise _NoAnswer(f"no valid price in {INVALID_RETRIES + 1} answers (the last: {reason})")

    def _complete(self, request: Any) -> str:
        """The reply text for ``request`` (collected from ``prefetch`` when it sent this very request), counting
        tokens; ``_NoAnswer`` when the endpoint failed."""
        from .client import LLMError

        pending, self._pending = self._pending, None
        if pending is None or pending[0] != request:
            self._check_budget()
        try:
            reply = (
                pending[1].result() if pending is not None and pending[0] == request else self.client.complete(request)
            )
        except LLMError as exc:
            self.counts["errors"] += 1
            raise _NoAnswer(f"the endpoint failed: {type(exc).__name__}: {self._redact(str(exc))}") from None
        self.counts["requests"] += 1
        self.counts["cached"] += int(bool(reply.cached))
        self.counts["prompt_tokens"] += int(reply.prompt_tokens)
        self.counts["completion_tokens"] += int(reply.completion_tokens)
        return reply.text

    def _fall_back(self, obs: Observation, failure: _NoAnswer) -> float:
        """The ``fallback`` price when no valid answer came, or ``NoValidPriceError`` for ``fault``."""
        self.counts["fallbacks"] += 1
        if self.fallback == "fault":
            raise NoValidPriceError(f"llm_pricer at step {obs.step}: {failure}")
        if self.fixed_price is not None:
            return self.fixed_price
        return obs.own_price

    def _redact(self, text: str) -> str:
        """``text`` with the API key masked, should a message ever carry it."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return text.replace(key, "***") if key else text

    # --- history and state --------------------------------------------------------------------------------------

    def _record(self, period: Period) -> None:
        """Add ``period`` to the history window unless it is the last one recorded."""
        if not self.periods or self.periods[-1].period != period.period:
            self.periods.append(period)

    def _observe(self, obs: Observation) -> None:
        """Record last period from the observation (when ``learn`` was not called, e.g. in evaluation)."""
        if obs.step >= 1:
            rivals = tuple(float(p) for p in obs.competitor_prices)
            self._record(
                Period(obs.step - 1, float(obs.own_price), rivals, float(obs.last_units), float(obs.last_profit))
            )

    def learn(self, outcome: Outcome) -> None:
        """Record the period: the price posted, the rivals' prices, the quantity sold and the profit."""
        rivals = tuple(float(p) for p in outcome.competitor_prices)
        self._record(Period(outcome.step, float(outcome.price), rivals, float(outcome.units), float(outcome.profit)))

    def state_dict(self) -> dict[str, Any]:
        """The notes, the request seed, the history window and the counts, as plain data."""
        history = [
            {"period": p.period, "price": p.price, "rivals": list(p.rivals), "units": p.units, "profit": p.profit}
            for p in self.periods
        ]
        return {"notes": self.notes, "seed": self.request_seed, "history": history, "counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, so the restored seller sends the identical next request."""
        if set(state) != STATE_KEYS:
            raise ValueError(f"llm_pricer state must have keys {sorted(STATE_KEYS)}, got {sorted(state)}")
        if not isinstance(state["notes"], str):
            raise ValueError("llm_pricer state: notes must be a string")
        seed = state["seed"]
        self.request_seed = None if seed is None else int(seed)
        self.notes = clean_notes(state["notes"], self.notes_chars)
        self.periods = deque(
            (
                Period(int(p["period"]), float(p["price"]), tuple(float(r) for r in p["rivals"]),
                       float(p["units"]), float(p["profit"]))
                for p in state["history"]
            ),
            maxlen=int(self.history),
        )  # fmt: skip
        self.counts = {name: int(state["counts"].get(name, 0)) for name in COUNTS}

    def report(self) -> dict[str, Any]:
        """This seller's run metrics for ``summary.json``: the counts, tokens and latency (``stats``)."""
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """The counts, with the client's usage (latency included) when a client exists: for summaries."""
        usage = self._client.usage.as_dict() if self._client is not None else {}
        return {**self.counts, "latency_s": float(usage.get("latency_s", 0.0))}
