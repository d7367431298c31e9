"""The hand-written OTLP wire format, decoded with the real opentelemetry-proto package."""

from __future__ import annotations

import enum
import http
import json
import math
import os
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tracing import _otlp, _otlp_fit

#: ``make fuzz`` multiplies the generated cases (TRACING_FUZZ_SCALE).
SCALE = int(os.environ.get("TRACING_FUZZ_SCALE", "1"))

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
        ({"k": [1, None]}, '{"k":[1,null]}'),  # the core's metadata: JSON, as X-Ray keeps it
        (None, None),
        (b"\x00\xff", b"\x00\xff"),  # bytes, not their repr
        (http.HTTPStatus.NOT_FOUND, 404),  # an int subclass: its int
        ({"k": float("nan")}, "{'k': nan}"),  # not JSON: its text, never a lost span
    ],
)
def test_values_decode_to_what_was_written(value: Any, expected: Any) -> None:
    assert _any(value) == expected


class Tier(str, enum.Enum):
    GOLD = "gold"


class Level(enum.IntEnum):
    HIGH = 2


class Label(str):
    pass


class Ratio(float):
    pass


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\xff",
        b"",
        {"region": "eu", "limits": {"cpu": 2, "tags": ("a", b"\x01")}, "none": None},
        {},
        http.HTTPStatus.NOT_FOUND,
        Level.HIGH,
        Tier.GOLD,
        Label("plain"),
        Ratio(0.5),
        True,
        ("a", 1, 2.5, False, b"z", None, [Tier.GOLD]),
        [],
        "ünïcödé",
        -(2**63),
    ],
    ids=repr,
)
def test_otel_attribute_values_are_written_as_opentelemetrys_encoder_writes_them(
    value: Any,
) -> None:
    ours = AnyValue.FromString(_otlp.otel_value(value))
    assert MessageToDict(ours) == MessageToDict(_encode_value(value))
    assert ours.SerializeToString() == _encode_value(value).SerializeToString()


def test_otel_values_opentelemetry_cannot_write_are_kept_as_text() -> None:
    # OTel's encoder raises on these and drops the attribute; nothing is lost here.
    assert _decode_value(AnyValue.FromString(_otlp.otel_value(2**64))) == str(2**64)
    assert _decode_value(AnyValue.FromString(_otlp.otel_value(object))) == str(object)


def test_events_and_links_keep_their_dropped_attribute_counts() -> None:
    events = _otlp.event_message("e", 5, [("k", b"\x01")], 3, _otlp.otel_value)
    links = _otlp.link_message(TRACE, PARENT, [("k", {"a": 1})], dropped=2, encode=_otlp.otel_value)
    span = _span(_otlp.span_message(TRACE, SPAN, None, "s", 1, 1, 2, b"", events, links))
    [event], [link] = span.events, span.links
    assert (event.dropped_attributes_count, link.dropped_attributes_count) == (3, 2)
    assert event.attributes[0].value.bytes_value == b"\x01"
    assert link.attributes[0].value.kvlist_value.values[0].key == "a"


def test_spans_are_grouped_by_their_instrumentation_scope() -> None:
    request = _otlp.Request(_otlp.resource({"service.name": "svc"}), "tracing")
    scope = _otlp.scope_fields("my.lib", "9.9", {"lib.flag": True}, "https://schema/1.0")
    other = _otlp.scope_fields("other")

    def span(name: str, scope: bytes | None = None) -> bytes:
        return _otlp.scoped(_otlp.span_message(TRACE, SPAN, None, name, 1, 1, 2), scope)

    spans = [span("core 1"), span("mine 1", scope), span("other", other), span("mine 2", scope)]
    message = ExportTraceServiceRequest.FromString(request.encode([*spans, span("core 2")]))
    [resource_spans] = message.resource_spans
    grouped = [
        (
            MessageToDict(s.scope, preserving_proto_field_name=True),
            s.schema_url,
            [span.name for span in s.spans],
        )
        for s in resource_spans.scope_spans
    ]
    assert grouped == [
        ({"name": "tracing"}, "", ["core 1", "core 2"]),
        (
            {
                "name": "my.lib",
                "version": "9.9",
                "attributes": [{"key": "lib.flag", "value": {"bool_value": True}}],
            },
            "https://schema/1.0",
            ["mine 1", "mine 2"],
        ),
        ({"name": "other"}, "", ["other"]),
    ]
    only_mine = ExportTraceServiceRequest.FromString(request.encode([spans[1]]))
    assert [s.scope.name for s in only_mine.resource_spans[0].scope_spans] == ["my.lib"]
    # Shrinking and packing keep a span's scope.
    big = _otlp.scoped(
        _otlp.span_message(TRACE, SPAN, None, "big", 1, 1, 2, _otlp.attribute("b", "x" * 9000)),
        scope,
    )
    assert _otlp_fit.shrink_span(big, 4000).scope == scope  # type: ignore[attr-defined]
    for body in _otlp_fit.pack_requests(
        request, _otlp_fit.fit_spans(request, [big] * 5, 6000), 6000
    ):
        assert len(body) <= 6000
        [scope_spans] = ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans
        assert scope_spans.scope.name == "my.lib"


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
    requests = list(_otlp_fit.pack_requests(request, spans, 48_000))
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
    small = _otlp_fit.shrink_span(body, 40_000)
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
    assert _otlp_fit.shrink_span(small, 40_000) == small  # fits: unchanged


def test_a_shrunk_span_adds_to_the_dropped_counts_it_had() -> None:
    attributes = b"".join(_otlp.attribute(f"k{i}", "v" * 1000) for i in range(10))
    events = b"".join(_otlp.event_message("e", 1, [("blob", "z" * 5000)]) for _ in range(2))
    body = _otlp.span_message(
        TRACE, SPAN, None, "s", 1, 1, 2, attributes, events, dropped=(4, 1, 7)
    )
    span = _span(_otlp_fit.shrink_span(body, 4000))
    kept = [a.key for a in span.attributes if a.key != "tracing.truncated"]
    assert span.dropped_attributes_count == 4 + 10 - len(kept)
    assert span.dropped_events_count == 1 + 2  # both events went, on top of the one before
    assert span.dropped_links_count == 7
    note = json.loads(
        next(a for a in span.attributes if a.key == "tracing.truncated").value.string_value
    )
    assert note["events"] == 2


@pytest.mark.parametrize(
    ("what", "body"),
    [
        (
            "a 100 KB status description",
            _otlp.span_message(
                TRACE,
                SPAN,
                PARENT,
                "s",
                2,
                1,
                2,
                status=_otlp.STATUS_ERROR,
                status_message="x" * 100_000,
            ),
        ),
        (
            "sixty attributes with 300-character keys",
            _otlp.span_message(
                TRACE,
                SPAN,
                PARENT,
                "s",
                2,
                1,
                2,
                b"".join(_otlp.attribute(f"{i:03}" + "k" * 297, "v" * 1000) for i in range(60)),
            ),
        ),
        (
            "sixty attributes with 150-character keys",
            _otlp.span_message(
                TRACE,
                SPAN,
                PARENT,
                "s",
                2,
                1,
                2,
                b"".join(_otlp.attribute(f"{i:03}" + "k" * 147, "v" * 800) for i in range(60)),
            ),
        ),
        ("a 100 KB name", _otlp.span_message(TRACE, SPAN, PARENT, "n" * 100_000, 2, 1, 2)),
        (
            "a 100 KB trace state",
            _otlp.span_message(TRACE, SPAN, PARENT, "s", 2, 1, 2, trace_state="a=" + "b" * 100_000),
        ),
    ],
)
def test_a_shrunk_span_fits_whatever_made_it_big(what: str, body: bytes) -> None:
    limit = 47_000
    small = _otlp_fit.shrink_span(body, limit)
    assert len(small) <= limit, what
    span, original = _span(small), _span(body)
    assert (span.trace_id, span.span_id, span.parent_span_id, span.kind) == (
        original.trace_id,
        original.span_id,
        original.parent_span_id,
        original.kind,
    )
    assert original.name.startswith(span.name)
    assert original.status.message.startswith(span.status.message)
    assert span.status.code == original.status.code
    assert any(a.key == "tracing.truncated" for a in span.attributes)


def _big_text(size: int, char: str) -> str:
    return char * size


texts_of_any_size = st.builds(
    _big_text,
    st.one_of(st.integers(0, 50), st.integers(0, 120_000)),
    st.sampled_from(["a", "é", "✓", "\U0001f600", "\x00"]),
)


@settings(
    max_examples=100 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    name=texts_of_any_size,
    status=texts_of_any_size,
    state=texts_of_any_size,
    attributes=st.lists(st.tuples(texts_of_any_size, texts_of_any_size), max_size=40),
    events=st.lists(st.tuples(texts_of_any_size, texts_of_any_size), max_size=5),
    limit=st.integers(1024, 100_000),
)
def test_shrink_span_returns_at_most_the_limit_whatever_the_span(
    name: str,
    status: str,
    state: str,
    attributes: list[tuple[str, str]],
    events: list[tuple[str, str]],
    limit: int,
) -> None:
    body = _otlp.span_message(
        TRACE,
        SPAN,
        PARENT,
        name,
        3,
        1,
        2,
        b"".join(_otlp.attribute(k, v) for k, v in attributes),
        b"".join(_otlp.event_message(n, 5, [("v", v)]) for n, v in events),
        _otlp.link_message(TRACE, PARENT, [("why", status[:10_000])]),
        _otlp.STATUS_ERROR,
        status,
        trace_state=state,
    )
    small = _otlp_fit.shrink_span(body, limit)
    assert len(small) <= limit
    span = _span(small)
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, SPAN, PARENT)
    assert span.status.code == 2
    assert name.startswith(span.name)
    if small != body:
        assert span.dropped_attributes_count + len(span.attributes) >= len(attributes)


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
