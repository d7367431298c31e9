"""OTLP trace protobuf, written by hand: the wire format.

The OTLP exporters (``exporter="otlp-udp"``, ``exporter="otlp"``) send
``ExportTraceServiceRequest`` messages. They are written here directly, with no
protobuf package: a span is a few dozen bytes of tags, lengths and values, and
building ``opentelemetry-proto`` message objects first costs about ten times
more (most of ADOT's per-invocation time goes there). The format is fixed by
``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``;
the tests decode everything written here with the real ``opentelemetry-proto``
package. What becomes of the core's spans is in ``_otlp_spans.py``; how spans
are made to fit a request of a given size, in ``_otlp_fit.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    "otel_value",
    "resource",
    "scope_fields",
    "scoped",
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
    """An ``AnyValue`` message body for a value of the core (mappings as JSON text).

    The core's metadata is JSON already (the value rules), and X-Ray reads its
    OTLP attributes back into metadata: a mapping goes as its JSON text.
    """
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", _text(value))
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return _int(value)
    if kind is float:
        return b"\x21" + _double(value)
    if kind is list or kind is tuple:
        values = b"".join(_field(b"\x0a", any_value(item)) for item in value)
        return _field(b"\x2a", values)
    if value is None:
        return b""
    if kind is dict:
        return _json_text(value)
    return _other(value, False)


def otel_value(value: Any) -> bytes:
    """An ``AnyValue`` for an OpenTelemetry attribute value, as OTel's encoder writes it.

    The rules of ``opentelemetry-exporter-otlp-proto-common`` (``_encode_value``):
    ``bool``, then ``str``, ``int``, ``float`` and ``bytes`` (subclasses by their
    base's value: ``HTTPStatus.NOT_FOUND`` is the int 404, a ``str`` Enum member
    its string), sequences as arrays, mappings as key-value lists. Only where
    OTel's encoder would fail, and drop the attribute, is something else written:
    an int outside int64 as its decimal text, a lone surrogate as ``?``, any
    other object as its ``str()``.
    """
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", _text(value))
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return _int(value)
    if kind is float:
        return b"\x21" + _double(value)
    if kind is tuple or kind is list:
        values = b"".join(_field(b"\x0a", otel_value(item)) for item in value)
        return _field(b"\x2a", values)
    if value is None:
        return b""
    return _other(value, True)


def _int(value: int) -> bytes:
    if -(1 << 63) <= value < (1 << 63):
        return b"\x18" + _varint(value & _MASK64)
    return _field(b"\x0a", str(value).encode())  # outside int64: kept, as text


def _json_text(value: Any) -> bytes:
    try:
        return _field(b"\x0a", _text(dumps(value)))
    except (TypeError, ValueError, RecursionError):
        return _field(b"\x0a", _text(_str(value)))


def _str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _other(value: Any, otel: bool) -> bytes:
    """Anything but the exact built-in types: subclasses, bytes, other containers.

    OTel's order: an ``isinstance`` test per type, so an ``IntEnum`` member is an
    int and a ``str`` Enum member a string (their base's value, never their
    ``str()``, which names the member).
    """
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", _text(str.__str__(value)))
    if isinstance(value, int):
        return _int(int.__int__(value))
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    encode = otel_value if otel else any_value
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", encode(item)) for item in value))
    if isinstance(value, Mapping):
        if not otel:
            return _json_text(dict(value))
        pairs = b"".join(
            _field(b"\x0a", key_value(_str(k), v, otel_value)) for k, v in value.items()
        )
        return _field(b"\x32", pairs)
    return _field(b"\x0a", _text(_str(value)))


def key_value(key: str, value: Any, encode: Callable[[Any], bytes] = any_value) -> bytes:
    """A ``KeyValue`` message body (``encode``: :func:`any_value` or :func:`otel_value`)."""
    return _field(b"\x0a", _text(key)) + _field(b"\x12", encode(value))


def attribute(key: str, value: Any, encode: Callable[[Any], bytes] = any_value) -> bytes:
    """A ``KeyValue`` framed as field 9 of a ``Span`` (``encode`` as for :func:`key_value`)."""
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
        encoded = encode(value)
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


#: ``Status`` with code ERROR and no message, framed as field 15 of a ``Span``.
_ERROR_STATUS = b"\x7a\x02\x18" + bytes((STATUS_ERROR,))


def lone_span(
    trace_id: bytes,
    span_id: bytes,
    parent_id: bytes | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: bytes,
    error: bool,
    flags: int,
) -> bytes:
    """:func:`span_message` for the span every invocation sends, in one join.

    No trace state, events, links, dropped counts or status message: the same
    bytes as :func:`span_message` gives for those, with a third of the steps
    (this is most of the ``otlp-udp`` path's cost per invocation).
    """
    named = _NAMES.get(name)
    if named is None:
        named = _field(b"\x2a", _text(name))
        if len(_NAMES) < _MAX_CACHED:
            _NAMES[name] = named
    flagged = _FLAGS.get(flags)
    if flagged is None:
        flagged = _FLAGS[flags & 0xFFFFFFFF] = b"\x85\x01" + (flags & 0xFFFFFFFF).to_bytes(
            4, "little"
        )
    return b"".join(
        (
            b"\x0a\x10",
            trace_id,
            b"\x12\x08",
            span_id,
            b"\x22\x08" + parent_id if parent_id is not None else b"",
            named,
            _KINDS[kind],
            (start_ns & _MASK64).to_bytes(8, "little"),
            b"\x41",
            (end_ns & _MASK64).to_bytes(8, "little"),
            attributes,
            _ERROR_STATUS if error else b"",
            flagged,
        )
    )


def event_message(
    name: str,
    time_ns: int,
    attributes: Iterable[tuple[str, Any]],
    dropped: int = 0,
    encode: Callable[[Any], bytes] = any_value,
) -> bytes:
    """One ``Event`` framed as field 11 of a ``Span`` (``dropped``: its dropped attributes)."""
    body = (
        b"\x09"
        + _fixed64(time_ns)
        + _field(b"\x12", _text(name))
        + b"".join(_field(b"\x1a", key_value(k, v, encode)) for k, v in attributes)
    )
    if dropped:
        body += b"\x20" + _varint(dropped & 0xFFFFFFFF)
    return _field(b"\x5a", body)


def link_message(
    trace_id: bytes,
    span_id: bytes,
    attributes: Iterable[tuple[str, Any]] = (),
    flags: int = SAMPLED | _HAS_IS_REMOTE | IS_REMOTE,
    trace_state: str = "",
    dropped: int = 0,
    encode: Callable[[Any], bytes] = any_value,
) -> bytes:
    """One ``Link`` framed as field 13 of a ``Span`` (``dropped``: its dropped attributes)."""
    body = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
    if trace_state:
        body.append(_field(b"\x1a", _text(trace_state)))
    body.extend(_field(b"\x22", key_value(k, v, encode)) for k, v in attributes)
    if dropped:
        body += (b"\x28", _varint(dropped & 0xFFFFFFFF))
    body += (b"\x35", flags.to_bytes(4, "little"))
    return _field(b"\x6a", b"".join(body))


def span_flags(sampled: bool, remote_parent: bool) -> int:
    """``Span.flags``: sampled bit, and the parent's remoteness (always stated)."""
    return (SAMPLED if sampled else 0) | _HAS_IS_REMOTE | (IS_REMOTE if remote_parent else 0)


def resource(attributes: Mapping[str, Any]) -> bytes:
    """A ``Resource`` message body (its attributes are OpenTelemetry's: :func:`otel_value`)."""
    return b"".join(_field(b"\x0a", key_value(k, v, otel_value)) for k, v in attributes.items())


class _ScopedSpan(bytes):
    """A ``Span`` body that belongs to an instrumentation scope other than ``tracing``.

    Span bodies travel as plain ``bytes`` lists from the writers to the
    emitters; the few written under the application's own scope carry it along
    in :attr:`scope` (the ``ScopeSpans`` fields that name it, from
    :func:`scope_fields`), and :meth:`Request.encode` groups them by it. The
    core's own spans stay plain ``bytes``: nothing is added on their path.
    """

    scope: bytes


def scoped(body: bytes, scope: bytes | None) -> bytes:
    """``body`` marked as a span of the scope written by :func:`scope_fields`."""
    if scope is None:
        return body
    span = _ScopedSpan(body)
    span.scope = scope
    return span


def _scope_of(span: bytes) -> bytes | None:
    return None if type(span) is bytes else getattr(span, "scope", None)


#: Largest scope written whole: a bigger one (absurd) loses its attributes, then
#: has its texts cut, so that it can never make a span unsendable.
_MAX_SCOPE = 4096


def scope_fields(
    name: str,
    version: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    schema_url: str | None = None,
) -> bytes:
    """The fields of a ``ScopeSpans`` that name its scope (``scope``, ``schema_url``)."""
    texts = [name or "", version or "", schema_url or ""]
    pairs = b"".join(
        _field(b"\x1a", key_value(str(k), v, otel_value)) for k, v in (attributes or {}).items()
    )
    if sum(map(len, texts)) + len(pairs) > _MAX_SCOPE:
        pairs = b""
        texts = [_cut(text, _MAX_SCOPE // 4) for text in texts]
    name, version, schema_url = texts
    body = (_field(b"\x0a", _text(name)) if name else b"") + (
        _field(b"\x12", _text(version)) if version else b""
    )
    out = _field(b"\x0a", body + pairs)
    if schema_url:
        out += _field(b"\x1a", _text(schema_url))
    return out


def encode_request(resource_body: bytes, scope_name: str, spans: Iterable[bytes]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans`` (Span message bodies)."""
    return Request(resource_body, scope_name).encode(spans)


class Request:
    """Writes requests for one resource (framing cached).

    Spans go in one ``ScopeSpans`` per instrumentation scope: the core's under
    ``scope_name`` (``tracing``), the application's OTel spans (marked by
    :func:`scoped`) under their own.
    """

    __slots__ = ("_framing", "_resource", "_scope", "overhead")

    def __init__(self, resource_body: bytes, scope_name: str) -> None:
        self._framing: dict[int, bytes] = {}
        self._resource = _field(b"\x0a", resource_body)
        self._scope = scope_fields(scope_name)
        self.overhead = len(self.encode(()))

    def encode_one(self, span: bytes) -> bytes:
        """A request holding one span: its framing depends only on the span's size,
        so it is written once per size (an invocation's span is mostly the same)."""
        if type(span) is not bytes:
            return self.encode([span])
        prefix = self._framing.get(len(span))
        if prefix is None:
            prefix = self.encode([span])[: -len(span)]
            if len(self._framing) < _MAX_CACHED:
                self._framing[len(span)] = prefix
        return prefix + span

    def encode(self, spans: Iterable[bytes]) -> bytes:
        """An ``ExportTraceServiceRequest`` holding ``spans`` (Span message bodies)."""
        parts = [self._scope]
        others: dict[bytes, list[bytes]] | None = None
        for span in spans:
            n = len(span)
            if type(span) is not bytes:
                scope = getattr(span, "scope", None)
                if scope is not None and scope != self._scope:
                    if others is None:
                        others = {}
                    group = others.get(scope)
                    if group is None:
                        group = others[scope] = [scope]
                    group += (b"\x12", _varint(n), span)
                    continue
            parts += (b"\x12", _BYTE[n] if n < 0x80 else _varint(n), span)
        resource_spans = self._resource
        if len(parts) > 1 or not others:
            scope_spans = b"".join(parts)
            n = len(scope_spans)
            resource_spans += b"\x12" + (_BYTE[n] if n < 0x80 else _varint(n)) + scope_spans
        if others:
            for group in others.values():
                scope_spans = b"".join(group)
                resource_spans += b"\x12" + _varint(len(scope_spans)) + scope_spans
        n = len(resource_spans)
        return b"\x0a" + (_BYTE[n] if n < 0x80 else _varint(n)) + resource_spans


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    raw = _text(text)
    if len(raw) <= limit:
        return text
    return raw[: max(0, limit)].decode("utf-8", "ignore")
