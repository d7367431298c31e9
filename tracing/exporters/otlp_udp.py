"""``exporter="otlp-udp"``: OTLP spans over UDP to the X-Ray endpoint, as ADOT sends them.

Lambda's X-Ray endpoint at ``AWS_XRAY_DAEMON_ADDRESS`` accepts, besides segment
documents, OTLP spans: each datagram is the daemon header line
``{"format":"json","version":1}``, then ``T1S`` (sampled spans) or ``T1U``
(unsampled ones, which X-Ray does not store but CloudWatch Application Signals
counts), then the base64 of a protobuf ``ExportTraceServiceRequest``. This is
what ADOT's Lambda layer sends (``OTLPUdpSpanExporter``).

Differences from ADOT's exporter:

* The trees are the library's: the ``Init`` span in the first invocation's
  trace, SQS consumers under the producer's ``SendMessage``, a timed-out
  invocation sent before the deadline.
* No datagram exceeds 64,000 bytes (the whole datagram: header line, prefix
  and base64) and no span is lost: spans are packed into as many requests as
  needed, and a span too big on its own keeps its identity and loses its
  largest attributes first (then events, links, and a cut of an oversize name,
  status description or trace state), noted in ``tracing.truncated``. Every
  datagram is measured before it is sent. (ADOT's fast-start mode sends one
  datagram per batch; past 64 KB the send fails and every span of the batch is
  lost.)
* The protobuf is written by hand (``_otlp.py``): no protobuf package, and a
  fraction of the per-invocation cost.
"""

from __future__ import annotations

import json
import logging
from base64 import b64encode
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._otlp_fit import fit_spans, pack_batches, shrink_span
from .._otlp_spans import document_spans, scope_spans, single_span
from ._otlp_emitter import OTLPBase
from .xray_udp import HEADER, UDPEmitter

if TYPE_CHECKING:
    from .._scope import Scope

__all__ = [
    "MAX_DATAGRAM",
    "MAX_REQUEST",
    "OTLPUDPEmitter",
    "SAMPLED_PREFIX",
    "UNSAMPLED_PREFIX",
]

log = logging.getLogger("tracing.emitter")

SAMPLED_PREFIX = b"T1S"
UNSAMPLED_PREFIX = b"T1U"
#: Largest datagram sent, whole (header line, prefix, base64): within the 64 KB
#: the endpoint takes (X-Ray documents keep the same margin, ``xray_udp``).
MAX_DATAGRAM = 64_000
#: Largest request per datagram: its base64 with the header line and prefix is
#: at most :data:`MAX_DATAGRAM` bytes.
MAX_REQUEST = (MAX_DATAGRAM - len(HEADER) - len(SAMPLED_PREFIX)) // 4 * 3


class OTLPUDPEmitter(OTLPBase):
    """Sends OTLP spans to ``host:port`` in X-Ray's ``T1S``/``T1U`` datagrams.

    Args:
        address: ``host:port`` of the X-Ray endpoint (``AWS_XRAY_DAEMON_ADDRESS``).
        resource_attributes: The ``Resource`` of every request (``service.name``...).
    """

    buffered = False

    def __init__(self, address: str, resource_attributes: Mapping[str, Any]) -> None:
        super().__init__(resource_attributes)
        self.udp = UDPEmitter(address)
        self._heads: dict[tuple[bool, int], tuple[bytes, bytes]] = {}

    @property
    def sent(self) -> int:
        """Datagrams sent."""
        return self.udp.sent

    @property
    def failed(self) -> int:
        """Datagrams or documents that could not be sent."""
        return self.udp.failed

    def send_scope(self, scope: Scope) -> None:
        """Send one finished scope's spans (``T1U`` if it is unsampled). Never raises."""
        try:
            single = single_span(scope, self.links)
        except Exception:  # a thread changed the tree while it was read: the long way
            single = None
        if single is not None and self._send_one(single, scope.sampled):
            return
        for attempt in range(3):
            try:
                single = single_span(scope, self.links)
                spans = [single] if single is not None else scope_spans(scope, links=self.links)
                break
            except Exception as exc:  # a thread changed the tree while it was read
                if attempt == 2:
                    self.udp.fail("encode", exc)
                    return
        self._send(spans, scope.sampled)

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        """Send one top-level X-Ray document's entities as spans. Never raises."""
        try:
            spans = document_spans(document, links=self.links)
        except Exception as exc:
            self.udp.fail("encode", exc)
            return
        self._send(spans, True)

    def send_encoded(self, body: bytes) -> None:
        """Send one top-level document given as JSON. Never raises."""
        try:
            document = json.loads(body)
        except ValueError as exc:
            self.udp.fail("encode", exc)
            return
        self.send(document)

    def _send_one(self, span: bytes, sampled: bool) -> bool:
        """The usual invocation: one span of the core, one small datagram.

        Everything but the span is the same for spans of the same size, and
        base64 works on 3-byte groups: the encoded head is kept, only the rest
        is encoded. False when the span does not fit that way.
        """
        request = self.request
        if type(span) is not bytes or len(span) >= MAX_REQUEST - request.overhead - 16:
            return False
        key = (sampled, len(span))
        cached = self._heads.get(key)
        if cached is None:
            cached = self._head(request.encode_one(span)[: -len(span)], sampled)
            if len(self._heads) < 256:
                self._heads[key] = cached
        head, tail = cached
        datagram = head + b64encode(tail + span)
        if len(datagram) > MAX_DATAGRAM:
            return False
        self.udp.send_raw(datagram)
        return True

    def _send(self, spans: list[bytes], sampled: bool) -> None:
        if not spans:
            return
        if len(spans) == 1 and self._send_one(spans[0], sampled):
            return
        request = self.request
        prefix = HEADER + (SAMPLED_PREFIX if sampled else UNSAMPLED_PREFIX)
        for batch in pack_batches(request, fit_spans(request, spans, MAX_REQUEST), MAX_REQUEST):
            self._send_batch(prefix, batch)

    def _send_batch(self, prefix: bytes, batch: list[bytes]) -> None:
        """Send one packed batch, measured first: never a datagram over the limit."""
        datagram = prefix + b64encode(self.request.encode(batch))
        excess = len(datagram) - MAX_DATAGRAM
        if excess <= 0:
            self.udp.send_raw(datagram)
        elif len(batch) > 1:  # packing is exact; this is only a safety net
            half = len(batch) // 2
            self._send_batch(prefix, batch[:half])
            self._send_batch(prefix, batch[half:])
        else:
            span = batch[0]
            smaller = shrink_span(span, len(span) - excess * 3 // 4 - 64)
            datagram = prefix + b64encode(self.request.encode([smaller]))
            if len(datagram) <= MAX_DATAGRAM:
                self.udp.send_raw(datagram)
            else:  # the resource alone fills the datagram
                self.udp.fail("send", OSError(f"an OTLP datagram of {len(datagram)} bytes"))

    @staticmethod
    def _head(framing: bytes, sampled: bool) -> tuple[bytes, bytes]:
        """(the datagram's start, already encoded; the framing bytes left to encode)."""
        whole = len(framing) - len(framing) % 3
        prefix = HEADER + (SAMPLED_PREFIX if sampled else UNSAMPLED_PREFIX)
        return prefix + b64encode(framing[:whole]), framing[whole:]

    def add_resource(self, attributes: Mapping[str, Any]) -> None:
        super().add_resource(attributes)
        self._heads.clear()  # the resource is in every head

    def flush(self) -> None:
        """Nothing to do: every scope is sent when it is handed over."""
        return None

    def close(self) -> None:
        """Close the socket; a later send reopens it."""
        self.udp.close()
