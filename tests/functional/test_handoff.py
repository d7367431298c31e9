"""Work handed to threads and pools, and work sent late (``_hooks.py``, ``_scope.py``).

In process, on both backends, against a real UDP listener. The awslambdaric
version of the user-facing cases is ``tests/integration/test_handoff_runtime.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.pool import ThreadPool
from typing import Any, ClassVar

import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._runtime import get_runtime
from tracing._scope import STACK

from .._emitters import until_sent

pytestmark = pytest.mark.usefixtures("in_lambda")


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _invoke(monkeypatch: pytest.MonkeyPatch, handler: Any, sampled: str = "1") -> str:
    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled={sampled}")
    handler({}, testing.FakeContext())
    return root


def _docs(daemon: testing.DaemonListener) -> list[dict[str, Any]]:
    docs = daemon.sync()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return docs


def _names(entity: dict[str, Any]) -> list[str]:
    return [child["name"] for child in entity.get("subsegments", ())]


def test_each_task_runs_in_its_own_copy_of_the_submitting_context(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    barrier = threading.Barrier(2)

    def task(name: str) -> str:
        with tracing.span(name):
            barrier.wait(5)  # both tasks are inside their span at once
            with tracing.span(f"{name} inner"):
                pass
        return tracing.current_span().name

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("fan out"), ThreadPoolExecutor(2) as pool:
            assert sorted(pool.map(task, ["a", "b"])) == ["fan out", "fan out"]
            assert tracing.current_span().name == "fan out"

    _invoke(monkeypatch, handler)
    [invocation] = [d for d in _docs(daemon) if d["name"] == "## handler"]
    [fan_out] = invocation["subsegments"]
    spans = sorted(fan_out["subsegments"], key=lambda s: s["name"])
    assert [(s["name"], _names(s)) for s in spans] == [("a", ["a inner"]), ("b", ["b inner"])]


def test_pool_workers_do_not_keep_the_invocation_that_started_them(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module-level pool's threads start in the first invocation that uses it."""
    tracing.configure(backend=backend)
    pool = ThreadPoolExecutor(1)
    thread_pool = ThreadPool(1)
    try:

        @tracing.handler
        def handler(event: Any, context: Any) -> None:
            pool.submit(lambda: None).result()  # starts the worker thread, here
            thread_pool.apply(lambda: None)

        _invoke(monkeypatch, handler)
        # Outside any invocation now: nothing is current in either pool's threads.
        assert pool.submit(lambda: STACK.get()).result() == ()
        assert thread_pool.apply(lambda: STACK.get()) == ()
        with tracing.span("outside"):  # records nothing outside an invocation
            assert pool.submit(lambda: tracing.current_span().recording).result() is False
    finally:
        pool.shutdown()
        thread_pool.close()
        thread_pool.join()


def test_threads_subclasses_and_to_thread_carry_the_trace(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)

    class Worker(threading.Thread):
        def run(self) -> None:
            with tracing.span("subclass"):
                pass

    def plain() -> None:
        with tracing.span("plain"):
            pass

    async def main() -> None:
        await asyncio.to_thread(plain)  # copies the context itself, then submits
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, plain)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        for thread in (Worker(), threading.Thread(target=plain)):
            thread.start()
            thread.join()
        asyncio.run(main())

    _invoke(monkeypatch, handler)
    [invocation] = [d for d in _docs(daemon) if d["name"] == "## handler"]
    assert _names(invocation) == ["subclass", "plain", "plain", "plain"]


def test_a_thread_started_outside_any_unit_carries_nothing(
    backend: str, daemon: testing.DaemonListener
) -> None:
    tracing.configure(backend=backend)
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(STACK.get()))
    thread.start()
    thread.join()
    assert seen == [()]


def test_unsampled_work_in_threads_passes_sampled_0_and_records_nothing(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    seen: list[Any] = []

    def task() -> None:
        from tracing._propagation import outgoing_header

        with tracing.span("nothing"):
            seen.append(outgoing_header())

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(task).result()

    root = _invoke(monkeypatch, handler, sampled="0")
    [header] = seen
    assert (header.root, header.sampled) == (root, "0")
    assert _docs(daemon) == []


def test_late_work_over_the_budget_is_dropped_counted_and_logged_once(
    backend: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracing.configure(backend=backend, max_spans_per_invocation=5)
    go = threading.Event()

    def late() -> None:
        go.wait(5)
        for n in range(10):
            with tracing.span(f"late {n}"):
                pass

    thread = threading.Thread(target=late)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("own"):
            pass
        thread.start()

    caplog.set_level(logging.INFO, logger="tracing")
    root = _invoke(monkeypatch, handler)
    go.set()
    thread.join(5)
    docs = _docs(daemon)
    [invocation] = [d for d in docs if d["name"] == "## handler"]
    late_docs = [d for d in docs if d["name"].startswith("late")]
    # The budget (5) holds "own" and the first four late spans; six are dropped.
    assert [d["name"] for d in late_docs] == [f"late {n}" for n in range(4)]
    for doc in late_docs:
        assert (doc["trace_id"], doc["parent_id"], doc["type"]) == (
            root,
            invocation["id"],
            "subsegment",
        )
    runtime = get_runtime()
    assert runtime is not None
    assert (runtime.late_sent, runtime.late_dropped) == (4, 6)
    warnings = [r for r in caplog.records if "over its span budget" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING]  # once
    sent = [r for r in caplog.records if "sent late" in r.getMessage()]
    assert [r.levelno for r in sent] == [logging.INFO]  # once


def test_nothing_is_sent_late_after_the_guard_sent_a_timeout(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, deadline_margin_ms=100)
    go = threading.Event()

    def late() -> None:
        go.wait(5)
        with tracing.span("after the timeout"):
            pass

    thread = threading.Thread(target=late)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        thread.start()
        with tracing.span("slow"):
            until_sent(daemon)  # the guard's timeout, 100 ms before the 200 ms deadline

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext(200))
    go.set()
    thread.join(5)
    docs = _docs(daemon)
    [invocation] = [d for d in docs if d["name"] == "## handler"]
    assert invocation["annotations"]["Timeout"] is True
    [slow] = invocation["subsegments"]
    assert slow["annotations"]["Timeout"] is True  # sealed, never re-sent complete
    assert [d["name"] for d in docs if d["name"] not in ("## handler", "Init")] == []


# -- what the review found: headers, long-lived threads, memory, library spans -------


class _Recorder(BaseHTTPRequestHandler):
    """A local endpoint recording the trace header of each request (SQS's JSON API)."""

    headers_seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.headers_seen.append(self.headers.get("X-Amzn-Trace-Id"))
        body = b'{"MessageId":"m","MD5OfMessageBody":"x"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def sqs_endpoint() -> Iterator[Any]:
    import boto3

    _Recorder.headers_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        )
    finally:
        server.shutdown()
        server.server_close()


def _root_of(header: str | None) -> str | None:
    return header.split(";")[0][len("Root=") :] if header else None


def test_late_work_passes_its_own_trace_on_never_the_next_invocations(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, sqs_endpoint: Any
) -> None:
    tracing.configure(backend=backend, max_spans_per_invocation=8)
    go, inside, done = threading.Event(), threading.Event(), threading.Event()

    def send() -> None:
        sqs_endpoint.send_message(QueueUrl="http://127.0.0.1/1/q", MessageBody="x")

    def late() -> None:
        with tracing.span("open at the send"):
            inside.set()
            go.wait(5)
            send()  # during invocation 2, inside a span sent in progress
        send()  # during invocation 2, a late call under the invocation
        for _ in range(10):
            send()  # past the budget: not recorded, still its own trace
        done.set()

    thread = threading.Thread(target=late)

    @tracing.handler
    def first(event: Any, context: Any) -> None:
        thread.start()
        inside.wait(5)

    @tracing.handler
    def second(event: Any, context: Any) -> None:
        go.set()
        done.wait(5)
        send()  # the second invocation's own call

    first_root = _invoke(monkeypatch, first)
    second_root = _invoke(monkeypatch, second)
    thread.join(5)
    roots = [_root_of(h) for h in _Recorder.headers_seen]
    assert roots == [first_root] * 12 + [second_root]
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.late_dropped > 0  # the budget held
    docs = _docs(daemon)
    late_calls = [
        e
        for d in docs
        if d["trace_id"] == first_root
        for e in testing.iter_entities(d)
        if e.get("namespace") == "aws"
    ]
    assert len(late_calls) >= 2


def test_a_long_lived_thread_belongs_to_no_later_invocation_and_frees_the_tree(
    backend: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A library's background worker started lazily in invocation 1 (a log shipper)."""
    import gc
    import queue

    from tracing._span import Span

    tracing.configure(backend=backend)
    work: queue.Queue[tuple[int, threading.Event] | None] = queue.Queue()

    def shipper() -> None:
        while (item := work.get()) is not None:
            n, shipped = item
            with tracing.span(f"ship {n}"):
                pass
            shipped.set()

    thread = threading.Thread(target=shipper, daemon=True)
    calls = iter(range(1, 6))

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        n = next(calls)
        with tracing.span(f"own {n}"):
            if n == 1:
                for k in range(20):
                    with tracing.span(f"sibling {k}"):
                        pass
                thread.start()  # lazily, inside the first invocation
            shipped = threading.Event()
            work.put((n, shipped))
            shipped.wait(5)

    caplog.set_level(logging.INFO, logger="tracing")
    roots = [_invoke(monkeypatch, handler) for _ in range(5)]
    work.put(None)
    thread.join(5)
    docs = _docs(daemon)
    shipped = {d["name"]: d["trace_id"] for d in docs if d["name"].startswith("ship")}
    nested = [
        (e["name"], d["trace_id"])
        for d in docs
        for e in testing.iter_entities(d)
        if e["name"].startswith("ship")
    ]
    # Invocation 1's own, then late into invocation 1 while its window is open
    # (during invocation 2): never into invocations 2 to 5.
    assert {name for name, _ in nested} == {"ship 1", "ship 2"}
    assert all(trace == roots[0] for _, trace in nested)
    assert shipped.get("ship 2") == roots[0]
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.late_dropped == 3
    expired = [r for r in caplog.records if "still working after the next one" in r.getMessage()]
    assert len(expired) == 1
    # Its tree is freed, but for the span the thread was started in (its context).
    gc.collect()
    alive = [o.name for o in gc.get_objects() if isinstance(o, Span)]
    assert not [name for name in alive if name.startswith("sibling")]


def test_a_user_thread_attribute_named_context_is_left_alone(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    seen: list[Any] = []

    class Client(threading.Thread):
        def __init__(self) -> None:
            super().__init__()
            if sys.version_info < (3, 14):
                self._context = None  # the application's own (an SSL context, lazily)

        def run(self) -> None:
            seen.append(getattr(self, "_context", "unset") if sys.version_info < (3, 14) else None)
            with tracing.span("client"):
                pass

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        client = Client()
        client.start()
        client.join()

    _invoke(monkeypatch, handler)
    assert seen == [None]
    [invocation] = [d for d in _docs(daemon) if d["name"] == "## handler"]
    assert _names(invocation) == ["client"]


def test_an_executor_running_tasks_elsewhere_gets_them_as_they_are(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.14's InterpreterPoolExecutor pickles tasks: a context cannot go along."""
    tracing.configure(backend=backend)
    received: list[Any] = []

    class Elsewhere(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            received.append(fn)
            return super().submit(fn, *args, **kwargs)

    Elsewhere.__module__ = "concurrent.futures.interpreter"

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with Elsewhere(1) as pool:
            pool.submit(len, "abc").result()

    _invoke(monkeypatch, handler)
    assert received == [len]


def test_otel_spans_never_ended_are_not_kept_past_the_late_window(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace

    tracing.configure(backend="otel")
    tracer = trace.get_tracer("leaky")
    leaked: list[Any] = []

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        leaked.append(tracer.start_span("never ended"))  # not even current
        with tracer.start_as_current_span("own"), tracing.span("inside"):
            pass

    for _ in range(30):
        _invoke(monkeypatch, handler)
    runtime = get_runtime()
    assert runtime is not None
    processor = runtime.backend.processor  # type: ignore[attr-defined]
    assert len(processor._carried) <= 2
    assert len(processor._open) <= 2
    invocations = [d for d in _docs(daemon) if d["name"] == "## handler"]
    assert len(invocations) == 30
    assert all(_names(d) == ["own"] for d in invocations)


def test_aws_xray_sdk_late_subsegments_keep_the_budget_and_go_once(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_xray_sdk.core import xray_recorder

    tracing.configure(backend="xray", max_spans_per_invocation=4)
    go, inside, done = threading.Event(), threading.Event(), threading.Event()

    def late() -> None:
        with tracing.span("open at the send"):
            inside.set()
            go.wait(5)
            for n in range(3):  # under a span sent in progress: go with it
                with xray_recorder.in_subsegment(f"sdk in {n}"):
                    pass
        for n in range(5):  # under the invocation: on their own, within the budget
            with xray_recorder.in_subsegment(f"sdk after {n}"):
                pass
        done.set()

    thread = threading.Thread(target=late)

    @tracing.handler
    def first(event: Any, context: Any) -> None:
        thread.start()
        inside.wait(5)

    @tracing.handler
    def second(event: Any, context: Any) -> None:
        go.set()
        done.wait(5)

    root = _invoke(monkeypatch, first)
    _invoke(monkeypatch, second)
    thread.join(5)
    entities = [
        e["name"]
        for d in _docs(daemon)
        if d["trace_id"] == root
        for e in testing.iter_entities(d)
        if e["name"].startswith("sdk")
    ]
    # Budget 4: "open at the send" and three more; each sent once.
    assert sorted(entities) == ["sdk in 0", "sdk in 1", "sdk in 2"]
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.late_dropped == 5
