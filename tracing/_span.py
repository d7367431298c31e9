"""The span: the one type users hold, on every backend.

A :class:`Span` is the cheapest object that can become an X-Ray segment or
subsegment. It uses ``__slots__`` and creates its dicts lazily, because one is made
per invocation and per ``tracing.span`` on the hot path. Children can be spans or
foreign entities (an aws-xray-sdk subsegment, a converted OTel span) that
serialize themselves.

``tracing.span(...)`` yields a :class:`Span` and ``tracing.current_span()`` returns
one on either backend, so ``s.annotate(...)``/``s.put_metadata(...)`` work the same
everywhere. When the current span belongs to the backend's library (an
``xray_recorder`` subsegment, the user's own OTel span), ``current_span()`` returns
a :class:`Span` that forwards to it: a foreign object is never handed back.

Values follow the rules of ``_values.py``; names the X-Ray name rules (letters,
numbers, spaces and ``_ . : / % & # = + - @``, at most 200 characters).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any

from ._header import new_id
from ._values import annotation_key, annotation_value, dumps, escape, json_value, metadata_key

if TYPE_CHECKING:
    from ._scope import Scope
    from .backends import ForeignEntity, ForeignSpan

__all__ = [
    "CLIENT",
    "CONSUMER",
    "INTERNAL",
    "MAX_ANNOTATIONS",
    "NOOP",
    "PRODUCER",
    "SERVER",
    "NoopSpan",
    "Span",
    "clean_name",
    "exception_cause",
    "exception_type_cause",
]

log = logging.getLogger("tracing.span")

MAX_NAME = 200
MAX_ANNOTATIONS = 50
#: Metadata kept per span, in encoded bytes: an X-Ray document is at most 64 KB.
MAX_METADATA_BYTES = 60_000
_ABSENT = object()
MAX_MESSAGE = 4000
MAX_STACK_FRAMES = 30

_NAME_ASCII = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:/%&#=+-@"
)
_NOT_SPACE_SEPARATORS = frozenset("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85")

# NOTE: the lazily-created dicts and lists of a span can be touched from several
# threads at once (``tracing.in_current_trace``). Creating one is check-then-set,
# so it is done under this lock; using one afterwards is a single atomic
# operation under the GIL (``list.append``, ``dict.__setitem__``).
_CREATE = threading.Lock()

#: OTLP span kinds, for :attr:`Span.kind`.
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5


def _name_char_ok(char: str) -> bool:
    # AWS's segment schema: BMP letters and numbers, space separators, and the
    # ASCII punctuation above. No tabs, newlines or backslashes.
    if ord(char) > 0xFFFF:
        return False
    if char.isalpha() or char.isnumeric() or char in "\u2028\u2029":
        return True
    return char.isspace() and char not in _NOT_SPACE_SEPARATORS


def _size(value: Any) -> int:
    """Encoded size of a JSON-safe value, in bytes as sent (ASCII, escapes included)."""
    kind = type(value)
    if kind is str:
        return len(value) + 2 if value.isascii() else len(escape(value))
    if kind is dict or kind is list:
        return len(dumps(value))
    return 8


def clean_name(name: object) -> str:
    """Return a name X-Ray accepts: allowed characters (others become ``_``), 1-200 long."""
    if type(name) is str:
        text = name
    else:
        try:
            text = str(name)
        except Exception:
            text = type(name).__name__
    if len(text) > MAX_NAME:
        text = text[:MAX_NAME]
    if not _NAME_ASCII.issuperset(text):
        text = "".join(c if c in _NAME_ASCII or _name_char_ok(c) else "_" for c in text)
    return text or "unnamed"


class Span:
    """One unit of work, sent as an X-Ray segment or subsegment.

    What ``tracing.span(...)`` yields and ``tracing.current_span()`` returns, on
    every backend. The methods below are the public API; the attributes are the
    core's own (set them through the methods).

    Example::

        with tracing.span("charge card", provider="stripe") as s:
            s.annotate("amount_cents", 1250)
            s.put_metadata("request", {"currency": "EUR"})
    """

    __slots__ = (
        "annotations",
        "annotations_json",
        "aws",
        "cause",
        "children",
        "end_time",
        "error",
        "fault",
        "http",
        "id",
        "kind",
        "metadata",
        "metadata_bytes",
        "name",
        "namespace",
        "scope",
        "start_time",
        "throttle",
    )

    def __init__(
        self,
        name: str,
        scope: Scope | None = None,
        start_time: float | None = None,
        span_id: str | None = None,
    ) -> None:
        self.name = name
        self.id = span_id or new_id()
        self.start_time = time.time() if start_time is None else start_time
        self.end_time: float | None = None
        self.scope = scope
        self.annotations: dict[str, str | int | float | bool] | None = None
        #: ``annotations`` already encoded, when its owner vouches they are unchanged.
        self.annotations_json: str | None = None
        self.metadata: dict[str, dict[str, Any]] | None = None
        self.metadata_bytes = 0
        self.children: list[Span | ForeignEntity] | None = None
        self.fault = False
        self.error = False
        self.throttle = False
        self.cause: dict[str, Any] | None = None
        self.namespace: str | None = None
        self.aws: dict[str, Any] | None = None
        self.http: dict[str, Any] | None = None
        #: OTLP span kind (:data:`INTERNAL`...): written by the OTLP exporters only,
        #: X-Ray documents have no kinds.
        self.kind = INTERNAL

    # -- public API -----------------------------------------------------------

    @property
    def recording(self) -> bool:
        """True when this span will be sent; False in unsampled or untraced work."""
        return True

    @property
    def trace_id(self) -> str | None:
        """The X-Ray trace id of this span.

        ``None`` while it is not known yet (init work, re-stamped into the first
        invocation's trace) and outside any trace.
        """
        scope = self.scope
        if scope is None or scope.placeholder:
            return None
        return scope.trace_id

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        """Add an indexed (searchable) annotation.

        The key is made ``[A-Za-z0-9_]``; the value follows the value rules
        (non-finite floats and non-scalar values are dropped with a debug line).
        At most 50 per span.
        """
        cleaned = annotation_value(value)
        name = annotation_key(key) if cleaned is not None else None
        if name is None or cleaned is None:
            log.debug("tracing: annotation %r dropped: %s is not indexable", key, type(value))
            return
        self._set_annotation(name, cleaned)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Add non-indexed metadata under ``namespace`` (``AWS.*`` is reserved).

        The value is copied when recorded, as JSON (see the value rules), so later
        changes to it do not change the trace. A span carries at most 60,000 bytes
        of metadata (an X-Ray document is at most 64 KB): a value that would go
        beyond is replaced by a note of its size.
        """
        if not isinstance(namespace, str) or not namespace or namespace.startswith("AWS."):
            log.debug("tracing: metadata namespace %r is reserved or invalid", namespace)
            return
        self.put_json(metadata_key(key), json_value(value), namespace)

    def put_json(self, key: str, value: Any, namespace: str) -> None:
        """Set metadata already made JSON by the value rules, within the span's budget."""
        size = _size(value)
        previous = (self.metadata or {}).get(namespace, {}).get(key, _ABSENT)
        used = self.metadata_bytes - (0 if previous is _ABSENT else _size(previous))
        if used + size > MAX_METADATA_BYTES:
            log.debug("tracing: metadata %r (%d bytes) is over the span's budget", key, size)
            value = f"<{size} bytes: over the {MAX_METADATA_BYTES} bytes of metadata a span keeps>"
            size = len(value) + 2
        self.metadata_bytes = used + size
        self._set_metadata(key, value, namespace)

    def record_exception(self, exc: BaseException) -> None:
        """Mark the span failed (``fault``) and describe ``exc`` in its ``cause``."""
        self.fault = True
        self.cause = exception_cause(exc)

    # -- the core's own --------------------------------------------------------

    def _set_annotation(self, key: str, value: str | int | float | bool) -> None:
        annotations = self.annotations
        if annotations is None:
            with _CREATE:
                annotations = self.annotations
                if annotations is None:
                    self.annotations = annotations = {}
        if len(annotations) >= MAX_ANNOTATIONS and key not in annotations:
            log.debug("tracing: annotation %r dropped: %d per entity at most", key, MAX_ANNOTATIONS)
            return
        annotations[key] = value
        self.annotations_json = None  # its owner's encoding no longer holds

    def _set_metadata(self, key: str, value: Any, namespace: str) -> None:
        metadata = self.metadata
        if metadata is None:
            with _CREATE:
                metadata = self.metadata
                if metadata is None:
                    self.metadata = metadata = {}
        section = metadata.get(namespace)
        if section is None:
            with _CREATE:
                section = metadata.setdefault(namespace, {})
        section[key] = value

    def add_child(self, child: Span | ForeignEntity) -> None:
        """Attach a finished or open child entity."""
        children = self.children
        if children is None:
            with _CREATE:
                children = self.children
                if children is None:
                    self.children = children = []
        children.append(child)

    adopt = add_child

    def fail(self, exc: BaseException, *, full: bool = False, detail: bool = True) -> None:
        """Like :meth:`record_exception`; ``full`` always writes the whole stack.

        ``detail=False`` (``capture_error=False``) records the exception's type
        only: no message, no stack, for errors whose text may hold private data.
        """
        self.fault = True
        self.cause = exception_cause(exc, full=full) if detail else exception_type_cause(exc)

    def finish(self, end_time: float | None = None) -> None:
        """Close the span; a second call keeps the first end time."""
        if self.end_time is None:
            self.end_time = time.time() if end_time is None else end_time


class NoopSpan(Span):
    """A span that records nothing: untraced work, or an unsampled invocation.

    An unsampled invocation's span still has a ``scope``, so calls made in it can
    pass the invocation's own trace on with ``Sampled=0``.
    """

    __slots__ = ()

    @property
    def recording(self) -> bool:
        return False

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def put_json(self, key: str, value: Any, namespace: str) -> None:
        return None

    def record_exception(self, exc: BaseException) -> None:
        return None

    def add_child(self, child: Span | ForeignEntity) -> None:
        return None

    adopt = add_child

    def fail(self, exc: BaseException, *, full: bool = False, detail: bool = True) -> None:
        return None

    def finish(self, end_time: float | None = None) -> None:
        return None


NOOP = NoopSpan("noop", span_id="0000000000000000", start_time=0.0)


class SpanFace(Span):
    """The :class:`Span` face of a library span (``current_span()`` inside one)."""

    __slots__ = ("_foreign",)

    def __init__(self, foreign: ForeignSpan) -> None:  # no Span.__init__: nothing to own
        self._foreign = foreign
        self.name = foreign.name
        self.id = foreign.id
        self.start_time = 0.0
        self.end_time = None
        self.scope = foreign.scope
        self.annotations = self.metadata = self.children = None
        self.annotations_json = None
        self.metadata_bytes = 0
        self.fault = self.error = self.throttle = False
        self.cause = self.aws = self.http = None
        self.namespace = None

    @property
    def recording(self) -> bool:
        return self._foreign.recording

    @property
    def trace_id(self) -> str | None:
        scope = self.scope
        if scope is not None:
            return None if scope.placeholder else scope.trace_id
        return self._foreign.trace_id

    # NOTE: a library span may have ended since this face was handed out (a
    # current_span() kept past its block); the library may then raise
    # (aws-xray-sdk's AlreadyEndedException). Nothing of that reaches the caller.

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        cleaned = annotation_value(value)
        name = annotation_key(key) if cleaned is not None else None
        if name is None or cleaned is None:
            log.debug("tracing: annotation %r dropped: %s is not indexable", key, type(value))
            return
        try:
            self._foreign.annotate(name, cleaned)
        except Exception:
            log.debug("tracing: could not annotate %s", self.name, exc_info=True)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        if not isinstance(namespace, str) or not namespace or namespace.startswith("AWS."):
            log.debug("tracing: metadata namespace %r is reserved or invalid", namespace)
            return
        try:
            self._foreign.put_metadata(metadata_key(key), json_value(value), namespace)
        except Exception:
            log.debug("tracing: could not add metadata to %s", self.name, exc_info=True)

    def put_json(self, key: str, value: Any, namespace: str) -> None:
        try:
            self._foreign.put_metadata(key, value, namespace)
        except Exception:
            log.debug("tracing: could not add metadata to %s", self.name, exc_info=True)

    def record_exception(self, exc: BaseException) -> None:
        try:
            self._foreign.record_exception(exc)
        except Exception:
            log.debug("tracing: could not record an exception on %s", self.name, exc_info=True)

    def add_child(self, child: Span | ForeignEntity) -> None:
        if isinstance(child, Span):
            try:
                self._foreign.adopt(child)
            except Exception:
                log.debug("tracing: could not attach a span to %s", self.name, exc_info=True)

    adopt = add_child

    def fail(self, exc: BaseException, *, full: bool = False, detail: bool = True) -> None:
        self.record_exception(exc)  # the library records exceptions its own way

    def finish(self, end_time: float | None = None) -> None:
        return None  # the library ends its own spans


def exception_type_cause(exc: BaseException) -> dict[str, Any]:
    """An X-Ray ``cause`` naming ``exc``'s type only (``capture_error=False``)."""
    exception = {"id": new_id(), "type": type(exc).__name__, "message": ""}
    return {"working_directory": _cwd(), "exceptions": [exception]}


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
        "type": type(exc).__name__,
        "message": message[:MAX_MESSAGE],
    }
    if "?" in message or "@" in message or "#" in message:
        # HTTP clients write the URL they failed on, query and all: scrubbed.
        from ._scrub import scrub_text

        exception["message"] = scrub_text(exception["message"])
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
        {"path": f.filename, "line": f.lineno or 0, "label": f.name} for f in reversed(summary)
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
