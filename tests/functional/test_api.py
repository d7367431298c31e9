"""``tracing.span`` as a decorator on every kind of callable, threads and the guard.

In process, on both backends, against a real UDP listener.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id

pytestmark = pytest.mark.usefixtures("in_lambda")


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _invoke(monkeypatch: pytest.MonkeyPatch, handler: Any, timeout_ms: float = 3000) -> Any:
    header = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    return handler({}, testing.FakeContext(timeout_ms))


def _tree(entity: dict[str, Any]) -> list[Any]:
    return [entity["name"], [_tree(c) for c in entity.get("subsegments", [])]]


def _invocation(daemon: testing.DaemonListener) -> dict[str, Any]:
    docs = daemon.sync()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return next(d for d in docs if d["name"].startswith("## "))


class Orders:
    @tracing.span("method")
    def method(self, x: int) -> int:
        return x * 2

    @tracing.span("classmethod")
    @classmethod
    def build(cls, x: int) -> int:
        return x * 3

    @tracing.span("staticmethod")
    @staticmethod
    def helper(x: int) -> int:
        return x * 4

    @classmethod
    @tracing.span("inner classmethod")
    def inner(cls) -> str:
        return cls.__name__


@tracing.span
def bare(x: int) -> int:
    """Bare decorator: named after the function."""
    return x + 1


def test_methods_classmethods_staticmethods_and_bare(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> Any:
        orders = Orders()
        return (
            orders.method(1),
            Orders.build(1),
            orders.build(2),
            Orders.helper(1),
            Orders.inner(),
            bare(1),
        )

    assert _invoke(monkeypatch, handler) == (2, 3, 6, 4, "Orders", 2)
    assert bare.__name__ == "bare"
    assert bare.__doc__ is not None
    names = [c["name"] for c in _invocation(daemon)["subsegments"]]
    assert names == [
        "method",
        "classmethod",
        "classmethod",
        "staticmethod",
        "inner classmethod",
        "bare",
    ]


def test_a_generator_span_covers_its_whole_iteration(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)

    @tracing.span("rows")
    def rows() -> Iterator[int]:
        with tracing.span("fetch page"):
            time.sleep(0.02)
        sent = yield 1
        tracing.annotate("sent", sent)
        yield 2
        return None

    @tracing.span("closed early")
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    @tracing.span("raises")
    def failing() -> Iterator[int]:
        yield 1
        raise KeyError("gone")

    @tracing.handler
    def handler(event: Any, context: Any) -> Any:
        generator = rows()
        first = next(generator)
        with tracing.span("caller work"):  # runs between two yields
            time.sleep(0.02)
        second = generator.send("hello")
        assert list(generator) == []
        stream = endless()
        taken = [next(stream), next(stream)]
        stream.close()
        broken = failing()
        next(broken)
        with pytest.raises(KeyError):
            next(broken)
        return first, second, taken

    assert _invoke(monkeypatch, handler) == (1, 2, [0, 1])
    invocation = _invocation(daemon)
    assert _tree(invocation)[1] == [
        ["rows", [["fetch page", []]]],
        ["caller work", []],
        ["closed early", []],
        ["raises", []],
    ]
    rows_span, caller, closed, raises = invocation["subsegments"]
    assert rows_span["annotations"] == {"sent": "hello"}
    assert (
        rows_span["end_time"]
        >= caller["end_time"]
        >= caller["start_time"]
        >= (rows_span["start_time"])
    )
    assert "fault" not in closed
    assert raises["fault"] is True
    assert raises["cause"]["exceptions"][0]["type"] == "KeyError"


def test_async_functions_and_async_generators(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)

    @tracing.span("ticker")
    async def ticker() -> AsyncIterator[int]:
        for n in range(3):
            await asyncio.sleep(0.005)
            with tracing.span(f"tick {n}"):
                yield n

    @tracing.span("consume ticks")
    async def consume() -> list[int]:
        seen = []
        async for n in ticker():
            seen.append(n)
        return seen

    async def two_tasks() -> list[list[int]]:
        return list(await asyncio.gather(consume(), consume()))

    @tracing.handler
    def handler(event: Any, context: Any) -> Any:
        return asyncio.run(two_tasks())

    assert _invoke(monkeypatch, handler) == [[0, 1, 2], [0, 1, 2]]
    ticks = [["ticker", [[f"tick {n}", []] for n in range(3)]]]
    assert _tree(_invocation(daemon))[1] == [["consume ticks", ticks], ["consume ticks", ticks]]


def test_threads_bound_to_the_trace_lose_no_span(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N threads x M spans into one parent at once: every span arrives."""
    threads, spans = 8, 40
    tracing.configure(backend=backend)
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        barrier.wait()  # all threads hit the parent's first add_child together
        for n in range(spans):
            with tracing.span(f"t{index}-{n}") as span:
                span.annotate("n", n)
                tracing.metadata("thread", index)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("parent"):
            pool = [
                threading.Thread(target=tracing.in_current_trace(work), args=(i,))
                for i in range(threads)
            ]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()

    _invoke(monkeypatch, handler)
    [parent] = _invocation(daemon)["subsegments"]
    names = sorted(c["name"] for c in parent["subsegments"])
    assert names == sorted(f"t{i}-{n}" for i in range(threads) for n in range(spans))
    assert all(
        c["metadata"]["default"]["thread"] == int(c["name"][1]) for c in parent["subsegments"]
    )


def test_the_guard_sends_a_snapshot_while_the_handler_keeps_writing(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler mutates its data as fast as it can while the timeout is sent."""
    tracing.configure(backend=backend, deadline_margin_ms=100)
    shared: dict[str, Any] = {"items": []}

    # Imported before the clock starts: an import inside the handler (aws-xray-sdk
    # re-imported after another test removed it) can outlast the 200 ms before
    # the deadline on a busy machine, and then no child exists at the timeout.
    from aws_xray_sdk.core import xray_recorder
    from opentelemetry import trace

    def library_span() -> Any:
        if backend == "xray":
            return xray_recorder.in_subsegment("library")
        return trace.get_tracer("user").start_as_current_span("library")

    @tracing.handler
    def handler(event: Any, context: Any) -> int:
        # Until the guard's document arrives (it fires 200 ms in), not for a fixed
        # time the guard might miss on a busy machine; bounded, never a hang.
        daemon.sync()
        sent_before = len(daemon.datagrams)
        give_up = time.monotonic() + 10.0
        n = 0
        with tracing.span("busy") as span, library_span() as library:
            while len(daemon.datagrams) == sent_before and time.monotonic() < give_up:
                n += 1
                shared["items"].append(n)
                shared[f"k{n % 50}"] = n
                span.put_metadata(f"m{n % 200}", shared)
                tracing.annotate(f"a{n % 40}", n)
                # the library's own span, written through its own API
                if backend == "xray":
                    library.put_metadata(f"lib{n % 30}", shared)
                else:
                    library.set_attribute(f"lib{n % 30}", n)
                with tracing.span(f"child {n % 5}"):
                    pass
        return n

    assert _invoke(monkeypatch, handler, timeout_ms=300) > 0
    docs = daemon.sync()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    # Sent once (the handler's own end sends nothing twice), split to fit: busy's
    # 1,000 children do not fit one datagram with it.
    [invocation] = [d for d in docs if d["name"] == "## handler"]
    assert invocation["annotations"]["Timeout"] is True
    assert invocation["fault"] is True
    [busy] = [e for d in docs for e in testing.iter_entities(d) if e["name"] == "busy"]
    assert busy["annotations"]["Timeout"] is True
    children = [e for d in docs for e in testing.iter_entities(d) if e["name"].startswith("child")]
    # What existed at the deadline (the budget is 1,000 spans, busy included),
    # each once: the handler's later spans are not sent.
    assert 0 < len(children) <= 999
    assert len({c["id"] for c in children}) == len(children)


def test_a_held_library_span_used_after_it_ended_never_raises(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)

    # Imported before the clock starts: an import inside the handler (aws-xray-sdk
    # re-imported after another test removed it) can outlast the 200 ms before
    # the deadline on a busy machine, and then no child exists at the timeout.
    from aws_xray_sdk.core import xray_recorder
    from opentelemetry import trace

    def library_span() -> Any:
        if backend == "xray":
            return xray_recorder.in_subsegment("library")
        return trace.get_tracer("user").start_as_current_span("library")

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with library_span():
            held = tracing.current_span()
        held.annotate("late", 1)  # the library span has ended: dropped, not raised
        held.put_metadata("late", {"a": 1})
        held.record_exception(ValueError("late"))
        return "ok"

    for _ in range(3):
        assert _invoke(monkeypatch, handler) == "ok"
    runtime = tracing._runtime.get_runtime()
    assert runtime is not None
    if backend == "otel":
        processor: Any = runtime.backend.processor  # type: ignore[attr-defined]
        assert processor._metadata == {}  # nothing kept for spans that ended


def test_nothing_of_an_invocation_stays_alive_after_the_next_one(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard thread, the backends' caches, a thread left running: none may keep
    an invocation's tree alive once its late window closed (the next one ended)."""
    import gc

    from tracing._span import Span

    tracing.configure(backend=backend)
    go = threading.Event()
    names = iter(["kept", "next", "last"])

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        name = next(names)
        for n in range(50):
            with tracing.span(f"{name}-{n}"):
                pass
        if name == "kept":  # a thread still holding this invocation's context
            threading.Thread(target=go.wait, args=(10,), daemon=True).start()

    def alive(prefix: str) -> list[Span]:
        gc.collect()
        return [o for o in gc.get_objects() if isinstance(o, Span) and o.name.startswith(prefix)]

    try:
        _invoke(monkeypatch, handler)
        daemon.sync()
        assert len(alive("kept-")) == 50  # the late window: work may still arrive
        _invoke(monkeypatch, handler)
        daemon.sync()
        # Freed once the guard thread goes back to sleep, which a busy machine may
        # delay: looked at until then (bounded), not after a fixed pause.
        give_up = time.monotonic() + 10.0
        while alive("kept-") and time.monotonic() < give_up:
            time.sleep(0.05)
        assert alive("kept-") == []
        _invoke(monkeypatch, handler)
        assert alive("next-") == []
    finally:
        go.set()


def test_a_generator_kept_across_invocations_never_brings_the_old_trace_back(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)

    @tracing.span("pages")
    def pages() -> Iterator[int]:
        yield 1
        yield 2

    stream = pages()

    @tracing.handler
    def handler(event: Any, context: Any) -> Any:
        page = next(stream)
        with tracing.span(f"after page {page}"):
            return tracing.sqs.inject({"QueueUrl": "q", "MessageBody": "b"})

    first = _invoke(monkeypatch, handler)
    second = _invoke(monkeypatch, handler)
    roots = [
        p["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"].split(";")[0]
        for p in (first, second)
    ]
    docs = [d for d in daemon.sync() if d["name"] == "## handler"]
    assert [f"Root={d['trace_id']}" for d in docs] == roots  # each its own trace
    assert [c["name"] for c in docs[1]["subsegments"]] == ["after page 2"]
