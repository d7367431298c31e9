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
from typing import TYPE_CHECKING, Any, TypeVar

from ._configure import ensure_configured
from ._header import new_trace_id, parse
from ._payload import redact
from ._runtime import Runtime
from ._scope import STACK, Scope
from ._span import NOOP, NoopSpan, Span, clean_name

if TYPE_CHECKING:
    from ._scope import Node

__all__ = ["handler"]

log = logging.getLogger("tracing.handler")

F = TypeVar("F", bound=Callable[..., Any])
_Begun = tuple[Span, "Scope | None", "Token[tuple[Node, ...]]", object]


def handler(fn: F) -> F:
    """Trace a Lambda handler ``fn(event, context)``.

    Records one subsegment per invocation named ``## <function name>`` (as
    Powertools does), annotated ``ColdStart`` and ``Service``. On the first
    invocation the buffered init work is emitted into the same trace. Outside
    Lambda (no ``LAMBDA_TASK_ROOT``) it opens its own segment, so local scripts
    are traced too. If ``configure()`` has not run, it runs with defaults.

    Args:
        fn: The handler.

    Returns:
        The wrapped handler, or ``fn`` itself when tracing is disabled.
    """
    runtime = ensure_configured()
    if runtime is None or runtime.settings.disabled:
        return fn
    if runtime.init is not None:
        runtime.init.mark_end()
    name = clean_name("## " + str(getattr(fn, "__name__", "handler")))

    @functools.wraps(fn)
    def traced(event: Any, context: Any) -> Any:
        begun = _begin(runtime, name, event, context)
        if begun is None:
            return fn(event, context)
        try:
            result = fn(event, context)
        except BaseException as exc:
            _finish(runtime, begun, exc, None)
            raise
        _finish(runtime, begun, None, result)
        return result

    return traced  # type: ignore[return-value]


def _begin(runtime: Runtime, name: str, event: Any, context: Any) -> _Begun | None:
    try:
        cold = runtime.cold
        runtime.cold = False
        settings = runtime.settings
        header = parse(os.environ.get("_X_AMZN_TRACE_ID"))
        if runtime.in_lambda:
            sampled = header is not None and header.is_sampled and header.parent is not None
        else:
            sampled = header is None or header.sampled != "0"
        init_trace_id = None
        init = runtime.init
        if cold and init is not None:
            try:
                init_trace_id = init.close(header, sampled, runtime.service_name, runtime.emit)
            except Exception:  # the invocation's own trace must not depend on Init's
                runtime.log_once("init", "tracing: could not send the Init segment (logged once)")
        backend = runtime.backend
        if not sampled:
            # Nothing is recorded, here or through the library, but the invocation's
            # own trace is passed on with Sampled=0 (never a new sampled root).
            unsampled: Span = NOOP
            if header is not None and header.parent is not None:
                unsampled = NoopSpan(name, span_id=header.parent)
                scope = Scope(unsampled, header.root, header.parent, sampled=False)
                scope.extra = header.extra
            return unsampled, None, STACK.set((unsampled,)), backend.enter(unsampled)
        span = Span(name)
        span.annotations = {"ColdStart": cold, "Service": settings.service}
        if init_trace_id is not None:
            span.annotations["InitTraceId"] = init_trace_id
        limit = settings.max_spans_per_invocation
        if runtime.in_lambda and header is not None:
            scope = Scope(span, header.root, header.parent, limit=limit)
            scope.extra = header.extra
        else:
            root = Span(runtime.service_name, start_time=span.start_time)
            root.add_child(span)
            if header is not None:
                scope = Scope(root, header.root, header.parent, segment=True, limit=limit)
            else:
                scope = Scope(root, new_trace_id(), None, segment=True, limit=limit)
            span.scope = scope
        if settings.capture_event:
            _capture(span, "event", event, runtime)
        if runtime.guard is not None:
            runtime.guard.arm(scope, context)
        token = backend.enter(span)
        if cold and init is not None and header is not None:
            backend.link(span.id, init_trace_id or header.root, init.root.id)
        return span, scope, STACK.set((span,)), token
    except Exception:
        runtime.log_once(
            "begin",
            "tracing: could not start the invocation trace (logged once, then at debug level)",
        )
        return None


def _capture(span: Span, key: str, value: Any, runtime: Runtime) -> None:
    settings = runtime.settings
    # redact() already returns a JSON copy by the value rules: set it as is.
    span._set_metadata(key, redact(value, settings.redact_keys), settings.service)


def _finish(runtime: Runtime, begun: _Begun, exc: BaseException | None, result: Any) -> None:
    span, scope, token, library = begun
    try:
        STACK.reset(token)
    except Exception:  # reset from another context (should not happen): start clean
        STACK.set(())
    runtime.backend.exit(library)
    if scope is None:
        return
    try:
        if runtime.guard is not None:
            runtime.guard.disarm(scope)
        if exc is not None:
            span.fail(exc, full=True)
        elif runtime.settings.capture_response:
            _capture(span, "response", result, runtime)
        now = time.time()
        span.finish(now)
        scope.root.finish(now)
        if not runtime.emit_scope(scope):
            log.debug("tracing: %s ended after its timeout was already sent", span.name)
        runtime.end_of_unit()
    except Exception:
        runtime.log_once(
            "finish",
            "tracing: could not send the invocation trace (logged once, then at debug level)",
        )
