"""``@tracing.handler``: one subsegment per invocation, cold start, deadline guard.

Per invocation the wrapper parses ``_X_AMZN_TRACE_ID`` once, builds one span,
replaces the context-local span stack (so nothing from a previous invocation can
leak in when the header is missing, the SDK's stale-context bug), arms the
deadline guard, and after the handler returns sends one UDP document. The
handler's return value and exception pass through untouched: every step of ours
is guarded, and the handler's own exception is re-raised as the same object.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from contextvars import Token
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._configure import ensure_configured
from ._header import TraceHeader, from_traceparent, new_id, new_trace_id, parse
from ._init_phase import PROVISIONED_CONCURRENCY
from ._runtime import Runtime
from ._scope import STACK, Scope, end_unit
from ._span import NOOP, SERVER, NoopSpan, Span, clean_name
from ._values import dumps

if TYPE_CHECKING:
    from ._scope import Node

__all__ = ["handler"]

log = logging.getLogger("tracing.handler")

F = TypeVar("F", bound=Callable[..., Any])
_Begun = tuple[Span, "Scope | None", "Token[tuple[Node, ...]]", object]


@overload
def handler(
    fn: F, *, capture_response: bool | None = None, capture_error: bool | None = None
) -> F: ...


@overload
def handler(
    fn: None = None, *, capture_response: bool | None = None, capture_error: bool | None = None
) -> Callable[[F], F]: ...


def handler(
    fn: F | None = None,
    *,
    capture_response: bool | None = None,
    capture_error: bool | None = None,
) -> F | Callable[[F], F]:
    """Trace a Lambda handler ``fn(event, context)``.

    Records one subsegment per invocation named ``## <function name>`` (as
    Powertools does), annotated ``ColdStart`` and ``Service``. On the first
    invocation the buffered init work is emitted into the same trace. Outside
    Lambda (no ``LAMBDA_TASK_ROOT``) it opens its own segment, so local scripts
    are traced too. If ``configure()`` has not run, it runs with defaults.

    Used bare (``@tracing.handler``) or with options
    (``@tracing.handler(capture_response=False)``), as Powertools'
    ``capture_lambda_handler`` is.

    Args:
        fn: The handler.
        capture_response: Store the (redacted) response as metadata; ``None``
            follows the ``capture_response`` setting.
        capture_error: Record an exception's message and stack (``False``: its
            type only); ``None`` follows the ``capture_error`` setting.

    Returns:
        The wrapped handler, or ``fn`` itself when tracing is disabled.
    """
    if fn is None:
        return lambda f: handler(f, capture_response=capture_response, capture_error=capture_error)
    runtime = ensure_configured()
    if runtime is None or runtime.settings.disabled:
        return fn
    if runtime.init is not None:
        runtime.init.mark_end()
    invocations = _Invocations(
        runtime,
        clean_name("## " + str(getattr(fn, "__name__", "handler"))),
        capture_response,
        capture_error,
    )
    begin, finish = invocations.begin, invocations.finish
    runtime.traced_handlers += 1  # the extension waits for hand-overs (_extension.py)

    @functools.wraps(fn)
    def traced(event: Any, context: Any) -> Any:
        begun = begin(event, context)
        if begun is None:
            try:
                return fn(event, context)
            finally:
                runtime.end_of_unit(invocation=True)
        try:
            result = fn(event, context)
        except BaseException as exc:
            finish(begun, exc, None)
            raise
        finish(begun, None, result)
        return result

    return traced  # type: ignore[return-value]


class _Invocations:
    """Begins and finishes the invocations of one handler.

    What does not change between invocations is looked up once, here: this runs
    twice per invocation, and each attribute lookup saved is time the user pays
    on every request.
    """

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.name = name
        self.service = settings.service
        self.limit = settings.max_spans_per_invocation
        self.capture_event = settings.capture_event
        self.capture_response = (
            settings.capture_response if capture_response is None else capture_response
        )
        self.capture_error = settings.capture_error if capture_error is None else capture_error
        self.send_unsampled = settings.send_unsampled
        incoming = settings.incoming_traceparent
        self.read_traceparent = incoming != "ignore"
        self.continue_traceparent = incoming == "continue"
        self.in_lambda = runtime.in_lambda
        # The header is read from os.environ's own dict where it has one (POSIX:
        # bytes keys), a third of the cost of os.environ.get(), which goes through
        # two Mapping layers; awslambdaric sets the header through os.environ, so
        # the dict always holds it.
        data = getattr(os.environ, "_data", None)
        self.environ_bytes: dict[bytes, bytes] | None = (
            data if os.name == "posix" and type(data) is dict else None
        )
        self.environ = os.environ
        # Under provisioned concurrency the environment was initialised ahead of
        # any request: no request waited for it, so no invocation is a cold start
        # (Powertools reports the same, and filters on ColdStart must agree), and
        # Init is a trace of its own that the first invocation names
        # (InitTraceId; the rule is in _init_phase.py).
        self.cold_start = (
            os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != PROVISIONED_CONCURRENCY
        )
        # The warm invocation's annotations, encoded once: most invocations end
        # with exactly these (checked at the end, by identity, before use).
        self.warm_annotations = dumps({"ColdStart": False, "Service": self.service})

    def begin(self, event: Any, context: Any) -> _Begun | None:
        runtime = self.runtime
        try:
            cold = runtime.cold
            data = self.environ_bytes
            if data is not None:
                raw = data.get(b"_X_AMZN_TRACE_ID")
                header = parse(raw.decode("utf-8", "surrogateescape")) if raw else None
            else:
                header = parse(self.environ.get("_X_AMZN_TRACE_ID"))
            if self.in_lambda:
                sampled = header is not None and header.sampled == "1" and header.parent is not None
            else:
                sampled = header is None or header.sampled != "0"
            init_trace_id = None
            if cold:
                runtime.cold = False
                init_trace_id = self._close_init(header, sampled)
            lambda_root = header.root if header is not None else None
            caller = None
            if (
                self.read_traceparent
                and type(event) is dict
                and ("headers" in event or "multiValueHeaders" in event)
            ):
                caller = _caller_traceparent(event, header)
            linked = caller
            if caller is not None and self.continue_traceparent:
                # The caller's trace, and its sampling decision; never Lambda's
                # Sampled=0 as a parent. Lambda's pass-through keys (Lineage) stay.
                linked = header if header is not None and sampled else None
                sampled = caller.is_sampled
                header = TraceHeader(
                    caller.root, caller.parent, caller.sampled, header.extra if header else ()
                )
            backend = runtime.backend
            if header is None and not self.in_lambda and not runtime.sample(event):
                # No decision came with the call: the sampling rules made one
                # (_sampling.py). Unsampled: a new trace passed on as Sampled=0.
                span = self._unsampled(TraceHeader(new_trace_id(), new_id(), "0"))
                runtime.invocation = span
                return span, None, STACK.set((span,)), backend.enter(span)
            if not sampled and (not self.send_unsampled or header is None or not header.parent):
                span = self._unsampled(header)
                runtime.invocation = span
                return span, None, STACK.set((span,)), backend.enter(span)
            span = Span(self.name)
            span.annotations = {"ColdStart": cold and self.cold_start, "Service": self.service}
            if init_trace_id is not None:
                span.annotations["InitTraceId"] = init_trace_id
            if linked is not None:
                span.annotations["LinkedTraceId"] = linked.root
            if self.in_lambda and header is not None and caller is linked:
                # Unsampled here only with send_unsampled: recorded, sent as T1U.
                scope = Scope(span, header.root, header.parent, sampled=sampled, limit=self.limit)
                scope.extra = header.extra
            else:
                scope = self._own_segment(span, header)
            if self.capture_event:
                _capture(span, "event", event, runtime)
            guard = runtime.guard
            if guard is not None:
                guard.arm(scope, context)
            runtime.invocation = span
            token = backend.enter(span)
            init = runtime.init
            if cold and init is not None and lambda_root is not None:
                runtime.emitter.link(span.id, init_trace_id or lambda_root, init.root.id)
            if linked is not None:
                runtime.emitter.link(span.id, linked.root, linked.parent)
            return span, scope, STACK.set((span,)), token
        except Exception:
            runtime.log_once(
                "begin",
                "tracing: could not start the invocation trace (logged once, then at debug level)",
            )
            return None

    def _close_init(self, header: TraceHeader | None, sampled: bool) -> str | None:
        runtime = self.runtime
        init = runtime.init
        if init is None:
            return None
        try:
            return init.close(header, sampled, runtime.service_name, runtime.emit)
        except Exception:  # the invocation's own trace must not depend on Init's
            runtime.log_once("init", "tracing: could not send the Init segment (logged once)")
            return None

    def _unsampled(self, header: TraceHeader | None) -> Span:
        """Nothing is recorded, here or through the library; but the invocation's own
        trace is passed on with ``Sampled=0`` (never a new sampled root)."""
        if header is None or header.parent is None:
            return NOOP
        span = NoopSpan(self.name, span_id=header.parent)
        scope = Scope(span, header.root, header.parent, sampled=False)
        scope.extra = header.extra
        return span

    def _own_segment(self, span: Span, header: TraceHeader | None) -> Scope:
        """Outside Lambda: a segment named after the service, the invocation inside."""
        runtime = self.runtime
        root = Span(runtime.service_name, start_time=span.start_time)
        root.kind = SERVER
        root.add_child(span)
        if header is not None:
            scope = Scope(root, header.root, header.parent, segment=True, limit=self.limit)
            scope.extra = header.extra
        else:
            scope = Scope(root, new_trace_id(), None, segment=True, limit=self.limit)
        span.scope = scope
        return scope

    def finish(self, begun: _Begun, exc: BaseException | None, result: Any) -> None:
        span, scope, token, library = begun
        runtime = self.runtime
        try:
            STACK.reset(token)
        except Exception:  # reset from another context (should not happen): start clean
            STACK.set(())
        if library is not None:
            runtime.backend.exit(library)
        runtime.invocation = None
        if scope is None:
            end_unit()
            if runtime.extension is not None:  # it waits for every invocation
                runtime.end_of_unit(invocation=True)
            return
        try:
            guard = runtime.guard
            if guard is not None:
                guard.disarm(scope)
            if exc is not None:
                span.fail(exc, full=True, detail=self.capture_error)
            elif self.capture_response:
                _capture(span, "response", result, runtime)
            annotations = span.annotations
            if (
                annotations is not None
                and len(annotations) == 2
                and annotations.get("ColdStart") is False
                and annotations.get("Service") is self.service
            ):
                span.annotations_json = self.warm_annotations
            now = time.time()
            span.finish(now)
            root = scope.root
            if root is not span:  # outside Lambda: the service's own segment
                root.finish(now)
            if not runtime.emit_scope(scope):
                log.debug("tracing: %s ended after its timeout was already sent", span.name)
                # Possibly still being sent: returning now would freeze the sandbox
                # with the rest of it unsent.
                runtime.wait_for_guard(runtime.settings.deadline_margin_ms / 1000.0)
        except Exception:
            runtime.log_once(
                "finish",
                "tracing: could not send the invocation trace (logged once, then at debug level)",
            )
        try:
            # Buffered spans go out now, or after the response (the extension).
            runtime.end_of_unit(invocation=True)
            end_unit()  # late windows of earlier invocations close (_scope.py)
        except Exception:
            runtime.log_once("finish", "tracing: could not end the invocation (logged once)")


def _caller_traceparent(event: dict[str, Any], header: TraceHeader | None) -> TraceHeader | None:
    """A W3C ``traceparent`` in an HTTP event's headers, from another trace.

    API Gateway (REST, HTTP) and function URL events, and ALB's by default, hold
    ``headers``; only a REST API keeps the caller's spelling of a name, so only
    its events (which also hold ``multiValueHeaders``) are searched
    case-insensitively. An ALB target group with multi-value headers on sends
    ``multiValueHeaders`` alone: there, one ``traceparent`` value is taken (two
    are not a valid W3C context). ``None`` when there is none, it does not
    parse, or it names the trace Lambda already continues (a caller inside AWS
    whose OTel trace id is X-Ray's).
    """
    headers = event.get("headers")
    multi = event.get("multiValueHeaders")
    value: Any = None
    if type(headers) is dict:
        value = headers.get("traceparent")
        if value is None and multi is not None:
            value = _named_traceparent(headers)
    elif type(multi) is dict:
        values = multi.get("traceparent")
        value = values[0] if type(values) is list and len(values) == 1 else None
    if value is None:
        return None
    caller = from_traceparent(value)
    if caller is None:
        log.debug("tracing: ignoring an invalid traceparent header: %.80r", value)
        return None
    if header is not None and caller.root == header.root:
        return None
    return caller


def _named_traceparent(headers: dict[Any, Any]) -> Any:
    for key, found in headers.items():
        if type(key) is str and len(key) == 11 and key.lower() == "traceparent":
            return found
    return None


def _capture(span: Span, key: str, value: Any, runtime: Runtime) -> None:
    from ._payload import capture  # only when capture is on (off by default)

    capture(span, key, value, runtime.settings)
