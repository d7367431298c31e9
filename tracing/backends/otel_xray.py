"""OpenTelemetry spans as X-Ray entities (used by the otel backend and the exporter).

The mapping follows the one of the OpenTelemetry Collector's AWS X-Ray exporter
(``awsxrayexporter/internal/translator``), re-implemented here:

* **Kind and namespace.** ``rpc.system = "aws-api"`` spans are AWS calls:
  ``namespace: "aws"`` and an ``aws`` object (``operation`` from ``rpc.method``,
  ``region``, ``request_id``, ``queue_url``, ``table_name``). Other CLIENT and
  PRODUCER spans are ``namespace: "remote"``. A root (or remotely parented)
  SERVER/CONSUMER span is a segment, anything else an (independent) subsegment.
* **Status.** ERROR status is ``fault``, or ``error`` when the HTTP status is
  4xx (``throttle`` too for 429); an HTTP status >= 500 is a fault even with an
  unset status. ``exception`` events become ``cause.exceptions``.
* **Attributes.** Keys listed in the span's ``aws.xray.annotations`` attribute
  become annotations (keys made ``[A-Za-z0-9_]``, values by the value rules of
  ``_values.py``, 50 at most); every other attribute not consumed above goes to
  ``metadata.default``, as JSON by the same rules (a NaN attribute becomes the
  string ``"NaN"`` rather than losing the document).
* **Links** are dropped: user-written segment documents cannot carry them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from .._scrub import scrub_text, scrub_url
from .._span import MAX_ANNOTATIONS, clean_name
from .._values import annotation_key, annotation_value, json_value

__all__ = [
    "ANNOTATIONS_ATTRIBUTE",
    "span_documents",
    "span_entity",
    "top_document",
    "xray_trace_id",
]

#: Span attribute listing the attribute keys to index as X-Ray annotations.
ANNOTATIONS_ATTRIBUTE = "aws.xray.annotations"

_CONSUMED = frozenset(
    {
        ANNOTATIONS_ATTRIBUTE,
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "aws.region",
        "cloud.region",
        "aws.request_id",
        "aws.requestId",
        "aws.queue_url",
        "aws.table_name",
        "aws.service",
        "http.method",
        "http.request.method",
        "http.url",
        "url.full",
        "http.status_code",
        "http.response.status_code",
    }
)
#: ``aws.*`` attributes that are not fields of X-Ray's ``aws`` block.
_NOT_AWS_BLOCK = frozenset(
    {ANNOTATIONS_ATTRIBUTE, "aws.dynamodb.table_names", "aws.requestId", "aws.service"}
)
_FRAME = re.compile(r'File "([^"]*)", line (\d+), in (\S+)')


def xray_trace_id(trace_id: int) -> str:
    """An OTel trace id (made by ``AwsXRayIdGenerator``) in X-Ray form."""
    text = f"{trace_id:032x}"
    return f"1-{text[:8]}-{text[8:]}"


def _cause(span: ReadableSpan) -> dict[str, Any] | None:
    exceptions = []
    for event in span.events:
        if event.name != "exception":
            continue
        attributes = event.attributes or {}
        trace = str(attributes.get("exception.stacktrace", ""))
        stack = [
            {"path": path, "line": int(line), "label": label}
            for path, line, label in _FRAME.findall(trace)[-30:]
        ]
        exceptions.append(
            {
                "id": f"{span.context.span_id:016x}" if span.context else "0" * 16,
                # OTel writes the qualified name (module.Class); X-Ray documents
                # carry the class name, as the core and aws-xray-sdk write it.
                "type": str(attributes.get("exception.type", "Exception")).rpartition(".")[2],
                "message": scrub_text(str(attributes.get("exception.message", ""))[:4000]),
                "stack": list(reversed(stack)),
            }
        )
    if not exceptions:
        return None
    return {"working_directory": os.getcwd(), "exceptions": exceptions}


def span_entity(span: ReadableSpan) -> dict[str, Any]:
    """Convert one finished (or snapshot) span to a nested X-Ray entity dict."""
    attributes = dict(span.attributes or {})
    context = span.context
    aws_call = attributes.get("rpc.system") == "aws-api"
    name = span.name
    if aws_call and "." in name:  # contrib names AWS spans "SQS.SendMessage"
        name = str(attributes.get("rpc.service", name))
    entity: dict[str, Any] = {
        "name": clean_name(name),
        "id": f"{context.span_id:016x}" if context else "0" * 16,
        "start_time": (span.start_time or 0) / 1e9,
    }
    if span.end_time is None:
        entity["in_progress"] = True
    else:
        entity["end_time"] = span.end_time / 1e9
    if aws_call:
        entity["namespace"] = "aws"
        aws: dict[str, Any] = {"operation": attributes.get("rpc.method")}
        for field, keys in (
            ("region", ("aws.region", "cloud.region")),
            ("request_id", ("aws.request_id", "aws.requestId")),
            ("queue_url", ("aws.queue_url",)),
            ("table_name", ("aws.table_name",)),
        ):
            for key in keys:
                if key in attributes:
                    aws[field] = attributes[key]
                    break
        tables = attributes.get("aws.dynamodb.table_names")
        if "table_name" not in aws and isinstance(tables, Sequence) and tables:
            aws["table_name"] = tables[0]
        for key in [k for k in attributes if k.startswith("aws.") and k not in _NOT_AWS_BLOCK]:
            # The rest of the ``aws`` block as the OTLP exporters write it
            # (``aws.bucket_name``, ``aws.retries``...).
            aws.setdefault(key[4:], attributes.pop(key))
        entity["aws"] = aws
    elif span.kind in (SpanKind.CLIENT, SpanKind.PRODUCER):
        entity["namespace"] = "remote"
    status_code = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    method = attributes.get("http.request.method", attributes.get("http.method"))
    url = attributes.get("url.full", attributes.get("http.url"))
    if isinstance(url, str):
        url = scrub_url(url)  # the query, and credentials, as the core records URLs
    if status_code is not None or method is not None:
        http: dict[str, Any] = {}
        if method is not None or url is not None:
            http["request"] = {k: v for k, v in (("method", method), ("url", url)) if v is not None}
        if status_code is not None:
            http["response"] = {"status": status_code}
        entity["http"] = http
    code = status_code if isinstance(status_code, int) else 0
    if span.status.status_code is StatusCode.ERROR:
        if 400 <= code < 500:
            entity["error"] = True
            if code == 429:
                entity["throttle"] = True
        else:
            entity["fault"] = True
    elif code >= 500:
        entity["fault"] = True
    elif code >= 400:
        entity["error"] = True
    cause = _cause(span)
    if cause is not None:
        entity["cause"] = cause
    listed = attributes.get(ANNOTATIONS_ATTRIBUTE)
    indexed = frozenset(listed) if isinstance(listed, (list, tuple)) else frozenset()
    annotations: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in _CONSUMED:
            continue
        if key in indexed and len(annotations) < MAX_ANNOTATIONS:
            label, cleaned = annotation_key(key), annotation_value(value)
            if label is not None and cleaned is not None:
                annotations[label] = cleaned
                continue
        metadata[key] = json_value(value)
    if annotations:
        entity["annotations"] = annotations
    if metadata:
        entity["metadata"] = {"default": metadata}
    return entity


def _is_segment(span: ReadableSpan) -> bool:
    parent = span.parent
    return span.kind in (SpanKind.SERVER, SpanKind.CONSUMER) and (
        parent is None or parent.is_remote
    )


def span_documents(spans: Sequence[ReadableSpan]) -> list[dict[str, Any]]:
    """Turn a batch of finished spans into top-level X-Ray documents.

    Spans whose parent is in the batch are nested under it; the others become
    segments (roots and remotely parented SERVER/CONSUMER spans, named after the
    resource's ``service.name``) or independent subsegments of their parent.
    """
    entities = {}
    for span in spans:
        if span.context is not None:
            entities[span.context.span_id] = (span, span_entity(span))
    documents = []
    for span, entity in entities.values():
        parent = span.parent
        if parent is not None and not parent.is_remote and parent.span_id in entities:
            entities[parent.span_id][1].setdefault("subsegments", []).append(entity)
            continue
        documents.append(top_document(span, entity))
    return documents


def top_document(span: ReadableSpan, entity: dict[str, Any]) -> dict[str, Any]:
    """Make ``entity`` (converted from ``span``) a top-level document, in place."""
    parent = span.parent
    if span.context is not None:
        entity["trace_id"] = xray_trace_id(span.context.trace_id)
    if parent is not None:
        entity["parent_id"] = f"{parent.span_id:016x}"
    if _is_segment(span):
        service = span.resource.attributes.get("service.name") if span.resource else None
        if service and not str(service).startswith("unknown_service"):
            entity["name"] = clean_name(str(service))
        entity.pop("namespace", None)
    elif parent is not None:
        entity["type"] = "subsegment"
    return entity


def __getattr__(name: str) -> Any:
    # The exporter class lives in its own module: importing the SDK's export
    # package costs about 1 ms of cold start that the backend itself does not need.
    if name == "XRayUDPSpanExporter":
        from .otel_udp_exporter import XRayUDPSpanExporter

        return XRayUDPSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
