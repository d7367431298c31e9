"""``tracing.span``, ``annotate``, ``metadata``, ``current_span`` and ``flush``."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from contextvars import Token, copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._runtime import current_node, get_runtime
from ._scope import STACK, ended, open_span
from ._span import NOOP, Span, SpanFace, clean_name

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._scope import Node

__all__ = ["annotate", "current_span", "flush", "in_current_trace", "metadata", "span"]

log = logging.getLogger("tracing")

F = TypeVar("F", bound=Callable[..., Any])

# What inspect.is*function checks (code flags), without importing inspect (4 ms)
# at cold start.
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200


def _open_child(name: str) -> Span:
    """Create a span under the current node, or NOOP when nothing is recorded."""
    parent = current_node()
    if parent is None or not parent.recording:
        return NOOP
    # Over budget: NOOP. After its document was sent (a thread outliving its
    # invocation): a late document of the same trace.
    return open_span(parent, name) or NOOP


class span:  # noqa: N801 - lower case: it reads as a function at call sites
    """Record a block or a function as a subsegment.

    A context manager and a decorator: sync and async functions, generators and
    async generators (the span covers the whole iteration and ends when the
    generator finishes or is closed), methods, classmethods and staticmethods.
    Works in the init phase, in invocations and inside SQS processing, nests, and
    yields the same :class:`tracing.Span` on every backend. Keyword arguments
    become annotations (see the value rules).

    Example::

        with tracing.span("load config", table="orders") as s:
            s.put_metadata("rows", 12)

        @tracing.span("charge card")
        def charge(order): ...

        @tracing.span                      # bare: named after the function
        def validate(order): ...

        @tracing.span(capture_response=True)   # the return value, redacted, as metadata
        def price(order): ...

    ``capture_response`` (decorated functions and coroutines: their return
    value) and ``capture_error`` (``False``: an exception is recorded by its
    type only, without message or stack; ``None`` follows the setting) are the
    per-call choices of Powertools' ``capture_method``; every other keyword
    argument is an annotation.

    Use a fresh ``tracing.span(...)`` for each ``with``; the decorator form
    creates one per call, so it is safe under recursion, threads and asyncio.
    """

    __slots__ = ("_annotations", "_capture", "_library", "_name", "_span", "_token")

    def __new__(
        cls,
        name: Any = None,
        *,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
        **annotations: Any,
    ) -> Any:
        if name is None:  # ``@tracing.span(capture_response=True)``: named after the function
            return functools.partial(
                cls, capture_response=capture_response, capture_error=capture_error, **annotations
            )
        # ``@tracing.span`` without a name: decorate right away, named after the
        # function. Without this, the function would be replaced by a span object
        # and every call of it would return a wrapper instead of its result.
        if not isinstance(name, str) and (
            callable(name) or isinstance(name, (classmethod, staticmethod))
        ):
            target = name.__func__ if isinstance(name, (classmethod, staticmethod)) else name
            label = getattr(target, "__qualname__", None) or getattr(target, "__name__", "span")
            options = {"capture_response": capture_response, "capture_error": capture_error}
            return cls(str(label), **options, **annotations)(name)
        return object.__new__(cls)

    def __init__(
        self,
        name: str = "",
        *,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
        **annotations: Any,
    ) -> None:
        self._name = name
        self._annotations = annotations
        #: Per-call choices (Powertools' ``capture_method`` has the same two).
        self._capture = (capture_response, capture_error)
        self._span: Span = NOOP
        self._token: Token[tuple[Node, ...]] | None = None
        self._library: object = None

    # -- context manager -------------------------------------------------------

    def __enter__(self) -> Span:
        try:
            runtime = get_runtime()
            if runtime is None or runtime.settings.disabled:
                return NOOP
            child = self._open()
            if child.recording:
                self._activate(runtime, child)
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
        self._deactivate()
        try:
            self._close(exc)
        except RecursionError:
            pass  # the span is dropped; the exception goes on unchanged
        except Exception:
            try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                log.debug("tracing: could not close span %r", self._name, exc_info=True)
            except RecursionError:
                pass

    # -- the steps, shared with the generator wrappers ---------------------------

    def _open(self) -> Span:
        child = _open_child(clean_name(self._name))
        if child.recording:
            for key, value in self._annotations.items():
                child.annotate(key, value)
        self._span = child
        return child

    def _activate(self, runtime: Runtime, child: Span) -> None:
        """Make ``child`` the current span, here and in the library's context."""
        self._token = STACK.set((*STACK.get(), child))
        self._library = runtime.backend.enter(child)

    def _deactivate(self) -> None:
        library, self._library = self._library, None
        if library is not None:
            runtime = get_runtime()
            if runtime is not None:
                try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                    runtime.backend.exit(library)
                except RecursionError:
                    pass
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

    def _close(self, exc: BaseException | None) -> None:
        child = self._span
        self._span = NOOP
        if not child.recording:
            return
        if exc is not None:
            detail = self._capture[1]
            if detail is None:
                runtime = get_runtime()
                detail = runtime is None or runtime.settings.capture_error
            child.fail(exc, detail=detail)
        child.finish()
        ended(child)

    # -- decorator -------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        target: Any = fn  # also a classmethod or staticmethod object
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(self(target.__func__))  # type: ignore[return-value]
        name = self._name
        capture_response, capture_error = self._capture
        # The error choice travels with the annotations into each call's span.
        annotations = {**self._annotations, "capture_error": capture_error}
        flags = getattr(getattr(fn, "__code__", None), "co_flags", 0)
        if flags & _CO_ASYNC_GENERATOR:
            return _wrap_async_generator(fn, name, annotations)  # type: ignore[no-any-return]
        if flags & _CO_GENERATOR:
            return _wrap_generator(fn, name, annotations)  # type: ignore[no-any-return]
        if flags & _CO_COROUTINE:

            @functools.wraps(fn)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with span(name, **annotations) as current:
                    result = await fn(*args, **kwargs)
                    if capture_response and current.recording:
                        _capture_response(current, result)
                    return result

            return traced_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with span(name, **annotations) as current:
                result = fn(*args, **kwargs)
                if capture_response and current.recording:
                    _capture_response(current, result)
                return result

        return traced  # type: ignore[return-value]


def _capture_response(current: Span, result: Any) -> None:
    """``capture_response=True``: the return value, redacted, as metadata ``response``."""
    try:
        runtime = get_runtime()
        if runtime is not None:
            from ._payload import capture

            capture(current, "response", result, runtime.settings)
    except Exception:  # never the function's result
        log.debug("tracing: could not capture a response", exc_info=True)


class _Iteration:
    """A span kept open over a generator's life, current only while its body runs.

    A generator runs in its caller's context, a little at a time: if its span
    stayed current between two ``next()`` calls, the caller's own spans would
    nest under the generator's. So the span is made current around each resume
    and put back after each ``yield``.
    """

    __slots__ = ("_runtime", "_span")

    def __init__(self, name: str, annotations: dict[str, Any]) -> None:
        self._runtime = get_runtime()
        self._span = span(name, **annotations)
        try:
            if self._runtime is not None and not self._runtime.settings.disabled:
                self._span._open()
        except Exception:
            log.debug("tracing: could not open span %r", name, exc_info=True)

    def resume(self) -> None:
        child, runtime = self._span._span, self._runtime
        scope = child.scope
        if scope is not None and scope.done:
            # Resumed after its invocation was sent (a generator kept across
            # invocations): its span must not become current again, or this
            # invocation's work would land in, and pass on, the old trace.
            return
        if runtime is not None and child.recording:
            try:
                self._span._activate(runtime, child)
            except Exception:
                log.debug("tracing: could not resume span %r", child.name, exc_info=True)

    def pause(self) -> None:
        self._span._deactivate()

    def end(self, exc: BaseException | None) -> None:
        try:
            self._span._close(exc)
        except Exception:
            log.debug("tracing: could not close a generator's span", exc_info=True)


def _wrap_generator(fn: Callable[..., Any], name: str, annotations: dict[str, Any]) -> Any:
    @functools.wraps(fn)
    def traced_generator(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        iteration = _Iteration(name, annotations)
        failure: BaseException | None = None
        try:
            iteration.resume()
            try:
                inner = fn(*args, **kwargs)
                item = next(inner)
            finally:
                iteration.pause()
            while True:
                try:
                    sent = yield item
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as thrown:
                    iteration.resume()
                    try:
                        item = inner.throw(thrown)
                    finally:
                        iteration.pause()
                else:
                    iteration.resume()
                    try:
                        item = inner.send(sent)
                    finally:
                        iteration.pause()
        except StopIteration as stop:
            return stop.value
        except GeneratorExit:
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            iteration.end(failure)

    return traced_generator


def _wrap_async_generator(fn: Callable[..., Any], name: str, annotations: dict[str, Any]) -> Any:
    @functools.wraps(fn)
    async def traced_async_generator(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        iteration = _Iteration(name, annotations)
        failure: BaseException | None = None
        inner = fn(*args, **kwargs)
        try:
            iteration.resume()
            try:
                item = await inner.__anext__()
            finally:
                iteration.pause()
            while True:
                try:
                    sent = yield item
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as thrown:
                    iteration.resume()
                    try:
                        item = await inner.athrow(thrown)
                    finally:
                        iteration.pause()
                else:
                    iteration.resume()
                    try:
                        item = await inner.asend(sent)
                    finally:
                        iteration.pause()
        except StopAsyncIteration:
            return
        except GeneratorExit:
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            iteration.end(failure)

    return traced_async_generator


def current_span() -> Span:
    """The span work is recorded in right now, as a :class:`tracing.Span`.

    The innermost ``tracing.span``, else the invocation (or the SQS record being
    consumed, or ``Init`` at import time). Inside a span opened through the
    backend's own library (``xray_recorder``, an OTel tracer) it is a ``Span``
    that writes to that span. Outside any trace, and in unsampled invocations,
    it is a span that records nothing (``recording`` is False). Never raises.
    """
    try:
        node = current_node()
    except Exception:
        log.debug("tracing: current_span() failed", exc_info=True)
        return NOOP
    if node is None:
        return NOOP
    if isinstance(node, Span):
        return node
    return SpanFace(node)


def annotate(key: str, value: str | int | float | bool) -> None:
    """Add an indexed annotation (searchable in X-Ray) to the current span.

    The key is made ``[A-Za-z0-9_]``; values follow the value rules (README).
    """
    try:
        node = current_node()
        if node is None:
            return
        if isinstance(node, Span):
            node.annotate(key, value)
        else:
            SpanFace(node).annotate(key, value)
    except Exception:
        log.debug("tracing: annotate(%r) failed", key, exc_info=True)


def metadata(key: str, value: Any, namespace: str = "default") -> None:
    """Add non-indexed metadata (any value, kept as JSON) to the current span."""
    try:
        node = current_node()
        if node is None:
            return
        if isinstance(node, Span):
            node.put_metadata(key, value, namespace)
        else:
            SpanFace(node).put_metadata(key, value, namespace)
    except Exception:
        log.debug("tracing: metadata(%r) failed", key, exc_info=True)


def flush(timeout_s: float = 2.0) -> bool:
    """Send everything pending now; True when nothing is left.

    Documents are sent when their scope ends, so this only matters for work
    outside any invocation and for backends that batch. Never raises.
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
    """Bind ``fn`` to the current trace, for work handed over in a way not followed.

    Tasks submitted to a ``concurrent.futures`` executor (so ``pool.map``,
    ``loop.run_in_executor`` and boto3's managed transfers) and threads started
    during a unit of work already run in a copy of its context (``_hooks.py``, thread hand-off):
    they need nothing. Wrap the callable where the work is handed over in other
    ways: to ``multiprocessing.pool.ThreadPool``, to a thread started earlier
    (a worker of your own fed through a queue), or to a callback registered
    with a library that runs it on its own threads::

        pool = ThreadPool(4)  # made at import: its threads belong to no invocation

        @tracing.handler
        def handler(event, context):
            return pool.map(tracing.in_current_trace(fetch), event["urls"])

    Each call runs in a *copy* of the submitting context (as asyncio does for
    tasks), so threads cannot disturb each other's or the handler's nesting. Work
    that ends after its invocation was sent is sent late, into that invocation's
    trace (see ``_scope.py``, late work).
    """
    context = copy_context()

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return context.copy().run(fn, *args, **kwargs)

    return bound  # type: ignore[return-value]
