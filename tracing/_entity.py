"""Spans to X-Ray entity dicts: nesting, depth caps and foreign children.

Wire rules applied here (see DESIGN.md): an open span is written
``in_progress``; nesting deeper than :data:`MAX_DEPTH` is flattened rather than
lost; children made by another library (aws-xray-sdk subsegments, converted OTel
spans) are stripped of the trace fields that nesting makes implicit, and their
annotations and metadata pass through the same value rules as ours.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._span import MAX_MESSAGE, Span
from ._values import annotation_key, annotation_value, json_value

if TYPE_CHECKING:
    from .backends import ForeignEntity

__all__ = ["MAX_DEPTH", "cap_depth", "entity_dict", "foreign_dict", "sanitize_entity"]

log = logging.getLogger("tracing.span")

#: Deepest nesting written as is; deeper descendants are listed flat under the entity
#: at this depth. JSON encoders (ours and X-Ray's) recurse per level, and a
#: recursive handler with a span per call would otherwise exceed their limits and
#: lose the whole document.
MAX_DEPTH = 64

#: Fields of an independent subsegment that nesting makes implicit.
_TOP_LEVEL = ("trace_id", "parent_id", "type")


def foreign_dict(child: ForeignEntity) -> dict[str, Any]:
    """Serialize a library child, dropping the fields nesting makes implicit.

    A library's entity may carry its own ``trace_id``/``parent_id``; for init work
    those are the placeholder's, so they are removed here and re-stamped by
    position in the tree. Its values pass through the value rules.
    """
    return _strip(child.to_dict())


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    for key in _TOP_LEVEL:
        data.pop(key, None)
    _clean_values(data)
    nested = data.get("subsegments")
    if nested:
        data["subsegments"] = [_strip(item) for item in nested if isinstance(item, dict)]
    return data


def _clean_values(data: dict[str, Any]) -> None:
    """Apply the value rules to a foreign entity's annotations and metadata, in place."""
    annotations = data.get("annotations")
    if annotations:
        cleaned: dict[str, Any] = {}
        if isinstance(annotations, dict):
            for key, value in annotations.items():
                name, converted = annotation_key(key), annotation_value(value)
                if name is not None and converted is not None:
                    cleaned[name] = converted
        data["annotations"] = cleaned
    metadata = data.get("metadata")
    if metadata:
        data["metadata"] = _metadata(metadata)
    _scrub_secrets(data)


def _scrub_secrets(data: dict[str, Any]) -> None:
    """The URL rule (``_scrub.py``) on a library's URL and error messages, in place.

    aws-xray-sdk strips the query from the URLs it records, not credentials, and
    writes exception messages (where HTTP clients put the URL) as they are.
    """
    http = data.get("http")
    request = http.get("request") if isinstance(http, dict) else None
    url = request.get("url") if isinstance(request, dict) else None
    if isinstance(url, str) and ("?" in url or "@" in url or "#" in url):
        from ._scrub import scrub_url

        request["url"] = scrub_url(url)  # type: ignore[index]
    cause = data.get("cause")
    if isinstance(cause, dict):
        for exception in cause.get("exceptions") or ():
            message = exception.get("message") if isinstance(exception, dict) else None
            if isinstance(message, str) and ("?" in message or "@" in message or "#" in message):
                from ._scrub import scrub_text

                exception["message"] = scrub_text(message[:MAX_MESSAGE])


def _metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        return {"default": {"value": json_value(metadata)}}
    out: dict[str, Any] = {}
    for namespace, values in metadata.items():
        if not isinstance(namespace, str) or not namespace or namespace.startswith("AWS."):
            continue
        converted = json_value(values)
        out[namespace] = converted if isinstance(converted, dict) else {"value": converted}
    return out


def sanitize_entity(entity: Any) -> dict[str, Any]:
    """A copy of a whole entity tree with every value made valid (the encoder's fallback).

    Slower than building the document right in the first place; used only when a
    document failed to encode (a value from outside the value rules slipped in).
    """
    if not isinstance(entity, dict):
        return {"name": "invalid", "metadata": {"tracing": {"invalid": json_value(entity)}}}
    out: dict[str, Any] = {}
    for key, value in entity.items():
        name = key if isinstance(key, str) else str(key)
        if name == "subsegments" and isinstance(value, list):
            out[name] = [sanitize_entity(child) for child in value]
        elif name in ("annotations", "metadata"):
            copy = {name: value}
            _clean_values(copy)
            out[name] = copy[name]
        else:
            out[name] = json_value(value, max_depth=16)
    return out


def entity_dict(span: Span, _depth: int = 0) -> dict[str, Any]:
    """Convert a span tree to an X-Ray entity dict (nested, no trace fields).

    Open spans are written ``in_progress``; the deadline guard closes them in the
    document (``seal_open``). Nesting deeper than :data:`MAX_DEPTH` is flattened
    (and noted in ``metadata.tracing.flattened``) rather than lost.
    """
    data = _fields(span)
    children = span.children
    if not children:
        return data
    if _depth >= MAX_DEPTH:
        flat = _flatten(children)
        data["subsegments"] = flat
        data.setdefault("metadata", {}).setdefault("tracing", {})["flattened"] = len(flat)
        return data
    out = []
    for child in list(children):  # copy: the deadline guard reads from another thread
        if isinstance(child, Span):
            out.append(entity_dict(child, _depth + 1))
        else:
            try:
                # Foreign trees (SDK subsegments, converted OTel spans) bring their
                # own nesting: cap it where it starts, not in a pass over every tree.
                out.append(cap_depth(foreign_dict(child), MAX_DEPTH - _depth - 1))
            except Exception:  # a foreign entity must never break emission
                log.debug("tracing: could not serialize %r", child, exc_info=True)
    data["subsegments"] = out
    return data


def _flatten(children: list[Span | ForeignEntity]) -> list[dict[str, Any]]:
    """Every descendant as a childless entity, depth first, without recursion."""
    out = []
    stack = list(reversed(children))
    while stack:
        child = stack.pop()
        if isinstance(child, Span):
            out.append(_fields(child))
            stack.extend(reversed(child.children or ()))
        else:
            try:
                data = foreign_dict(child)
                nested = data.pop("subsegments", None)
                out.append(data)
                if nested:  # flat as well: its descendants follow it
                    holder = {"subsegments": nested}
                    out.extend(cap_depth(holder, 0)["subsegments"])
            except Exception:
                log.debug("tracing: could not serialize %r", child, exc_info=True)
    return out


def _fields(span: Span) -> dict[str, Any]:
    data: dict[str, Any] = {"name": span.name, "id": span.id, "start_time": span.start_time}
    end = span.end_time
    if end is None:
        data["in_progress"] = True
    else:
        data["end_time"] = end
    if span.namespace:
        data["namespace"] = span.namespace
    if span.fault:
        data["fault"] = True
    if span.error:
        data["error"] = True
    if span.throttle:
        data["throttle"] = True
    if span.annotations:
        data["annotations"] = dict(span.annotations)
    if span.metadata:
        data["metadata"] = {ns: dict(values) for ns, values in list(span.metadata.items())}
    if span.aws:
        data["aws"] = dict(span.aws)
    if span.http:
        data["http"] = dict(span.http)
    if span.cause:
        data["cause"] = span.cause
    return data


def cap_depth(entity: dict[str, Any], max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Flatten, in place, nesting deeper than ``max_depth`` in an entity dict tree.

    The same rule as :func:`entity_dict` applies to nested dicts from other
    sources (converted OTel spans, SDK subsegments): below ``max_depth`` every
    descendant is listed flat, noted in ``metadata.tracing.flattened``. Iterative.
    """
    stack: list[tuple[dict[str, Any], int]] = [(entity, 0)]
    while stack:
        node, depth = stack.pop()
        children = node.get("subsegments")
        if not children:
            continue
        if depth < max_depth:
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict))
            continue
        flat: list[dict[str, Any]] = []
        pending = list(reversed(children))
        while pending:
            child = pending.pop()
            if not isinstance(child, dict):
                continue
            grandchildren = child.pop("subsegments", None)
            flat.append(child)
            if grandchildren:
                pending.extend(reversed(grandchildren))
        if len(flat) != len(children) or any("subsegments" in c for c in children):
            node.setdefault("metadata", {}).setdefault("tracing", {})["flattened"] = len(flat)
        node["subsegments"] = flat
    return entity
