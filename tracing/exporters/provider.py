"""Living beside a tracer provider that exports by itself (ADOT's, for one).

A function started by ADOT's Lambda layer already has a ``TracerProvider`` whose
batch processor sends every span to X-Ray as OTLP over UDP. The otel backend
records those same spans into its own trees (Init re-parented, SQS consumers in
the producer's trace), so left alone every span would reach X-Ray twice, and
ADOT's copies would show init work as traces of their own. Two ways out:

* **tracing exports** (``exporter="xray-udp"``, ``"otlp-udp"``, ``"otlp"``): the
  provider's exporting processors that send to X-Ray are *gated*: they still see
  spans start (ADOT's processors set attributes there), but no span reaches
  their exporter from the SDK. Exporters to anything else keep receiving every
  span, as before.
* **the provider exports** (``exporter="provider"``): every exporting processor
  is gated, and the library hands it its finished trees instead, as
  ``ReadableSpan`` s, once per invocation: ADOT's exporter stays in charge
  (its Application Signals attributes, its endpoint) with the library's trees.

Gating replaces entries of the SDK's private ``_span_processors`` tuple, the one
place processors can be intercepted after the provider was built; if a future
SDK moves it, the library logs once that spans may be exported twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._otlp_spans import document_spans, scope_spans
from ._otlp_emitter import OTLPBase

if TYPE_CHECKING:
    from .._scope import Scope

__all__ = ["ExportGate", "ProviderEmitter", "gate_exporters", "sends_to_xray"]

log = logging.getLogger("tracing.backends.otel")

#: How long the end of an invocation waits for the provider's exporters.
_FLUSH_MS = 2000


class ExportGate:
    """Wraps an exporting span processor: spans start through it, none end in it.

    :meth:`export` is the library's own way in (``exporter="provider"``).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: Any) -> None:
        return None  # the library exports this span within its own tree

    def export(self, span: Any) -> None:
        """Hand a finished span of the library's trees to the wrapped processor."""
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _unwrapped(exporter: Any) -> Any:
    for _ in range(4):  # ADOT wraps its exporter (Application Signals attributes)
        inner = getattr(exporter, "_delegate", None)
        if inner is None:
            break
        exporter = inner
    return exporter


def sends_to_xray(processor: Any) -> bool:
    """True when ``processor`` exports to X-Ray: OTLP over UDP, or X-Ray's OTLP API."""
    exporter = _unwrapped(getattr(processor, "span_exporter", None))
    if exporter is None:
        return False
    if type(exporter).__name__ == "OTLPUdpSpanExporter":
        return True
    endpoint = str(getattr(exporter, "_endpoint", "") or "")
    return "xray." in endpoint and ".amazonaws.com" in endpoint


def gate_exporters(provider: Any, everything: bool) -> list[ExportGate] | None:
    """Gate the provider's exporting processors (those to X-Ray, or ``everything``).

    Returns:
        The gates, which may be empty; ``None`` when the SDK's processors could
        not be reached (logged).
    """
    multi: Any = getattr(provider, "_active_span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    if not isinstance(processors, tuple):
        log.warning(
            "tracing: could not reach the tracer provider's span processors; "
            "its exporters may send the spans tracing sends as well"
        )
        return None
    gates: list[ExportGate] = []
    replaced: list[Any] = []
    for processor in processors:
        if isinstance(processor, ExportGate):
            gates.append(processor)
        elif getattr(processor, "span_exporter", None) is not None and (
            everything or sends_to_xray(processor)
        ):
            processor = ExportGate(processor)
            gates.append(processor)
        replaced.append(processor)
    multi._span_processors = tuple(replaced)
    return gates


class ProviderEmitter(OTLPBase):
    """``exporter="provider"``: the library's trees, through the provider's exporters.

    Spans are written as OTLP (as ``otlp-udp`` writes them: Init re-parented,
    links, events), read back as ``ReadableSpan`` s carrying the provider's
    resource, and handed to every gated processor; they export them their own
    way (ADOT: OTLP/UDP to X-Ray, ``T1S`` and, for Application Signals, ``T1U``).
    Decoding needs ``opentelemetry-proto``, which the SDK's OTLP exporters bring.
    """

    buffered = True

    def __init__(self, resource_attributes: Mapping[str, Any]) -> None:
        super().__init__(resource_attributes)
        self.gates: list[ExportGate] = []
        self.resource: Any = None
        self.sent = 0
        self.failed = 0
        self._warned = False

    def attach(self, gates: list[ExportGate], resource: Any) -> None:
        """Export through ``gates`` (called by the otel backend at install)."""
        self.gates, self.resource = gates, resource
        if not gates:
            log.error(
                "tracing: exporter='provider' but the tracer provider has no exporting "
                "span processor; no span will be exported"
            )

    def send_scope(self, scope: Scope) -> None:
        try:
            spans = scope_spans(scope, links=self.links)
        except Exception as exc:
            self._fail(exc)
            return
        self._export(spans)

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        try:
            spans = document_spans(document, links=self.links)
        except Exception as exc:
            self._fail(exc)
            return
        self._export(spans)

    def send_encoded(self, body: bytes) -> None:
        import json

        try:
            document = json.loads(body)
        except ValueError as exc:
            self._fail(exc)
            return
        self.send(document)

    def _export(self, spans: list[bytes]) -> None:
        if not spans or not self.gates:
            return
        try:
            from ..backends.otlp_decode import request_readable_spans

            # Each span keeps its instrumentation scope and its attributes' types.
            readable = request_readable_spans(
                self.request.encode(spans), self.resource, native=True
            )
        except Exception as exc:
            self._fail(exc)
            return
        for gate in self.gates:
            for span in readable:
                try:
                    gate.export(span)
                except Exception as exc:
                    self._fail(exc)
        self.sent += len(readable)

    def flush(self) -> None:
        for gate in self.gates:
            try:
                gate.force_flush(_FLUSH_MS)
            except Exception as exc:
                self._fail(exc)

    def close(self) -> None:
        self.flush()

    def _fail(self, exc: BaseException) -> None:
        self.failed += 1
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(
            level,
            "tracing: could not hand spans to the tracer provider's exporters "
            "(logged once, then at debug level): %s",
            exc,
        )
