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


def _value(value: Any, native: bool) -> Any:
    """An OTLP ``AnyValue`` as an OTel attribute value.

    ``native``: as the SDK holds it (bytes, nested dicts, ``None``), for spans
    handed on to an exporter; otherwise as the collector shows it (bytes as
    hex, key-value lists as JSON text, empty values left out).
    """
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        items = [_value(item, native) for item in value.array_value.values]
        return tuple(item for item in items if native or item is not None)
    if which == "kvlist_value":
        mapping = {kv.key: _value(kv.value, native) for kv in value.kvlist_value.values}
        return mapping if native else json.dumps(mapping)
    if which == "bytes_value":
        return value.bytes_value if native else value.bytes_value.hex()
    return getattr(value, which)


def _attributes(items: Any, native: bool = False) -> dict[str, Any]:
    out = {}
    for kv in items:
        converted = _value(kv.value, native)
        if native or converted is not None:
            out[kv.key] = converted
    return out


def request_readable_spans(body: bytes, resource: Any = None, native: bool = False) -> list[Any]:
    """Every span of an ``ExportTraceServiceRequest`` as a ``ReadableSpan``.

    Each keeps its instrumentation scope (name, version, schema URL, attributes).

    Args:
        body: The serialised request.
        resource: The ``Resource`` to give every span; by default the request's own.
        native: Attribute values as the SDK holds them (for exporters), rather
            than as the collector shows them (see ``_value``).

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
    from opentelemetry.trace.span import TraceState

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"not an OTLP trace request: {exc}") from None

    def context(
        trace_id: bytes, span_id: bytes, flags: int, remote: bool, state: str = ""
    ) -> SpanContext:
        if len(trace_id) != 16 or len(span_id) != 8:
            raise ValueError("OTLP ids must be 16 and 8 bytes")
        return SpanContext(
            int.from_bytes(trace_id, "big"),
            int.from_bytes(span_id, "big"),
            is_remote=remote,
            trace_flags=TraceFlags(flags & 0xFF),
            trace_state=TraceState.from_header([state]) if state else None,
        )

    spans = []
    for resource_spans in request.resource_spans:
        own = resource or Resource(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(
                scope_spans.scope.name,
                scope_spans.scope.version or None,
                scope_spans.schema_url or None,
                _attributes(scope_spans.scope.attributes, native) or None,
            )
            for span in scope_spans.spans:
                parent = None
                if span.parent_span_id:
                    remote = bool(span.flags & 0x200)
                    parent = context(span.trace_id, span.parent_span_id, span.flags, remote)
                spans.append(
                    ReadableSpan(
                        name=span.name,
                        context=context(
                            span.trace_id, span.span_id, span.flags, False, span.trace_state
                        ),
                        parent=parent,
                        resource=own,
                        attributes=_attributes(span.attributes, native),
                        events=[
                            Event(
                                e.name,
                                _attributes(e.attributes, native),
                                timestamp=e.time_unix_nano,
                            )
                            for e in span.events
                        ],
                        links=[
                            Link(
                                context(
                                    link.trace_id,
                                    link.span_id,
                                    link.flags,
                                    # Remote unless the flags say otherwise.
                                    bool(link.flags & 0x200) or not link.flags & 0x100,
                                    link.trace_state,
                                ),
                                _attributes(link.attributes, native),
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
