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
import math
import socket
import threading
import time
from typing import Any

from .._entity import sanitize_entity
from .._values import json_value

__all__ = ["HEADER", "MAX_DATAGRAM", "UDPEmitter", "encode", "split_document"]

log = logging.getLogger("tracing.emitter")

HEADER = b'{"format":"json","version":1}\n'
#: Largest datagram the daemon keeps (its buffer is 64 KiB); a little slack kept.
MAX_DATAGRAM = 64 * 1024 - 256
_MAX_BODY = MAX_DATAGRAM - len(HEADER)


def _unknown(value: Any) -> Any:
    """JSON for a value of a type the encoder does not know, by the value rules."""
    return json_value(value)


def _make_encoder() -> Any:
    # NOTE: json.JSONEncoder.encode() builds a new C encoder on every call (about
    # 1 µs, a third of encoding a small document). Build the C encoder once, with
    # the arguments JSONEncoder would pass it: no circular-reference markers (a
    # cycle ends in RecursionError, handled by encode()), the value rules for
    # unknown values, ASCII output, and allow_nan=False: NaN and Infinity are not
    # JSON, and X-Ray rejects the whole document that holds one.
    from json.encoder import (  # type: ignore[attr-defined]  # private, not in typeshed
        c_make_encoder,
        encode_basestring_ascii,
    )

    if c_make_encoder is None:  # pragma: no cover - CPython always has _json
        encoder = json.JSONEncoder(separators=(",", ":"), default=_unknown, allow_nan=False)
        return lambda document: encoder.encode(document)
    make = c_make_encoder(
        None, _unknown, encode_basestring_ascii, None, ":", ",", False, False, False
    )
    return lambda document: "".join(make(document, 0))


_encode_str = _make_encoder()


def encode(document: dict[str, Any]) -> bytes:
    """Encode one document as compact, strict ASCII JSON. Never loses the document.

    Values recorded through the library already follow the value rules; anything
    that slipped past them (a library entity's NaN, an int too large to print, a
    cycle, a key that is not a string) makes the fast encoder fail, and the
    document is then encoded again with every value converted by those rules.
    Raises only when the document's own structure changes while it is read (the
    deadline guard retries then).
    """
    try:
        return _encode_str(document).encode()  # type: ignore[no-any-return]
    except (ValueError, TypeError, RecursionError, OverflowError):
        log.debug("tracing: a document held invalid values; converting them", exc_info=True)
    try:
        return _encode_str(sanitize_entity(document)).encode()  # type: ignore[no-any-return]
    except (ValueError, TypeError, RecursionError, OverflowError):
        log.debug("tracing: a document is still invalid; sending it bare", exc_info=True)
    return _encode_str(_bare(document)).encode()  # type: ignore[no-any-return]


def _bare(document: dict[str, Any]) -> dict[str, Any]:
    """The entity's identity and times only, with a note: what always encodes."""
    bare: dict[str, Any] = {"metadata": {"tracing": {"unencodable": True}}}
    for key in ("name", "id", "trace_id", "parent_id", "type", "start_time", "end_time"):
        value = document.get(key)
        if isinstance(value, str) or (isinstance(value, float) and math.isfinite(value)):
            bare[key] = value
    if "end_time" not in bare:
        bare["in_progress"] = True
    return bare


def split_document(document: dict[str, Any], limit: int = _MAX_BODY) -> list[bytes]:
    """Encode ``document``, splitting it into parts of at most ``limit`` bytes.

    The document must be top-level (carry ``trace_id``). Children that do not fit
    are detached into independent subsegments parented to their old parent, so
    the X-Ray service reassembles the same tree. Parents are sent before
    children.
    """
    body = encode(document)
    if len(body) <= limit:
        return [body]
    trace_id = document.get("trace_id")
    children: list[dict[str, Any]] = document.pop("subsegments", None) or []
    if len(encode(document)) > limit:
        _shrink(document, limit)
    budget = limit - len(encode(document)) - len(',"subsegments":[]')
    kept: list[dict[str, Any]] = []
    detached: list[dict[str, Any]] = []
    for child in children:
        size = len(encode(child)) + 1
        if size <= budget:
            kept.append(child)
            budget -= size
        else:
            child["type"] = "subsegment"
            child["trace_id"] = trace_id
            child["parent_id"] = document["id"]
            detached.append(child)
    if kept:
        document["subsegments"] = kept
    parts = [encode(document)]
    for child in detached:
        parts.extend(split_document(child, limit))
    return parts


def _shrink(document: dict[str, Any], limit: int) -> None:
    """Make a childless entity fit: drop metadata first, then trim the stack."""
    note: dict[str, Any] = {}
    metadata = document.pop("metadata", None)
    if metadata is not None:
        note["metadata_bytes"] = len(encode(metadata))
    if len(encode(document)) > limit and "cause" in document:
        for exception in document["cause"].get("exceptions", []):
            exception["stack"] = exception.get("stack", [])[:5]
            exception["message"] = str(exception.get("message", ""))[:1000]
        note["cause_trimmed"] = True
    if len(encode(document)) > limit and "annotations" in document:
        note["annotations"] = len(document.pop("annotations"))
    document["metadata"] = {"tracing": {"truncated": note}}


class UDPEmitter:
    """Sends documents to ``host:port``; creates its socket on first use."""

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
                parts = [body] if len(body) <= _MAX_BODY else split_document(document)
                break
            except Exception as exc:  # a thread changed a shared value while it was read
                if attempt == 2:
                    self._fail("encode", exc)
                    return
        for body in parts:
            self.send_raw(HEADER + body)

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
