"""A small, fault-tolerant chat-completions client for the LLM sellers.

``ChatClient`` speaks the OpenAI-compatible chat-completions protocol through the ``openai`` library (so hosted
APIs and local servers such as vLLM, llama.cpp's server or Ollama all work), with our own retries: exponential
back-off on 429, 5xx, timeouts and connection errors, honouring ``Retry-After``. Every reply can go through a
``RequestCache`` keyed by a hash of the full request, so a re-run replays byte-identically offline.

Safety: the API key is read from the environment variable *named* by ``api_key_env``; it is sent only in the
Authorization header and never appears in an exception, a repr or the cache. Response bodies are capped at
``max_response_bytes`` while they stream in (the ``openai`` library itself has no size cap, so the client hands
it an ``httpx2`` client whose transport counts the bytes and stops reading past the cap).

``openai`` is the ``llm`` extra: it is imported when a ``ChatClient`` is built, never at plugin discovery.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from marketsim.exceptions import MissingExtraError

if TYPE_CHECKING:
    from .cache import RequestCache

__all__ = [
    "ChatClient",
    "ChatReply",
    "ChatRequest",
    "LLMBadResponse",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimited",
    "LLMResponseTooLarge",
    "LLMServerError",
    "LLMTimeout",
    "Usage",
]

KEY_VERSION = 1  # bump when the request key's canonical form changes (old cache rows then stop matching)
PLACEHOLDER_KEY = "unused"  # sent to servers that need no key (local servers), never a real key from the environment
SNIPPET_CHARS = 200  # how much of a server's error message an exception quotes
ROLES = frozenset({"system", "user", "assistant"})
#: The client's settings, as pickled (never the key: an unpickled client reads it from the environment again).
_SETTINGS = (
    "base_url",
    "api_key_env",
    "timeout",
    "max_retries",
    "cache",
    "max_response_bytes",
    "backoff",
    "max_backoff",
)


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request: everything that determines the answer, hence the cache key.

    ``messages`` are (role, content) pairs. ``json_schema``, when given, asks for structured output
    (``response_format: {"type": "json_schema", ...}``): either the JSON schema of the answer itself, or a full
    ``{"name": ..., "schema": ...}`` object as the protocol spells it.
    """

    model: str
    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    seed: int | None = None
    max_tokens: int = 512
    json_schema: dict | None = None

    def __post_init__(self) -> None:
        messages = tuple((str(role), str(content)) for role, content in self.messages)
        object.__setattr__(self, "messages", messages)
        if not messages or any(role not in ROLES for role, _ in messages):
            raise ValueError(f"messages must be non-empty (role, content) pairs with roles in {sorted(ROLES)}")
        if self.max_tokens < 1 or self.temperature < 0:
            raise ValueError("max_tokens must be >= 1 and temperature >= 0")

    def canonical(self, base_url: str) -> str:
        """The canonical JSON of the request and the endpoint it goes to (sorted keys, no whitespace)."""
        data = {
            "v": KEY_VERSION,
            "base_url": base_url.rstrip("/"),
            "model": self.model,
            "messages": [list(pair) for pair in self.messages],
            "temperature": float(self.temperature),
            "seed": self.seed,
            "max_tokens": int(self.max_tokens),
            "json_schema": self.json_schema,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    def key(self, base_url: str) -> str:
        """The cache key: the SHA-256 (hex) of :meth:`canonical`."""
        return hashlib.sha256(self.canonical(base_url).encode("ascii")).hexdigest()

    def response_format(self) -> dict | None:
        """The ``response_format`` parameter asking for ``json_schema`` structured output, or None."""
        if self.json_schema is None:
            return None
        schema = self.json_schema
        if not ("schema" in schema and "name" in schema):
            schema = {"name": "answer", "schema": schema, "strict": True}
        return {"type": "json_schema", "json_schema": schema}


@dataclass(frozen=True)
class ChatReply:
    """A model's answer with what it cost: tokens, latency (retries and back-off included), cache hit, retries."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool
    retries: int


class LLMError(RuntimeError):
    """A request that produced no usable answer. ``retries`` says how many retries were spent on it."""

    retriable = False  # whether a fresh attempt may succeed (the client retries these with back-off)

    def __init__(self, message: str, *, retries: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retries = retries
        self.retry_after = retry_after

    def __reduce__(self) -> tuple:
        return (_rebuild_error, (type(self), str(self), self.retries, self.retry_after))


def _rebuild_error(cls: type[LLMError], message: str, retries: int, retry_after: float | None) -> LLMError:
    """Unpickle an ``LLMError`` with its retry count (errors cross process boundaries in tournaments)."""
    return cls(message, retries=retries, retry_after=retry_after)


class LLMTimeout(LLMError):
    """No answer within the per-request timeout (after the retries)."""

    retriable = True


class LLMRateLimited(LLMError):
    """The server kept answering 429 Too Many Requests (after the retries)."""

    retriable = True


class LLMServerError(LLMError):
    """The server kept answering 5xx (after the retries)."""

    retriable = True


class LLMConnectionError(LLMError):
    """The server could not be reached (after the retries), or an offline cache had no reply for the request."""

    retriable = True


class LLMResponseTooLarge(LLMError):
    """The response body was longer than ``max_response_bytes`` (reading stopped at the cap; not retried)."""


class LLMBadResponse(LLMError):
    """A 4xx other than 429, or a reply that is not a chat completion with a text message (not retried)."""


@dataclass
class Usage:
    """What one client has spent: requests, cache hits, failures, retries, tokens and latency (thread-safe).

    ``requests`` counts ``complete`` calls; ``cached`` those served from the cache; ``failures`` those that
    raised. Tokens and latency add up the replies fetched from the server (cache hits cost nothing).
    """

    requests: int = 0
    cached: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        """Add ``amounts`` to the named counters atomically."""
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict:
        """The counters as plain data (for summary.json)."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def __getstate__(self) -> dict:
        return self.as_dict()

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]


def import_openai() -> Any:
    """The ``openai`` module, or a ``MissingExtraError`` naming the ``llm`` extra."""
    try:
        import openai
    except ImportError as exc:
        raise MissingExtraError(
            f"llm_pricer needs the 'llm' extra ({exc.name} is not installed): pip install -e '.[llm]'"
        ) from exc
    return openai


class _TooLarge(Exception):
    """Raised inside the transport when a body passes the cap (turned into ``LLMResponseTooLarge``)."""


def _capped(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Yield ``chunks`` until their total passes ``limit`` bytes, then raise ``_TooLarge`` (nothing more is read)."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise _TooLarge(f"over {limit} bytes")
        yield chunk


def _capped_http_client(openai: Any, timeout: float, limit: int) -> Any:
    """An ``httpx2`` client (the one ``openai`` is built on) whose response bodies stop at ``limit`` bytes."""
    import httpx2

    class CappedStream(httpx2.SyncByteStream):
        """The inner response stream, read through :func:`_capped`; closing it closes the connection."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __iter__(self) -> Iterator[bytes]:
            return _capped(iter(self.inner), limit)

        def close(self) -> None:
            self.inner.close()

    class CappedTransport(httpx2.BaseTransport):
        """Refuses an announced length over the cap and a compressed body; caps the rest while streaming."""

        def __init__(self) -> None:
            self.inner = httpx2.HTTPTransport(limits=openai.DEFAULT_CONNECTION_LIMITS)

        def handle_request(self, request: Any) -> Any:
            response = self.inner.handle_request(request)
            length = response.headers.get("content-length", "")
            encoding = response.headers.get("content-encoding", "identity").lower()
            if (length.isdigit() and int(length) > limit) or encoding not in ("", "identity"):
                response.close()
                raise _TooLarge(f"over {limit} bytes" if encoding in ("", "identity") else f"encoded {encoding}")
            return httpx2.Response(
                response.status_code,
                headers=response.headers,
                stream=CappedStream(response.stream),
                extensions=response.extensions,
            )

        def close(self) -> None:
            self.inner.close()

    return httpx2.Client(transport=CappedTransport(), timeout=timeout, follow_redirects=False)


def _retry_after(headers: Any, cap: float) -> float | None:
    """The ``Retry-After`` header in seconds (capped at ``cap``), or None when absent or not a number."""
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(seconds, cap) if seconds >= 0 else None


class ChatClient:
    """Sends ``ChatRequest``s to one OpenAI-compatible endpoint, through an optional cache, with retries.

    ``api_key_env`` is the *name* of the environment variable holding the key (None for local servers, which get a
    placeholder key). ``timeout`` bounds each attempt; at most ``max_retries`` retries follow a 429, a 5xx, a timeout
    or a connection error, after ``backoff * 2**k`` seconds (capped at ``max_backoff``) or the server's
    ``Retry-After``. ``sleep`` is injectable so tests record the waits instead of waiting. Safe to share between
    threads.
    """

    def __init__(  # noqa: PLR0913 - the documented keyword options of the client (issue 17)
        self,
        base_url: str,
        api_key_env: str | None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        cache: RequestCache | None = None,
        max_response_bytes: int = 1_000_000,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout <= 0 or max_retries < 0 or max_response_bytes < 1 or backoff < 0 or max_backoff < 0:
            raise ValueError("timeout and max_response_bytes must be positive; retries and back-off non-negative")
        self.base_url, self.api_key_env = base_url.rstrip("/"), api_key_env
        self.timeout, self.max_retries, self.cache = timeout, max_retries, cache
        self.max_response_bytes, self.backoff, self.max_backoff = max_response_bytes, backoff, max_backoff
        self.usage = Usage()
        self._sleep = sleep
        self._secret = self._read_key(api_key_env)
        self._openai = import_openai()
        self._api = None if cache is not None and cache.offline else self._build_api()

    @staticmethod
    def _read_key(api_key_env: str | None) -> str:
        """The key from the environment variable named ``api_key_env`` (a placeholder when None)."""
        if api_key_env is None:
            return PLACEHOLDER_KEY
        key = os.environ.get(api_key_env, "")
        if not key:
            raise LLMError(f"the environment variable {api_key_env} (api_key_env) is not set")
        return key

    def _build_api(self) -> Any:
        """The ``openai.OpenAI`` client: our key and timeout, no retries of its own, the size-capped HTTP client."""
        return self._openai.OpenAI(
            base_url=self.base_url,
            api_key=self._secret,
            timeout=self.timeout,
            max_retries=0,
            default_headers={"Accept-Encoding": "identity"},
            http_client=_capped_http_client(self._openai, self.timeout, self.max_response_bytes),
        )

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.base_url!r}, api_key_env={self.api_key_env!r}, timeout={self.timeout})"

    def __getstate__(self) -> dict:
        """The settings without the key or connections: an unpickled copy reads the key from the environment."""
        settings = {name: getattr(self, name) for name in _SETTINGS}
        return {**settings, "sleep": self._sleep, "usage": self.usage}

    def __setstate__(self, state: dict) -> None:
        usage = state.pop("usage")
        self.__init__(state.pop("base_url"), state.pop("api_key_env"), **state)  # type: ignore[misc]
        self.usage = usage

    def complete(self, request: ChatRequest) -> ChatReply:
        """The model's reply to ``request``: replayed from the cache when there, else fetched with retries.

        Raises the matching ``LLMError`` when no reply comes (its ``retries`` says how many were spent).
        """
        key = request.key(self.base_url)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.add(requests=1, cached=1)
                return hit
            if self.cache.offline:
                self.usage.add(requests=1, failures=1)
                raise LLMConnectionError("not in the cache (offline replay): the request was never recorded")
        start = time.perf_counter()
        try:
            text, prompt_tokens, completion_tokens, retries = self._fetch(request)
        except LLMError as err:
            self.usage.add(requests=1, failures=1, retries=err.retries)
            raise
        reply = ChatReply(text, prompt_tokens, completion_tokens, time.perf_counter() - start, False, retries)
        if self.cache is not None:
            stored = self.cache.put(key, reply)  # a concurrent identical request may have stored first: use that
            reply = ChatReply(stored.text, prompt_tokens, completion_tokens, reply.latency_s, False, retries)
        self.usage.add(
            requests=1,
            retries=retries,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=reply.latency_s,
        )
        return reply

    def _fetch(self, request: ChatRequest) -> tuple[str, int, int, int]:
        """Try ``request`` until it succeeds or the retries run out: (text, prompt and completion tokens, retries)."""
        for attempt in range(self.max_retries + 1):
            try:
                return (*self._attempt(request), attempt)
            except LLMError as err:
                err.retries = attempt
                if not err.retriable or attempt == self.max_retries:
                    raise
                self._sleep(self.delay(attempt, err.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` if any, else exponential."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        return min(self.backoff * 2**attempt, self.max_backoff)

    def _attempt(self, request: ChatRequest) -> tuple[str, int, int]:
        """One HTTP attempt: (text, prompt tokens, completion tokens), or the matching ``LLMError`` (key-free)."""
        openai = self._openai
        try:
            completion = self._api.chat.completions.create(**self._params(request))
        except _TooLarge as exc:
            raise LLMResponseTooLarge(f"response from {self.base_url} refused: {exc}") from None
        except openai.APITimeoutError:
            raise LLMTimeout(f"no response from {self.base_url} within {self.timeout} s") from None
        except openai.APIConnectionError:
            raise LLMConnectionError(f"cannot reach {self.base_url}") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except (openai.OpenAIError, ValueError, TypeError, KeyError) as exc:
            raise LLMBadResponse(f"unreadable response from {self.base_url}: {type(exc).__name__}") from None
        return self._extract(completion)

    def _params(self, request: ChatRequest) -> dict:
        """The keyword arguments of ``chat.completions.create`` for ``request``."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            params["seed"] = request.seed
        response_format = request.response_format()
        if response_format is not None:
            params["response_format"] = response_format
        return params

    def _status_error(self, exc: Any) -> LLMError:
        """The ``LLMError`` for an HTTP error status, quoting (a key-free snippet of) the server's message."""
        status = exc.status_code
        message = f"{self.base_url} answered {status}: {self._redact(_error_message(exc.body))}"
        if status == 429:
            return LLMRateLimited(message, retry_after=_retry_after(exc.response.headers, self.max_backoff))
        if status >= 500:
            return LLMServerError(message, retry_after=_retry_after(exc.response.headers, self.max_backoff))
        return LLMBadResponse(message)

    def _extract(self, completion: Any) -> tuple[str, int, int]:
        """The text and token counts of a chat completion, or ``LLMBadResponse`` when it has no text message."""
        choices = getattr(completion, "choices", None)
        content = choices[0].message.content if choices else None
        if not isinstance(content, str):
            raise LLMBadResponse(f"{self.base_url} sent no message text")
        usage = getattr(completion, "usage", None)
        return content, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)

    def _redact(self, text: str) -> str:
        """``text`` with the key masked (a server may echo what it received)."""
        return text.replace(self._secret, "***") if self._secret != PLACEHOLDER_KEY else text


def _error_message(body: object) -> str:
    """A short snippet of an error body's message (OpenAI's ``{"error": {"message": ...}}`` or the raw text)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        body = inner.get("message", inner) if isinstance(inner, dict) else inner
    text = " ".join(str(body).split())
    return text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "")
