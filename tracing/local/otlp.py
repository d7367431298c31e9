"""OTLP spans in, X-Ray documents out: what X-Ray does with OTLP, for the local collector.

Lambda's X-Ray endpoint takes OTLP spans in UDP datagrams (``T1S``/``T1U`` plus
base64 protobuf, what ``exporter="otlp-udp"`` and ADOT send), and X-Ray's OTLP
API takes them over HTTP. X-Ray stores each span as a segment document of its
own: a root or remotely parented SERVER/CONSUMER span becomes a segment named
after the resource's ``service.name``, any other span an independent subsegment
of its parent, converted by the OpenTelemetry Collector's mapping
(``backends/otel_xray.py``). The collector does the same here, so ``tracing
traces``/``show`` display OTLP traces as the X-Ray console does. Unsampled
spans (``T1U``) are counted and not stored: X-Ray does not store them either.

Decoding uses the real ``opentelemetry-proto`` package (the ``local`` extra).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["OTLP_PREFIXES", "otlp_datagram", "request_documents"]

#: What follows the daemon header line in an OTLP datagram: sampled, unsampled.
OTLP_PREFIXES = (b"T1S", b"T1U")

Document = dict[str, Any]


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


def request_documents(body: bytes) -> list[Document]:
    """Every span of an ``ExportTraceServiceRequest`` as an X-Ray document.

    Raises:
        ValueError: ``body`` is not such a request (or holds invalid ids).
    """
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    from ..backends.otel_xray import span_entity, top_document

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

    documents = []
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                parent = None
                if span.parent_span_id:
                    remote = bool(span.flags & 0x200)
                    parent = context(span.trace_id, span.parent_span_id, span.flags, remote)
                readable = ReadableSpan(
                    name=span.name,
                    context=context(span.trace_id, span.span_id, span.flags, False),
                    parent=parent,
                    resource=resource,
                    attributes=_attributes(span.attributes),
                    events=[
                        Event(e.name, _attributes(e.attributes), timestamp=e.time_unix_nano)
                        for e in span.events
                    ],
                    links=[
                        Link(context(link.trace_id, link.span_id, link.flags, True))
                        for link in span.links
                    ],
                    kind=SpanKind(max(0, span.kind - 1)),  # OTLP counts kinds from 1
                    status=Status(StatusCode(span.status.code), span.status.message or None),
                    start_time=span.start_time_unix_nano,
                    end_time=span.end_time_unix_nano,
                )
                documents.append(top_document(readable, span_entity(readable)))
    return documents


def otlp_datagram(body: bytes) -> tuple[bool, list[Document]] | None:
    """Decode the part of a daemon datagram after its header line.

    Returns:
        ``(sampled, documents)`` for a ``T1S``/``T1U`` datagram, ``None`` for
        anything else (garbage included). Never raises.
    """
    prefix = body[:3]
    if prefix not in OTLP_PREFIXES:
        return None
    try:
        raw = base64.b64decode(body[3:].strip(), validate=True)
        return prefix == b"T1S", request_documents(raw)
    except (ValueError, binascii.Error, OverflowError):
        return None
    except Exception:  # anything a hostile payload provokes in the decoder
        return None
