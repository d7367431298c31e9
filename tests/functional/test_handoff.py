"""Work handed to threads and pools, and work sent late (``_hooks.py``, ``_scope.py``).

In process, on both backends, against a real UDP listener. The awslambdaric
version of the user-facing cases is ``tests/integration/test_handoff_runtime.py``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool
from typing import Any

import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._runtime import get_runtime
from tracing._scope import STACK

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
            import time

            time.sleep(0.25)

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
