"""The reply cache of the LLM sellers: SQLite, keyed by a hash of the full request.

A re-run of a scenario with the same cache replays every answer byte-identically without the network; with
``offline=True`` a request that was never recorded fails at once (``LLMConnectionError``) instead of reaching a
server. A row holds only the reply text and its token counts under the request's hash: never a prompt, a header or
a key. The file is in WAL mode with a busy timeout, so threads (one lock-guarded connection per cache object) and
processes (one connection each) can share it; the first reply stored for a key wins and is what every later
lookup, and every concurrent writer, gets back.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from .client import ChatReply

__all__ = ["RequestCache"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    text BLOB NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
) WITHOUT ROWID
"""


def _encode(text: str) -> bytes:
    """The reply text as bytes that decode back to the identical string (lone surrogates included)."""
    return text.encode("utf-8", "surrogatepass")


def _decode(blob: bytes) -> str:
    return bytes(blob).decode("utf-8", "surrogatepass")


class RequestCache:
    """A SQLite file of replies keyed by ``ChatRequest.key(base_url)``; safe across threads and processes.

    ``offline=True`` marks a replay: a ``ChatClient`` using this cache never touches the network, and a miss
    raises ``LLMConnectionError("not in the cache ...")``. The file must then exist.
    """

    def __init__(self, path: str | Path, *, offline: bool = False) -> None:
        self.path, self.offline = Path(path), offline
        if offline and not self.path.is_file():
            raise FileNotFoundError(f"offline replay needs an existing cache file; {self.path} does not exist")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._connection()  # create the file and the table now: a bad path fails at setup, not mid-run

    def _connection(self) -> sqlite3.Connection:
        """The open connection (opened, in WAL mode and with the table, on first use)."""
        if self._conn is None:
            if not self.offline:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a crash may lose only the last replies
            conn.execute(_SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                conn.close()
                raise ValueError(
                    f"{self.path} is a reply cache of schema {version}; this version reads {SCHEMA_VERSION}"
                )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn = conn
        return self._conn

    def get(self, key: str) -> ChatReply | None:
        """The stored reply for ``key`` (``cached=True``, no latency, no retries), or None."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT text, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,))
                .fetchone()
            )
        if row is None:
            return None
        return ChatReply(_decode(row[0]), int(row[1]), int(row[2]), 0.0, True, 0)

    def put(self, key: str, reply: ChatReply) -> ChatReply:
        """Store ``reply`` under ``key`` unless a reply is already there; return the stored one (as a cache hit)."""
        with self._lock:
            conn = self._connection()
            conn.execute(
                "INSERT OR IGNORE INTO replies (key, text, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?)",
                (key, _encode(reply.text), int(reply.prompt_tokens), int(reply.completion_tokens)),
            )
        stored = self.get(key)
        if stored is None:  # pragma: no cover - a row just inserted or already there cannot vanish
            raise RuntimeError(f"the reply cache {self.path} lost a row")
        return stored

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "offline": self.offline}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], offline=state["offline"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r}, offline={self.offline})"
