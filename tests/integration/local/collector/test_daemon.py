"""The collector over real UDP on 127.0.0.1: parsing, garbage, drops, on_trace, forward."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.exporters.xray_udp import HEADER, UDPEmitter
from tracing.local.collector.daemon import (
    MAX_TRACKED_TRACES,
    Collector,
    ForwardConfig,
    parse_datagram,
)
from tracing.local.collector.store import TraceStore
from tracing.local.runtime.aws import LocalAWS

Doc = dict[str, Any]


def make_doc(trace_id: str | None = None, name: str = "orders", **extra: Any) -> Doc:
    now = time.time()
    doc = {
        "trace_id": trace_id or new_trace_id(),
        "id": new_id(),
        "name": name,
        "start_time": now - 0.01,
        "end_time": now,
        **extra,
    }
    assert testing.check_document(doc) == []
    return doc


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class RawSender:
    """A plain UDP socket aimed at the collector, for hand-made datagrams."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((host, int(port)))

    def send(self, *datagrams: bytes) -> None:
        for datagram in datagrams:
            self.sock.send(datagram)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def store() -> Iterator[TraceStore]:
    with TraceStore(":memory:") as opened:
        yield opened


@pytest.fixture
def collector(store: TraceStore) -> Iterator[Collector]:
    with Collector("127.0.0.1:0", store) as running:
        yield running


@pytest.fixture
def sender(collector: Collector) -> Iterator[RawSender]:
    raw = RawSender(collector.address)
    yield raw
    raw.close()


def test_stores_what_the_real_emitter_sends(collector: Collector, store: TraceStore) -> None:
    host, _, port = collector.address.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0
    trace = new_trace_id()
    docs = [make_doc(trace, f"span {i}") for i in range(5)]
    big = make_doc(trace, "big", metadata={"blob": {"data": "x" * 40_000}})
    emitter = UDPEmitter(collector.address)
    try:
        for doc in [*docs, big]:
            emitter.send(doc)
    finally:
        emitter.close()

    assert wait_until(lambda: collector.stats["stored"] == 6)
    assert store.documents(trace) == [*docs, big]
    assert collector.stats == {
        "received": 6,
        "stored": 6,
        "garbage": 0,
        "unsampled": 0,
        "dropped": 0,
        "forwarded": 0,
        "forward_errors": 0,
    }


def test_header_is_checked_like_the_daemon_does(
    collector: Collector, sender: RawSender, store: TraceStore
) -> None:
    doc = make_doc()
    # The daemon unmarshals the header, so spacing and key order do not matter.
    sender.send(b'{ "version": 1, "format": "json" }\n' + json.dumps(doc).encode() + b"\n")

    assert wait_until(lambda: collector.stats["stored"] == 1)
    assert store.documents(doc["trace_id"]) == [doc]


GARBAGE = [
    b"",
    os.urandom(300).replace(b"\n", b" "),
    b"\x00\xff" * 50,
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    HEADER,  # header without a document
    HEADER.rstrip(b"\n"),  # no newline at all
    b'{"format":"json","version":2}\n{"trace_id":"1-a-b","id":"c"}',
    b'{"format":"xml","version":1}\n{"trace_id":"1-a-b","id":"c"}',
    b'{"format":"json","version":true}\n{"trace_id":"1-a-b","id":"c"}',
    b'["format","json"]\n{"trace_id":"1-a-b","id":"c"}',
    b'{"trace_id":"1-a-b","id":"c"}',  # a document without the header
    HEADER + b'[{"trace_id":"1-a-b","id":"c"}]',  # a JSON array
    HEADER + b'"just a string"',
    HEADER + b"null",
    HEADER + b'{"trace_id":"1-a-b"}',  # no id
    HEADER + b'{"trace_id":1,"id":"c"}',  # trace_id not a string
    HEADER + b'{"trace_id":"1-a-b","id":"c"}\n{"trace_id":"1-a-b","id":"d"}',  # two
    HEADER + b'{"trace_id":"1-a-b","id":"c"',  # truncated
    HEADER + b'{"trace_id":"1-a-b","id":"\xff\xfe"}',  # not UTF-8
    HEADER + b"[" * 100_00 + b"]" * 100_00,  # deep nesting
]


def test_garbage_is_counted_and_the_collector_keeps_working(
    collector: Collector, sender: RawSender, store: TraceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tracing.local.collector.daemon")
    sender.send(*GARBAGE)
    after = make_doc()
    sender.send(HEADER + json.dumps(after).encode())

    assert wait_until(lambda: collector.stats["stored"] == 1)
    stats = collector.stats
    assert stats["garbage"] == len(GARBAGE)
    assert stats["received"] == len(GARBAGE) + 1
    assert store.documents(after["trace_id"]) == [after]
    assert store.stats() == {"documents": 1, "traces": 1}
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == len(GARBAGE)
    assert {r.levelno for r in malformed} == {logging.DEBUG}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_parse_datagram_accepts_one_document_only() -> None:
    doc = make_doc()
    text = json.dumps(doc)

    assert parse_datagram(HEADER + text.encode()) == (doc, text)
    for datagram in GARBAGE:
        assert parse_datagram(datagram) is None
    assert parse_datagram(HEADER + b"x" * 70_000) is None  # over the daemon's 64 KiB


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), with_header=st.booleans())
def test_parse_datagram_never_raises(body: bytes, with_header: bool) -> None:
    result = parse_datagram((HEADER if with_header else b"") + body)
    if result is not None:
        document, _ = result
        assert isinstance(document["trace_id"], str)
        assert isinstance(document["id"], str)


class GatedStore(TraceStore):
    """A store whose writes wait until the test opens the gate: a stalled disk."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.gate = threading.Event()
        self.entered = threading.Event()

    def add(self, documents: Any, received_at: float | None = None) -> int:
        self.entered.set()
        self.gate.wait(10)
        return super().add(documents, received_at)


def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tracing.local.collector.daemon")
    store = GatedStore()
    with Collector("127.0.0.1:0", store, queue_size=1) as collector:
        sender = RawSender(collector.address)
        try:
            sender.send(HEADER + json.dumps(make_doc()).encode())
            assert store.entered.wait(5)  # the writer now holds one batch
            sender.send(*(HEADER + json.dumps(make_doc()).encode() for _ in range(30)))
            assert wait_until(lambda: collector.stats["received"] == 31)
            assert collector.stats["dropped"] == 29  # one is queued, one is being written

            store.gate.set()
            assert wait_until(lambda: collector.stats["stored"] == 2)
            later = make_doc()
            sender.send(HEADER + json.dumps(later).encode())
            assert wait_until(lambda: collector.stats["stored"] == 3)
        finally:
            sender.close()
    assert store.documents(later["trace_id"]) == [later]
    full = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(full) == 1
    assert full[0].levelno == logging.WARNING
    store.close()


def test_on_trace_once_per_quiet_trace_and_again_after_more(store: TraceStore) -> None:
    calls: list[tuple[str, list[str], float]] = []
    lock = threading.Lock()

    def on_trace(trace_id: str, documents: list[Doc]) -> None:
        with lock:
            calls.append((trace_id, [d["name"] for d in documents], time.monotonic()))

    def snapshot() -> list[tuple[str, list[str], float]]:
        with lock:
            return list(calls)

    a, b = new_trace_id(), new_trace_id()
    with Collector("127.0.0.1:0", store, on_trace=on_trace, quiet_s=0.3) as collector:
        emitter = UDPEmitter(collector.address)
        began = time.monotonic()  # before any is sent: none is received earlier
        for name in ("a1", "a2", "a3"):
            emitter.send(make_doc(a, name))
        emitter.send(make_doc(b, "b1"))
        emitter.send(make_doc(b, "b2"))

        assert wait_until(lambda: len(snapshot()) == 2)
        first = snapshot()
        assert {(t, tuple(n)) for t, n, _ in first} == {(a, ("a1", "a2", "a3")), (b, ("b1", "b2"))}
        # Waited for the quiet period (0.3 s) after receiving, so after `began` too.
        assert min(at for _, _, at in first) - began >= 0.3 - 0.001
        time.sleep(0.5)
        assert len(snapshot()) == 2  # once per completed trace

        emitter.send(make_doc(a, "a4"))
        assert wait_until(lambda: len(snapshot()) == 3)
        assert snapshot()[2][:2] == (a, ["a1", "a2", "a3", "a4"])
        emitter.close()
    assert len(snapshot()) == 3


def test_pending_traces_reported_on_stop_and_callback_errors_contained(
    store: TraceStore, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def on_trace(trace_id: str, documents: list[Doc]) -> None:
        seen.append(trace_id)
        raise ValueError("callback bug")

    trace = new_trace_id()
    with Collector("127.0.0.1:0", store, on_trace=on_trace, quiet_s=60) as collector:
        sender = RawSender(collector.address)
        sender.send(HEADER + json.dumps(make_doc(trace)).encode())
        assert wait_until(lambda: collector.stats["stored"] == 1)
        assert seen == []  # still inside its quiet period
        sender.close()
    assert seen == [trace]
    assert any("on_trace failed" in r.getMessage() for r in caplog.records)


def test_quiet_tracker_is_bounded_and_forgets_the_oldest(store: TraceStore) -> None:
    reported: list[str] = []
    traces = [new_trace_id() for _ in range(MAX_TRACKED_TRACES + 20)]
    template = json.dumps(make_doc(traces[0])).encode()
    with Collector("127.0.0.1:0", store, on_trace=lambda t, _: reported.append(t), quiet_s=60) as c:
        sender = RawSender(c.address)
        for start in range(0, len(traces), 200):
            # Paced, so the kernel's socket buffer never overflows.
            for trace in traces[start : start + 200]:
                sender.send(HEADER + template.replace(traces[0].encode(), trace.encode()))
            assert wait_until(lambda n=start: c.stats["stored"] >= min(n + 200, len(traces)))
        sender.close()
        assert reported == []  # all still inside their quiet period
    # Every trace was stored, but only the newest ones were still tracked at stop().
    assert store.stats()["traces"] == len(traces)
    assert len(reported) == MAX_TRACKED_TRACES
    assert set(reported) == set(traces[-MAX_TRACKED_TRACES:])


def test_non_loopback_listen_warns(store: TraceStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tracing.local.collector.daemon")
    with Collector("127.0.0.1:0", store):
        pass
    assert not [r for r in caplog.records if "anyone who can reach it" in r.getMessage()]

    with Collector("0.0.0.0:0", store) as collector:
        assert collector.address.startswith("0.0.0.0:")
    warnings = [r for r in caplog.records if "anyone who can reach it" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "0.0.0.0:" in warnings[0].getMessage()


def test_stop_is_prompt_and_idempotent(store: TraceStore) -> None:
    collector = Collector("127.0.0.1:0", store).start()
    assert collector.start() is collector  # idempotent start
    names = {t.name for t in threading.enumerate()}
    assert {"tracing-collector-receive", "tracing-collector-write"} <= names

    # Prompt: every thread ends when told, none is left to its join timeout (what
    # a bound in seconds would try to show; a busy machine may take any time).
    began, timeout = time.monotonic(), 30.0
    collector.stop(timeout=timeout)
    assert time.monotonic() - began < timeout
    assert not [t for t in threading.enumerate() if t.name.startswith("tracing-collector-")]
    collector.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("tracing-collector-")]
    with pytest.raises(RuntimeError, match="restarted"):
        collector.start()
    Collector("127.0.0.1:0", store).stop()  # never started: nothing to do


def test_busy_port_raises(store: TraceStore) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        collector = Collector(f"127.0.0.1:{taken.getsockname()[1]}", store)
        with pytest.raises(OSError, match="in use"):
            collector.start()
    finally:
        taken.close()


def test_default_store_is_opened_and_closed_by_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACING_DB", str(tmp_path / "collector.sqlite3"))
    doc = make_doc()
    with Collector("127.0.0.1:0") as collector:
        emitter = UDPEmitter(collector.address)
        emitter.send(doc)
        emitter.close()
        assert wait_until(lambda: collector.stats["stored"] == 1)

    with TraceStore(tmp_path / "collector.sqlite3") as reopened:
        assert reopened.documents(doc["trace_id"]) == [doc]


# -- forwarding to X-Ray (moto's HTTP server) -------------------------------------


@pytest.fixture
def aws_env(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> LocalAWS:
    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    # Only ForwardConfig.endpoint_url should lead the client to moto.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    return aws


def test_forward_sends_documents_to_xray(aws_env: LocalAWS, store: TraceStore) -> None:
    a, b = new_trace_id(), new_trace_id()
    docs = [make_doc(a, "a1"), make_doc(a, "a2"), make_doc(b, "b1")]
    unnamed = make_doc(b, "will be rejected")
    del unnamed["name"]  # fine for the collector, rejected by X-Ray
    forward = ForwardConfig(endpoint_url=aws_env.endpoint, region="us-east-1", interval_s=0.2)
    with Collector("127.0.0.1:0", store, forward=forward) as collector:
        emitter = UDPEmitter(collector.address)
        for doc in [*docs, unnamed]:
            emitter.send(doc)
        emitter.close()
        assert wait_until(
            lambda: collector.stats["forwarded"] + collector.stats["forward_errors"] == 4,
            timeout=10,
        )
        stats = collector.stats
    assert (stats["stored"], stats["forwarded"], stats["forward_errors"]) == (4, 3, 1)

    response = aws_env.client("xray").batch_get_traces(TraceIds=[a, b])
    got = {
        t["Id"]: sorted(json.loads(s["Document"])["name"] for s in t["Segments"])
        for t in response["Traces"]
    }
    assert got == {a: ["a1", "a2"], b: ["b1"]}
    fetched = {
        s["Id"]: json.loads(s["Document"]) for t in response["Traces"] for s in t["Segments"]
    }
    assert fetched == {d["id"]: d for d in docs}


def test_forward_failure_is_counted_logged_once_and_storing_goes_on(
    store: TraceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tracing.local.collector.daemon")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    forward = ForwardConfig(
        endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", batch_size=2, interval_s=0.05
    )
    with Collector("127.0.0.1:0", store, forward=forward) as collector:
        emitter = UDPEmitter(collector.address)
        for _ in range(4):
            emitter.send(make_doc())
        emitter.close()
        assert wait_until(lambda: collector.stats["forward_errors"] == 4, timeout=10)
        assert collector.stats["stored"] == 4
    failures = [r for r in caplog.records if "forwarding failed" in r.getMessage()]
    assert len(failures) == 1
