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
from typing import Any

__all__ = ["OTLP_PREFIXES", "otlp_datagram", "request_documents"]

#: What follows the daemon header line in an OTLP datagram: sampled, unsampled.
OTLP_PREFIXES = (b"T1S", b"T1U")

Document = dict[str, Any]


def request_documents(body: bytes) -> list[Document]:
    """Every span of an ``ExportTraceServiceRequest`` as an X-Ray document.

    Raises:
        ValueError: ``body`` is not such a request (or holds invalid ids).
    """
    from tracing.backends.otel_xray import span_entity, top_document
    from tracing.backends.otlp_decode import request_readable_spans

    return [top_document(span, span_entity(span)) for span in request_readable_spans(body)]


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
