"""OTLP trace protobuf, written by hand: the wire format.

The OTLP exporters (``exporter="otlp-udp"``, ``exporter="otlp"``) send
``ExportTraceServiceRequest`` messages. They are written here directly, with no
protobuf package: a span is a few dozen bytes of tags, lengths and values, and
building ``opentelemetry-proto`` message objects first costs about ten times
more (most of ADOT's per-invocation time goes there). The format is fixed by
``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``;
the tests decode everything written here with the real ``opentelemetry-proto``
package. What becomes of the core's spans is in ``_otlp_spans.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._values import dumps

__all__ = [
    "ANNOTATIONS_ATTRIBUTE",
    "IS_REMOTE",
    "SAMPLED",
    "STATUS_ERROR",
    "STATUS_UNSET",
    "Request",
    "annotation_attributes",
    "any_value",
    "attribute",
    "cached_annotations",
    "encode_request",
    "event_message",
    "key_value",
    "link_message",
    "pack_requests",
    "resource",
    "shrink_span",
    "span_flags",
    "span_message",
]

# Status.code
STATUS_UNSET, STATUS_ERROR = 0, 2
# Span.flags: the W3C trace flags, and whether the parent context is remote.
SAMPLED = 0x01
_HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200

#: Attribute listing the attribute keys X-Ray indexes as annotations.
ANNOTATIONS_ATTRIBUTE = "aws.xray.annotations"
_MASK64 = (1 << 64) - 1
_BYTE = [bytes((i,)) for i in range(128)]
_double = struct.Struct("<d").pack


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_BYTE[n] if n < 0x80 else _varint(n)) + payload


#: Encoded ``KeyValue.key`` fields of the keys seen so far (bounded).
_KEYS: dict[str, bytes] = {}
#: Encoded attributes of annotation sets the invocation handler vouches for
#: (``Span.annotations_json``: the warm invocation's two, the same every time).
_ANNOTATIONS: dict[str, bytes] = {}
_MAX_CACHED = 512
#: ``Span.name`` fields of the names seen so far (bounded; names repeat).
_NAMES: dict[str, bytes] = {}
#: ``Span.kind`` field, and the tag of the start time that follows it.
_KINDS = [b"\x30" + bytes((k,)) + b"\x39" for k in range(6)]
#: ``Span.flags`` fields (a handful of values).
_FLAGS: dict[int, bytes] = {}


def _text(value: str) -> bytes:
    # Protobuf strings are UTF-8: a lone surrogate (from a bad decode upstream)
    # would make the whole message invalid.
    try:
        return value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body for a JSON-like value."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", _text(value))
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        if -(1 << 63) <= value < (1 << 63):
            return b"\x18" + _varint(value & _MASK64)
        return _field(b"\x0a", str(value).encode())
    if kind is float:
        return b"\x21" + _double(value)
    if kind is list or kind is tuple:
        values = b"".join(_field(b"\x0a", any_value(item)) for item in value)
        return _field(b"\x2a", values)
    if value is None:
        return b""
    if kind is dict:
        return _field(b"\x0a", _text(dumps(value)))
    return _field(b"\x0a", _text(str(value)))


def key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message body."""
    return _field(b"\x0a", _text(key)) + _field(b"\x12", any_value(value))


def attribute(key: str, value: Any) -> bytes:
    """A ``KeyValue`` framed as field 9 of a ``Span``."""
    encoded_key = _KEYS.get(key)
    if encoded_key is None:
        encoded_key = _field(b"\x0a", _text(key))
        if len(_KEYS) < _MAX_CACHED:
            _KEYS[key] = encoded_key
    if type(value) is str and value.isascii():
        raw = value.encode()
        n = len(raw)
        encoded = b"\x0a" + (_BYTE[n] if n < 0x80 else _varint(n)) + raw
    else:
        encoded = any_value(value)
    n = len(encoded)
    body = encoded_key + b"\x12" + (_BYTE[n] if n < 0x80 else _varint(n)) + encoded
    n = len(body)
    return b"\x4a" + (_BYTE[n] if n < 0x80 else _varint(n)) + body


def cached_annotations(vouched: str) -> bytes | None:
    """The attributes already written for an annotation set its owner vouches for."""
    return _ANNOTATIONS.get(vouched)


def annotation_attributes(annotations: Mapping[str, Any], vouched: str | None) -> bytes:
    if vouched is not None:
        cached = _ANNOTATIONS.get(vouched)
        if cached is not None:
            return cached
    encoded = b"".join([attribute(k, v) for k, v in annotations.items()]) + attribute(
        ANNOTATIONS_ATTRIBUTE, list(annotations)
    )
    if vouched is not None and len(_ANNOTATIONS) < _MAX_CACHED:
        _ANNOTATIONS[vouched] = encoded
    return encoded


def _fixed64(ns: int) -> bytes:
    return (ns & _MASK64).to_bytes(8, "little")


def span_message(
    trace_id: bytes,
    span_id: bytes,
    parent_id: bytes | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: bytes = b"",
    events: bytes = b"",
    links: bytes = b"",
    status: int = STATUS_UNSET,
    status_message: str = "",
    flags: int = SAMPLED | _HAS_IS_REMOTE,
    trace_state: str = "",
    dropped: tuple[int, int, int] = (0, 0, 0),
) -> bytes:
    """One ``Span`` message body. ``attributes``/``events``/``links`` are already
    framed (repeated fields 9, 11, 13); ``dropped`` counts attributes, events, links."""
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
    if trace_state:
        parts.append(_field(b"\x1a", _text(trace_state)))
    if parent_id is not None:
        parts += (b"\x22\x08", parent_id)
    named = _NAMES.get(name)
    if named is None:
        named = _field(b"\x2a", _text(name))
        if len(_NAMES) < _MAX_CACHED:
            _NAMES[name] = named
    parts += (
        named,
        _KINDS[kind],
        (start_ns & _MASK64).to_bytes(8, "little"),
        b"\x41",
        (end_ns & _MASK64).to_bytes(8, "little"),
        attributes,
    )
    if dropped[0]:
        parts += (b"\x50", _varint(dropped[0]))
    parts.append(events)
    if dropped[1]:
        parts += (b"\x60", _varint(dropped[1]))
    parts.append(links)
    if dropped[2]:
        parts += (b"\x70", _varint(dropped[2]))
    if status:
        body = (_field(b"\x12", _text(status_message)) if status_message else b"") + (
            b"\x18" + _BYTE[status]
        )
        parts.append(_field(b"\x7a", body))
    flagged = _FLAGS.get(flags)
    if flagged is None:
        flagged = _FLAGS[flags & 0xFFFFFFFF] = b"\x85\x01" + (flags & 0xFFFFFFFF).to_bytes(
            4, "little"
        )
    parts.append(flagged)
    return b"".join(parts)


def event_message(name: str, time_ns: int, attributes: Iterable[tuple[str, Any]]) -> bytes:
    """One ``Event`` framed as field 11 of a ``Span``."""
    body = (
        b"\x09"
        + _fixed64(time_ns)
        + _field(b"\x12", _text(name))
        + b"".join(_field(b"\x1a", key_value(k, v)) for k, v in attributes)
    )
    return _field(b"\x5a", body)


def link_message(
    trace_id: bytes,
    span_id: bytes,
    attributes: Iterable[tuple[str, Any]] = (),
    flags: int = SAMPLED | _HAS_IS_REMOTE | IS_REMOTE,
    trace_state: str = "",
) -> bytes:
    """One ``Link`` framed as field 13 of a ``Span``."""
    body = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
    if trace_state:
        body.append(_field(b"\x1a", _text(trace_state)))
    body.extend(_field(b"\x22", key_value(k, v)) for k, v in attributes)
    body += (b"\x35", flags.to_bytes(4, "little"))
    return _field(b"\x6a", b"".join(body))


def span_flags(sampled: bool, remote_parent: bool) -> int:
    """``Span.flags``: sampled bit, and the parent's remoteness (always stated)."""
    return (SAMPLED if sampled else 0) | _HAS_IS_REMOTE | (IS_REMOTE if remote_parent else 0)


def resource(attributes: Mapping[str, Any]) -> bytes:
    """A ``Resource`` message body."""
    return b"".join(_field(b"\x0a", key_value(k, v)) for k, v in attributes.items())


def encode_request(resource_body: bytes, scope_name: str, spans: Iterable[bytes]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans`` (Span message bodies)."""
    return Request(resource_body, scope_name).encode(spans)


class Request:
    """Writes requests for one resource and instrumentation scope (framing cached)."""

    __slots__ = ("_framing", "_resource", "_scope", "overhead")

    def __init__(self, resource_body: bytes, scope_name: str) -> None:
        self._framing: dict[int, bytes] = {}
        self._resource = _field(b"\x0a", resource_body)
        self._scope = _field(b"\x0a", _field(b"\x0a", _text(scope_name)))
        self.overhead = len(self.encode(()))

    def encode_one(self, span: bytes) -> bytes:
        """A request holding one span: its framing depends only on the span's size,
        so it is written once per size (an invocation's span is mostly the same)."""
        prefix = self._framing.get(len(span))
        if prefix is None:
            prefix = self.encode([span])[: -len(span)]
            if len(self._framing) < _MAX_CACHED:
                self._framing[len(span)] = prefix
        return prefix + span

    def encode(self, spans: Iterable[bytes]) -> bytes:
        """An ``ExportTraceServiceRequest`` holding ``spans`` (Span message bodies)."""
        parts = [self._scope]
        for span in spans:
            n = len(span)
            parts += (b"\x12", _BYTE[n] if n < 0x80 else _varint(n), span)
        scope_spans = b"".join(parts)
        n = len(scope_spans)
        resource_spans = (
            self._resource + b"\x12" + (_BYTE[n] if n < 0x80 else _varint(n)) + scope_spans
        )
        n = len(resource_spans)
        return b"\x0a" + (_BYTE[n] if n < 0x80 else _varint(n)) + resource_spans


def pack_requests(request: Request, spans: list[bytes], limit: int) -> Iterator[bytes]:
    """Requests of at most ``limit`` bytes holding every span, in order.

    A span that cannot fit alone is yielded alone all the same: the caller
    shrinks it first, so nothing is silently dropped here.
    """
    batch: list[bytes] = []
    size = request.overhead + 8  # three nested lengths may each grow by a byte or two
    for span in spans:
        cost = len(span) + 6
        if batch and size + cost > limit:
            yield request.encode(batch)
            batch, size = [], request.overhead + 8
        batch.append(span)
        size += cost
    if batch:
        yield request.encode(batch)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _top_fields(body: bytes) -> list[tuple[int, bytes]]:
    """A message's top-level fields as (field number, the field's whole bytes)."""
    out = []
    pos = 0
    while pos < len(body):
        start = pos
        tag, pos = _read_varint(body, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _read_varint(body, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _read_varint(body, pos)
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out.append((tag >> 3, body[start:pos]))
    return out


def _attribute_key(field: bytes) -> str:
    """The key of a framed ``KeyValue`` (field 9 of a ``Span``)."""
    _, pos = _read_varint(field, 1)  # skip the tag byte and the KeyValue's length
    if field[pos] != 0x0A:
        return ""
    length, pos = _read_varint(field, pos + 1)
    return field[pos : pos + length].decode("utf-8", "replace")


def shrink_span(body: bytes, limit: int) -> bytes:
    """A ``Span`` body made to fit ``limit`` bytes: nothing of its identity lost.

    The largest attributes go first, then events and links; what was dropped is
    noted in a ``tracing.truncated`` attribute (keys and sizes) and in the span's
    ``dropped_*_count`` fields.
    """
    if len(body) <= limit:
        return body
    fields = _top_fields(body)
    kept = [f for f in fields if f[0] not in (9, 10, 11, 12, 13, 14)]
    attributes = [f[1] for f in fields if f[0] == 9]
    events = [f[1] for f in fields if f[0] == 11]
    links = [f[1] for f in fields if f[0] == 13]
    dropped_keys: list[str] = []
    budget = limit - sum(len(f[1]) for f in kept) - 200  # the note and the counts
    # Largest first: annotations (small scalars, and their key list) stay.
    keep_attributes: list[bytes] = []
    size = sum(len(a) for a in attributes) + sum(len(e) for e in events) + sum(map(len, links))
    for field in sorted(attributes, key=len, reverse=True):
        if size <= budget:
            keep_attributes.append(field)
            continue
        size -= len(field)
        dropped_keys.append(_attribute_key(field))
    dropped_events = 0
    while events and size > budget:
        size -= len(events.pop())
        dropped_events += 1
    dropped_links = 0
    while links and size > budget:
        size -= len(links.pop())
        dropped_links += 1
    note = dumps(
        {
            "bytes": len(body),
            "attributes": dropped_keys[:20],
            "events": dropped_events,
            "links": dropped_links,
        }
    )
    keep = set(map(id, keep_attributes))
    parts = [f[1] for f in kept if f[0] < 9]
    parts += [a for a in attributes if id(a) in keep]
    parts.append(attribute("tracing.truncated", note))
    if dropped_keys:
        parts += (b"\x50", _varint(len(dropped_keys)))
    parts += events
    if dropped_events:
        parts += (b"\x60", _varint(dropped_events))
    parts += links
    if dropped_links:
        parts += (b"\x70", _varint(dropped_links))
    parts += [f[1] for f in kept if f[0] > 14]
    return b"".join(parts)
