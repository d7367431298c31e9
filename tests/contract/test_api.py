"""Every call of the README's API table, on both backends, in every context.

Each test is one documented promise; the ``run`` fixture (conftest) executes the
user code in init, sampled, unsampled, SQS-consumer, worker and local contexts
on the xray and otel backends, and checks every document sent against X-Ray's
rules afterwards.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import tracing
from tracing._header import new_id, new_trace_id, parse
from tracing._span import clean_name

from .conftest import SERVICE, Runner


class Broken:
    """An object whose repr and str raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def _annotations(entity: dict[str, Any]) -> dict[str, Any]:
    return dict(entity.get("annotations") or {})


def test_span_as_a_context_manager(run: Runner) -> None:
    def body() -> bool:
        with tracing.span("work", table="orders") as s:
            assert type(s).__module__.startswith("tracing")
            assert isinstance(s, tracing.Span)
            s.annotate("rows", 3)
            s.put_metadata("detail", {"k": [1, 2]})
            s.put_metadata("other", "x", namespace="orders")
            return s.recording

    result = run(body)
    assert result.value() is result.recording
    if not result.recording:
        assert result.documents == []
        return
    work = result.child("work")
    assert work["annotations"] == {"table": "orders", "rows": 3}
    assert work["metadata"] == {"default": {"detail": {"k": [1, 2]}}, "orders": {"other": "x"}}
    assert result.document_of(work["id"])["trace_id"] == result.trace_id


def test_span_as_a_decorator_on_functions_generators_and_coroutines(run: Runner) -> None:
    @tracing.span("plain", kind="function")
    def plain(x: int) -> int:
        return x + 1

    @tracing.span("generator")
    def numbers() -> Iterator[int]:
        tracing.annotate("inside", "generator")
        yield 1
        yield 2

    @tracing.span("coroutine")
    async def coroutine() -> str:
        await asyncio.sleep(0)
        return "done"

    @tracing.span("async generator")
    async def letters() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0)
        yield "b"

    async def both() -> tuple[str, list[str]]:
        return await coroutine(), [letter async for letter in letters()]

    def body() -> Any:
        items = []
        for item in numbers():
            with tracing.span(f"between {item}"):  # the caller's span, not the generator's
                items.append(item)
        return plain(1), items, asyncio.run(both())

    result = run(body)
    assert result.value() == (2, [1, 2], ("done", ["a", "b"]))
    if not result.recording:
        assert result.documents == []
        return
    assert _annotations(result.child("plain")) == {"kind": "function"}
    generator = result.child("generator")
    assert generator["annotations"] == {"inside": "generator"}
    assert "subsegments" not in generator
    assert result.child("between 1")["start_time"] >= generator["start_time"]
    assert generator["end_time"] >= result.child("between 2")["end_time"]
    assert result.child("coroutine")["end_time"] >= result.child("coroutine")["start_time"]
    assert result.child("async generator")


def test_annotate_and_metadata_land_on_the_current_span(run: Runner) -> None:
    def body() -> None:
        tracing.annotate("tier", "gold")
        tracing.metadata("order", {"sku": "book-1"}, namespace="orders")

    result = run(body)
    result.value()
    if not result.recording:
        assert result.documents == []
        return
    parent = result.parent()
    assert _annotations(parent)["tier"] == "gold"
    assert parent["metadata"]["orders"] == {"order": {"sku": "book-1"}}


def test_current_span_is_ours_and_knows_its_trace(run: Runner) -> None:
    def body() -> tuple[str, str | None, bool]:
        span = tracing.current_span()
        assert isinstance(span, tracing.Span)
        span.annotate("via_current", 1)
        return span.name, span.trace_id, span.recording

    result = run(body)
    name, trace_id, recording = result.value()
    assert recording is result.recording
    if result.context == "init":
        assert (name, trace_id) == ("Init", None)  # re-stamped at the first invocation
    elif result.context == "unsampled":
        assert trace_id == result.upstream["Root"]
    else:
        assert (name, trace_id) == (result.parent_name, result.trace_id)
    if recording:
        assert _annotations(result.parent())["via_current"] == 1


def test_the_librarys_own_spans_nest_both_ways(run: Runner, backend: str) -> None:
    def body() -> str:
        if backend == "xray":
            from aws_xray_sdk.core import xray_recorder

            opened = xray_recorder.in_subsegment("library span")
        else:
            from opentelemetry import trace

            opened = trace.get_tracer("user").start_as_current_span("library span")
        with opened:
            current = tracing.current_span()
            assert isinstance(current, tracing.Span)
            current.annotate("on_library_span", True)
            tracing.metadata("where", "library")
            with tracing.span("ours inside") as ours:
                assert isinstance(ours, tracing.Span)
            return current.name

    result = run(body)
    name = result.value()
    if not result.recording:
        assert result.documents == []
        return
    assert name == "library span"
    library = result.child("library span")
    assert library["annotations"] == {"on_library_span": True}
    assert library["metadata"]["default"] == {"where": "library"}
    assert [c["name"] for c in library["subsegments"]] == ["ours inside"]


def test_flush_never_raises_and_reports_success(run: Runner) -> None:
    result = run(lambda: tracing.flush())
    assert result.value() is True


def test_in_current_trace_carries_the_trace_into_threads(run: Runner) -> None:
    def work(index: int) -> int:
        with tracing.span(f"thread {index}"):
            return index

    def body() -> list[int]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(tracing.in_current_trace(work), range(4)))

    result = run(body)
    assert result.value() == [0, 1, 2, 3]
    if not result.recording:
        assert result.documents == []
        return
    names = {c["name"] for c in result.parent()["subsegments"]}
    assert names >= {f"thread {i}" for i in range(4)}


def test_sqs_inject_follows_the_propagation_rule(run: Runner) -> None:
    def body() -> tuple[dict[str, Any], str]:
        with tracing.span("send") as s:
            params: dict[str, Any] = {"QueueUrl": "https://queue", "MessageBody": "{}"}
            return tracing.sqs.inject(params), s.id

    result = run(body)
    params, span_id = result.value()
    system = params.get("MessageSystemAttributes")
    if result.context == "init":
        assert system is None  # the Init trace id is a placeholder: never passed on
        return
    header = parse(system["AWSTraceHeader"]["StringValue"])
    assert header is not None
    if result.context == "unsampled":
        upstream = result.upstream
        assert (header.root, header.parent, header.sampled) == (
            upstream["Root"],
            upstream["Parent"],
            "0",
        )
        return
    assert (header.root, header.parent, header.sampled) == (result.trace_id, span_id, "1")
    assert result.child("send")["id"] == span_id


def _sent_by_stream(carrier: str, params: dict[str, Any]) -> Any:
    """The context a consumer reads from what ``inject`` wrote (its public extract)."""
    if carrier == "kinesis":
        return tracing.kinesis.extract({"Data": params["Data"], "SequenceNumber": "1"})[0]
    change = {"NewImage": params["Item"], "SequenceNumber": "1"}
    record = {"eventName": "INSERT", "dynamodb": change}
    return tracing.dynamodb.extract(record)[0]


@pytest.mark.parametrize("carrier", ["kinesis", "dynamodb"])
def test_stream_inject_follows_the_propagation_rule(run: Runner, carrier: str) -> None:
    """``tracing.kinesis.inject`` / ``tracing.dynamodb.inject``, the explicit opt-in,
    by the same rule as SQS in every context: nothing from init, Lambda's own
    ``Sampled=0`` context unsampled, else the current span as the parent."""

    def body() -> tuple[dict[str, Any], str]:
        with tracing.span("send") as s:
            if carrier == "kinesis":
                put = {"StreamName": "clicks", "PartitionKey": "k", "Data": b'{"sku": "x"}'}
                return tracing.kinesis.inject(put), s.id
            item = {"TableName": "orders", "Item": {"id": {"S": "o-1"}}}
            return tracing.dynamodb.inject(item), s.id

    result = run(body)
    params, span_id = result.value()
    header = _sent_by_stream(carrier, params)
    if result.context == "init":
        assert header is None  # the Init trace id is a placeholder: never passed on
        return
    assert header is not None
    if result.context == "unsampled":
        upstream = result.upstream
        assert (header.root, header.parent, header.sampled) == (
            upstream["Root"],
            upstream["Parent"],
            "0",
        )
        return
    assert (header.root, header.parent, header.sampled) == (result.trace_id, span_id, "1")
    assert result.child("send")["id"] == span_id


def test_record_exception_marks_the_span_without_raising(run: Runner) -> None:
    def body() -> str:
        with tracing.span("handled") as span:
            try:
                raise KeyError("sku")
            except KeyError as exc:
                span.record_exception(exc)
        return "went on"

    result = run(body)
    assert result.value() == "went on"
    if not result.recording:
        assert result.documents == []
        return
    handled = result.child("handled")
    assert handled["fault"] is True
    [exception] = handled["cause"]["exceptions"]
    assert (exception["type"], exception["message"]) == ("KeyError", "'sku'")
    assert exception["stack"]


def test_an_exception_propagates_unchanged_and_marks_the_span(run: Runner) -> None:
    error = ValueError("poison")

    def body() -> None:
        with tracing.span("failing"):
            raise error

    result = run(body)
    assert result.outcome == ("raised", error)
    if not result.recording:
        assert result.documents == []
        return
    failing = result.child("failing")
    assert failing["fault"] is True
    assert failing["cause"]["exceptions"][0]["type"] == "ValueError"


HOSTILE: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "huge": 10**400,
    "bytes": b"\xff\x00",
    "set": {1, 2},
    "decimal": decimal.Decimal("1.10"),
    "when": datetime.datetime(2026, 12, 2, tzinfo=datetime.timezone.utc),
    "broken": Broken(),
    "keys": {1: "a", (2, 3): "b", None: "c"},
}


def test_hostile_values_never_cost_a_document(run: Runner) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)

    def body() -> str:
        with tracing.span("hostile", ratio=math.nan, ok=1) as s:
            for key, value in HOSTILE.items():
                s.annotate(key, value)
                s.put_metadata(key, value)
                tracing.annotate(f"api_{key}", value)
                tracing.metadata(f"api_{key}", value)
            s.put_metadata("cycle", cycle)
            s.annotate(Broken(), 1)  # type: ignore[arg-type]
        return "handler result"

    result = run(body)
    assert result.value() == "handler result"
    if not result.recording:
        assert result.documents == []
        return
    hostile = result.child("hostile")
    annotations = hostile["annotations"]
    assert annotations["ok"] == 1
    assert not {"ratio", "nan", "inf"} & set(annotations)  # non-finite: dropped
    assert annotations["huge"] == str(10**400)  # beyond a float64: its digits
    assert annotations["decimal"] == 1.1
    metadata = hostile["metadata"]["default"]
    assert (metadata["nan"], metadata["inf"]) == ("NaN", "Infinity")
    assert metadata["cycle"] == ["<cycle>"]
    assert metadata["broken"] == "<unrepresentable Broken>"
    assert metadata["keys"] == {"1": "a", "(2, 3)": "b", "None": "c"}


def test_process_batch_reports_failures_and_continues_the_producers_trace(run: Runner) -> None:
    producer, parent = new_trace_id(), new_id()
    good_id, bad_id = new_id(), new_id()
    header = f"Root={producer};Parent={parent};Sampled=1"
    messages = [
        {"MessageId": good_id, "Body": "good", "Attributes": {"AWSTraceHeader": header}},
        {"MessageId": bad_id, "Body": "bad", "Attributes": {"AWSTraceHeader": header}},
    ]
    event = tracing.testing.lambda_sqs_event(messages)

    def handle(record: dict[str, Any]) -> None:
        with tracing.span("handle"):
            if record["body"] == "bad":
                raise ValueError("poison")

    result = run(lambda: tracing.sqs.process_batch(event, handle))
    assert result.value() == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    segments = {
        doc["annotations"]["MessageId"]: doc
        for doc in result.documents
        if doc.get("trace_id") == producer and doc.get("name") == SERVICE
    }
    assert set(segments) == {good_id, bad_id}  # the producer sampled: recorded in any context
    assert segments[bad_id]["fault"] is True
    assert segments[good_id]["parent_id"] == parent
    assert [c["name"] for c in segments[good_id]["subsegments"]] == ["handle"]


def test_nothing_is_retained_after_the_work(run: Runner, backend: str) -> None:
    def body() -> None:
        with tracing.span("a"), tracing.span("b"):
            threading.Thread(target=lambda: None).start()

    result = run(body)
    result.value()
    runtime = tracing._runtime.get_runtime()
    assert runtime is not None
    if result.context != "init":  # the first invocation freed the Init buffer
        assert runtime.init is None or runtime.init.root.children is None
    if backend == "otel":
        processor = runtime.backend.processor  # type: ignore[attr-defined]
        assert processor._open == {}
        assert processor._pending == {}
        assert processor._core_parent == {}
        assert processor._metadata == {}


@pytest.mark.parametrize("value", [math.nan, -math.inf, 2**60, decimal.Decimal("NaN")])
def test_span_keyword_annotations_follow_the_value_rules(run: Runner, value: Any) -> None:
    def body() -> None:
        with tracing.span("kw", value=value, fine="yes"):
            pass

    result = run(body)
    result.value()
    if result.recording:
        annotations = result.child("kw")["annotations"]
        assert annotations["fine"] == "yes"
        assert annotations.get("value") in (None, "1152921504606846976", "NaN")


def test_span_capture_options_record_the_response_and_hide_error_text(run: Runner) -> None:
    @tracing.span(capture_response=True)
    def price(order: str) -> dict[str, Any]:
        return {"order": order, "password": "hunter2"}

    @tracing.span("charge", capture_error=False)
    def charge() -> None:
        raise ValueError("card 4111 declined")

    def body() -> str:
        price("o-1")
        try:
            charge()
        except ValueError:
            return "declined"
        return "charged"

    result = run(body)
    assert result.value() == "declined"
    if not result.recording:
        assert result.documents == []
        return
    priced = result.child(clean_name(price.__qualname__))
    assert priced["metadata"][SERVICE]["response"] == {"order": "o-1", "password": "***"}
    charged = result.child("charge")
    assert charged["fault"] is True
    [exception] = charged["cause"]["exceptions"]
    assert (exception["type"], exception["message"]) == ("ValueError", "")
    assert "stack" not in exception
