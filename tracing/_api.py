"""``tracing.span``, ``annotate``, ``metadata`` and ``flush``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextvars import Token, copy_context
from types import TracebackType
from typing import Any, TypeVar

from ._runtime import current_node, get_runtime
from ._scope import STACK
from ._span import NOOP, Span, clean_annotation, clean_name, entity_dict

__all__ = ["annotate", "flush", "in_current_trace", "metadata", "span"]

log = logging.getLogger("tracing")

F = TypeVar("F", bound=Callable[..., Any])


def _open_child(name: str) -> Span:
    """Create a span under the current node, or NOOP when nothing is recorded."""
    parent = current_node()
    if parent is None:
        return NOOP
    if isinstance(parent, Span):
        if not parent.recording:
            return NOOP
        scope = parent.scope
        if scope is not None and not scope.admit():
            return NOOP
        child = Span(name, scope)
        parent.add_child(child)
        return child
    # An aws-xray-sdk entity (xray_recorder.capture around tracing.span).
    if not getattr(parent, "sampled", False):
        return NOOP
    segment = getattr(parent, "parent_segment", parent)
    scope = getattr(segment, "scope", None)
    if scope is not None and not scope.admit():
        return NOOP
    child = Span(name, scope)
    parent.subsegments.append(_SdkChild(child, parent.id))
    return child


class _SdkChild:
    """Lets an SDK parent serialize one of our spans among its subsegments."""

    __slots__ = ("parent_id", "sampled", "span")

    def __init__(self, span: Span, parent_id: str) -> None:
        self.span = span
        self.parent_id = parent_id
        self.sampled = True

    def to_dict(self) -> dict[str, Any]:
        return entity_dict(self.span)


class span:  # noqa: N801 - lower case: it reads as a function at call sites
    """Record a block or a function as a subsegment.

    Works as a context manager and as a decorator (sync or async functions), in
    the init phase, in invocations and inside SQS processing, and nests. Keyword
    arguments become annotations (string, number or bool values).

    Example::

        with tracing.span("load config", table="orders") as s:
            s.put_metadata("rows", 12)

        @tracing.span("charge card")
        def charge(order): ...

    Use a fresh ``tracing.span(...)`` for each ``with``; the decorator form
    creates one per call, so it is safe under recursion, threads and asyncio.
    """

    __slots__ = ("_annotations", "_name", "_otel", "_span", "_token")

    def __init__(self, name: str, **annotations: Any) -> None:
        self._name = name
        self._annotations = annotations
        self._span: Span = NOOP
        self._token: Token[tuple[Any, ...]] | None = None
        self._otel: Any = None

    def __enter__(self) -> Any:
        try:
            runtime = get_runtime()
            if runtime is None or runtime.settings.disabled:
                return NOOP
            if runtime.bridge is not None:
                # otel backend: an OTel span, so OTel-made children nest under it.
                # Outside any trace it records nothing, like the xray backend (a
                # plain thread must not start traces of its own).
                if not runtime.bridge.in_trace() and current_node() is None:
                    return NOOP
                manager = runtime.bridge.span(clean_name(self._name), self._annotations)
                otel_span = manager.__enter__()
                self._otel = manager
                return otel_span
            child = _open_child(clean_name(self._name))
            if child.recording:
                for key, value in self._annotations.items():
                    child.annotate(key, value)
                self._token = STACK.set((*STACK.get(), child))
            self._span = child
            return child
        except Exception:
            try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                log.debug("tracing: could not open span %r", self._name, exc_info=True)
            except RecursionError:  # at the recursion limit: see __exit__
                pass
            return NOOP

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # NOTE: an exception rising from deep recursion reaches us at the recursion
        # limit, where any Python call may raise RecursionError again, even
        # logging. Nothing here may let such a second error escape: it would
        # replace the handler's own exception. So the stack is restored first (C
        # calls only), and every handler below guards its own logging.
        token = self._token
        if token is not None:
            self._token = None
            try:
                STACK.reset(token)
            except ValueError:  # exited in another context than entered
                try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                    STACK.set(tuple(node for node in STACK.get() if node is not self._span))
                except RecursionError:
                    pass
        try:
            self._close(exc_type, exc, tb)
        except RecursionError:
            pass  # the span is dropped; the exception goes on unchanged
        except Exception:
            try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                log.debug("tracing: could not close span %r", self._name, exc_info=True)
            except RecursionError:
                pass

    def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        manager = self._otel
        if manager is not None:
            self._otel = None
            manager.__exit__(exc_type, exc, tb)
            return
        child = self._span
        self._span = NOOP
        if not child.recording:
            return
        if exc is not None:
            child.record_exception(exc)
        child.finish()

    def __call__(self, fn: F) -> F:
        name, annotations = self._name, self._annotations
        # CO_COROUTINE: what inspect.iscoroutinefunction checks, without importing
        # inspect (4 ms) at cold start.
        if getattr(getattr(fn, "__code__", None), "co_flags", 0) & 0x80:

            @functools.wraps(fn)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with span(name, **annotations):
                    return await fn(*args, **kwargs)

            return traced_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with span(name, **annotations):
                return fn(*args, **kwargs)

        return traced  # type: ignore[return-value]


def _otel_span() -> Any:
    runtime = get_runtime()
    if runtime is None or runtime.bridge is None:
        return None
    return runtime.bridge.current_otel_span()


def annotate(key: str, value: str | int | float | bool) -> None:
    """Add an indexed annotation (searchable in X-Ray) to the current span."""
    otel_span = _otel_span()
    if otel_span is not None:
        cleaned = clean_annotation(key, value)
        if cleaned is not None:
            get_runtime().bridge.annotate(otel_span, *cleaned)  # type: ignore[union-attr]
        return
    node = current_node()
    if node is None:
        return
    try:
        if isinstance(node, Span):
            node.annotate(key, value)
            return
        cleaned = clean_annotation(key, value)
        if cleaned is not None:
            node.put_annotation(*cleaned)
    except Exception:
        log.debug("tracing: annotate(%r) failed", key, exc_info=True)


def metadata(key: str, value: Any, namespace: str = "default") -> None:
    """Add non-indexed metadata (any JSON-able value) to the current span."""
    otel_span = _otel_span()
    if otel_span is not None:
        try:
            get_runtime().bridge.put_metadata(otel_span, key, value)  # type: ignore[union-attr]
        except Exception:
            log.debug("tracing: metadata(%r) failed", key, exc_info=True)
        return
    node = current_node()
    if node is None:
        return
    try:
        node.put_metadata(key, value, namespace)
    except Exception:
        log.debug("tracing: metadata(%r) failed", key, exc_info=True)


def flush(timeout_s: float = 2.0) -> bool:
    """Send everything pending now; True when nothing is left.

    With the xray backend every document is sent when its scope ends, so this
    only matters for backends that batch (otel). Never raises.
    """
    runtime = get_runtime()
    if runtime is None:
        return True
    try:
        runtime.end_of_unit()
        return runtime.backend.flush(timeout_s)
    except Exception:
        runtime.log_once("flush", "tracing: flush failed (logged once, then at debug level)")
        return False


def in_current_trace(fn: F) -> F:
    """Bind ``fn`` to the current trace, for work handed to another thread.

    A new thread starts with an empty ``contextvars`` context, so spans it opens
    belong to no invocation and are not recorded (nothing can leak into the wrong
    trace). Wrap the callable where the work is submitted to keep it in the
    invocation's trace::

        with ThreadPoolExecutor() as pool:
            pool.map(tracing.in_current_trace(fetch), urls)

    Each call runs in a *copy* of the submitting context (as asyncio does for
    tasks), so threads cannot disturb each other's or the handler's nesting. Spans
    that end after the invocation returned are not sent.
    """
    context = copy_context()

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return context.copy().run(fn, *args, **kwargs)

    return bound  # type: ignore[return-value]
