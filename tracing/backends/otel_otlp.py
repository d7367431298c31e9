"""The user's OpenTelemetry spans as OTLP, themselves: for the OTLP exporters.

When the otel backend exports OTLP (``exporter="otlp-udp"`` or ``"otlp"``), the
spans the application made through the OTel API are written from the SDK's own
``ReadableSpan``, as OpenTelemetry's own OTLP encoder writes them (the tests
compare the two on generated spans): name, kind, status and its description,
every attribute with its type (bytes, arrays, nested mappings, int and str
subclasses by their base's value), events (not only exceptions), links with
their attributes, the dropped counts of the span, its events and links, and its
instrumentation scope (name, version, attributes, schema URL), under which the
request groups it. Only two things change, as they do in the X-Ray
documents: the trace id and the parent of a span made during init (re-stamped
into the first invocation's trace, under ``Init``), and the parent of a span
whose parent was one of the core's spans (written under that span).

Deliberate differences from OpenTelemetry's encoder: ``flags`` (of the span
and of its links) carry the W3C sampled bit besides the parent's remoteness, as
the OTLP proto defines them (X-Ray's ``T1S``/``T1U`` and unsampled spans rely on
it; OTel Python writes the remoteness bits only); a link's trace state is
written (OTel Python leaves ``Link.trace_state`` out); an integer outside int64
is written as its text where OTel's encoder drops the attribute; a scope of
more than 4 KB (``_otlp.scope_fields``) is cut; and the URL-secret rule
(``_scrub.py``) applies to ``url.full``, ``http.url``, exception events' message
and stack, and the status description: no URL query (unless ``http_query``) or
credentials reach a document.

Metadata that ``tracing.current_span().put_metadata`` attached to an OTel span
(OTel attributes cannot hold it) becomes attributes, as on core spans. A span
still open when the deadline guard sends its invocation is written ended at
that moment, with an ERROR status and ``Timeout`` listed as an annotation.
"""

from __future__ import annotations

from typing import Any

from .._otlp import (
    ANNOTATIONS_ATTRIBUTE,
    IS_REMOTE,
    STATUS_ERROR,
    attribute,
    event_message,
    link_message,
    otel_value,
    scope_fields,
    scoped,
    span_message,
)
from .._otlp_spans import tree_spans
from .._span import Span

__all__ = ["readable_spans"]


def _context_bytes(context: Any) -> tuple[bytes, bytes]:
    return context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big")


def _trace_state(context: Any) -> str:
    state = getattr(context, "trace_state", None)
    return state.to_header() if state else ""


#: Attributes that hold a URL, or an error text: the URL-secret rule applies to them.
_URL_KEYS = ("url.full", "http.url")
_TEXT_KEYS = ("exception.message", "exception.stacktrace")


def _scrub_secrets(attributes: dict[str, Any], keys: tuple[str, ...], url: bool) -> None:
    """The URL-secret rule (``_scrub.py``) on ``attributes[key]``, in place.

    The one change made to the user's OTel attributes, on purpose: a URL's
    credentials and query (unless ``http_query``) never reach a document.
    A few dict lookups per span; the rule itself runs only on ``?``, ``@``, ``#``
    (linear in the text, see ``_scrub.py``).
    """
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and ("?" in value or "@" in value or "#" in value):
            from .._scrub import scrub_text, scrub_url

            attributes[key] = scrub_url(value) if url else scrub_text(value)


def _event_attributes(event: Any) -> Any:
    attributes = event.attributes or {}
    if event.name != "exception":
        return attributes.items()
    copied = dict(attributes)
    _scrub_secrets(copied, _TEXT_KEYS, url=False)
    return copied.items()


def _attributes(span: Any, metadata: Any, timeout: bool) -> bytes:
    attributes = dict(span.attributes or {})
    _scrub_secrets(attributes, _URL_KEYS, url=True)
    if timeout:
        attributes["Timeout"] = True
        listed = attributes.get(ANNOTATIONS_ATTRIBUTE)
        listed = list(listed) if isinstance(listed, (list, tuple)) else []
        attributes[ANNOTATIONS_ATTRIBUTE] = [*listed, "Timeout"]
    encoded = b"".join(attribute(key, value, otel_value) for key, value in attributes.items())
    for namespace, values in (metadata or {}).items():
        prefix = "" if namespace == "default" else f"{namespace}."
        for key, value in values.items():
            label = prefix + str(key)
            if label in attributes:
                label = f"{namespace}.{key}"  # never shadow the span's own attribute
            encoded += attribute(label, value)  # metadata: as on core spans
    return encoded


#: Encoded scopes by the id of the SDK's ``InstrumentationScope`` (kept alive in
#: the entry, so the id cannot be reused); a tracer's scope is one object.
_SCOPES: dict[int, tuple[Any, bytes]] = {}
_MAX_SCOPES = 256


def _scope(span: Any) -> bytes | None:
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None:
        return None
    cached = _SCOPES.get(id(scope))
    if cached is not None and cached[0] is scope:
        return cached[1]
    encoded = scope_fields(
        str(scope.name or ""),
        scope.version,
        getattr(scope, "attributes", None),
        getattr(scope, "schema_url", None),
    )
    if len(_SCOPES) >= _MAX_SCOPES:
        _SCOPES.pop(next(iter(_SCOPES), 0), None)
    _SCOPES[id(scope)] = (scope, encoded)
    return encoded


def _one(node: Any, trace: bytes, parent: bytes | None, flags: int, now: float | None) -> bytes:
    span = node.span
    context = span.context
    _, own = _context_bytes(context)
    end = span.end_time
    timeout = end is None
    if timeout:
        end = int((now if now is not None else span.start_time / 1e9) * 1e9)
    status = span.status
    code = STATUS_ERROR if timeout else int(status.status_code.value)
    events = b"".join(
        event_message(
            event.name,
            event.timestamp,
            _event_attributes(event),
            getattr(event, "dropped_attributes", 0),
            otel_value,
        )
        for event in span.events
    )
    links = b""
    for link in span.links:
        link_trace, link_span = _context_bytes(link.context)
        links += link_message(
            link_trace,
            link_span,
            (link.attributes or {}).items(),
            flags=(0x01 if link.context.trace_flags.sampled else 0)
            | 0x100
            | (IS_REMOTE if link.context.is_remote else 0),
            trace_state=_trace_state(link.context),
            dropped=getattr(link, "dropped_attributes", 0),
            encode=otel_value,
        )
    body = span_message(
        trace,
        own,
        parent,
        span.name,
        int(span.kind.value) + 1,  # OTel Python counts kinds from 0, OTLP from 1
        span.start_time or 0,
        end or 0,
        _attributes(span, node.metadata, timeout),
        events,
        links,
        code,
        _description(status.description) if not timeout else "Timeout",
        flags,
        _trace_state(context),
        (span.dropped_attributes, span.dropped_events, span.dropped_links),
    )
    return scoped(body, _scope(span))


def _description(text: str | None) -> str:
    """A status description (OTel writes the exception there): the URL-secret rule."""
    if not text:
        return ""
    if "?" in text or "@" in text or "#" in text:
        from .._scrub import scrub_text

        return scrub_text(text)
    return text


def readable_spans(
    root: Any, trace: bytes, parent: bytes | None, flags: int, now: float | None
) -> list[bytes]:
    """An ended (or, at a timeout, open) OTel span and what nests under it.

    ``root`` is the bridge's entity for the span (``span``, ``metadata``,
    ``children``: ended OTel spans under it, and core spans adopted by it).
    ``trace`` and ``parent`` are where it sits in the emitted tree; its
    descendants keep their own parents.
    """
    out: list[bytes] = []
    local = flags & ~IS_REMOTE
    stack: list[tuple[Any, bytes | None, int]] = [(root, parent, flags)]
    while stack:
        node, parent_bytes, node_flags = stack.pop()
        if isinstance(node, Span):
            out.extend(tree_spans(node, trace, parent_bytes, local, now))
            continue
        out.append(_one(node, trace, parent_bytes, node_flags, now))
        own = node.span.context.span_id.to_bytes(8, "big")
        stack.extend((child, own, local) for child in reversed(node.children or ()))
    return out
