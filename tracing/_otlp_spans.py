"""The core's spans as OTLP spans (the wire format is ``_otlp.py``).

A core span becomes one OTLP span:

* ``kind`` from :attr:`Span.kind`: the invocation is INTERNAL (it nests under the
  function segment Lambda itself records, as ``## handler`` does in X-Ray),
  consumer segments are CONSUMER, a service's own segment outside Lambda SERVER,
  AWS and other remote calls CLIENT;
* annotations become attributes, their keys listed in ``aws.xray.annotations``
  so that X-Ray indexes them again; metadata becomes attributes (``key`` in the
  ``default`` namespace, ``namespace.key`` otherwise, non-scalar values as JSON);
* an AWS call gets ``rpc.system=aws-api``, ``rpc.service``, ``rpc.method`` and
  ``aws.*`` attributes; the HTTP block ``http.request.method``, ``url.full`` and
  ``http.response.status_code``;
* ``fault``/``error`` become an ERROR status (X-Ray's mapping tells them apart
  by the HTTP status), ``cause`` becomes ``exception`` events;
* the parent context's remoteness goes in ``flags``.

Library spans (the user's own OTel spans) are written by their backend from the
library's span itself (``otlp_spans``), so their kind, events and links
survive; any other foreign entity is written from its X-Ray dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._otlp import (
    ANNOTATIONS_ATTRIBUTE,
    IS_REMOTE,
    STATUS_ERROR,
    STATUS_UNSET,
    annotation_attributes,
    attribute,
    cached_annotations,
    event_message,
    link_message,
    lone_span,
    span_flags,
    span_message,
)
from ._span import CLIENT, CONSUMER, INTERNAL, SERVER, Span

if TYPE_CHECKING:
    from ._scope import Scope

__all__ = [
    "ANNOTATIONS_ATTRIBUTE",
    "document_spans",
    "entity_attributes",
    "entity_spans",
    "scope_spans",
    "single_span",
    "trace_bytes",
    "tree_spans",
]

Links = dict[str, list[tuple[str, str]]]


def trace_bytes(trace_id: str) -> bytes:
    """An X-Ray trace id (``1-5759e988-bd862e3fe1be46a994272793``) as 16 bytes."""
    return bytes.fromhex(trace_id[2:10] + trace_id[11:])


def _stacktrace(exception: Mapping[str, Any]) -> str:
    frames = exception.get("stack") or []
    lines = [
        f'  File "{f.get("path", "")}", line {f.get("line", 0)}, in {f.get("label", "")}\n'
        for f in reversed(frames)
        if isinstance(f, Mapping)
    ]
    return "Traceback (most recent call last):\n" + "".join(lines) if lines else ""


def exception_events(cause: Any, time_ns: int) -> bytes:
    """An X-Ray ``cause`` as framed OTel ``exception`` events."""
    if not isinstance(cause, Mapping):
        return b""
    out = []
    for exception in cause.get("exceptions") or ():
        if not isinstance(exception, Mapping):
            continue
        message = str(exception.get("message", ""))
        if "?" in message or "@" in message or "#" in message:  # the URL-secret rule
            from ._scrub import scrub_text

            message = scrub_text(message)
        attributes = [
            ("exception.type", str(exception.get("type", "Exception"))),
            ("exception.message", message),
        ]
        trace = _stacktrace(exception)
        if trace:
            attributes.append(("exception.stacktrace", trace))
        out.append(event_message("exception", time_ns, attributes))
    return b"".join(out)


def entity_attributes(
    name: str,
    namespace: str | None,
    annotations: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    aws: Mapping[str, Any] | None,
    http: Mapping[str, Any] | None,
    vouched: str | None = None,
) -> bytes:
    """The framed attributes of an entity (a core span, or an X-Ray entity dict)."""
    parts = []
    if annotations:
        parts.append(annotation_attributes(annotations, vouched))
    if metadata:
        for namespace_name, values in metadata.items():
            if not isinstance(values, Mapping):
                continue
            prefix = "" if namespace_name == "default" else f"{namespace_name}."
            for key, value in values.items():
                label = prefix + str(key)
                if annotations and label in annotations:
                    label = f"{namespace_name}.{key}"  # never shadow an annotation
                parts.append(attribute(label, value))
    if namespace == "aws":
        parts += (attribute("rpc.system", "aws-api"), attribute("rpc.service", name))
        for field, value in (aws or {}).items():
            if value is not None:
                parts.append(
                    attribute("rpc.method" if field == "operation" else f"aws.{field}", value)
                )
    if http:
        request = http.get("request")
        if isinstance(request, Mapping):
            if request.get("method") is not None:
                parts.append(attribute("http.request.method", request["method"]))
            url = request.get("url")
            if url is not None:
                if isinstance(url, str) and ("?" in url or "@" in url or "#" in url):
                    from ._scrub import scrub_url  # a library's URL: the URL-secret rule

                    url = scrub_url(url)
                parts.append(attribute("url.full", url))
        response = http.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("status"), int):
            parts.append(attribute("http.response.status_code", response["status"]))
    return b"".join(parts)


class _Writer:
    """Walks a tree of core spans (and foreign children) into OTLP span bodies."""

    __slots__ = ("flags", "links", "now", "open_children", "out", "trace")

    def __init__(
        self,
        trace: bytes,
        flags: int,
        links: Links | None,
        now: float | None,
        open_children: Mapping[str, list[Any]] | None,
    ) -> None:
        self.trace = trace
        self.flags = flags
        self.links = links
        self.now = now
        self.open_children = open_children
        self.out: list[bytes] = []

    def span(self, span: Span, parent: bytes | None, flags: int, extra: bytes = b"") -> None:
        end = span.end_time
        annotations = span.annotations
        vouched = span.annotations_json
        fault = span.fault
        if end is None:
            # Open at a timeout (the deadline guard): closed now, as ``seal_open``
            # closes it in an X-Ray document.
            end = self.now if self.now is not None else span.start_time
            annotations = {**(annotations or {}), "Timeout": True}
            vouched = None
            fault = True
        attributes = entity_attributes(
            span.name, span.namespace, annotations, span.metadata, span.aws, span.http, vouched
        )
        end_ns = int(end * 1e9)
        links = b""
        if self.links:
            pairs = self.links.pop(span.id, None)
            if pairs:
                links = b"".join(link_message(trace_bytes(t), bytes.fromhex(s)) for t, s in pairs)
        kind = span.kind
        if kind == INTERNAL and span.namespace in ("aws", "remote"):
            kind = CLIENT
        self.out.append(
            span_message(
                self.trace,
                bytes.fromhex(span.id),
                parent,
                span.name,
                kind,
                int(span.start_time * 1e9),
                end_ns,
                attributes + extra,
                exception_events(span.cause, end_ns) if span.cause else b"",
                links,
                STATUS_ERROR if (fault or span.error) else STATUS_UNSET,
                "",
                flags,
            )
        )

    def tree(self, root: Span, parent: bytes | None, remote: bool, extra: bytes = b"") -> None:
        self.span(root, parent, self.flags | (IS_REMOTE if remote else 0), extra)
        if not root.children and not self.open_children:
            return
        stack: list[tuple[Any, bytes]] = []
        self._push(root, stack)
        while stack:
            node, parent_bytes = stack.pop()
            if isinstance(node, Span):
                self.span(node, parent_bytes, self.flags)
                self._push(node, stack)
            else:
                self.foreign(node, parent_bytes)

    def _push(self, span: Span, stack: list[tuple[Any, bytes]]) -> None:
        own = bytes.fromhex(span.id)
        stack.extend((child, own) for child in reversed(list(span.children or ())))
        if self.open_children:
            stack.extend((entity, own) for entity in self.open_children.get(span.id, ()))

    def foreign(self, child: Any, parent: bytes) -> None:
        try:
            write = getattr(child, "otlp_spans", None)
            if write is not None:
                self.out.extend(write(self.trace, parent, self.flags, self.now))
                return
            data = child if isinstance(child, dict) else child.to_dict()
            self.out.extend(entity_spans(data, self.trace, parent, self.flags, self.now))
        except Exception:  # a foreign entity must never break emission
            return


def single_span(scope: Scope, links: Links | None = None) -> bytes | None:
    """The one span of a scope whose root stands alone (the usual invocation), fast.

    ``None`` when the scope needs :func:`scope_spans` (children, metadata, an AWS
    call's fields, a cause, links, dropped spans, annotations not seen before).
    Writes the same bytes :func:`scope_spans` would, with fewer steps: this is
    most of what every invocation costs on the ``otlp-udp`` path.
    """
    root = scope.root
    trace = scope.trace_id
    end = root.end_time
    if (
        root.children
        or end is None
        or trace is None
        or root.metadata
        or root.cause
        or root.aws
        or root.http
        or root.namespace
        or scope.dropped
        or (links and root.id in links)
    ):
        return None
    attributes = b""
    if root.annotations:
        vouched = root.annotations_json
        cached = cached_annotations(vouched) if vouched is not None else None
        if cached is None:
            return None
        attributes = cached
    parent = scope.parent_id
    return lone_span(
        bytes.fromhex(trace[2:10] + trace[11:]),
        bytes.fromhex(root.id),
        bytes.fromhex(parent) if parent is not None else None,
        root.name,
        root.kind,
        int(root.start_time * 1e9),
        int(end * 1e9),
        attributes,
        root.fault or root.error,
        span_flags(scope.sampled, parent is not None),
    )


def tree_spans(
    root: Span,
    trace: bytes,
    parent: bytes | None,
    flags: int,
    now: float | None = None,
    links: Links | None = None,
) -> list[bytes]:
    """A core span and everything under it, as OTLP span bodies (parents first)."""
    writer = _Writer(trace, flags, links, now, None)
    writer.tree(root, parent, False)
    return writer.out


def scope_spans(
    scope: Scope,
    *,
    links: Links | None = None,
    now: float | None = None,
    open_children: Mapping[str, list[Any]] | None = None,
) -> list[bytes]:
    """Every span of ``scope`` as an OTLP span body, parents first.

    Args:
        scope: What to write; its root's parent is the scope's ``parent_id``.
        links: The backend's link table (span id -> linked contexts), consumed.
        now: Close spans still open at this time as timeouts (the deadline guard).
        open_children: Library spans still open, by the id of their core parent.
    """
    trace = scope.trace_id
    if trace is None:
        return []
    parent = scope.parent_id
    writer = _Writer(
        trace_bytes(trace), span_flags(scope.sampled, False), links, now, open_children
    )
    extra = attribute("tracing.dropped_spans", scope.dropped) if scope.dropped else b""
    writer.tree(scope.root, bytes.fromhex(parent) if parent else None, parent is not None, extra)
    return writer.out


def entity_spans(
    entity: Mapping[str, Any],
    trace: bytes,
    parent: bytes | None,
    flags: int,
    now: float | None = None,
    kind: int | None = None,
    top_flags: int | None = None,
    links: Links | None = None,
) -> list[bytes]:
    """An X-Ray entity dict and its subsegments as OTLP span bodies.

    For entities known only as X-Ray dicts (the Init document, a deadline-guard
    snapshot, an aws-xray-sdk subsegment). Nodes that can write themselves
    (``otlp_spans``: a library's span) do; kinds follow X-Ray's namespaces
    (``aws``/``remote`` are CLIENT), and ``kind`` sets the top entity's.
    """
    out: list[bytes] = []
    first = flags if top_flags is None else top_flags
    stack: list[tuple[Mapping[str, Any], bytes | None, int]] = [(entity, parent, first)]
    while stack:
        node, parent_bytes, node_flags = stack.pop()
        write = getattr(node, "otlp_spans", None)
        if write is not None:
            out.extend(write(trace, parent_bytes, node_flags, now))  # the top one: remote
            continue
        try:
            own = bytes.fromhex(str(node["id"]))
            start = float(node["start_time"])
        except (KeyError, TypeError, ValueError):
            continue
        end = node.get("end_time")
        given = node.get("annotations")
        annotations = given if isinstance(given, Mapping) else None
        fault = bool(node.get("fault"))
        if not isinstance(end, (int, float)):
            end = now if now is not None else start
            annotations = {**(annotations or {}), "Timeout": True}
            fault = True
        name = str(node.get("name", "unnamed"))
        namespace = node.get("namespace")
        namespace = namespace if isinstance(namespace, str) else None
        metadata, aws, http = (node.get(k) for k in ("metadata", "aws", "http"))
        attributes = entity_attributes(
            name,
            namespace,
            annotations,
            metadata if isinstance(metadata, Mapping) else None,
            aws if isinstance(aws, Mapping) else None,
            http if isinstance(http, Mapping) else None,
        )
        end_ns = int(float(end) * 1e9)
        framed_links = b""
        if links:
            pairs = links.pop(str(node["id"]), None)
            if pairs:
                framed_links = b"".join(
                    link_message(trace_bytes(t), bytes.fromhex(s)) for t, s in pairs
                )
        node_kind = CLIENT if namespace in ("aws", "remote") else INTERNAL
        if node is entity and kind is not None:
            node_kind = kind
        out.append(
            span_message(
                trace,
                own,
                parent_bytes,
                name,
                node_kind,
                int(start * 1e9),
                end_ns,
                attributes,
                exception_events(node.get("cause"), end_ns),
                framed_links,
                STATUS_ERROR if (fault or node.get("error")) else STATUS_UNSET,
                "",
                node_flags,
            )
        )
        children = node.get("subsegments")
        if isinstance(children, list):
            stack.extend((c, own, flags) for c in reversed(children) if isinstance(c, Mapping))
    return out


def document_spans(
    document: Mapping[str, Any], sampled: bool = True, links: Links | None = None
) -> list[bytes]:
    """A top-level X-Ray document as OTLP span bodies.

    A segment (no ``type``) with a parent continues a message's trace (CONSUMER),
    one without is a service's own (SERVER); an independent subsegment keeps its
    entity's kind. The top entity's parent is remote.
    """
    trace_id = document.get("trace_id")
    if not isinstance(trace_id, str) or len(trace_id) != 35:
        return []
    parent_id = document.get("parent_id")
    parent = bytes.fromhex(parent_id) if isinstance(parent_id, str) else None
    kind = None
    if document.get("type") != "subsegment":
        kind = CONSUMER if parent is not None else SERVER
    flags = span_flags(sampled, False)
    top_flags = flags | (IS_REMOTE if parent is not None else 0)
    return entity_spans(
        document,
        trace_bytes(trace_id),
        parent,
        flags,
        kind=kind,
        top_flags=top_flags,
        links=links,
    )
