"""The hand-written OTLP wire format, decoded with the real opentelemetry-proto package."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tracing import _otlp

TRACE = bytes(range(16))
SPAN = bytes(range(8))
PARENT = bytes(range(8, 16))


def _decode_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_decode_value(v) for v in value.array_value.values]
    return None if which is None else getattr(value, which)


def _any(value: Any) -> Any:
    message = AnyValue()
    message.ParseFromString(_otlp.any_value(value))
    return _decode_value(message)


def _span(body: bytes) -> ProtoSpan:
    message = ProtoSpan()
    message.ParseFromString(body)
    return message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        ("ünïcödé ✓", "ünïcödé ✓"),
        ("lone \ud800 surrogate", "lone ? surrogate"),
        (True, True),
        (False, False),
        (0, 0),
        (-1, -1),
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (2**70, str(2**70)),  # outside int64: kept, as text
        (1.5, 1.5),
        ([1, "a", True], [1, "a", True]),
        ((), []),
        ({"k": [1, None]}, '{"k":[1,null]}'),  # OTel attributes hold no maps: JSON
        (None, None),
    ],
)
def test_values_decode_to_what_was_written(value: Any, expected: Any) -> None:
    assert _any(value) == expected


def test_non_finite_doubles_stay_doubles() -> None:
    assert math.isnan(_any(float("nan")))
    assert _any(float("-inf")) == float("-inf")


def test_a_span_message_carries_every_field() -> None:
    attributes = _otlp.attribute("k", "v") + _otlp.attribute("n", 7)
    events = _otlp.event_message("retry", 5_000, [("attempt", 2)])
    links = _otlp.link_message(TRACE, PARENT, [("why", "batch")], trace_state="a=1")
    body = _otlp.span_message(
        TRACE,
        SPAN,
        PARENT,
        "name ✓",
        3,
        1_000,
        9_000,
        attributes,
        events,
        links,
        _otlp.STATUS_ERROR,
        "boom",
        _otlp.span_flags(True, True),
        "vendor=x",
        (1, 2, 3),
    )
    span = _span(body)
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, SPAN, PARENT)
    assert (span.name, span.kind, span.trace_state) == ("name ✓", 3, "vendor=x")
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (1_000, 9_000)
    assert {a.key: _decode_value(a.value) for a in span.attributes} == {"k": "v", "n": 7}
    assert [(e.name, e.time_unix_nano, e.attributes[0].value.int_value) for e in span.events] == [
        ("retry", 5_000, 2)
    ]
    [link] = span.links
    assert (link.trace_id, link.span_id, link.trace_state) == (TRACE, PARENT, "a=1")
    assert link.attributes[0].value.string_value == "batch"
    assert (span.status.code, span.status.message) == (2, "boom")
    assert span.flags == 0x301  # sampled; the parent is remote, and that is known
    counts = (span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count)
    assert counts == (1, 2, 3)


def test_a_root_span_has_no_parent_field() -> None:
    span = _span(_otlp.span_message(TRACE, SPAN, None, "root", 2, 1, 2))
    assert span.parent_span_id == b""
    assert span.flags == 0x101


def test_requests_frame_resource_scope_and_spans() -> None:
    request = _otlp.Request(_otlp.resource({"service.name": "svc", "n": 1}), "tracing")
    spans = [_otlp.span_message(TRACE, bytes([i] * 8), None, f"s{i}", 1, 1, 2) for i in range(3)]
    message = ExportTraceServiceRequest()
    message.ParseFromString(request.encode(spans))
    [resource_spans] = message.resource_spans
    attributes = {a.key: _decode_value(a.value) for a in resource_spans.resource.attributes}
    assert attributes == {"service.name": "svc", "n": 1}
    [scope_spans] = resource_spans.scope_spans
    assert scope_spans.scope.name == "tracing"
    assert [s.name for s in scope_spans.spans] == ["s0", "s1", "s2"]
    assert request.encode(spans) == _otlp.encode_request(
        _otlp.resource({"service.name": "svc", "n": 1}), "tracing", spans
    )


def test_packing_keeps_every_span_in_order_within_the_limit() -> None:
    request = _otlp.Request(_otlp.resource({"service.name": "svc"}), "tracing")
    spans = [
        _otlp.span_message(
            TRACE, i.to_bytes(8, "big"), None, f"s{i}", 1, 1, 2, _otlp.attribute("b", "x" * 300)
        )
        for i in range(1, 2001)
    ]
    names = []
    requests = list(_otlp.pack_requests(request, spans, 48_000))
    assert len(requests) > 10
    for body in requests:
        assert len(body) <= 48_000
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        names += [s.name for s in message.resource_spans[0].scope_spans[0].spans]
    assert names == [f"s{i}" for i in range(1, 2001)]


def test_a_span_too_big_alone_keeps_its_identity_and_says_what_it_lost() -> None:
    attributes = (
        _otlp.attribute("Service", "svc")
        + _otlp.attribute(_otlp.ANNOTATIONS_ATTRIBUTE, ["Service"])
        + _otlp.attribute("huge", "x" * 100_000)
        + _otlp.attribute("big", "y" * 30_000)
    )
    events = _otlp.event_message("e", 3, [("blob", "z" * 20_000)])
    body = _otlp.span_message(
        TRACE, SPAN, PARENT, "big one", 1, 1, 2, attributes, events, b"", _otlp.STATUS_ERROR
    )
    small = _otlp.shrink_span(body, 40_000)
    assert len(small) <= 40_000
    span = _span(small)
    assert (span.trace_id, span.span_id, span.parent_span_id, span.name) == (
        TRACE,
        SPAN,
        PARENT,
        "big one",
    )
    assert (span.start_time_unix_nano, span.end_time_unix_nano, span.status.code) == (1, 2, 2)
    kept = {a.key: _decode_value(a.value) for a in span.attributes}
    assert kept["Service"] == "svc"
    assert kept[_otlp.ANNOTATIONS_ATTRIBUTE] == ["Service"]
    assert "huge" not in kept
    assert "big" not in kept  # largest attributes first, until it fits
    assert '"attributes":["huge","big"]' in kept["tracing.truncated"]
    assert span.dropped_attributes_count == 2
    assert [e.name for e in span.events] == ["e"]  # events stay when attributes suffice
    assert _otlp.shrink_span(small, 40_000) == small  # fits: unchanged


scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.one_of(scalars, st.lists(scalars))))
def test_any_attribute_set_decodes_to_what_was_written(attributes: dict[str, Any]) -> None:
    encoded = b"".join(_otlp.attribute(k, v) for k, v in attributes.items())
    span = _span(_otlp.span_message(TRACE, SPAN, None, "s", 1, 1, 2, encoded))

    def clean(text: str) -> str:
        return text.encode("utf-8", "replace").decode()

    decoded = {a.key: _decode_value(a.value) for a in span.attributes}
    expected = {
        clean(k): (
            [clean(x) if isinstance(x, str) else x for x in v]
            if isinstance(v, list)
            else clean(v)
            if isinstance(v, str)
            else v
        )
        for k, v in attributes.items()
    }
    assert decoded == expected
