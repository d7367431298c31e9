"""OTLP made to fit a size: a span shrunk, spans packed into requests.

Every OTLP exporter sends requests of bounded size: ``otlp-udp`` a datagram of
at most 64,000 bytes (header line, prefix and base64 included), ``otlp`` an
HTTP body of a few MiB. :func:`fit_spans` shrinks each span that could not fit
a request alone (:func:`shrink_span`: its identity always kept, what was
dropped noted and counted), and :func:`pack_batches` cuts the spans into
consecutive batches whose requests fit, counting the framing of each
instrumentation scope a batch holds. The wire format is ``_otlp.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._otlp import _BYTE, Request, _cut, _field, _scope_of, _text, _varint, attribute, scoped
from ._values import dumps

__all__ = ["fit_spans", "pack_batches", "pack_requests", "shrink_span"]

#: What a request may grow by beyond ``Request.overhead``: its nested lengths'
#: varints (three, of up to four bytes more each for a few MiB).
_SLACK = 16
#: Framing of one span in a ``ScopeSpans``, and of a ``ScopeSpans`` in a request
#: (a tag and a length of at most five bytes).
_FRAME = 6


def _scope_cost(scope: bytes | None) -> int:
    return 0 if scope is None else len(scope) + _FRAME


def fit_spans(request: Request, spans: list[bytes], limit: int) -> list[bytes]:
    """``spans``, each shrunk (:func:`shrink_span`) to fit alone a request of ``limit`` bytes."""
    room = limit - request.overhead - _SLACK - _FRAME
    out = spans
    for i, span in enumerate(spans):
        if len(span) > room - _scope_cost(_scope_of(span)):
            if out is spans:
                out = list(spans)
            out[i] = shrink_span(span, room - _scope_cost(_scope_of(span)))
    return out


def pack_batches(request: Request, spans: list[bytes], limit: int) -> Iterator[list[bytes]]:
    """``spans`` cut into consecutive batches whose requests are at most ``limit`` bytes.

    A span too big to fit alone (see :func:`fit_spans`) is a batch alone all the
    same: nothing is silently dropped here.
    """
    batch: list[bytes] = []
    seen: set[bytes] = set()
    size = request.overhead + _SLACK
    for span in spans:
        scope = _scope_of(span)
        cost = len(span) + _FRAME
        extra = _scope_cost(scope) if scope is not None and scope not in seen else 0
        if batch and size + cost + extra > limit:
            yield batch
            batch, size = [], request.overhead + _SLACK
            seen.clear()
            extra = _scope_cost(scope)
        if scope is not None:
            seen.add(scope)
        batch.append(span)
        size += cost + extra
    if batch:
        yield batch


def pack_requests(request: Request, spans: list[bytes], limit: int) -> Iterator[bytes]:
    """Requests of at most ``limit`` bytes holding every span, in order (see
    :func:`pack_batches`)."""
    for batch in pack_batches(request, spans, limit):
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


def _payload(field: bytes) -> bytes:
    """The payload of a whole length-delimited field (tag, length, payload)."""
    _, pos = _read_varint(field, 0)
    length, pos = _read_varint(field, pos)
    return field[pos : pos + length]


def _attribute_key(field: bytes) -> str:
    """The key of a framed ``KeyValue`` (field 9 of a ``Span``)."""
    body = _payload(field)
    if not body or body[0] != 0x0A:
        return ""
    length, pos = _read_varint(body, 1)
    return body[pos : pos + length].decode("utf-8", "replace")


#: Span fields of a fixed, small size, kept as they are: trace_id, span_id,
#: parent_span_id, kind, start and end times, flags.
_IDENTITY = (1, 2, 4, 6, 7, 8, 16)
#: Longest name, status description or trace state of a shrunk span (bytes)
#: when the three together leave no room: X-Ray cuts names at 200 characters,
#: and W3C trace state at 512.
_MAX_TEXT = 4096
#: Room kept for the dropped counts (three varints) and the status code.
_COUNTS_ROOM = 3 * 6 + 8
#: Largest ``tracing.truncated`` note (its JSON), and a dropped key's length in it.
_MAX_NOTE = 1024
_NOTE_KEY = 64
_NOTE_KEY_NAME = "tracing.truncated"
#: Framing of the note attribute around its JSON (tags, lengths, the key).
_NOTE_FRAMING = 2 * 5 + 4 + len(_NOTE_KEY_NAME) + 2


def _note(base: dict[str, Any], keys: list[str], limit: int) -> str:
    """The truncation note: ``base`` and as many dropped keys as ``limit`` allows."""
    note = dict(base)
    text = str(dumps(note))
    if keys:
        listed: list[str] = []
        for key in keys:
            listed.append(key if len(key) <= _NOTE_KEY else key[:_NOTE_KEY] + "...")
            candidate = dumps({**note, "attributes": listed})
            if len(candidate) > limit:
                listed.pop()
                break
            text = str(candidate)
    return text


def shrink_span(body: bytes, limit: int) -> bytes:
    """A ``Span`` body made to fit ``limit`` bytes: nothing of its identity lost.

    Its ids, parent, kind, times, flags and status code stay. While the name,
    status description and trace state leave room, they stay too; when they alone
    do not fit, each is cut to a share of it (the trace state, which cannot be
    cut, is dropped). Then the largest attributes go first, then the largest
    events, then the largest links, until it fits. What was dropped is noted in
    a ``tracing.truncated`` attribute (the span's size, the dropped keys, counts,
    the original lengths of what was cut; at most 1 KB), and added to the span's
    own ``dropped_*_count`` fields. The result is at most ``limit`` bytes for
    any ``limit`` of 1 KB or more. A span of another instrumentation scope keeps
    it (:func:`scoped`).
    """
    if len(body) <= limit:
        return body
    out = _shrink(body, limit)
    return scoped(out, _scope_of(body))


def _shrink(body: bytes, limit: int) -> bytes:
    fields = _top_fields(body)
    fixed: dict[int, bytes] = {}
    name = trace_state = message = ""
    code = 0
    counts = [0, 0, 0]
    attributes: list[bytes] = []
    events: list[bytes] = []
    links: list[bytes] = []
    for number, field in fields:
        if number in _IDENTITY:
            fixed[number] = field
        elif number == 5:
            name = _payload(field).decode("utf-8", "replace")
        elif number == 3:
            trace_state = _payload(field).decode("utf-8", "replace")
        elif number == 9:
            if _attribute_key(field) != _NOTE_KEY_NAME:  # an earlier shrink's note
                attributes.append(field)
        elif number == 11:
            events.append(field)
        elif number == 13:
            links.append(field)
        elif number in (10, 12, 14):
            counts[(number - 10) // 2] += _read_varint(field, 1)[0]
        elif number == 15:
            status_fields = dict(_top_fields(_payload(field)))
            if 2 in status_fields:
                message = _payload(status_fields[2]).decode("utf-8", "replace")
            if 3 in status_fields:
                code = _read_varint(status_fields[3], 1)[0] & 0x7F
    note: dict[str, Any] = {"bytes": len(body)}
    note_room = min(_MAX_NOTE, max(128, limit // 8))
    room = limit - sum(map(len, fixed.values())) - _COUNTS_ROOM - note_room - _NOTE_FRAMING

    # 1. The texts, whole unless they alone leave no room.
    texts = {"name": name, "status": message, "trace_state": trace_state}
    sizes = {key: len(_text(value)) + 6 for key, value in texts.items() if value}
    if sum(sizes.values()) > room:
        share = max(0, min(_MAX_TEXT, room // 3 - 6))
        for key, size in sizes.items():
            if size - 6 > share:
                note[key] = size - 6  # its length in bytes, before the cut
                texts[key] = "" if key == "trace_state" else _cut(texts[key], share)
    name, message, trace_state = texts["name"], texts["status"], texts["trace_state"]
    room -= sum(len(_text(value)) + 6 for value in texts.values() if value)

    # 2. Attributes, events, links: the largest first, until the rest fits.
    dropped_keys: list[str] = []
    kept: list[list[bytes]] = []
    size = sum(map(len, attributes)) + sum(map(len, events)) + sum(map(len, links))
    for which, items in enumerate((attributes, events, links)):
        gone: set[int] = set()
        for i in sorted(range(len(items)), key=lambda i: len(items[i]), reverse=True):
            if size <= room:
                break
            size -= len(items[i])
            gone.add(i)
            if which == 0:
                dropped_keys.append(_attribute_key(items[i]))
        counts[which] += len(gone)
        kept.append([item for i, item in enumerate(items) if i not in gone])
        if gone and which:
            note["events" if which == 1 else "links"] = len(gone)

    note_attribute = attribute(_NOTE_KEY_NAME, _note(note, dropped_keys, note_room))
    head = [fixed.get(1, b""), fixed.get(2, b"")]
    if trace_state:
        head.append(_field(b"\x1a", _text(trace_state)))
    head += (fixed.get(4, b""), _field(b"\x2a", _text(name)), fixed.get(6, b""))
    head += (fixed.get(7, b""), fixed.get(8, b""))
    tail = []
    for i, tag in enumerate((b"\x50", b"\x60", b"\x70")):
        if i:
            tail += kept[i]
        if counts[i]:
            tail += (tag, _varint(counts[i] & 0xFFFFFFFF))
    if code or message:
        status = (_field(b"\x12", _text(message)) if message else b"") + (
            b"\x18" + _varint(code) if code else b""
        )
        tail.append(_field(b"\x7a", status))
    tail.append(fixed.get(16, b""))
    out = b"".join([*head, *kept[0], note_attribute, *tail])
    if len(out) > limit:  # only below the documented 1 KB: the identity, code and note
        out = b"".join([fixed.get(n, b"") for n in (1, 2, 4, 6, 7, 8)]) + note_attribute
        out += (b"\x7a\x02\x18" + _BYTE[code] if code else b"") + fixed.get(16, b"")
    return out
