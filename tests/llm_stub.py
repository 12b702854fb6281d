"""A loopback OpenAI-compatible chat-completions server for the LLM-seller tests (issue 17, acceptance A).

``StubServer(behaviour)`` serves ``POST /v1/chat/completions`` on 127.0.0.1 at an ephemeral port, answers with
a scripted behaviour, records every request (path, headers, body) and shuts down within a bounded time. No test
touches the network beyond this loopback server, and no real model or key is ever needed.

Behaviours (a name, or a callable ``(request, index) -> StubReply``):

- ``"rule"``: a well-behaved model; answers ``{"price": <last rival price in the prompt> + step, "notes": ...}``.
- ``"garbage"``: a 200 whose message is prose with no price in it.
- ``"negative"`` / ``"out_of_range"``: well-formed JSON answers with a price of -1 / 1e6.
- ``"slow"``: waits ``slow_s`` seconds (bounded, cut short when the server stops) before answering.
- ``"rate_limited_then_ok"``: 429 with ``Retry-After: <retry_after>`` for the first ``rate_limited`` requests, then
  the ``"rule"`` answer.
- ``"server_error"``: 500 forever.
- ``"huge"``: a 200 whose body is ``huge_bytes`` (10 MB) long, with a Content-Length; ``"huge_chunked"``: the same
  body sent chunked, with no length announced.
- ``"malformed"``: a 200 whose body is not JSON; ``"unauthorized"``: 401 (a 4xx that must not be retried).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BEHAVIOURS", "RecordedRequest", "StubReply", "StubServer", "chat_completion", "rule_price"]

CHAT_PATH = "/v1/chat/completions"
MAX_REQUEST_BYTES = 4 * 2**20
_NUM = r"-?\d+(?:\.\d+)?"
#: The number, or comma-separated numbers, that follow "competitor" or "rival" on the same line (rival prices).
RIVAL_PRICES = re.compile(rf"(?:competitor|rival)[^\n\d-]*({_NUM}(?:\s*,\s*{_NUM})*)", re.IGNORECASE)
NUMBER = re.compile(_NUM)
#: The allowed prices as the templates state them: "from 1 to 2.5" or "no less than 1 and no more than 2.5".
BOUNDS = re.compile(rf"(?:from|no less than)\s*\$?({_NUM})\s*(?:to|and no more than)\s*\$?({_NUM})")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received: its path, headers (in arrival order) and raw body."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None when it was not sent."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body decoded as JSON (the chat-completions request)."""
        return json.loads(self.body)

    def prompt(self) -> str:
        """The text of the last message of the request (the prompt the scripted rules read)."""
        messages = self.json().get("messages") or [{}]
        return str(messages[-1].get("content", ""))


@dataclass(frozen=True)
class StubReply:
    """What the stub sends back: a status, a body (bytes, or an iterable of chunks sent chunked) and headers."""

    status: int
    body: bytes | tuple[bytes, ...] = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


def chat_completion(content: str, *, prompt_tokens: int = 11, completion_tokens: int = 7) -> bytes:
    """An OpenAI chat-completion response body whose one choice's message is ``content``."""
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return json.dumps(body).encode()


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> StubReply:
    body = json.dumps({"error": {"message": message, "type": "stub_error", "code": status}}).encode()
    return StubReply(status, body, (("Content-Type", "application/json"), *headers))


def _ok(content: str) -> StubReply:
    return StubReply(200, chat_completion(content), (("Content-Type", "application/json"),))


def rule_price(prompt: str, step: float = 0.05) -> float:
    """The scripted model's price: the last rival price named in ``prompt`` plus ``step``; before any round (no
    rival price yet) the middle of the allowed prices the prompt states; else its last number.

    A rival price is a number (the last of a comma-separated list) after "competitor" or "rival" on its line.
    """
    rivals = RIVAL_PRICES.findall(prompt)
    if rivals:
        return round(float(NUMBER.findall(rivals[-1])[-1]) + step, 6)
    if bounds := BOUNDS.search(prompt):
        return round((float(bounds.group(1)) + float(bounds.group(2))) / 2, 6)
    numbers = NUMBER.findall(prompt)
    return round(float(numbers[-1]) if numbers else 1.0, 6)


def _rule(request: RecordedRequest, index: int) -> StubReply:
    price = rule_price(request.prompt())
    return _ok(json.dumps({"price": price, "notes": f"request {index}: last rival price + 0.05"}))


def _huge(size: int, chunked: bool) -> StubReply:
    head, tail = b'{"id": "chatcmpl-stub", "padding": "', b'"}'
    filler = size - len(head) - len(tail)
    if not chunked:
        return StubReply(200, head + b"x" * filler + tail, (("Content-Type", "application/json"),))
    chunk = b"x" * 65536
    chunks = (head, *([chunk] * (filler // len(chunk))), b"x" * (filler % len(chunk)), tail)
    return StubReply(200, chunks, (("Content-Type", "application/json"),))


@dataclass
class _Settings:
    """The knobs of the named behaviours."""

    slow_s: float = 5.0
    rate_limited: int = 2
    retry_after: str = "1"
    huge_bytes: int = 10 * 2**20


def _named(name: str, settings: _Settings) -> Callable[[RecordedRequest, int], StubReply]:
    """The callable behind a named behaviour."""
    table: dict[str, Callable[[RecordedRequest, int], StubReply]] = {
        "rule": _rule,
        "garbage": lambda r, i: _ok("Prices are a social construct; I would rather not say."),
        "negative": lambda r, i: _ok(json.dumps({"price": -1.0, "notes": "negative"})),
        "out_of_range": lambda r, i: _ok(json.dumps({"price": 1e6, "notes": "far too high"})),
        "slow": lambda r, i: replace(_rule(r, i), delay_s=settings.slow_s),
        "rate_limited_then_ok": lambda r, i: (
            _error(429, "slow down", (("Retry-After", settings.retry_after),))
            if i < settings.rate_limited
            else _rule(r, i)
        ),
        "server_error": lambda r, i: _error(500, "the stub is broken"),
        "huge": lambda r, i: _huge(settings.huge_bytes, chunked=False),
        "huge_chunked": lambda r, i: _huge(settings.huge_bytes, chunked=True),
        "malformed": lambda r, i: StubReply(200, b"<html>not json</html>", (("Content-Type", "application/json"),)),
        "unauthorized": lambda r, i: _error(401, "bad key"),
    }
    if name not in table:
        raise ValueError(f"unknown stub behaviour {name!r}; known: {sorted(table)}")
    return table[name]


BEHAVIOURS = ("rule", "garbage", "negative", "out_of_range", "slow", "rate_limited_then_ok", "server_error", "huge")


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the server's behaviour for the reply and writes it (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (Nagle × delayed ACK)
    timeout = 10  # an idle keep-alive connection's thread ends after this many seconds
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Stay silent: the tests read the recorded requests, not a log."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Record the request and send the scripted reply."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._send(StubReply(413, b"request too large"))
            return
        body = self.rfile.read(length)
        recorded = RecordedRequest(self.path, tuple(self.headers.items()), body)
        reply = self.server.stub.answer(recorded)
        if reply.delay_s and self.server.stub.stopping.wait(reply.delay_s):
            self.close_connection = True
            return
        self._send(reply)

    def _send(self, reply: StubReply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            if isinstance(reply.body, bytes):
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in (c for c in reply.body if c):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading (a capped body): expected


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubServer

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection so stopping the stub can close it (keep-alive threads end promptly)."""
        self.stub.track(request)
        super().process_request(request, client_address)


@dataclass
class StubServer:
    """A loopback chat-completions server with a scripted behaviour; use it as a context manager.

    ``url`` is the ``base_url`` to give a client (``http://127.0.0.1:<port>/v1``); ``requests`` lists what it
    received; ``count`` how many. ``max_requests`` bounds a runaway test: later requests get a 503.
    """

    behaviour: str | Callable[[RecordedRequest, int], StubReply] = "rule"
    slow_s: float = 5.0
    rate_limited: int = 2
    retry_after: str = "1"
    huge_bytes: int = 10 * 2**20
    latency_s: float = 0.0
    max_requests: int = 10_000
    stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _requests: list[RecordedRequest] = field(default_factory=list, init=False, repr=False)
    _sockets: list[socket.socket] = field(default_factory=list, init=False, repr=False)
    _server: _Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        settings = _Settings(self.slow_s, self.rate_limited, self.retry_after, self.huge_bytes)
        self._answer = self.behaviour if callable(self.behaviour) else _named(self.behaviour, settings)

    @property
    def url(self) -> str:
        """The base URL a client should use."""
        if self._server is None:
            raise RuntimeError("the stub server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests arrived."""
        with self._lock:
            return len(self._requests)

    def answer(self, request: RecordedRequest) -> StubReply:
        """Record ``request`` and compute its reply (called from the handler threads)."""
        with self._lock:
            index = len(self._requests)
            self._requests.append(request)
        if request.path != CHAT_PATH:
            return _error(404, f"no route {request.path}")
        if index >= self.max_requests:
            return _error(503, "stub request limit reached")
        reply = self._answer(request, index)
        return replace(reply, delay_s=max(reply.delay_s, self.latency_s))

    def track(self, sock: socket.socket) -> None:
        """Remember an accepted connection (closed on stop)."""
        with self._lock:
            self._sockets.append(sock)

    def start(self) -> StubServer:
        """Bind 127.0.0.1 on an ephemeral port and serve in a background thread."""
        self.stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close every connection and join the server thread (bounded by ``timeout``)."""
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
