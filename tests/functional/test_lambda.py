"""The handler wrapper and the init window, in process, against a real UDP listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from aws_xray_sdk.core import xray_recorder

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._span import clean_name

pytestmark = pytest.mark.usefixtures("in_lambda")


@pytest.fixture(params=["xray", "otel"])
def any_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a backend-neutral test on both backends (``configure()`` reads the env)."""
    monkeypatch.setenv("TRACING_BACKEND", request.param)
    return str(request.param)


def _header(sampled: str = "1") -> tuple[str, str, str]:
    root, parent = new_trace_id(), new_id()
    return root, parent, f"Root={root};Parent={parent};Sampled={sampled}"


def _invoke(
    monkeypatch: pytest.MonkeyPatch, fn: Any, header: str | None, context: Any = None
) -> Any:
    if header is None:
        monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    else:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    return fn({"order": 1}, context or testing.FakeContext())


def _names(doc: dict[str, Any]) -> list[str]:
    return [entity["name"] for entity in testing.iter_entities(doc)]


def _valid(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return docs


def test_init_work_is_replayed_into_the_first_invocation(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="orders")
    with (
        tracing.span("load config", table="orders"),
        xray_recorder.in_subsegment("sdk in_subsegment"),
    ):
        pass
    xray_recorder.begin_subsegment("sdk begin")
    xray_recorder.end_subsegment()

    @xray_recorder.capture("sdk capture")
    def warm() -> int:
        return 1

    warm()

    @tracing.handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"seen": event["order"]}

    root, parent, header = _header()
    assert _invoke(monkeypatch, handler, header) == {"seen": 1}
    init, invocation = _valid(daemon.wait_for(2))
    assert init["name"] == "Init"
    assert (init["trace_id"], init["parent_id"], init["type"]) == (root, parent, "subsegment")
    assert init["annotations"] == {"ColdStart": True, "InitType": "on-demand"}
    assert _names(init) == ["Init", "load config", "sdk in_subsegment", "sdk begin", "sdk capture"]
    assert init["subsegments"][0]["annotations"] == {"table": "orders"}
    assert invocation["name"] == "## handler"
    assert (invocation["trace_id"], invocation["parent_id"]) == (root, parent)
    assert invocation["annotations"] == {"ColdStart": True, "Service": "orders"}
    assert init["end_time"] <= invocation["start_time"]

    _, _, second = _header()
    _invoke(monkeypatch, handler, second)
    docs = _valid(daemon.wait_for(3))
    assert len(docs) == 3
    assert docs[2]["name"] == "## handler"
    assert docs[2]["annotations"]["ColdStart"] is False


@pytest.mark.usefixtures("any_backend")
def test_init_end_does_not_move_with_a_pause(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    with tracing.span("warm cache"):
        time.sleep(0.01)
    handler = tracing.handler(lambda event, context: None)
    init_done = time.time()
    time.sleep(0.5)
    _invoke(monkeypatch, handler, _header()[2])
    init, invocation = daemon.wait_for(2)
    assert init["end_time"] <= init_done
    assert invocation["start_time"] - init["end_time"] >= 0.5
    assert init["subsegments"][0]["end_time"] <= init["end_time"]


def test_unsampled_first_invocation_emits_nothing_and_init_is_gone(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    with tracing.span("init work"):
        pass

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with tracing.span("inner"), xray_recorder.in_subsegment("sdk"):
            return "ok"

    assert _invoke(monkeypatch, handler, _header("0")[2]) == "ok"
    assert daemon.settle() == []
    _invoke(monkeypatch, handler, _header()[2])
    [doc] = _valid(daemon.wait_for(1))
    assert doc["name"] == "## handler"
    assert _names(doc) == ["## handler", "inner", "sdk"]


@pytest.mark.usefixtures("any_backend")
def test_init_trace_always_makes_its_own_trace(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="orders", init_trace="always")
    with tracing.span("init work"):
        pass
    handler = tracing.handler(lambda event, context: "ok")
    root, _, header = _header("0")
    _invoke(monkeypatch, handler, header)
    [segment] = _valid(daemon.wait_for(1))
    assert segment["trace_id"] != root
    assert "parent_id" not in segment
    assert segment["name"] == "orders"
    assert _names(segment) == ["orders", "Init", "init work"]


@pytest.mark.usefixtures("any_backend")
def test_init_trace_off_never_emits_init(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(init_trace="off")
    with tracing.span("init work"):
        pass
    handler = tracing.handler(lambda event, context: "ok")
    _invoke(monkeypatch, handler, _header()[2])
    assert [d["name"] for d in daemon.settle()] == ["## _lambda_"]


@pytest.mark.usefixtures("any_backend")
def test_init_buffer_is_bounded_and_counts_drops(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(max_init_spans=3)
    for index in range(5):
        with tracing.span(f"init {index}"):
            pass
    handler = tracing.handler(lambda event, context: None)
    _invoke(monkeypatch, handler, _header()[2])
    init, _ = daemon.wait_for(2)
    assert _names(init) == ["Init", "init 0", "init 1", "init 2"]
    assert init["metadata"]["tracing"]["dropped_spans"] == 2


@pytest.mark.usefixtures("any_backend")
def test_spans_per_invocation_are_capped(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(max_spans_per_invocation=4)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        for index in range(10):
            with tracing.span(f"s{index}"):
                pass

    _invoke(monkeypatch, handler, _header()[2])
    docs = daemon.wait_for(2)
    invocation = docs[-1]
    assert len(invocation["subsegments"]) == 4
    assert invocation["metadata"]["tracing"]["dropped_spans"] == 6


@pytest.mark.usefixtures("any_backend")
def test_exception_is_recorded_and_the_same_object_reraised(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    boom = ValueError("card declined")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("charge"):
            raise boom

    with pytest.raises(ValueError, match="card declined") as caught:
        _invoke(monkeypatch, handler, _header()[2])
    assert caught.value is boom
    invocation = daemon.wait_for(2)[-1]
    assert invocation["fault"] is True
    [exception] = invocation["cause"]["exceptions"]
    assert exception["type"] == "ValueError"
    assert exception["message"] == "card declined"
    assert exception["stack"][0]["label"] == "handler"
    assert invocation["subsegments"][0]["fault"] is True


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
@pytest.mark.usefixtures("any_backend")
def test_base_exceptions_pass_through(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, exc_type: type
) -> None:
    tracing.configure()
    error = exc_type(3)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        raise error

    with pytest.raises(exc_type) as caught:
        _invoke(monkeypatch, handler, _header()[2])
    assert caught.value is error
    assert daemon.wait_for(2)[-1]["fault"] is True


@pytest.mark.usefixtures("any_backend")
def test_deadline_guard_sends_before_the_deadline(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard fires 150 ms in, 250 ms before the deadline: that margin, not a
    # time bound of this test, is what a busy machine's scheduling may take.
    tracing.configure(deadline_margin_ms=250)
    arrived: list[float] = []

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with tracing.span("outer"), tracing.span("slow call"):
            docs = daemon.wait_for(2, timeout=2.0)
            arrived.append(time.monotonic())
            assert len(docs) == 2  # sent while we are still running
        return "finished late"

    started, started_at = time.monotonic(), time.time()
    result = _invoke(monkeypatch, handler, _header()[2], testing.FakeContext(timeout_ms=400))
    assert result == "finished late"
    assert arrived[0] - started < 0.4  # before the deadline the context gave
    docs = _valid(daemon.settle())
    assert len(docs) == 2  # the late return sends nothing more
    invocation = docs[1]
    assert invocation["fault"] is True
    assert invocation["annotations"]["Timeout"] is True
    outer = invocation["subsegments"][0]
    assert outer["annotations"]["Timeout"] is True
    assert outer["subsegments"][0]["name"] == "slow call"
    assert outer["subsegments"][0]["fault"] is True
    # Closed when the guard fired: not before deadline - margin (the remaining time
    # is read in whole milliseconds), and before the deadline.
    assert invocation["end_time"] >= started_at + 0.15 - 0.001
    assert invocation["end_time"] - invocation["start_time"] < 0.4


@pytest.mark.usefixtures("any_backend")
def test_a_handler_ending_while_the_guard_sends_returns_only_once_all_is_sent(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda freezes the sandbox when the handler returns: a big timeout document
    still being cut and sent by the guard must be out by then."""
    tracing.configure(deadline_margin_ms=500)
    blob = "x" * 3000

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with tracing.span("big"):
            for i in range(990):
                with tracing.span(f"part {i}") as span:
                    span.put_metadata("blob", blob)
            # Return as soon as the guard's first datagram is out: it is then
            # in the middle of sending some fifty more.
            daemon.wait_for(2, timeout=5.0)
        return "late"

    result = _invoke(monkeypatch, handler, _header()[2], testing.FakeContext(timeout_ms=1000))
    assert result == "late"
    docs = daemon.sync()  # everything sent before this point, nothing after
    parts = [e for d in docs for e in testing.iter_entities(d) if e["name"].startswith("part ")]
    assert len(parts) == 990
    assert len({p["id"] for p in parts}) == 990


@pytest.mark.usefixtures("any_backend")
def test_fast_invocations_never_fire_the_guard(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(deadline_margin_ms=100)
    handler = tracing.handler(lambda event, context: "ok")
    for _ in range(20):
        _invoke(monkeypatch, handler, _header()[2], testing.FakeContext(timeout_ms=250))
    time.sleep(0.3)
    docs = daemon.settle()
    assert len(docs) == 21  # the Init and 20 invocations
    assert not any(d.get("fault") for d in docs)


def test_missing_header_never_attaches_to_the_previous_trace(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("ours"), xray_recorder.in_subsegment("sdk"):
            tracing.annotate("k", 1)

    _invoke(monkeypatch, handler, _header()[2])
    assert [d["name"] for d in daemon.wait_for(2)] == ["Init", "## handler"]
    _invoke(monkeypatch, handler, None)
    assert len(daemon.settle()) == 2


@pytest.mark.usefixtures("any_backend")
def test_context_without_remaining_time(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    handler = tracing.handler(lambda event, context: "ok")
    assert _invoke(monkeypatch, handler, _header()[2], context=object()) == "ok"
    assert [d["name"] for d in daemon.wait_for(2)] == ["Init", "## _lambda_"]


@pytest.mark.usefixtures("any_backend")
def test_outside_lambda_opens_its_own_segment(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAMBDA_TASK_ROOT")
    tracing.configure(service="script")

    @tracing.handler
    def main(event: Any, context: Any) -> int:
        with tracing.span("step"):
            return 7

    assert main({}, None) == 7
    [segment] = _valid(daemon.wait_for(1))
    assert "type" not in segment
    assert "parent_id" not in segment
    assert _names(segment) == ["script", "## main", "step"]


@pytest.mark.usefixtures("any_backend")
def test_disabled_is_a_no_op(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACING_DISABLED", "1")
    tracing.configure()

    def handler(event: Any, context: Any) -> str:
        with tracing.span("x") as span:
            span.annotate("a", 1)
            tracing.annotate("b", 2)
            tracing.metadata("c", 3)
        return "ok"

    assert tracing.handler(handler) is handler
    assert _invoke(monkeypatch, handler, _header()[2]) == "ok"
    assert daemon.settle() == []


@pytest.mark.usefixtures("any_backend")
def test_payload_capture_is_opt_in_and_redacted(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="svc", capture_event=True, capture_response=True)
    handler = tracing.handler(lambda event, context: {"token": "abc", "id": 3})
    monkeypatch.setenv("_X_AMZN_TRACE_ID", _header()[2])
    handler({"user": {"Password": "hunter2", "name": "ann"}}, None)
    doc = daemon.wait_for(2)[-1]
    assert doc["name"] == "## _lambda_"
    captured = doc["metadata"]["svc"]
    assert captured["event"] == {"user": {"Password": "***", "name": "ann"}}
    assert captured["response"] == {"token": "***", "id": 3}


@pytest.mark.usefixtures("any_backend")
def test_payloads_are_not_captured_by_default(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="svc")
    handler = tracing.handler(lambda event, context: {"secret": 1})
    _invoke(monkeypatch, handler, _header()[2])
    invocation = daemon.wait_for(2)[-1]
    assert invocation["name"] == "## _lambda_"
    assert "metadata" not in invocation


@pytest.mark.usefixtures("any_backend")
def test_asyncio_tasks_keep_their_own_parents(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()

    async def worker(index: int) -> None:
        with tracing.span(f"task {index}"):
            await asyncio.sleep(0.01 * (3 - index))
            with tracing.span(f"inner {index}"):
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(3)))

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        asyncio.run(main())

    _invoke(monkeypatch, handler, _header()[2])
    invocation = daemon.wait_for(2)[-1]
    tasks = {child["name"]: child for child in invocation["subsegments"]}
    assert sorted(tasks) == ["task 0", "task 1", "task 2"]
    for index in range(3):
        assert [c["name"] for c in tasks[f"task {index}"]["subsegments"]] == [f"inner {index}"]


@pytest.mark.usefixtures("any_backend")
def test_span_decorator_and_metadata(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()

    @tracing.span("compute", kind="fast")
    def compute(x: int) -> int:
        tracing.metadata("input", {"x": x})
        tracing.annotate("bad key!", "v")
        tracing.annotate("obj", object())  # type: ignore[arg-type]
        return x * 2

    @tracing.handler
    def handler(event: Any, context: Any) -> int:
        return compute(compute(1))

    assert _invoke(monkeypatch, handler, _header()[2]) == 4
    invocation = _valid(daemon.wait_for(2))[-1]
    assert [c["name"] for c in invocation["subsegments"]] == ["compute", "compute"]
    first = invocation["subsegments"][0]
    assert first["annotations"] == {"kind": "fast", "bad_key_": "v"}
    assert first["metadata"] == {"default": {"input": {"x": 1}}}


@pytest.mark.usefixtures("any_backend")
def test_threads_join_the_trace_plain_or_through_in_current_trace(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool tasks follow the invocation (``_hooks.py``); in_current_trace still works."""
    from concurrent.futures import ThreadPoolExecutor

    tracing.configure()

    def work(index: int) -> int:
        with tracing.span(f"work {index}"):
            return index * 2

    @tracing.handler
    def handler(event: Any, context: Any) -> list[int]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            plain = list(pool.map(work, [0, 1]))
            bound = list(pool.map(tracing.in_current_trace(work), [2, 3]))
        return plain + bound

    assert _invoke(monkeypatch, handler, _header()[2]) == [0, 2, 4, 6]
    invocation = _valid(daemon.wait_for(2))[-1]
    assert sorted(c["name"] for c in invocation["subsegments"]) == [
        "work 0",
        "work 1",
        "work 2",
        "work 3",
    ]


def test_the_invocations_own_annotations_can_be_changed(
    any_backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm invocation's annotations are pre-encoded; changes must still show."""
    tracing.configure(service="svc")
    calls = iter(["plain", "service", "added", "plain"])

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        what = next(calls)
        if what == "service":
            tracing.annotate("Service", "renamed")
        elif what == "added":
            tracing.current_span().annotate("tier", "gold")

    for _ in range(4):
        _invoke(monkeypatch, handler, _header()[2])
    docs = [d for d in _valid(daemon.sync()) if d["name"] == "## handler"]
    assert [d["annotations"] for d in docs] == [
        {"ColdStart": True, "Service": "svc"},
        {"ColdStart": False, "Service": "renamed"},
        {"ColdStart": False, "Service": "svc", "tier": "gold"},
        {"ColdStart": False, "Service": "svc"},
    ]


@pytest.mark.usefixtures("any_backend")
def test_capture_can_be_chosen_per_handler_and_per_span(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACER_CAPTURE_ERROR", "false")  # the global choice
    tracing.configure(service="svc")

    @tracing.span(capture_response=True)
    def price(order: str) -> dict[str, Any]:
        return {"order": order, "password": "x"}

    @tracing.span("charge", capture_error=True)  # this one keeps its message
    def charge() -> None:
        raise ValueError("card 4111 declined")

    @tracing.span
    def audit() -> None:
        raise KeyError("customer 42")  # the global choice: type only

    @tracing.handler(capture_response=True, capture_error=False)
    def handler(event: Any, context: Any) -> dict[str, Any]:
        price("o-1")
        for step in (charge, audit):
            with contextlib.suppress(Exception):
                step()
        raise RuntimeError("ssn 123-45-6789 in a message")

    with pytest.raises(RuntimeError):
        _invoke(monkeypatch, handler, _header()[2])
    invocation = daemon.wait_for(2)[-1]
    assert testing.check_document(invocation) == []
    spans = {s["name"]: s for s in invocation["subsegments"]}
    assert spans[clean_name(price.__qualname__)]["metadata"]["svc"]["response"] == {
        "order": "o-1",
        "password": "***",
    }
    [charged] = spans["charge"]["cause"]["exceptions"]
    assert (charged["type"], charged["message"]) == ("ValueError", "card 4111 declined")
    [audited] = spans[clean_name(audit.__qualname__)]["cause"]["exceptions"]
    assert (audited["type"], audited["message"]) == ("KeyError", "")
    assert "stack" not in audited
    [raised] = invocation["cause"]["exceptions"]
    assert (raised["type"], raised["message"]) == ("RuntimeError", "")
    assert "123-45-6789" not in json.dumps(invocation)
    assert invocation["fault"] is True
