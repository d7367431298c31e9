"""The span model of the core, and its conversion to X-Ray entity dicts.

A :class:`Span` is the cheapest object that can become an X-Ray segment or
subsegment. It uses ``__slots__`` and creates its dicts lazily, because one is made
per invocation and per ``tracing.span`` on the hot path. Children can be spans or
foreign entities (aws-xray-sdk subsegments) that know how to ``to_dict()``
themselves.

Wire rules enforced here (see DESIGN.md): names at most 200 characters,
annotation keys ``[A-Za-z0-9_]`` with string/number/bool values, at most 50
annotations per entity, ``AWS.``-prefixed metadata namespaces reserved.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import traceback
from collections import deque
from typing import Any, Protocol

from ._header import new_id

__all__ = ["MAX_ANNOTATIONS", "Foreign", "Span", "entity_dict", "exception_cause"]

log = logging.getLogger("tracing.span")

MAX_NAME = 200
MAX_ANNOTATIONS = 50
MAX_ANNOTATION_VALUE = 1000
MAX_STACK_FRAMES = 30
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]")
# X-Ray rejects names with characters outside this set; the SDK strips the same.
_BAD_NAME_CHARS = re.compile(r"[^\w .:/%&#=+\\\-@]", re.UNICODE)


class Foreign(Protocol):
    """A child entity produced by another library (an aws-xray-sdk subsegment)."""

    def to_dict(self) -> dict[str, Any]: ...


def clean_name(name: object) -> str:
    """Return a name X-Ray accepts: allowed characters, at most 200 long."""
    text = name if isinstance(name, str) else str(name)
    if len(text) > MAX_NAME:
        text = text[:MAX_NAME]
    if _BAD_NAME_CHARS.search(text):
        text = _BAD_NAME_CHARS.sub("_", text)
    return text or "unnamed"


def clean_annotation(key: object, value: object) -> tuple[str, str | int | float | bool] | None:
    """Validate one annotation; ``None`` when the value type is not indexable."""
    if isinstance(value, str):
        if len(value) > MAX_ANNOTATION_VALUE:
            value = value[:MAX_ANNOTATION_VALUE]
    elif not isinstance(value, (bool, int, float)):
        return None
    text = key if isinstance(key, str) else str(key)
    text = _BAD_KEY_CHARS.sub("_", text[:250])
    if not text:
        return None
    return text, value


class Span:
    """One unit of work: becomes an X-Ray segment or subsegment.

    Attributes are public for the core's own use; user code goes through
    ``tracing.span``/``annotate``/``metadata``.
    """

    __slots__ = (
        "annotations",
        "aws",
        "cause",
        "children",
        "end_time",
        "error",
        "fault",
        "http",
        "id",
        "metadata",
        "name",
        "namespace",
        "scope",
        "start_time",
        "throttle",
        "view",
    )

    def __init__(
        self,
        name: str,
        scope: Any = None,
        start_time: float | None = None,
        span_id: str | None = None,
    ) -> None:
        self.name = name
        self.id = span_id or new_id()
        self.start_time = time.time() if start_time is None else start_time
        self.end_time: float | None = None
        self.scope = scope
        self.annotations: dict[str, str | int | float | bool] | None = None
        self.metadata: dict[str, dict[str, Any]] | None = None
        self.children: list[Span | Foreign] | None = None
        self.fault = False
        self.error = False
        self.throttle = False
        self.cause: dict[str, Any] | None = None
        self.namespace: str | None = None
        self.aws: dict[str, Any] | None = None
        self.http: dict[str, Any] | None = None
        self.view: Any = None  # lazily-built aws-xray-sdk view, see backends/xray.py

    @property
    def recording(self) -> bool:
        """True for spans that will be sent (the no-op span says False)."""
        return True

    def annotate(self, key: object, value: object) -> None:
        """Add an indexed annotation; invalid ones are dropped with a debug line."""
        cleaned = clean_annotation(key, value)
        if cleaned is None:
            log.debug("tracing: annotation %r dropped: %s is not str/number/bool", key, type(value))
            return
        annotations = self.annotations
        if annotations is None:
            self.annotations = annotations = {}
        elif len(annotations) >= MAX_ANNOTATIONS and cleaned[0] not in annotations:
            log.debug("tracing: annotation %r dropped: %d per entity at most", key, MAX_ANNOTATIONS)
            return
        annotations[cleaned[0]] = cleaned[1]

    def put_metadata(self, key: object, value: object, namespace: str = "default") -> None:
        """Add non-indexed metadata under ``namespace`` (``AWS.*`` is reserved)."""
        if not isinstance(namespace, str) or namespace.startswith("AWS."):
            log.debug("tracing: metadata namespace %r is reserved or invalid", namespace)
            return
        if self.metadata is None:
            self.metadata = {}
        self.metadata.setdefault(namespace, {})[str(key)] = value

    def add_child(self, child: Span | Foreign) -> None:
        """Attach a finished or open child entity."""
        if self.children is None:
            self.children = [child]
        else:
            self.children.append(child)

    def record_exception(self, exc: BaseException, *, full: bool = False) -> None:
        """Mark the span ``fault`` and describe ``exc`` in ``cause`` (see exception_cause)."""
        self.fault = True
        self.cause = exception_cause(exc, full=full)

    def finish(self, end_time: float | None = None) -> None:
        """Close the span; a second call keeps the first end time."""
        if self.end_time is None:
            self.end_time = time.time() if end_time is None else end_time


class NoopSpan(Span):
    """The span of untraced work: accepts every call and records nothing."""

    __slots__ = ()

    @property
    def recording(self) -> bool:
        return False

    def annotate(self, key: object, value: object) -> None:
        return None

    def put_metadata(self, key: object, value: object, namespace: str = "default") -> None:
        return None

    def add_child(self, child: Span | Foreign) -> None:
        return None

    def record_exception(self, exc: BaseException, *, full: bool = False) -> None:
        return None

    def finish(self, end_time: float | None = None) -> None:
        return None


NOOP = NoopSpan("noop", span_id="0000000000000000", start_time=0.0)


def exception_cause(exc: BaseException, *, full: bool = False) -> dict[str, Any]:
    """Build an X-Ray ``cause`` for ``exc``: type, message and stack frames.

    Only the innermost :data:`MAX_STACK_FRAMES` frames are looked up, and the
    stack is written once per exception object: when the same exception rises
    through outer spans they get a short entry pointing at the first one
    (``cause``), as aws-xray-sdk does. Without this, an exception raised deep in a
    recursion costs time quadratic in the depth. ``full=True`` (the top entity of a
    document: the invocation, a consumer segment) always writes the stack.
    """
    try:
        first = getattr(exc, "_tracing_exception_id", None)
    except Exception:
        first = None
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break the handler
        message = f"<unprintable {type(exc).__name__}>"
    exception: dict[str, Any] = {
        "id": new_id(),
        "type": type(exc).__qualname__,
        "message": message[: MAX_ANNOTATION_VALUE * 4],
    }
    if isinstance(first, str) and not full:
        exception["cause"] = first
        return {"working_directory": _cwd(), "exceptions": [exception]}
    frames: deque[tuple[Any, int]] = deque(maxlen=MAX_STACK_FRAMES)
    count = 0
    for frame, line in traceback.walk_tb(exc.__traceback__):
        frames.append((frame, line))
        count += 1
    summary = traceback.StackSummary.extract(iter(frames), lookup_lines=False)
    exception["stack"] = [
        {"path": f.filename, "line": f.lineno, "label": f.name} for f in reversed(summary)
    ]
    if count > MAX_STACK_FRAMES:
        exception["truncated"] = count - MAX_STACK_FRAMES
    # Exceptions with __slots__ cannot carry the id: they are simply re-described.
    with contextlib.suppress(Exception):
        exc._tracing_exception_id = exception["id"]  # type: ignore[attr-defined]
    return {"working_directory": _cwd(), "exceptions": [exception]}


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the working directory was removed
        return ""


_FOREIGN_DROP = ("trace_id", "parent_id", "type", "parent_segment")


def foreign_dict(child: Foreign) -> dict[str, Any]:
    """Serialize an SDK child, dropping fields that nesting makes implicit.

    Nested SDK subsegments carry their own ``trace_id``/``parent_id``; for init
    work those are the placeholder's, so they are removed here and re-stamped by
    position in the tree.
    """
    return _strip(child.to_dict())


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    for key in _FOREIGN_DROP:
        data.pop(key, None)
    if data.get("in_progress") is False:
        del data["in_progress"]
    nested = data.get("subsegments")
    if nested:
        data["subsegments"] = [_strip(item) for item in nested]
    return data


#: Deepest nesting written as is; deeper descendants are listed flat under the entity
#: at this depth. JSON encoders (ours and X-Ray's) recurse per level, and a
#: recursive handler with a span per call would otherwise exceed their limits and
#: lose the whole document.
MAX_DEPTH = 64


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


def _flatten(children: list[Span | Foreign]) -> list[dict[str, Any]]:
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
        data["metadata"] = {ns: dict(values) for ns, values in span.metadata.items()}
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
