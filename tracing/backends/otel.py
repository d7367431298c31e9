"""Backend ``otel``: the same traces, through the OpenTelemetry API users already use.

The core keeps owning the Lambda lifecycle (init window, invocation, SQS
consumer, deadline guard). This backend connects OpenTelemetry to it both ways:

* **Core to OTel.** While an invocation, an SQS consumer segment or the init
  window is current, the OTel context holds a proxy span for it, so
  ``trace.get_tracer(...).start_as_current_span`` in user code gets the right
  trace id and parent.
* **OTel to core.** A span processor of ours receives every span that ends. It is
  converted to an X-Ray entity (the Collector's mapping, see ``otel_xray.py``)
  and nested under its parent: a core span, or an OTel span that is still open
  (held until that one ends). So OTel spans land in the *same* documents as on
  the xray backend, and spans ended during init are held in the Init buffer and
  re-stamped into the first invocation's trace like any other init work.
* **AWS calls** become CLIENT spans (``rpc.system = "aws-api"``) from a wrapper
  around botocore's ``_make_api_call`` (no wrapt, no ``packaging`` checks), or
  from ``opentelemetry-instrumentation-botocore`` with
  ``botocore_instrumentation="contrib"``.

Nothing here imports aws-xray-sdk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from .._header import TraceHeader
from .._runtime import Runtime, get_runtime
from .._scope import Scope
from .._span import Span
from .otel_xray import ANNOTATIONS_ATTRIBUTE, span_entity, top_document, xray_trace_id

__all__ = ["CoreSpanProxy", "OTelBackend"]

log = logging.getLogger("tracing.backends.otel")

#: Most ended spans held while waiting for their still-open parent.
MAX_PENDING = 10_000


def _trace_int(root: str) -> int:
    return int(root[2:10] + root[11:], 16)


class CoreSpanProxy(NonRecordingSpan):
    """The OTel face of a core span: a parent for spans made through OTel.

    Attribute and status calls made on it (for example by instrumentation that
    decorates the current span) are forwarded to the core span.
    """

    def __init__(self, core: Span, runtime: Runtime) -> None:
        super().__init__(INVALID_SPAN_CONTEXT)
        self.core = core
        self._runtime = runtime

    def get_span_context(self) -> SpanContext:
        scope = self.core.scope
        init = self._runtime.init
        if scope is None or scope.trace_id is None:
            return INVALID_SPAN_CONTEXT
        if init is not None and scope is init.scope and not init.open:
            return INVALID_SPAN_CONTEXT  # the init window is over: no more children
        return SpanContext(
            _trace_int(scope.trace_id),
            int(self.core.id, 16),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )

    def is_recording(self) -> bool:
        return self.core.recording

    def set_attribute(self, key: str, value: Any) -> None:
        if not isinstance(value, (str, bool, int, float)):
            self.core.put_metadata(key, value)
        else:
            self.core.annotate(key, value)

    def set_attributes(self, attributes: Any) -> None:
        for key, value in dict(attributes).items():
            self.set_attribute(key, value)

    def set_status(self, status: Any, description: str | None = None) -> None:
        code = getattr(status, "status_code", status)
        if code is StatusCode.ERROR:
            self.core.fault = True

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        self.core.record_exception(exception)


class _Entity:
    """A converted OTel span nested in a core span (serializes as itself)."""

    __slots__ = ("end_time", "entity")

    def __init__(self, entity: dict[str, Any]) -> None:
        self.entity = entity
        self.end_time = entity.get("end_time")

    def to_dict(self) -> dict[str, Any]:
        return self.entity


class _BridgeProcessor(SpanProcessor):
    """Nests every ended OTel span into the core's documents."""

    def __init__(self, runtime: Runtime, emit_root: Callable[[ReadableSpan, dict[str, Any]], None]):
        self._runtime = runtime
        self._emit_root = emit_root
        self._lock = threading.Lock()
        self._core_parent: dict[int, Span] = {}
        self._otel_parent: dict[int, int] = {}
        self._pending: dict[int, list[dict[str, Any]]] = {}
        self._pending_count = 0
        self._open: dict[int, Any] = {}
        self._scope_of: dict[int, Scope | None] = {}
        self._late: set[int] = set()
        #: Metadata values OTel attributes cannot hold (dicts, lists of mixed types),
        #: merged into the entity when its span ends.
        self.metadata: dict[int, dict[str, Any]] = {}
        self.dropped = 0

    def _stale(self) -> bool:
        # A provider outlives a configuration (tests reset; a global provider can
        # only be set once): processors of an earlier runtime stand aside.
        return get_runtime() is not self._runtime

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        if self._stale():
            return
        parent = trace.get_current_span(parent_context)
        span_id = span.context.span_id
        with self._lock:
            if len(self._open) >= MAX_PENDING:
                self.dropped += 1  # not tracked: it will end as an independent document
                return
            if isinstance(parent, CoreSpanProxy):
                self._core_parent[span_id] = parent.core
                self._scope_of[span_id] = parent.core.scope
            elif span.parent is not None and span.parent.span_id in self._open:
                self._otel_parent[span_id] = span.parent.span_id
                self._scope_of[span_id] = self._scope_of.get(span.parent.span_id)
            self._open[span_id] = span

    def forget(self, scope: Scope) -> None:
        """Drop the bookkeeping of spans still open under ``scope`` (it was just sent).

        A span the application never ends must not pin its invocation's spans in
        memory. If it does end later, it has nowhere to go and is not sent.
        """
        if not self._scope_of:  # the usual case: nothing left open
            return
        with self._lock:
            stale = [sid for sid, owner in self._scope_of.items() if owner is scope]
            for sid in stale:
                del self._scope_of[sid]
                self._open.pop(sid, None)
                self._core_parent.pop(sid, None)
                self._otel_parent.pop(sid, None)
                self.metadata.pop(sid, None)
                kids = self._pending.pop(sid, None)
                if kids:
                    self._pending_count -= len(kids)
                self._late.add(sid)
            while len(self._late) > MAX_PENDING:
                self._late.pop()

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
        entity = span_entity(span)
        with self._lock:
            if span_id in self._late:  # its invocation was already sent
                self._late.discard(span_id)
                return
            self._open.pop(span_id, None)
            self._scope_of.pop(span_id, None)
            extra = self.metadata.pop(span_id, None)
            if extra:
                entity.setdefault("metadata", {}).setdefault("default", {}).update(extra)
            children = self._pending.pop(span_id, None)
            if children:
                self._pending_count -= len(children)
                entity["subsegments"] = children
            core = self._core_parent.pop(span_id, None)
            otel_parent = self._otel_parent.pop(span_id, None)
            if core is None and otel_parent is not None:
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
        if core is not None:
            scope = core.scope
            if scope is None or scope.admit():
                core.add_child(_Entity(entity))
            return
        self._emit_root(span, entity)

    def open_entities(self, core_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
        """In-progress entities (with their ended children) under the given core spans.

        For the deadline guard: whatever OTel spans are still open when the
        invocation times out are part of what the timeout interrupted.
        """
        with self._lock:
            opened = dict(self._open)
            entities = {sid: span_entity(span) for sid, span in opened.items()}
            for sid, entity in entities.items():
                kids = self._pending.get(sid)
                if kids:
                    entity["subsegments"] = list(kids)
            attached: dict[str, list[dict[str, Any]]] = {}
            for sid, entity in entities.items():
                parent_core = self._core_parent.get(sid)
                parent_otel = self._otel_parent.get(sid)
                if parent_core is not None and parent_core.id in core_ids:
                    attached.setdefault(parent_core.id, []).append(entity)
                elif parent_otel is not None and parent_otel in entities:
                    entities[parent_otel].setdefault("subsegments", []).append(entity)
            return attached

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class OTelBackend:
    """Installs the bridge into a ``TracerProvider`` and instruments botocore."""

    name = "otel"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.provider: Any = settings.extra.get("tracer_provider")
        if self.provider is not None and not hasattr(self.provider, "add_span_processor"):
            raise ValueError(
                "tracer_provider must be an OpenTelemetry SDK TracerProvider "
                f"(opentelemetry.sdk.trace.TracerProvider), got {type(self.provider).__name__}"
            )
        self.botocore = settings.botocore_instrumentation
        self.exporter = settings.exporter
        #: span id -> linked (trace id, span id) contexts, for the OTLP exporter
        #: (X-Ray documents cannot carry links).
        self.links: dict[str, list[tuple[str, str]]] = {}
        self.processor = _BridgeProcessor(runtime, self._emit_root)
        self.tracer: Any = None
        self._init_token: object | None = None

    def install(self) -> None:
        provider = self.provider
        if provider is None and isinstance(trace.get_tracer_provider(), TracerProvider):
            provider = trace.get_tracer_provider()  # the application's own, already global
        if provider is None:
            from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

            provider = TracerProvider(
                id_generator=AwsXRayIdGenerator(),
                # Resource(...) rather than Resource.create(...): create() runs the
                # resource detectors in a thread pool (threads at configure(), and
                # up to a few ms of cold start).
                resource=Resource({"service.name": self.runtime.settings.service}),
            )
            self._install_globals(provider)
        provider.add_span_processor(self.processor)
        self.provider = provider
        if self.exporter == "otlp":
            from .otel_otlp import OTLPDocumentEmitter

            self.runtime.emitter = OTLPDocumentEmitter(  # type: ignore[assignment]
                self.runtime.settings.service, self.links
            )
        self.tracer = provider.get_tracer("tracing")
        if self.botocore == "contrib":
            from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

            BotocoreInstrumentor().instrument(  # type: ignore[no-untyped-call]
                tracer_provider=provider
            )
        init = self.runtime.init
        if init is not None:
            # Work done at import runs in the main thread's context; the first
            # invocation runs there too and replaces this with its own span.
            self._init_token = otel_context.attach(
                trace.set_span_in_context(CoreSpanProxy(init.root, self.runtime))
            )

    @staticmethod
    def _install_globals(provider: TracerProvider) -> None:
        from opentelemetry import propagate
        from opentelemetry.propagators.aws import AwsXRayPropagator
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # Only where the application has not chosen its own provider already.
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        propagate.set_global_textmap(
            CompositePropagator([AwsXRayPropagator(), TraceContextTextMapPropagator()])
        )

    def close(self) -> None:
        """Leave the OTel context as it was before ``install`` (tests, reconfiguration)."""
        token, self._init_token = self._init_token, None
        if token is not None:
            self.detach(token)

    def flush(self, timeout_s: float) -> bool:
        try:
            return bool(self.provider.force_flush(int(timeout_s * 1000)))
        except Exception:
            log.debug("tracing: force_flush failed", exc_info=True)
            return False

    # -- used by the core -----------------------------------------------------

    def link(self, span_id: str, trace_id: str | None, other_id: str | None) -> None:
        """Record an OTel link from core span ``span_id`` to another context."""
        if trace_id is None or other_id is None or self.exporter != "otlp":
            return
        if len(self.links) >= MAX_PENDING:
            self.links.pop(next(iter(self.links)))
        self.links.setdefault(span_id, []).append((trace_id, other_id))

    def attach(self, core: Span) -> object:
        """Make ``core`` the current OTel span; returns the token for :meth:`detach`."""
        return otel_context.attach(trace.set_span_in_context(CoreSpanProxy(core, self.runtime)))

    @staticmethod
    def detach(token: object) -> None:
        """Undo :meth:`attach`."""
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            log.debug("tracing: OTel context detach failed", exc_info=True)

    @staticmethod
    def in_trace() -> bool:
        """True when the current OTel context has a valid span (ours or the user's)."""
        return bool(trace.get_current_span().get_span_context().is_valid)

    @staticmethod
    def current_otel_span() -> Any:
        """The current OTel span when it is a real (SDK) span, else ``None``."""
        span = trace.get_current_span()
        if isinstance(span, NonRecordingSpan) or not span.is_recording():
            return None
        return span

    @contextmanager
    def span(self, name: str, annotations: dict[str, Any]) -> Iterator[Any]:
        """``tracing.span`` on this backend: an OTel span, annotations indexed."""
        attributes: dict[str, Any] = {
            k: v for k, v in annotations.items() if isinstance(v, (str, bool, int, float))
        }
        if attributes:
            attributes[ANNOTATIONS_ATTRIBUTE] = tuple(attributes)
        with self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False
        ) as otel_span:
            try:
                yield otel_span
            except BaseException as exc:
                try:
                    record_exception(otel_span, exc)
                except Exception:
                    log.debug("tracing: could not record an exception", exc_info=True)
                raise

    @staticmethod
    def annotate(otel_span: Any, key: str, value: Any) -> None:
        """Set an attribute and list it for indexing as an X-Ray annotation."""
        otel_span.set_attribute(key, value)
        listed = tuple(otel_span.attributes.get(ANNOTATIONS_ATTRIBUTE) or ())
        if key not in listed:
            otel_span.set_attribute(ANNOTATIONS_ATTRIBUTE, (*listed, key))

    def put_metadata(self, otel_span: Any, key: str, value: Any) -> None:
        """Metadata on an OTel span: an attribute when OTel can hold it, else kept aside."""
        if isinstance(value, (str, bool, int, float)):
            otel_span.set_attribute(key, value)
            return
        table = self.processor.metadata
        if len(table) >= MAX_PENDING:
            return
        table.setdefault(otel_span.get_span_context().span_id, {})[key] = value

    def outgoing_header(self, otel_span: Any) -> TraceHeader | None:
        """The header for a message sent under ``otel_span`` (``None`` during init)."""
        context = otel_span.get_span_context()
        if not context.is_valid or not context.trace_flags.sampled:
            return None
        root = xray_trace_id(context.trace_id)
        init = self.runtime.init
        if init is not None and root == init.scope.trace_id:
            return None  # placeholder trace of the init window
        return TraceHeader(root, f"{context.span_id:016x}", "1")

    def call_wrapper(self) -> Callable[[Any, str, dict[str, Any], Callable[[], Any]], Any] | None:
        """The botocore call wrapper recording AWS calls as CLIENT spans."""
        if self.botocore != "tracing":
            return None
        tracer = self.tracer

        def around(
            client: Any, operation: str, params: dict[str, Any], call: Callable[[], Any]
        ) -> Any:
            if not trace.get_current_span().get_span_context().is_valid:
                # No trace here (a worker polling between messages): recording the
                # call would start a new trace per poll. The xray backend does not
                # record these either.
                return call()
            meta = client.meta
            attributes: dict[str, Any] = {
                "rpc.system": "aws-api",
                "rpc.service": meta.service_model.service_id,
                "rpc.method": operation,
                "aws.region": meta.region_name,
            }
            queue = params.get("QueueUrl") if isinstance(params, dict) else None
            if isinstance(queue, str):
                attributes["aws.queue_url"] = queue
            table = params.get("TableName") if isinstance(params, dict) else None
            if isinstance(table, str):
                attributes["aws.table_name"] = table
            name = meta.service_model.endpoint_prefix
            # NOTE: every step of ours is guarded separately from the call itself: a
            # user's span processor that raises (on_start/on_end) must not turn a
            # successful AWS call into an exception, nor change the one it raised.
            try:
                span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
                token = otel_context.attach(trace.set_span_in_context(span))
            except Exception:
                log.debug("tracing: could not start the span of an AWS call", exc_info=True)
                return call()
            try:
                result = call()
            except Exception as exc:
                _describe_failure(span, exc)
                raise
            else:
                _describe_result(span, result)
                return result
            finally:
                try:
                    otel_context.detach(token)
                    span.end()
                except Exception:
                    log.debug("tracing: could not end the span of an AWS call", exc_info=True)

        return around

    def _emit_root(self, span: ReadableSpan, entity: dict[str, Any]) -> None:
        """A span with no core ancestor (a worker's own OTel root): its own document."""
        self.runtime.emit(top_document(span, entity))

    def scope_open_entities(self, scope: Scope) -> dict[str, list[dict[str, Any]]]:
        """Open OTel entities under the core spans of ``scope`` (for timeouts)."""
        ids: set[str] = set()
        stack = [scope.root]
        while stack:
            node = stack.pop()
            ids.add(node.id)
            stack.extend(c for c in (node.children or ()) if isinstance(c, Span))
        return self.processor.open_entities(ids)


def _response_metadata(value: Any) -> dict[str, Any]:
    metadata = value.get("ResponseMetadata") if isinstance(value, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _describe_result(span: Any, result: Any) -> None:
    try:
        metadata = _response_metadata(result)
        if metadata.get("RequestId"):
            span.set_attribute("aws.request_id", metadata["RequestId"])
        if metadata.get("HTTPStatusCode"):
            span.set_attribute("http.status_code", metadata["HTTPStatusCode"])
    except Exception:
        log.debug("tracing: could not describe an AWS call", exc_info=True)


def _describe_failure(span: Any, exc: BaseException) -> None:
    try:
        metadata = _response_metadata(getattr(exc, "response", None))
        if metadata.get("HTTPStatusCode"):
            span.set_attribute("http.status_code", metadata["HTTPStatusCode"])
        if metadata.get("RequestId"):
            span.set_attribute("aws.request_id", metadata["RequestId"])
        record_exception(span, exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    except Exception:
        log.debug("tracing: could not describe a failed AWS call", exc_info=True)


def record_exception(span: Any, exc: BaseException) -> None:
    """Add an ``exception`` event, cheaply: the stack once per exception object.

    OTel's own ``record_exception`` formats the whole traceback each time; an
    exception rising through many spans (deep recursion) then costs quadratic
    time. Here the stack (its last 30 frames) is formatted for the innermost span
    only; outer spans get the type and message.
    """
    from .._span import exception_cause

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
