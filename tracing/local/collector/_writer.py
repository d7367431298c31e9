"""The collector's *writer* thread: batches into the store, quiet traces reported.

It stores what the receiver queued, in batches of up to 500 documents; indexes
stale traces (``_index.py``) while nothing waits to be stored; and reports
traces that went quiet to ``on_trace`` (``daemon.py``'s :class:`Collector`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from tracing.local.collector._datagram import Document
from tracing.local.collector._forward import _POLL_S, _drain
from tracing.local.collector.store import TraceStore

log = logging.getLogger("tracing.local.collector.daemon")

#: Most traces the quiet-period tracker remembers; the oldest are forgotten first.
MAX_TRACKED_TRACES = 10_000
_WRITE_BATCH = 500
_INDEX_IDLE = 100  # stale traces indexed each time the writer finds its queue empty


class _Writing:
    """The writer thread's loop, for :class:`~.daemon.Collector`."""

    _store: TraceStore | None
    _queue: queue.Queue[tuple[Document, float]]
    _pending: OrderedDict[str, float]
    _on_trace: Callable[[str, list[Document]], None] | None
    _quiet_s: float

    def _count(self, name: str, n: int = 1) -> None:
        raise NotImplementedError

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        raise NotImplementedError

    def _write(self, stop: threading.Event) -> None:
        while True:
            stopping = stop.is_set()
            batch = _drain(self._queue, _WRITE_BATCH, 0 if stopping else _POLL_S)
            if batch:
                self._store_batch(batch)
            elif stopping:
                break
            if self._queue.empty():
                self._index_idle()
            self._report_quiet(time.monotonic())
        # Whatever is pending is as complete as it will get in this run.
        self._report_quiet(float("inf"))

    def _store_batch(self, batch: list[tuple[Document, float]]) -> None:
        assert self._store is not None
        try:
            stored = self._store.add([doc for doc, _ in batch], received_at=batch[-1][1])
        except Exception as exc:
            self._count("dropped", len(batch))
            self._warn_once("store", "tracing collector: could not store documents: %s", exc)
            return
        self._count("stored", stored)
        if self._on_trace is None:
            return
        now = time.monotonic()
        for document, _ in batch:
            trace_id = document["trace_id"]
            self._pending[trace_id] = now
            self._pending.move_to_end(trace_id)
        while len(self._pending) > MAX_TRACKED_TRACES:
            forgotten, _ = self._pending.popitem(last=False)
            log.debug("tracing collector: too many open traces, forgot %s", forgotten)

    def _index_idle(self) -> None:
        """Index a few stale traces while nothing waits to be stored (see ``_index.py``)."""
        assert self._store is not None
        try:
            self._store.refresh_index(most=_INDEX_IDLE)
        except Exception as exc:  # queries index what is left
            self._warn_once("index", "tracing collector: could not index traces: %s", exc)

    def _report_quiet(self, now: float) -> None:
        assert self._store is not None
        # Oldest first: the first trace still in its quiet period ends the scan.
        while self._pending and self._on_trace is not None:
            trace_id, last = next(iter(self._pending.items()))
            if now - last < self._quiet_s:
                return
            del self._pending[trace_id]
            try:
                self._on_trace(trace_id, self._store.documents(trace_id))
            except Exception as exc:
                self._warn_once("on_trace", "tracing collector: on_trace failed: %r", exc)
