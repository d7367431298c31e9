"""SQLite storage for X-Ray segment documents received by the local collector.

One row per document, as received: the full JSON body plus a few columns
pulled out for querying. Everything in a document comes from whoever can send a
datagram to the collector (or a message to a traced queue), so every value goes
through bound parameters; no SQL text is ever built from data.

Example::

    with TraceStore(":memory:") as store:
        store.add([{"trace_id": "1-...", "id": "...", "name": "orders"}])
        for trace_id in store.trace_ids(limit=10):
            print(trace_id, len(store.documents(trace_id)))
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from tracing.local.collector import _index

__all__ = ["DEFAULT_DB", "TraceStore", "default_path"]

log = logging.getLogger("tracing.local.collector.store")

#: Where traces are kept unless ``TRACING_DB`` or an explicit path says otherwise.
DEFAULT_DB = "~/.cache/tracing/traces.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    entity_id TEXT,
    parent_id TEXT,
    name TEXT,
    start_time REAL,
    end_time REAL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_trace_id ON documents (trace_id);
CREATE INDEX IF NOT EXISTS documents_received_at ON documents (received_at);
CREATE VIEW IF NOT EXISTS traces AS
    SELECT trace_id,
           COUNT(*) AS documents,
           MIN(received_at) AS first_received,
           MAX(received_at) AS last_received,
           MIN(start_time) AS start_time
    FROM documents
    GROUP BY trace_id;
"""

_INSERT = (
    "INSERT INTO documents (trace_id, entity_id, parent_id, name, start_time, end_time,"
    " received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Newest first by the last document received; the row id breaks ties between
# documents stored in one batch (same received_at).
_TRACE_IDS = (
    "SELECT trace_id FROM documents GROUP BY trace_id"
    " ORDER BY MAX(received_at) DESC, MAX(id) DESC LIMIT ?"
)
_TRACE_IDS_SINCE = (
    "SELECT trace_id FROM documents WHERE received_at >= ? GROUP BY trace_id"
    " ORDER BY MAX(received_at) DESC, MAX(id) DESC LIMIT ?"
)


def default_path() -> Path:
    """The database path: ``TRACING_DB`` if set, else :data:`DEFAULT_DB`, expanded."""
    return Path(os.environ.get("TRACING_DB") or DEFAULT_DB).expanduser()


def _text(value: Any) -> str | None:
    """A string column value, or None; never fails to bind."""
    if not isinstance(value, str):
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        # NOTE: json.loads() accepts lone surrogates ("\ud800"), which sqlite3
        # cannot encode; the verbatim value stays in the body.
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def _number(value: Any) -> float | None:
    """A REAL column value, or None for anything that is not a finite-size number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return None


class TraceStore:
    """Segment documents in a SQLite database, safe to share between threads.

    Args:
        path: Database file, or ``":memory:"``. ``None`` means :func:`default_path`
            (``TRACING_DB``, else ``~/.cache/tracing/traces.sqlite3``); parent
            directories are created.

    Attributes:
        path: The database path as opened.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = default_path()
        self.path = str(path)
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection for all threads, serialised by a lock: simpler and
        # faster than a pool for a local collector writing small batches.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=5.0, check_same_thread=False, isolation_level=None
        )
        with self._lock:
            # NOTE: WAL lets a viewer in another process read while the collector
            # writes; synchronous=NORMAL is durable enough for local debugging
            # and avoids an fsync per batch. ":memory:" stays in "memory" mode.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._conn.executescript(_index.SCHEMA)
            if self._conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM trace_index) AND EXISTS (SELECT 1 FROM documents)"
            ).fetchone()[0]:
                self._conn.execute(_index.BACKFILL)  # a database from before the index

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("TraceStore is closed")
        return self._conn

    def add(self, documents: Iterable[dict[str, Any]], received_at: float | None = None) -> int:
        """Store documents in one transaction.

        Documents without a string ``trace_id`` and ``id``, or that cannot be
        encoded as JSON, are skipped.

        Args:
            documents: Segment documents (top level or independent subsegments).
            received_at: Epoch seconds to record as the arrival time; now if None.

        Returns:
            How many documents were stored.

        Raises:
            sqlite3.Error: The database itself failed (disk full, closed...); the
                whole batch is rolled back.
        """
        when = time.time() if received_at is None else float(received_at)
        rows = []
        for item in documents:
            # Typed as dicts, but they come from untrusted JSON: check anyway.
            document: object = item
            if not isinstance(document, dict):
                continue
            trace_id, entity_id = document.get("trace_id"), document.get("id")
            if not isinstance(trace_id, str) or not isinstance(entity_id, str):
                continue
            try:
                body = json.dumps(document, separators=(",", ":"))
            except (TypeError, ValueError, RecursionError):
                continue
            rows.append(
                (
                    _text(trace_id),
                    _text(entity_id),
                    _text(document.get("parent_id")),
                    _text(document.get("name")),
                    _number(document.get("start_time")),
                    _number(document.get("end_time")),
                    when,
                    body,
                )
            )
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                conn.executemany(_INSERT, rows)
                conn.executemany(_index.UPSERT, _index.upserts(rows))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return len(rows)

    def trace_ids(self, since: float | None = None, limit: int = 50) -> list[str]:
        """Trace ids, newest first by when their last document arrived.

        Args:
            since: Only traces that received a document at or after this epoch time.
            limit: At most this many ids.
        """
        with self._lock:
            conn = self._connection()
            if since is None:
                rows = conn.execute(_TRACE_IDS, (int(limit),)).fetchall()
            else:
                rows = conn.execute(_TRACE_IDS_SINCE, (float(since), int(limit))).fetchall()
        return [row[0] for row in rows]

    def documents(self, trace_id: str) -> list[dict[str, Any]]:
        """The documents of one trace, in arrival order."""
        with self._lock:
            rows = (
                self._connection()
                .execute("SELECT body FROM documents WHERE trace_id = ? ORDER BY id", (trace_id,))
                .fetchall()
            )
        return [json.loads(row[0]) for row in rows]

    def refresh_index(self, trace_ids: Iterable[str] | None = None, most: int | None = None) -> int:
        """Compute the index rows of stale traces (see :mod:`._index`).

        Args:
            trace_ids: Only these traces (those not stale are left alone);
                every stale trace if None.
            most: Stop after this many traces (None: until none is stale).

        Returns:
            How many traces were indexed.
        """
        done = 0
        wanted = None if trace_ids is None else list(dict.fromkeys(trace_ids))
        while most is None or done < most:
            chunk = 200 if most is None else min(200, most - done)
            with self._lock:
                conn = self._connection()
                if wanted is None:
                    ids = [row[0] for row in conn.execute(_index.STALE, (chunk,))]
                else:
                    ids, wanted = wanted[:chunk], wanted[chunk:]
                if not ids:
                    break
                marks = ",".join("?" * len(ids))
                revisions = dict(
                    conn.execute(
                        "SELECT trace_id, revision FROM trace_index"
                        f" WHERE trace_id IN ({marks}) AND indexed != revision",
                        ids,
                    ).fetchall()
                )
                bodies: dict[str, list[str]] = {trace_id: [] for trace_id in revisions}
                for trace_id, body in conn.execute(
                    f"SELECT trace_id, body FROM documents WHERE trace_id IN ({marks}) ORDER BY id",
                    ids,
                ):
                    if trace_id in bodies:
                        bodies[trace_id].append(body)
            updates = [
                (
                    *_index.compute([json.loads(body) for body in texts]),
                    trace_id,
                    revisions[trace_id],
                )
                for trace_id, texts in bodies.items()
            ]
            if updates:
                with self._lock:
                    conn = self._connection()
                    conn.execute("BEGIN")
                    try:
                        conn.executemany(_index.UPDATE, updates)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            done += len(ids)
            if wanted is not None and not wanted:
                break
        return done

    def trace_count(self) -> int:
        """How many traces are stored (one row each in the index: no scan of documents)."""
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM trace_index").fetchone()[0])

    def stats(self) -> dict[str, int]:
        """Counts: ``documents`` stored and distinct ``traces``."""
        with self._lock:
            documents, traces = (
                self._connection()
                .execute("SELECT COUNT(*), COUNT(DISTINCT trace_id) FROM documents")
                .fetchone()
            )
        return {"documents": int(documents), "traces": int(traces)}

    def close(self) -> None:
        """Close the database; idempotent. Later queries raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
