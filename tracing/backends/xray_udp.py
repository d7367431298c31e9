"""Send X-Ray segment documents to the daemon over UDP, split to fit.

Each datagram is ``{"format":"json","version":1}\\n`` followed by one document,
which is what the X-Ray daemon (and the Lambda daemon) accepts. The daemon's
receive buffer is 64 KB: a bigger datagram is lost (``OSError: Message too long``).
aws-xray-sdk only streams subsegments past a *count* threshold, so a single large
document is still lost there; here every document is measured after encoding and
split into independent subsegments (``type``, ``trace_id``, ``parent_id``) until
each part fits. An entity that is too large on its own has its metadata replaced
by a truncation note, so the entity itself still arrives.

Sending never blocks (non-blocking socket) and never raises: failures are counted
and logged once per kind of error.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

from .._encoding import encode

__all__ = ["HEADER", "MAX_DATAGRAM", "UDPEmitter", "encode", "split_document"]

log = logging.getLogger("tracing.emitter")

HEADER = b'{"format":"json","version":1}\n'
#: Largest datagram the daemon keeps (its buffer is 64 KiB); a little slack kept.
MAX_DATAGRAM = 64 * 1024 - 256
_MAX_BODY = MAX_DATAGRAM - len(HEADER)


#: Bytes that making a child independent adds (type, trace_id and parent_id).
_INDEPENDENT = len(',"type":"subsegment","trace_id":"1-00000000-000000000000000000000000"')
_INDEPENDENT += len(',"parent_id":"0000000000000000"')


def split_document(
    document: dict[str, Any], limit: int = _MAX_BODY, body: bytes | None = None
) -> list[bytes]:
    """Encode ``document``, splitting it into parts of at most ``limit`` bytes.

    The document must be top-level (carry ``trace_id``). Children that do not fit
    are detached into independent subsegments parented to their old parent, so
    the X-Ray service reassembles the same tree. Parents are sent before
    children. ``body``, when given, is ``document`` already encoded.

    Every entity is encoded about twice, whatever the size: the deadline guard
    runs this against the clock (the default margin is 100 ms).
    """
    if body is None:
        body = encode(document)
    if len(body) <= limit:
        return [body]
    trace_id = document.get("trace_id")
    children: list[dict[str, Any]] = document.pop("subsegments", None) or []
    own = encode(document)
    if len(own) > limit:
        _shrink(document, limit, len(own))
        own = encode(document)
    budget = limit - len(own) - len(',"subsegments":[]')
    kept: list[dict[str, Any]] = []
    detached: list[tuple[dict[str, Any], bytes | None]] = []
    for child in children:
        child_body = encode(child)
        size = len(child_body) + 1
        if size <= budget:
            kept.append(child)
            budget -= size
            continue
        child["type"] = "subsegment"
        child["trace_id"] = trace_id
        child["parent_id"] = document["id"]
        # A child already too big is split further without encoding it again.
        detached.append((child, child_body if size + _INDEPENDENT > limit else None))
    if kept:
        document["subsegments"] = kept
        own = encode(document)
    parts = [own]
    for child, known in detached:
        parts.extend(split_document(child, limit, known))
    return parts


def _shrink(document: dict[str, Any], limit: int, size: int) -> None:
    """Make a childless entity of ``size`` bytes fit: drop metadata first, then trim."""
    note: dict[str, Any] = {}
    metadata = document.pop("metadata", None)
    if metadata is not None:
        without = len(encode(document))
        note["metadata_bytes"] = size - without
        size = without
    if size > limit and "cause" in document:
        for exception in document["cause"].get("exceptions", []):
            exception["stack"] = exception.get("stack", [])[:5]
            exception["message"] = str(exception.get("message", ""))[:1000]
        note["cause_trimmed"] = True
        size = len(encode(document))
    if size > limit and "annotations" in document:
        note["annotations"] = len(document.pop("annotations"))
    document["metadata"] = {"tracing": {"truncated": note}}


class UDPEmitter:
    """Sends documents to ``host:port``; creates its socket on first use."""

    buffered = False  # each document is sent when it is handed over

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = (host.strip("[]"), int(port))
        self._sock: socket.socket | None = None
        self._target: Any = None
        self._lock = threading.Lock()
        self._errors_seen: set[str] = set()
        self.sent = 0
        self.failed = 0
        self._retry_at = 0.0

    def _resolve(self) -> tuple[int, Any]:
        host, port = self.address
        # IP literals skip getaddrinfo(), whose first call imports the idna codec
        # (about 1 ms on the first invocation).
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
            except OSError:
                continue
            return family, (host, port)
        family, _, _, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        return family, target

    def _socket(self) -> socket.socket:
        with self._lock:
            if self._sock is None:
                family, target = self._resolve()
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setblocking(False)  # a full buffer drops the datagram, never waits
                    # Connected: send() skips the per-datagram address handling of
                    # sendto(). A daemon that is down shows up as ECONNREFUSED on a
                    # later send, which is counted and logged once like any failure.
                    sock.connect(target)
                except BaseException:
                    sock.close()
                    raise
                self._target = target
                self._sock = sock
            return self._sock

    def send(self, document: dict[str, Any]) -> None:
        """Encode, split and send one top-level document. Never raises."""
        for attempt in range(3):
            try:
                body = encode(document)
                parts = [body] if len(body) <= _MAX_BODY else split_document(document, body=body)
                break
            except Exception as exc:  # a thread changed a shared value while it was read
                if attempt == 2:
                    self._fail("encode", exc)
                    return
        for body in parts:
            self.send_raw(HEADER + body)

    def send_encoded(self, body: bytes) -> None:
        """Send one top-level document given as strict JSON, split if it must be."""
        sock = self._sock
        if len(body) <= _MAX_BODY:
            if sock is not None:  # the usual case, inlined: once per invocation
                try:
                    sock.send(HEADER + body)
                    self.sent += 1
                    return
                except Exception as exc:
                    self._fail("send", exc)
                    return
            self.send_raw(HEADER + body)
            return
        try:
            parts = split_document(json.loads(body), body=body)
        except Exception as exc:
            self._fail("encode", exc)
            return
        for part in parts:
            self.send_raw(HEADER + part)

    def send_raw(self, datagram: bytes) -> None:
        """Send one already-framed datagram. Never raises."""
        sock = self._sock
        if sock is None and time.monotonic() < self._retry_at:
            # The address did not resolve recently: don't ask the resolver again on
            # every send (it could block the handler); retry every 30 s.
            self.failed += 1
            return
        try:
            sock = sock or self._socket()
            sock.send(datagram)
            self.sent += 1
        except Exception as exc:
            if self._sock is None:
                self._retry_at = time.monotonic() + 30.0
            self._fail("send", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        self.failed += 1
        kind = f"{what}:{type(exc).__name__}:{getattr(exc, 'errno', '')}"
        if kind not in self._errors_seen:
            self._errors_seen.add(kind)
            log.warning(
                "tracing: could not %s a trace document to %s:%s (%s); further %s errors "
                "are counted, not logged",
                what,
                self.address[0],
                self.address[1],
                exc,
                kind,
            )
        else:
            log.debug("tracing: %s failed again: %s", what, exc)

    def flush(self) -> None:
        """Nothing to do: every document is sent when it is handed over."""
        return None

    def close(self) -> None:
        """Close the socket; a later send reopens it."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
