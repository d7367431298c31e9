"""The core's spans and X-Ray documents as OTLP spans (decoded with opentelemetry-proto)."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tracing import _otlp_spans
from tracing._header import new_id, new_trace_id
from tracing._scope import Scope
from tracing._span import CLIENT, CONSUMER, Span


def _decode(bodies: list[bytes]) -> list[ProtoSpan]:
    out = []
    for body in bodies:
        span = ProtoSpan()
        span.ParseFromString(body)
        out.append(span)
    return out


def _attributes(span: ProtoSpan) -> dict[str, Any]:
    def value(v: Any) -> Any:
        which = v.WhichOneof("value")
        if which == "array_value":
            return [value(x) for x in v.array_value.values]
        return getattr(v, which)

    return {a.key: value(a.value) for a in span.attributes}


def test_a_core_tree_becomes_spans_with_kinds_attributes_status_and_events() -> None:
    trace, parent = new_trace_id(), new_id()
    root = Span("## handler", start_time=100.0)
    root.annotations = {"ColdStart": True, "Service": "orders"}
    scope = Scope(root, trace, parent)
    call = Span("ssm", scope, start_time=100.1)
    call.kind = CLIENT
    call.namespace = "aws"
    call.aws = {"operation": "GetParameter", "region": "eu-west-1", "request_id": "r-1"}
    call.http = {"response": {"status": 400}}
    call.error = True
    call.finish(100.2)
    work = Span("work", scope, start_time=100.3)
    work.put_metadata("order", {"sku": "b-1", "qty": 2})
    work.put_metadata("raw", "x", namespace="debug")
    try:
        raise KeyError("missing")
    except KeyError as exc:
        work.fail(exc)
    work.finish(100.4)
    root.add_child(call)
    root.add_child(work)
    root.finish(100.5)

    spans = _decode(_otlp_spans.scope_spans(scope))
    assert [s.name for s in spans] == ["## handler", "ssm", "work"]
    handler, ssm, failed = spans
    assert handler.trace_id.hex() == trace[2:10] + trace[11:]
    assert handler.parent_span_id.hex() == parent
    assert handler.flags == 0x301  # the invocation's parent is Lambda's segment: remote
    assert handler.kind == 1  # INTERNAL, under the function segment Lambda records
    assert (handler.start_time_unix_nano, handler.end_time_unix_nano) == (100 * 10**9, 100.5e9)
    assert _attributes(handler) == {
        "ColdStart": True,
        "Service": "orders",
        "aws.xray.annotations": ["ColdStart", "Service"],
    }
    assert ssm.parent_span_id == handler.span_id
    assert ssm.flags == 0x101
    assert ssm.kind == 3
    assert _attributes(ssm) == {
        "rpc.system": "aws-api",
        "rpc.service": "ssm",
        "rpc.method": "GetParameter",
        "aws.region": "eu-west-1",
        "aws.request_id": "r-1",
        "http.response.status_code": 400,
    }
    assert ssm.status.code == 2
    assert _attributes(failed) == {"order": '{"sku":"b-1","qty":2}', "debug.raw": "x"}
    assert failed.status.code == 2
    [event] = failed.events
    assert event.name == "exception"
    details = {a.key: a.value.string_value for a in event.attributes}
    assert details["exception.type"] == "KeyError"
    assert "missing" in details["exception.message"]
    assert "test_otlp_spans.py" in details["exception.stacktrace"]


def test_open_spans_at_a_timeout_end_now_as_faults_listed_timeout() -> None:
    root = Span("## handler", start_time=1.0)
    scope = Scope(root, new_trace_id(), new_id())
    child = Span("slow call", scope, start_time=1.5)
    root.add_child(child)
    spans = _decode(_otlp_spans.scope_spans(scope, now=2.0))
    for span in spans:
        assert span.end_time_unix_nano == 2 * 10**9
        assert span.status.code == 2
        assert _attributes(span)["Timeout"] is True
        assert _attributes(span)["aws.xray.annotations"] == ["Timeout"]


def test_links_are_written_once_and_consumed() -> None:
    other_trace, other_span = new_trace_id(), new_id()
    root = Span("consumer", start_time=1.0)
    root.kind = CONSUMER
    scope = Scope(root, new_trace_id(), new_id(), segment=True)
    root.finish(2.0)
    links = {root.id: [(other_trace, other_span)]}
    [span] = _decode(_otlp_spans.scope_spans(scope, links=links))
    assert span.kind == 5
    [link] = span.links
    assert (link.trace_id.hex(), link.span_id.hex()) == (
        other_trace[2:10] + other_trace[11:],
        other_span,
    )
    assert links == {}


def test_dropped_spans_are_counted_on_the_root_and_unsampled_scopes_say_so() -> None:
    root = Span("## handler", start_time=1.0)
    scope = Scope(root, new_trace_id(), new_id(), limit=1, sampled=False)
    scope.admit()
    scope.admit()  # over the budget: dropped
    root.finish(2.0)
    [span] = _decode(_otlp_spans.scope_spans(scope))
    assert _attributes(span)["tracing.dropped_spans"] == 1
    assert span.flags & 0x01 == 0


class _SelfWriting(dict[str, Any]):
    """An entity that writes itself (what a library span's dict does)."""

    calls: list[tuple[bytes, bytes | None]] = []  # noqa: RUF012

    def otlp_spans(
        self, trace: bytes, parent: bytes | None, flags: int, now: float | None
    ) -> list[bytes]:
        self.calls.append((trace, parent))
        return []


def test_documents_become_spans_with_segment_kinds_and_self_writing_entities() -> None:
    trace = new_trace_id()
    library = _SelfWriting({"name": "lib", "id": new_id(), "start_time": 1.0, "end_time": 2.0})
    consumer = {
        "name": "worker",
        "id": new_id(),
        "trace_id": trace,
        "parent_id": new_id(),
        "start_time": 1.0,
        "end_time": 3.0,
        "subsegments": [
            {"name": "sqs", "id": new_id(), "namespace": "aws", "start_time": 1.1, "end_time": 1.2},
            library,
        ],
    }
    spans = _decode(_otlp_spans.document_spans(consumer))
    assert [(s.name, s.kind) for s in spans] == [("worker", 5), ("sqs", 3)]
    assert spans[0].flags == 0x301
    assert spans[1].flags == 0x101
    assert _SelfWriting.calls == [(bytes.fromhex(trace[2:10] + trace[11:]), spans[0].span_id)]
    own = dict(consumer, parent_id=None)
    del own["parent_id"]
    assert _decode(_otlp_spans.document_spans(own))[0].kind == 2  # a service's own: SERVER
    init = dict(consumer, type="subsegment")
    assert _decode(_otlp_spans.document_spans(init))[0].kind == 1
    assert _otlp_spans.document_spans({"trace_id": "garbage"}) == []
