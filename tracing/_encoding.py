"""Documents to bytes: compact, strict JSON that X-Ray accepts, whatever is inside.

One C encoder, built once, with ``allow_nan=False``: ``NaN`` and ``Infinity`` are
not JSON, and X-Ray rejects the whole document that holds one. Values recorded
through the library already follow the value rules (``_values.py``); anything
that slipped past them makes the fast path fail, and the document is encoded
again with every value converted by those rules. A document is never lost to a
value.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ._entity import MAX_DEPTH, cap_depth, foreign_dict, sanitize_entity
from ._span import Span
from ._values import dumps as _encode_str
from ._values import escape as _escape

__all__ = ["FastPathError", "encode", "span_json"]

log = logging.getLogger("tracing.emitter")


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


class FastPathError(Exception):
    """The fast writer cannot write this tree: build dicts and encode those instead."""


def span_json(span: Span, depth: int = 0) -> str:
    """A core span tree as an X-Ray entity, JSON, without building dicts first.

    Writes what ``_entity.entity_dict`` would produce, encoded, for the usual case
    (about 1 µs less per document, which is most of an invocation's JSON). The
    values inside were made valid by the value rules when they were recorded; a
    tree this writer does not handle (nesting at the depth cap, an odd value in
    a block a library filled) raises :class:`FastPathError`, and the caller takes the
    dict path, which handles everything.
    """
    if depth >= MAX_DEPTH:
        raise FastPathError("nesting at the depth cap")
    end = span.end_time
    parts = [
        '{"name":',
        _escape(span.name),
        ',"id":"',
        span.id,
        '","start_time":',
        repr(span.start_time),
        ',"in_progress":true' if end is None else ',"end_time":' + repr(end),
    ]
    try:
        if span.namespace:
            parts.append(',"namespace":' + _escape(span.namespace))
        if span.fault:
            parts.append(',"fault":true')
        if span.error:
            parts.append(',"error":true')
        if span.throttle:
            parts.append(',"throttle":true')
        if span.annotations:
            encoded = span.annotations_json
            parts.append(',"annotations":' + (encoded or _encode_str(span.annotations)))
        if span.metadata:
            parts.append(',"metadata":' + _encode_str(span.metadata))
        if span.aws:
            parts.append(',"aws":' + _encode_str(span.aws))
        if span.http:
            parts.append(',"http":' + _encode_str(span.http))
        if span.cause:
            parts.append(',"cause":' + _encode_str(span.cause))
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise FastPathError("a value outside the value rules") from exc
    children = span.children
    if children:
        written = [_child_json(child, depth + 1) for child in list(children)]
        parts.append(',"subsegments":[' + ",".join([w for w in written if w]) + "]")
    parts.append("}")
    return "".join(parts)


def _child_json(child: Any, depth: int) -> str:
    if isinstance(child, Span):
        return span_json(child, depth)
    try:
        entity = cap_depth(foreign_dict(child), MAX_DEPTH - depth)
    except Exception:  # a foreign entity must never break emission
        log.debug("tracing: could not serialize %r", child, exc_info=True)
        return ""
    try:
        text: str = _encode_str(entity)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise FastPathError("a library entity with values outside the value rules") from exc
    return text
