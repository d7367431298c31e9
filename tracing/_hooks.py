"""What ``configure()`` hooks into other modules: import hooks, and thread hand-off.

**Import hooks** run a callback right after a module is imported, without
importing it ourselves. Cold start is the figure Lambda users pick a tracer by,
so ``configure()`` never imports what the first invocation may not need
(aws-xray-sdk, OTel's propagation API). Where the library must react to such a module
(connect to aws-xray-sdk, install its propagator into
``opentelemetry.propagate``), it calls :func:`when_imported`: at once if the
module is already in ``sys.modules``, else from a one-shot ``sys.meta_path``
finder that takes itself off the path at the module's first import and runs the
callback as soon as the module has executed, before the importing code gets it
back.

aws-xray-sdk's ``patch_all`` and OTel contrib's instrumentors patch eagerly and
import what they patch; this hook costs nothing until the module is imported,
and nothing at all if it never is.

**Thread hand-off**: work handed to other threads keeps the trace it was handed
over from. A new thread starts with an empty ``contextvars`` context, and a
pool's worker thread runs every task in its own. So without help, a
``ThreadPoolExecutor``'s ``map``, boto3's managed transfers (``upload_file``:
the multipart parts run on the transfer manager's threads),
``loop.run_in_executor`` and a plain ``threading.Thread`` would all run outside
the invocation that started them, and their AWS calls and spans would be
recorded nowhere. aws-xray-sdk has had this bug open since 2018
(aws-xray-sdk-python#52): its context is a ``threading.local``.

The rule (DESIGN.md, "Handed-over work"): a task submitted to an executor, or a
thread started, while a unit of work is current (an invocation, an SQS record
being consumed, a worker's message, a ``tracing.span`` inside one) runs in a copy
of the submitting context, so it belongs to the span that was current at
submission, on every backend (the OpenTelemetry context is a context variable
too, and is copied with ours). Each task gets its own copy, as asyncio gives each
task, so tasks never disturb each other's nesting or the handler's.

How, and what it costs:

* ``concurrent.futures.ThreadPoolExecutor.submit`` is wrapped, patched when the
  application imports ``concurrent.futures.thread`` (an import hook: nothing is
  imported here). ``map``, ``run_in_executor`` and s3transfer all submit through
  it. Outside a unit of work the wrapper only reads one context variable.
* ``threading.Thread.start`` is wrapped the same way. The worker threads of
  ``concurrent.futures`` and ``multiprocessing.pool`` are left alone: they serve
  the tasks of every later invocation too, so they must not carry the one that
  happened to start them (a task carries its own).
* On Python 3.14, a thread given an explicit ``context=`` keeps it, and the
  interpreter's own inheritance (``-X thread_inherit_context``) is respected.

OTel's threading instrumentation (opentelemetry-instrumentation-threading) copies
the OTel context only, and only once it is applied by hand; Datadog patches
``concurrent.futures`` alike. Here one copy carries both, installed by
``configure()``.

Work that outlives its unit (a thread nobody joins, still running when the
invocation's trace is sent) is never recorded in a later unit's trace: it is sent
late into its own trace (``_scope.py``, late work).

``multiprocessing.pool.ThreadPool`` tasks and processes are not followed: use
:func:`tracing.in_current_trace` around the callable.

Both live in one module because both are installed at ``configure()``: a module
costs about 0.1 ms of cold start to import, and cold start is the product.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import Context, copy_context
from typing import Any

from ._scope import STACK, pin

__all__ = ["ImportHook", "install_handoff", "patch_executor", "when_imported"]

log = logging.getLogger("tracing")


# -- import hooks --------------------------------------------------------------------


def when_imported(module: str, callback: Callable[[], None], what: str) -> ImportHook | None:
    """Run ``callback`` once ``module`` is imported (now, if it already is).

    ``what`` names the consequence of a failure for the log line ("its
    subsegments are lost"). Returns the hook left on ``sys.meta_path``, for
    :meth:`ImportHook.remove`, or ``None`` when the callback already ran.
    """
    if module in sys.modules:
        _call(callback, module, what)
        return None
    hook = ImportHook(module, callback, what)
    sys.meta_path.insert(0, hook)
    return hook


def _call(callback: Callable[[], None], module: str, what: str) -> None:
    try:
        callback()
    except Exception:
        log.exception("tracing: could not connect to %s; %s", module, what)


class ImportHook:
    """A one-shot ``sys.meta_path`` finder: ``callback()`` right after ``module`` imports.

    It finds nothing itself: on the first ``find_spec`` of ``module`` it takes
    itself off ``sys.meta_path``, asks the other finders for the real spec, and
    wraps that spec's loader so that the callback runs once the module has
    executed. A failing callback is logged once and never fails the import.
    """

    def __init__(self, module: str, callback: Callable[[], None], what: str) -> None:
        self.module = module
        self._callback = callback
        self._what = what

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.module:
            return None
        self.remove()
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenCall(spec.loader, self)  # type: ignore[assignment]  # duck-typed
        return spec

    def remove(self) -> None:
        """Take the hook off ``sys.meta_path`` (idempotent)."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def fire(self) -> None:
        _call(self._callback, self.module, self._what)


class _ThenCall:
    """A loader that runs its wrapped loader, then the hook's callback."""

    def __init__(self, loader: Any, hook: ImportHook) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        self._hook.fire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


# -- thread hand-off ------------------------------------------------------------------

#: Marks a wrapper of ours (never wrap twice, even across configurations).
_MARK = "_tracing_wrapped"
#: Modules whose threads are pools' workers: they carry no unit of their own.
_POOL_MODULES = frozenset({"concurrent.futures.thread", "multiprocessing.pool"})


def install_handoff() -> None:
    """Wrap ``Thread.start`` now, and the executor once it is imported (see above)."""
    _patch_thread()
    when_imported(
        "concurrent.futures.thread",
        patch_executor,
        "work submitted to thread pools is not followed into its trace",
    )


def _patch_thread() -> None:
    original = threading.Thread.start
    if getattr(original, _MARK, False):
        return

    def start(self: threading.Thread) -> None:
        if STACK.get():
            try:
                _carry(self)
            except Exception:
                log.debug("tracing: could not hand the trace to a thread", exc_info=True)
        original(self)

    functools.update_wrapper(start, original)
    setattr(start, _MARK, True)
    threading.Thread.start = start  # type: ignore[method-assign]


#: Python 3.14+: ``Thread(context=...)``; ``None`` asks for the interpreter's default
#: (a copy of the starter's context when ``-X thread_inherit_context`` is on, as
#: on free-threaded builds), decided in ``start()``.
_THREAD_CONTEXT = sys.version_info >= (3, 14)


def _carry(thread: threading.Thread) -> None:
    """Make ``thread`` run in a copy of the current context (see the module doc)."""
    target = getattr(thread, "_target", None)
    pool = getattr(target, "__module__", None) in _POOL_MODULES
    if _THREAD_CONTEXT:
        if thread._context is None:  # type: ignore[attr-defined,unused-ignore]
            # A pool's worker starts empty even where threads inherit by default:
            # it serves every later invocation, each task in its own context.
            thread._context = Context() if pool else copy_context()  # type: ignore[attr-defined,unused-ignore]
            if not pool:
                _pin_current()
        return
    if pool:
        return
    run = thread.run
    thread.run = functools.partial(copy_context().run, run)  # type: ignore[method-assign]
    _pin_current()


def _pin_current() -> None:
    """The thread may outlive its unit: free the unit's tree when its window closes."""
    stack = STACK.get()
    scope = getattr(stack[-1], "scope", None) if stack else None
    if scope is not None:
        pin(scope)


def patch_executor() -> None:
    """Wrap ``ThreadPoolExecutor.submit`` (once per process)."""
    from concurrent.futures import thread

    original: Any = thread.ThreadPoolExecutor.submit
    if getattr(original, _MARK, False):
        return

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if STACK.get():
            kind = type(self)
            carry = _CARRIES.get(kind)
            if carry is None:
                carry = _CARRIES[kind] = _carries(kind)
            if carry:
                return original(self, copy_context().run, fn, *args, **kwargs)
        return original(self, fn, *args, **kwargs)

    functools.update_wrapper(submit, original)
    setattr(submit, _MARK, True)
    thread.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


#: Executor class -> whether its tasks can be handed a context.
_CARRIES: dict[type, bool] = {}


def _carries(kind: type) -> bool:
    """Whether tasks of executor class ``kind`` run in this interpreter.

    NOTE: Python 3.14's ``InterpreterPoolExecutor`` subclasses
    ``ThreadPoolExecutor`` but runs tasks in other interpreters, which a context
    (or its bound ``run``) cannot reach: its tasks are submitted as they are.
    Decided per class at its first submission, whatever the import order.
    """
    return not any(
        cls.__module__ == "concurrent.futures.interpreter" for cls in getattr(kind, "__mro__", ())
    )
