"""The two halves of the otel backend's bridge between OTel spans and core spans.

* :class:`CoreSpanProxy`, the OTel face of the current core span: in the OTel
  context while a core span is current, it is the parent of what user code
  starts through the OTel API. Its span context says what the core decided: sampled for
  recorded work, *not sampled* for an unsampled invocation (its own trace id and
  parent, so OTel propagators pass ``Sampled=0`` on and a parent-based sampler
  records nothing), and not sampled either for the init window once Init was
  sent. Work under a core span whose document was sent already (a thread that
  outlived its invocation) is recorded and sent late (``_scope.py``, late work).
* :class:`BridgeProcessor`, a span processor: every OTel span that ends is
  converted to an X-Ray entity (``otel_xray.py``) and nested under its parent, a
  core span or a still-open OTel span (held until that one ends), so OTel spans
  land in the same documents the xray backend sends.

:class:`OTelSpan` is the ``ForeignSpan`` the core sees when the user's own OTel
span is current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
)

from .._entity import entity_dict
from .._header import ID_RANDOM, new_id, new_trace_id
from .._runtime import Runtime, get_runtime
from .._scope import STACK, Scope, over_budget
from .._span import Span, exception_cause

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "MAX_PENDING",
    "BridgeProcessor",
    "CoreSpanProxy",
    "InitRootSampler",
    "UnsampledParentSampler",
    "OTelSpan",
    "XRayIdGenerator",
    "record_exception",
]

log = logging.getLogger("tracing.backends.otel")

#: Most ended spans held while waiting for their still-open parent.
MAX_PENDING = 10_000
#: Most open spans carried past their document's send (late work), so that spans
#: the application never ends cannot crowd out the live invocations' own.
MAX_CARRIED = 1_000

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def _converter() -> ModuleType:
    """``otel_xray``, imported when the first OTel span needs converting.

    Not at ``configure()``: a function that never starts an OTel span of its own
    never pays for the converter at cold start.
    """
    from . import otel_xray

    return otel_xray


def trace_int(root: str) -> int:
    """An X-Ray trace id as an OTel trace id."""
    return int(root[2:10] + root[11:], 16)


# Untraced work (no trace header in Lambda): a valid, unsampled context, so that a
# parent-based sampler records nothing under it instead of starting new traces.
_UNTRACED = SpanContext(trace_int(new_trace_id()), int(new_id(), 16), False, _NOT_SAMPLED)


def _context_of(core: Span) -> SpanContext:
    scope = core.scope
    if scope is None or scope.trace_id is None:
        return _UNTRACED
    if core.recording:  # sampled, or recorded unsampled (send_unsampled)
        flags = _SAMPLED if scope.sampled else _NOT_SAMPLED
        return SpanContext(trace_int(scope.trace_id), int(core.id, 16), False, flags)
    # An unsampled invocation or message: its own trace and parent, not sampled.
    return SpanContext(
        trace_int(scope.trace_id), int(scope.parent_id or core.id, 16), False, _NOT_SAMPLED
    )


class XRayIdGenerator(IdGenerator):
    """OTel ids X-Ray accepts: a trace id that starts with its epoch seconds.

    X-Ray rejects a trace whose first 32 bits are not a time within the last 30
    days; OTel's default generator is fully random. The same rule as
    ``opentelemetry-sdk-extension-aws``'s generator, without its import (cold
    start) or its dependency. Bits come from the library's own id generator,
    reseeded after a SnapStart restore (``_snapstart.py``), so restored copies
    never repeat ids and the application's ``random`` is left alone.
    """

    def __init__(self) -> None:
        self._bits = ID_RANDOM.getrandbits

    def generate_span_id(self) -> int:
        return self._bits(64) or 1

    def generate_trace_id(self) -> int:
        return (int(time.time()) << 96) | self._bits(96)


class CoreSpanProxy(NonRecordingSpan):
    """The OTel face of whichever core span is current: a parent for OTel spans.

    One proxy serves every core span. It is put in the OTel context once (the
    main context, at ``install`` in Lambda) and again only where a core span opens
    inside a span of the user's own; the rest of the time it is already the
    current OTel span and resolves to the top of the core's span stack when asked.
    So a ``tracing.span`` or an invocation costs nothing on the OTel side unless
    the user's code actually starts an OTel span under it.

    Attribute and status calls made on it (for example by instrumentation that
    decorates the current span) are forwarded to the current core span.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(_UNTRACED)
        self._runtime = runtime
        self._cache: tuple[Span, SpanContext] | None = None

    @property
    def core(self) -> Span | None:
        """The core span this proxy stands for in the current context.

        The top of the core's span stack; with an empty stack, the init window's
        span during init, else, in Lambda, the invocation running now: a thread
        that was handed only the OTel context (OTel's own way, ``attach`` of a
        captured context) still records into the invocation that started it.
        """
        stack = STACK.get()
        if stack:
            top = stack[-1]
            return top if isinstance(top, Span) else None
        runtime = self._runtime
        init = runtime.init
        if init is not None and init.open:
            return init.root
        return runtime.invocation if runtime.in_lambda else None

    def forget(self) -> None:
        """Drop the cached context (and with it the span it was made for)."""
        self._cache = None

    def get_span_context(self) -> SpanContext:
        core = self.core
        if core is None:
            # In Lambda, outside any invocation: record nothing. Elsewhere (a
            # worker between messages) the user's spans start traces of their own.
            return _UNTRACED if self._runtime.in_lambda else INVALID_SPAN_CONTEXT
        cached = self._cache
        if cached is not None and cached[0] is core:
            context = cached[1]
        else:
            context = _context_of(core)
            self._cache = (core, context)
        scope = core.scope
        if scope is not None and scope.done and scope.placeholder and context.trace_flags.sampled:
            # The closed init window: its trace id was a placeholder, re-stamped
            # when Init was sent; spans started now have no trace. Record none.
            # (A sent invocation's spans are sent late into its trace: _scope.py, late work.)
            return SpanContext(context.trace_id, context.span_id, False, _NOT_SAMPLED)
        return context

    def is_recording(self) -> bool:
        core = self.core
        return core is not None and core.recording

    def set_attribute(self, key: str, value: Any) -> None:
        # An attribute is metadata, as on the user's own OTel spans (the
        # Collector's mapping); indexing is asked for with tracing.annotate().
        core = self.core
        if core is not None:
            core.put_metadata(key, value)

    def set_attributes(self, attributes: Any) -> None:
        for key, value in dict(attributes).items():
            self.set_attribute(key, value)

    def set_status(self, status: Any, description: str | None = None) -> None:
        code = getattr(status, "status_code", status)
        core = self.core
        if code is StatusCode.ERROR and core is not None and core.recording:
            core.fault = True

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        # In OTel this only describes the exception (an event); the status says
        # whether the span failed. So: a cause, and no fault.
        core = self.core
        if core is not None and core.recording:
            core.cause = exception_cause(exception)


class OTelSpan:
    """The user's own recording OTel span, current: a ``ForeignSpan`` for the core."""

    __slots__ = ("_processor", "_span")

    def __init__(self, span: Any, processor: BridgeProcessor) -> None:
        self._span = span
        self._processor = processor

    @property
    def name(self) -> str:
        return str(getattr(self._span, "name", "span"))

    @property
    def id(self) -> str:
        return f"{self._span.get_span_context().span_id:016x}"

    @property
    def trace_id(self) -> str | None:
        return str(_converter().xray_trace_id(self._span.get_span_context().trace_id))

    @property
    def scope(self) -> Scope | None:
        return self._processor.scope_of(self._span.get_span_context().span_id)

    @property
    def recording(self) -> bool:
        return bool(self._span.is_recording())

    @property
    def namespace(self) -> str | None:
        attributes = getattr(self._span, "attributes", None) or {}
        return "aws" if attributes.get("rpc.system") == "aws-api" else None

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        span = self._span
        span.set_attribute(key, value)
        listed_key = _converter().ANNOTATIONS_ATTRIBUTE
        listed = tuple(getattr(span, "attributes", {}).get(listed_key) or ())
        if key not in listed:
            span.set_attribute(listed_key, (*listed, key))

    def put_metadata(self, key: str, value: Any, namespace: str) -> None:
        # Kept aside, not as an attribute: OTel attributes are one flat namespace,
        # where metadata would overwrite an annotation of the same key.
        self._processor.put_metadata(self._span.get_span_context().span_id, key, value, namespace)

    def record_exception(self, exc: BaseException) -> None:
        record_exception(self._span, exc)
        self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    def adopt(self, child: Span) -> None:
        self._processor.adopt(self._span.get_span_context().span_id, child)


class OTelEntity(dict[str, Any]):
    """An OTel span's X-Ray entity dict that can also write itself as OTLP.

    What ``_Entity.to_dict`` returns: X-Ray emitters read it as a dict; the OTLP
    emitters find ``otlp_spans`` on it and write the span itself instead.
    """

    __slots__ = ("source",)
    source: _Entity

    def otlp_spans(
        self, trace: bytes, parent: bytes | None, flags: int, now: float | None
    ) -> list[bytes]:
        return self.source.otlp_spans(trace, parent, flags, now)


class _Entity:
    """An OTel span under a core span (a ``ForeignEntity``): converted when emitted.

    Keeps the SDK's span, the metadata attached to it through ``tracing`` and
    what nests under it (ended OTel spans, adopted core spans), so each exporter
    writes it its own way: an X-Ray entity (``to_dict``), or the OTLP span itself.
    """

    __slots__ = ("_dict", "children", "end_time", "metadata", "span")

    def __init__(
        self, span: Any, metadata: dict[str, dict[str, Any]] | None, children: list[Any] | None
    ) -> None:
        self.span = span
        self.metadata = metadata
        self.children = children
        end = span.end_time
        self.end_time = end / 1e9 if end is not None else None
        self._dict: OTelEntity | None = None

    def to_dict(self) -> dict[str, Any]:
        entity = self._dict
        if entity is not None:
            return entity
        entity = OTelEntity(_converter().span_entity(self.span))
        entity.source = self
        if self.metadata:
            metadata = entity.setdefault("metadata", {})
            for namespace, values in self.metadata.items():
                metadata.setdefault(namespace, {}).update(values)
        if self.children:
            entity["subsegments"] = [
                entity_dict(c) if isinstance(c, Span) else c.to_dict() for c in self.children
            ]
        if self.end_time is not None:  # an open span (a timeout snapshot) may still change
            self._dict = entity
        return entity

    def otlp_spans(
        self, trace: bytes, parent: bytes | None, flags: int, now: float | None
    ) -> list[bytes]:
        from .otel_otlp import readable_spans

        return readable_spans(self, trace, parent, flags, now)


class BridgeProcessor(SpanProcessor):
    """Nests every ended OTel span into the core's documents.

    Args:
        runtime: The runtime this processor belongs to; it stands aside once
            another one is configured (a provider outlives a configuration).
        emit_root: Called with a span that has no core ancestor, and its entity.
    """

    def __init__(
        self, runtime: Runtime, emit_root: Callable[[ReadableSpan, dict[str, Any]], None]
    ) -> None:
        self._runtime = runtime
        self._emit_root = emit_root
        self._lock = threading.Lock()
        self._core_parent: dict[int, Span] = {}
        self._otel_parent: dict[int, int] = {}
        #: Ended children (entity dicts) and adopted core spans, by open OTel parent.
        self._pending: dict[int, list[Any]] = {}
        self._pending_count = 0
        self._open: dict[int, Any] = {}
        self._scope_of: dict[int, Scope | None] = {}
        #: Spans recorded with nowhere to go (see on_start), discarded when they end.
        self._discard: set[int] = set()
        #: Open spans whose document was sent (or that started after it), by that
        #: document's scope: sent late when they end (``_scope.py``, late work).
        self._carried: dict[int, Scope] = {}
        #: Metadata OTel attributes cannot hold (objects, other namespaces),
        #: merged into the entity when its span ends.
        self._metadata: dict[int, dict[str, dict[str, Any]]] = {}
        self.dropped = 0

    def _stale(self) -> bool:
        # A provider outlives a configuration (tests reset; a global provider can
        # only be set once): processors of an earlier runtime stand aside.
        return get_runtime() is not self._runtime

    # -- what the OTelSpan adapter asks ------------------------------------------

    def scope_of(self, span_id: int) -> Scope | None:
        return self._scope_of.get(span_id)

    # Both only for a span that is open and tracked: a span that ended (a held
    # tracing.Span used too late) would never collect its entry, and the table
    # would grow for the life of the process.

    def put_metadata(self, span_id: int, key: str, value: Any, namespace: str) -> None:
        with self._lock:
            if span_id not in self._open:
                log.debug("tracing: metadata for an OTel span that is not open; dropped")
                return
            table = self._metadata.get(span_id)
            if table is None:
                table = self._metadata[span_id] = {}
            table.setdefault(namespace, {})[key] = value

    def adopt(self, span_id: int, child: Span) -> None:
        with self._lock:
            if span_id not in self._open or self._pending_count >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending.setdefault(span_id, []).append(child)
            self._pending_count += 1

    # -- SpanProcessor -------------------------------------------------------------

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        if self._stale():
            return
        parent = trace.get_current_span(parent_context)
        span_id = span.context.span_id
        with self._lock:
            core = parent.core if isinstance(parent, CoreSpanProxy) else None
            if core is not None:
                scope = core.scope
                if not core.recording or scope is None:
                    # Recorded only because a user's sampler ignores its parent.
                    self._discard_add(span_id)
                    return
                if scope.done:
                    # Started after its document was sent (a thread outliving its
                    # invocation): sent late, on its own, under the core span, with
                    # its OTel children nested (_scope.py, late work), within the
                    # budget; what runs under it keeps that document's scope.
                    if not scope.takes_late_work or len(self._carried) >= MAX_CARRIED:
                        self._discard_add(span_id)
                    elif not scope.admit():
                        self._discard_add(span_id)
                        over_budget(scope)
                    else:
                        self._open[span_id] = span
                        self._scope_of[span_id] = scope
                        self._carried[span_id] = scope
                    return
            if len(self._open) >= MAX_PENDING:
                self.dropped += 1  # not tracked: it will end as an independent document
                return
            if core is not None:
                self._core_parent[span_id] = core
                self._scope_of[span_id] = core.scope
            elif span.parent is not None and span.parent.span_id in self._open:
                self._otel_parent[span_id] = span.parent.span_id
                self._scope_of[span_id] = self._scope_of.get(span.parent.span_id)
            self._open[span_id] = span

    def replace(self, span_id: int) -> None:
        """The open span ``span_id`` is stood in for by a core span: never record it.

        OTel children it already has stay under it and are dropped with it (the
        Lambda instrumentation's span has none when the handler starts).
        """
        with self._lock:
            self._open.pop(span_id, None)
            self._core_parent.pop(span_id, None)
            self._otel_parent.pop(span_id, None)
            self._scope_of.pop(span_id, None)
            self._metadata.pop(span_id, None)
            kids = self._pending.pop(span_id, None)
            if kids:
                self._pending_count -= len(kids)
            self._discard_add(span_id)

    def _discard_add(self, span_id: int) -> None:
        self._discard.add(span_id)
        while len(self._discard) > MAX_PENDING:
            self._discard.pop()

    def _drop(self, span_id: int) -> None:
        """Forget an open span entirely: it is discarded when it ends."""
        self._scope_of.pop(span_id, None)
        self._open.pop(span_id, None)
        self._core_parent.pop(span_id, None)
        self._otel_parent.pop(span_id, None)
        self._metadata.pop(span_id, None)
        self._carried.pop(span_id, None)
        kids = self._pending.pop(span_id, None)
        if kids:
            self._pending_count -= len(kids)
        self._discard_add(span_id)

    def forget(self, scope: Scope) -> None:
        """``scope`` was just sent: what is still open under it is carried, or dropped.

        Such a span was not in the document (an OTel span joins its parent when it
        ends). It is carried (at most :data:`MAX_CARRIED`): when it ends it is sent
        late, on its own, under its parent, with what ended under it meanwhile
        (``_scope.py``, late work). Carried spans whose late window closed are
        dropped here, so a span the application never ends is held for two units
        of work at most; and the sent tree itself is freed when the window closes
        (``Scope.expire``). After a timeout, or past the cap, nothing is carried.
        """
        if not self._scope_of:  # the usual case: nothing left open
            return
        late = scope.takes_late_work
        with self._lock:
            for sid, origin in list(self._carried.items()):
                if not origin.takes_late_work:
                    self._drop(sid)
            stale = [sid for sid, owner in self._scope_of.items() if owner is scope]
            for sid in stale:
                self._core_parent.pop(sid, None)
                if late and len(self._carried) < MAX_CARRIED:
                    # Its scope entry stays: the budget and the trace header of
                    # what runs under it are that document's.
                    self._carried[sid] = scope
                else:
                    self._drop(sid)

    def on_end(self, span: ReadableSpan) -> None:
        if self._stale():
            return
        try:
            self._on_end(span)
        except Exception:
            log.debug("tracing: could not record an OTel span", exc_info=True)

    def _on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        span_id = span.context.span_id
        with self._lock:
            if span_id in self._discard:
                self._discard.discard(span_id)
                return
            origin = self._carried.pop(span_id, None)
            if origin is not None and not origin.takes_late_work:
                self._drop(span_id)  # its late window closed meanwhile
                self._discard.discard(span_id)
                return
            self._open.pop(span_id, None)
            self._scope_of.pop(span_id, None)
            extra = self._metadata.pop(span_id, None)
            children = self._pending.pop(span_id, None)
            if children:
                self._pending_count -= len(children)
            entity = _Entity(span, extra, children)
            if not self._runtime.emitter.otlp:
                # X-Ray documents: convert now, while the span ends (during init,
                # that is init's time), not when the first invocation sends Init.
                entity.to_dict()
            core = self._core_parent.pop(span_id, None)
            otel_parent = self._otel_parent.pop(span_id, None)
            if core is None and otel_parent is not None and otel_parent in self._open:
                if self._pending_count >= MAX_PENDING:
                    self.dropped += 1
                    return
                self._pending.setdefault(otel_parent, []).append(entity)
                self._pending_count += 1
                return
        runtime = self._runtime
        if core is None and span.parent is None:
            init = runtime.init
            if init is not None and init.open:
                core = init.root  # a root span of another thread during init
            elif runtime.in_lambda:
                # A plain thread's root span in Lambda: it belongs to no invocation
                # (only tracing.in_current_trace carries one into a thread), and a
                # trace of its own would be a trace nobody sampled.
                return
        if core is not None:
            scope = core.scope
            if scope is None or (not scope.done and scope.admit()):
                core.add_child(entity)
                return
            if not scope.done or not scope.takes_late_work:
                return  # over budget, or nowhere to go
            # Its document went out while it was ending: sent late, under the core span.
        if span.parent is not None and not span.parent.trace_flags.sampled:
            return  # under an unsampled parent: recorded only by a sampler ignoring it
        self._emit_root(span, entity.to_dict())

    def open_entities(self, core_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
        """In-progress entities (with their ended children) under the given core spans.

        For the deadline guard: whatever OTel spans are still open when the
        invocation times out are part of what the timeout interrupted.
        """
        with self._lock:
            opened = dict(self._open)
            entities = {
                sid: _Entity(
                    span,
                    self._metadata.get(sid),
                    list(self._pending.get(sid) or ()),
                )
                for sid, span in opened.items()
            }
            attached: dict[str, list[_Entity]] = {}
            for sid, entity in entities.items():
                parent_core = self._core_parent.get(sid)
                parent_otel = self._otel_parent.get(sid)
                if parent_core is not None and parent_core.id in core_ids:
                    attached.setdefault(parent_core.id, []).append(entity)
                elif parent_otel is not None and parent_otel in entities:
                    parent_entity = entities[parent_otel]
                    parent_entity.children = [*(parent_entity.children or ()), entity]
            # Dicts for the X-Ray snapshot; they write themselves as OTLP.
            return {core_id: [e.to_dict() for e in items] for core_id, items in attached.items()}

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def record_exception(span: Any, exc: BaseException) -> None:
    """Add an ``exception`` event, cheaply: the stack once per exception object.

    OTel's own ``record_exception`` formats the whole traceback each time; an
    exception rising through many spans (deep recursion) then costs quadratic
    time. Here the stack (its last 30 frames) is formatted for the innermost span
    only; outer spans get the type and message.
    """
    cause = exception_cause(exc)
    [entry] = cause["exceptions"]
    stack = "".join(
        f'  File "{frame["path"]}", line {frame["line"]}, in {frame["label"]}\n'
        for frame in reversed(entry.get("stack") or [])
    )
    span.add_event(
        "exception",
        {
            "exception.type": entry["type"],
            "exception.message": entry["message"],
            "exception.stacktrace": stack,
        },
    )


class InitRootSampler(Sampler):
    """The root sampler of the provider the backend makes in Lambda.

    A span with no parent there comes from a plain thread: during the init
    window it is recorded (and lands in ``Init``); afterwards it belongs to no
    invocation, so it is not recorded at all (instead of being dropped at its
    end, after paying for it). Used as the root of a ``ParentBased`` sampler, so
    spans with a parent follow their parent's decision.
    """

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        # The configuration in force now (a provider outlives a configuration:
        # the global one can be set once per process).
        runtime = get_runtime()
        if runtime is not None and runtime.in_lambda:
            init = runtime.init
            if init is None or not init.open:
                return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "tracing.InitRootSampler"


class UnsampledParentSampler(Sampler):
    """For spans whose local parent is not sampled, in the provider the backend makes.

    Records them (``RECORD_ONLY``) when the configuration in force has
    ``send_unsampled``: they then go out with their invocation as ``T1U``.
    Otherwise drops them, as OTel's default does. Read at each decision, since
    a provider outlives a configuration.
    """

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        runtime = get_runtime()
        if runtime is not None and runtime.settings.send_unsampled:
            return SamplingResult(Decision.RECORD_ONLY, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "tracing.UnsampledParentSampler"
