"""OTLP trace requests back into the OTel SDK's ``ReadableSpan``.

Used where OTLP bytes must become spans an SDK pipeline understands: the local
collector (which then converts them to X-Ray documents, as X-Ray does) and
``exporter="provider"`` (which hands them to the exporters of the application's
``TracerProvider``, ADOT's for instance). Decoding uses the real
``opentelemetry-proto`` package: the ``local`` extra installs it, and every OTLP
exporter of the SDK depends on it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["request_readable_spans"]


def _value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as an OTel attribute value (kvlists as JSON text)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        items = [_value(item) for item in value.array_value.values]
        return tuple(item for item in items if item is not None)
    if which == "kvlist_value":
        return json.dumps({kv.key: _value(kv.value) for kv in value.kvlist_value.values})
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def _attributes(items: Any) -> dict[str, Any]:
    out = {}
    for kv in items:
        converted = _value(kv.value)
        if converted is not None:
            out[kv.key] = converted
    return out


def request_readable_spans(body: bytes, resource: Any = None) -> list[Any]:
    """Every span of an ``ExportTraceServiceRequest`` as a ``ReadableSpan``.

    Args:
        body: The serialised request.
        resource: The ``Resource`` to give every span; by default the request's own.

    Raises:
        ValueError: ``body`` is not such a request (or holds invalid ids).
    """
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"not an OTLP trace request: {exc}") from None

    def context(trace_id: bytes, span_id: bytes, flags: int, remote: bool) -> SpanContext:
        if len(trace_id) != 16 or len(span_id) != 8:
            raise ValueError("OTLP ids must be 16 and 8 bytes")
        return SpanContext(
            int.from_bytes(trace_id, "big"),
            int.from_bytes(span_id, "big"),
            is_remote=remote,
            trace_flags=TraceFlags(flags & 0xFF),
        )

    spans = []
    for resource_spans in request.resource_spans:
        own = resource or Resource(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(scope_spans.scope.name, scope_spans.scope.version or None)
            for span in scope_spans.spans:
                parent = None
                if span.parent_span_id:
                    remote = bool(span.flags & 0x200)
                    parent = context(span.trace_id, span.parent_span_id, span.flags, remote)
                spans.append(
                    ReadableSpan(
                        name=span.name,
                        context=context(span.trace_id, span.span_id, span.flags, False),
                        parent=parent,
                        resource=own,
                        attributes=_attributes(span.attributes),
                        events=[
                            Event(e.name, _attributes(e.attributes), timestamp=e.time_unix_nano)
                            for e in span.events
                        ],
                        links=[
                            Link(
                                context(link.trace_id, link.span_id, link.flags, True),
                                _attributes(link.attributes),
                            )
                            for link in span.links
                        ],
                        kind=SpanKind(max(0, span.kind - 1)),  # OTLP counts kinds from 1
                        status=Status(StatusCode(span.status.code), span.status.message or None),
                        start_time=span.start_time_unix_nano,
                        end_time=span.end_time_unix_nano,
                        instrumentation_scope=scope,
                    )
                )
    return spans
