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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._encoding import encode

if TYPE_CHECKING:
    from .._scope import Scope

__all__ = ["HEADER", "MAX_DATAGRAM", "UDPEmitter", "encode", "iter_parts", "split_document"]

log = logging.getLogger("tracing.emitter")

HEADER = b'{"format":"json","version":1}\n'
#: Largest datagram the daemon keeps (its buffer is 64 KiB); a little slack kept.
MAX_DATAGRAM = 64 * 1024 - 256
_MAX_BODY = MAX_DATAGRAM - len(HEADER)


def split_document(
    document: dict[str, Any], limit: int = _MAX_BODY, body: bytes | None = None
) -> list[bytes]:
    """Encode ``document``, splitting it into parts of at most ``limit`` bytes.

    The document must be top-level (carry ``trace_id``). Children that do not fit
    are detached into independent subsegments parented to their old parent, so
    the X-Ray service reassembles the same tree. Parents come before children.
    ``body``, when given, is ``document`` already encoded. ``document`` is
    changed in place.
    """
    return list(iter_parts(document, limit, body))


def iter_parts(
    document: dict[str, Any], limit: int = _MAX_BODY, body: bytes | None = None
) -> Iterator[bytes]:
    """:func:`split_document`, one part at a time, so each can be sent as it is made.

    Without ``body``, the document is never encoded whole: its own fields and
    each child are encoded once, and joined when they fit together. The deadline
    guard runs this against the clock (the default margin is 100 ms), and the
    first part goes out before the rest is cut.
    """
    if body is not None and len(body) <= limit:
        yield body
        return
    # Cut from a shallow copy: the caller's document stays whole, so a retry
    # (``UDPEmitter.send``) starts again from everything.
    document = dict(document)
    trace_id = document.get("trace_id")
    children: list[dict[str, Any]] = list(document.pop("subsegments", None) or [])
    own = encode(document)
    if len(own) > limit:
        _shrink(document, limit, len(own))
        own = encode(document)
    bodies = [encode(child) for child in children]
    if len(own) + sum(len(b) + 1 for b in bodies) + len(',"subsegments":[]') <= limit:
        yield own[:-1] + b',"subsegments":[' + b",".join(bodies) + b"]}" if bodies else own
        return
    budget = limit - len(own) - len(',"subsegments":[]')
    kept: list[bytes] = []
    detached: list[tuple[dict[str, Any], bytes | None]] = []
    independent = f',"type":"subsegment","trace_id":"{trace_id}","parent_id":"{document["id"]}"}}'
    suffix = independent.encode()
    for child, child_body in zip(children, bodies, strict=True):
        size = len(child_body) + 1
        if size <= budget:
            kept.append(child_body)
            budget -= size
            continue
        if len(child_body) + len(suffix) <= limit:
            # Fits alone: made independent by appending the trace fields to the
            # JSON already written, not by encoding it again.
            detached.append((child, child_body[:-1] + suffix))
        else:
            independent_child = {
                **child,
                "type": "subsegment",
                "trace_id": trace_id,
                "parent_id": document["id"],
            }
            detached.append((independent_child, None))  # too big alone: cut further
    yield own[:-1] + b',"subsegments":[' + b",".join(kept) + b"]}" if kept else own
    for child, ready in detached:
        if ready is not None:
            yield ready
        else:
            yield from iter_parts(child, limit)


def _shrink(document: dict[str, Any], limit: int, size: int) -> None:
    """Make a childless entity of ``size`` bytes fit: drop metadata first, then trim."""
    note: dict[str, Any] = {}
    metadata = document.pop("metadata", None)
    if metadata is not None:
        without = len(encode(document))
        note["metadata_bytes"] = size - without
        size = without
    cause = document.get("cause")
    if size > limit and isinstance(cause, dict):
        document["cause"] = {
            **cause,
            "exceptions": [
                {
                    **exception,
                    "stack": exception.get("stack", [])[:5],
                    "message": str(exception.get("message", ""))[:1000],
                }
                for exception in cause.get("exceptions", [])
            ],
        }
        note["cause_trimmed"] = True
        size = len(encode(document))
    if size > limit and "annotations" in document:
        note["annotations"] = len(document.pop("annotations"))
    document["metadata"] = {"tracing": {"truncated": note}}


class UDPEmitter:
    """Sends documents to ``host:port``; creates its socket on first use."""

    buffered = False  # each document is sent when it is handed over
    otlp = False  # X-Ray segment documents

    def link(self, span_id: str, trace_id: str | None, other_id: str | None) -> None:
        return None  # X-Ray documents cannot carry links

    def send_scope(self, scope: Scope) -> None:
        """Send one finished scope's document: written straight from its spans
        (the fast path), or built as a dict when the tree needs it. Never raises."""
        if not scope.sampled:
            return  # X-Ray documents have no unsampled form
        try:
            body = scope.encoded()
        except Exception:  # FastPathError, or a thread changing the tree: the dict path
            body = None
        if body is None:
            try:
                document = scope.document()
            except Exception as exc:
                self.fail("encode", exc)
                return
            self.send(document)
        else:
            self.send_encoded(body)

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

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        """Encode, split and send one top-level document. Never raises.

        ``body`` is the document already encoded, when the caller has it (the
        deadline guard): it is not encoded again, and parts go out as they are cut.
        """
        for attempt in range(3):
            try:
                for part in iter_parts(document, body=body):
                    self.send_raw(HEADER + part)
                return
            except Exception as exc:  # a thread changed a shared value while it was read
                body = None
                if attempt == 2:
                    self.fail("encode", exc)
                    return

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
                    self.fail("send", exc)
                    return
            self.send_raw(HEADER + body)
            return
        try:
            parts = iter_parts(json.loads(body), body=body)
            for part in parts:
                self.send_raw(HEADER + part)
        except Exception as exc:
            self.fail("encode", exc)

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
            self.fail("send", exc)

    def fail(self, what: str, exc: Exception) -> None:
        """Count a failure; log its kind once (a warning), then at debug level."""
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
