"""``tracing ui`` beside a running collector: two processes' worth of connections
to one SQLite store, the list answered while documents keep arriving."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

from tracing._header import new_id, new_trace_id
from tracing.local.collector.daemon import Collector
from tracing.local.collector.store import TraceStore
from tracing.local.views.web import TraceUI

from ..collector.test_daemon import RawSender, wait_until

HEADER = b'{"format":"json","version":1}\n'


def _segment(trace_id: str, sku: str) -> bytes:
    now = time.time()
    document = {
        "trace_id": trace_id,
        "id": new_id(),
        "name": "orders-api",
        "start_time": now - 0.01,
        "end_time": now,
        "annotations": {"sku": sku},
    }
    return HEADER + json.dumps(document).encode()


def test_the_list_is_answered_while_the_collector_writes(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite3"
    stop = threading.Event()
    sent: list[str] = []
    with (
        TraceStore(db) as written,
        Collector("127.0.0.1:0", written, sampling_api=False) as collector,
        TraceStore(db) as read,  # the viewer's own connection, as from another process
        TraceUI(read) as ui,
    ):
        sender = RawSender(collector.address)

        def keep_sending() -> None:
            while not stop.is_set():
                trace_id = new_trace_id()
                sender.send(_segment(trace_id, "book-1" if len(sent) % 2 else "pen-2"))
                sent.append(trace_id)
                time.sleep(0.001)

        thread = threading.Thread(target=keep_sending)
        thread.start()
        pages = []
        try:
            for _ in range(20):
                url = ui.url + "?since=all&filter=annotation.sku+%3D+%22book-1%22"
                with urllib.request.urlopen(url, timeout=10) as response:
                    pages.append((response.status, response.read().decode()))
        finally:
            stop.set()
            thread.join()
            sender.close()
        assert wait_until(lambda: written.stats()["traces"] == len(sent), timeout=10)
        assert [status for status, _ in pages] == [200] * 20
        assert all("This page failed" not in page for _, page in pages)
        # The last page lists book-1 traces only, and once all are stored, all of them.
        with urllib.request.urlopen(
            ui.url + "?since=all&filter=annotation.sku+%3D+%22book-1%22"
        ) as r:
            final = r.read().decode()
        books = [t for i, t in enumerate(sent) if i % 2]
        assert sum(t in final for t in books) == min(len(books), 100)
        assert not any(t in final for i, t in enumerate(sent) if not i % 2)
