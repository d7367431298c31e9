"""``XRayUDPSpanExporter``: a standard OTel ``SpanExporter`` for X-Ray over UDP."""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..exporters.xray_udp import UDPEmitter
from .otel_xray import span_documents

__all__ = ["XRayUDPSpanExporter"]


class XRayUDPSpanExporter(SpanExporter):
    """An OTel ``SpanExporter`` sending X-Ray segment documents over UDP.

    Needs no collector: documents go straight to the X-Ray daemon (in Lambda, the
    one at ``AWS_XRAY_DAEMON_ADDRESS``), split to fit its 64 KB datagrams. Use it
    with any span processor; with ``BatchSpanProcessor``, spans of one trace that
    arrive in the same batch are nested, the others become independent
    subsegments, which X-Ray reassembles.

    Args:
        address: ``host:port``; ``AWS_XRAY_DAEMON_ADDRESS`` or 127.0.0.1:2000.
    """

    def __init__(self, address: str | None = None) -> None:
        target = address or os.environ.get("AWS_XRAY_DAEMON_ADDRESS") or "127.0.0.1:2000"
        for part in target.split():
            if part.startswith("udp:"):
                target = part[4:]
        self._emitter = UDPEmitter(target)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Convert and send; never raises (failures are counted and logged once)."""
        try:
            for document in span_documents(spans):
                self._emitter.send(document)
        except Exception:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the socket."""
        self._emitter.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered: sending is synchronous."""
        return True
