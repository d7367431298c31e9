"""``exporter="otlp"``: the same trace trees, sent as OTLP/HTTP instead of UDP.

For teams that run the ADOT collector (or any OTLP endpoint). Everything the
core would send to the X-Ray daemon is turned into OpenTelemetry spans and
exported with the standard ``OTLPSpanExporter`` (endpoint from
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``/``OTEL_EXPORTER_OTLP_ENDPOINT``, as usual).
So init replay, SQS continuity and deadline-guard timeouts work the same way;
the collector's X-Ray exporter turns the spans back into the same documents.

The mapping is the inverse of ``otel_xray``: annotations and metadata become
attributes (annotation keys listed in ``aws.xray.annotations``), ``fault``/
``error`` an ERROR status, ``cause`` exception events, ``aws`` fields
``rpc.*``/``aws.*`` attributes. Span kinds: AWS and remote calls are CLIENT, a
segment continuing a message's trace is CONSUMER, other segments SERVER, the
rest INTERNAL. Links recorded by the backend (invocation -> Init, invocation
<-> SQS records) are attached. Span events other than exceptions of OTel spans
do not survive the round trip.

Documents are buffered and exported at the end of each unit of work (the
invocation, a worker's ``consume()``) with a bounded timeout, because the Lambda
sandbox freezes right after the handler returns.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .otel_xray import ANNOTATIONS_ATTRIBUTE

__all__ = ["OTLPDocumentEmitter", "documents_to_spans"]

log = logging.getLogger("tracing.backends.otlp")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
#: Most spans buffered between flushes; beyond it the oldest documents are dropped.
MAX_BUFFERED_SPANS = 20_000


def _trace_int(trace_id: str) -> int:
    return int(trace_id[2:10] + trace_id[11:], 16)


def _kind(entity: dict[str, Any], top: bool) -> SpanKind:
    namespace = entity.get("namespace")
    if namespace in ("aws", "remote"):
        return SpanKind.CLIENT
    if top and entity.get("type") != "subsegment":
        annotations = entity.get("annotations") or {}
        return SpanKind.CONSUMER if "MessageId" in annotations else SpanKind.SERVER
    return SpanKind.INTERNAL


def _attributes(entity: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    annotations = entity.get("annotations") or {}
    for key, value in annotations.items():
        attributes[key] = value
    if annotations:
        attributes[ANNOTATIONS_ATTRIBUTE] = tuple(annotations)
    for namespace, values in (entity.get("metadata") or {}).items():
        prefix = "" if namespace == "default" else f"{namespace}."
        for key, value in (values or {}).items():
            if isinstance(value, (str, bool, int, float)):
                attributes[prefix + key] = value
            else:
                attributes[prefix + key] = repr(value)[:4000]
    aws = entity.get("aws") or {}
    if entity.get("namespace") == "aws":
        attributes["rpc.system"] = "aws-api"
        attributes["rpc.service"] = entity.get("name", "")
        if aws.get("operation"):
            attributes["rpc.method"] = aws["operation"]
    for field, key in (
        ("region", "aws.region"),
        ("request_id", "aws.request_id"),
        ("queue_url", "aws.queue_url"),
        ("table_name", "aws.table_name"),
    ):
        if aws.get(field) is not None:
            attributes[key] = aws[field]
    status = ((entity.get("http") or {}).get("response") or {}).get("status")
    if isinstance(status, int):
        attributes["http.status_code"] = status
    return attributes


def _events(entity: dict[str, Any]) -> list[Event]:
    events = []
    for exception in (entity.get("cause") or {}).get("exceptions", []):
        stack = "".join(
            f'  File "{frame.get("path")}", line {frame.get("line")}, in {frame.get("label")}\n'
            for frame in reversed(exception.get("stack") or [])
        )
        events.append(
            Event(
                "exception",
                {
                    "exception.type": str(exception.get("type", "")),
                    "exception.message": str(exception.get("message", "")),
                    "exception.stacktrace": stack,
                },
                timestamp=int(entity.get("end_time", entity["start_time"]) * 1e9),
            )
        )
    return events


def documents_to_spans(
    documents: list[dict[str, Any]],
    resource: Resource,
    links: dict[str, list[tuple[str, str]]] | None = None,
) -> list[ReadableSpan]:
    """Turn top-level X-Ray documents into OTel spans (parents before children)."""
    spans: list[ReadableSpan] = []
    links = links or {}

    def walk(entity: dict[str, Any], trace: int, parent: SpanContext | None, top: bool) -> None:
        context = SpanContext(trace, int(entity["id"], 16), is_remote=False, trace_flags=_SAMPLED)
        fault = entity.get("fault") or entity.get("error")
        end = entity.get("end_time", entity["start_time"])
        span_links = [
            Link(SpanContext(_trace_int(t), int(s, 16), is_remote=True, trace_flags=_SAMPLED))
            for t, s in links.pop(entity["id"], [])
        ]
        spans.append(
            ReadableSpan(
                name=entity["name"],
                context=context,
                parent=parent,
                resource=resource,
                attributes=_attributes(entity),
                events=_events(entity),
                links=span_links,
                kind=_kind(entity, top),
                status=Status(StatusCode.ERROR) if fault else Status(StatusCode.UNSET),
                start_time=int(entity["start_time"] * 1e9),
                end_time=int(end * 1e9),
            )
        )
        for child in entity.get("subsegments", ()):
            walk(child, trace, context, False)

    for document in documents:
        trace = _trace_int(document["trace_id"])
        parent_id = document.get("parent_id")
        parent = (
            SpanContext(trace, int(parent_id, 16), is_remote=True, trace_flags=_SAMPLED)
            if parent_id
            else None
        )
        walk(document, trace, parent, True)
    return spans


class OTLPDocumentEmitter:
    """Buffers the core's documents and exports them over OTLP/HTTP on flush.

    Args:
        service: ``service.name`` of the resource.
        links: The backend's link table, consumed as spans are converted.
        timeout_s: Bound for one export (the sandbox freezes after the return).
        exporter: A ``SpanExporter``; ``OTLPSpanExporter()`` by default.
    """

    buffered = True

    def __init__(
        self,
        service: str,
        links: dict[str, list[tuple[str, str]]],
        timeout_s: float = 2.0,
        exporter: Any = None,
    ) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(timeout=timeout_s)
        self.exporter = exporter
        self.resource = Resource({"service.name": service})
        self._links = links
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    def send_encoded(self, body: bytes) -> None:
        """Buffer one top-level document given as JSON. Never raises."""
        try:
            document = json.loads(body)
        except ValueError:
            log.debug("tracing: an encoded document did not decode", exc_info=True)
            return
        self.send(document)

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        """Buffer one top-level document. Never raises."""
        with self._lock:
            if len(self._buffer) >= MAX_BUFFERED_SPANS:
                self._buffer.pop(0)
                self.failed += 1
            self._buffer.append(document)

    def flush(self) -> None:
        """Export everything buffered. Never raises."""
        self.export()

    def export(self) -> bool:
        """Export everything buffered; True on success. Never raises."""
        with self._lock:
            documents, self._buffer = self._buffer, []
        if not documents:
            return True
        try:
            spans = documents_to_spans(documents, self.resource, self._links)
            result = self.exporter.export(spans)
        except Exception:
            self.failed += len(documents)
            log.warning("tracing: OTLP export failed", exc_info=True)
            return False
        ok = getattr(result, "name", "") == "SUCCESS"
        if ok:
            self.sent += len(documents)
        else:
            self.failed += len(documents)
        return ok

    def close(self) -> None:
        """Flush and shut the exporter down."""
        self.flush()
        try:
            self.exporter.shutdown()
        except Exception:
            log.debug("tracing: OTLP exporter shutdown failed", exc_info=True)
