"""Work handed to other threads keeps the trace it was handed over from.

A new thread starts with an empty ``contextvars`` context, and a pool's worker
thread runs every task in its own. So without help, a ``ThreadPoolExecutor``'s
``map``, boto3's managed transfers (``upload_file``: the multipart parts run on
the transfer manager's threads), ``loop.run_in_executor`` and a plain
``threading.Thread`` would all run outside the invocation that started them, and
their AWS calls and spans would be recorded nowhere. aws-xray-sdk has had this
bug open since 2018 (aws-xray-sdk-python#52): its context is a ``threading.local``.

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
late into its own trace (``_late.py``).

``multiprocessing.pool.ThreadPool`` tasks and processes are not followed: use
:func:`tracing.in_current_trace` around the callable.
"""

from __future__ import annotations

import functools
import logging
import threading
from contextvars import copy_context
from typing import Any

from ._scope import STACK

__all__ = ["install", "patch_executor"]

log = logging.getLogger("tracing")

#: Marks a wrapper of ours (never wrap twice, even across configurations).
_MARK = "_tracing_wrapped"
#: Modules whose threads are pools' workers: they carry no unit of their own.
_POOL_MODULES = frozenset({"concurrent.futures.thread", "multiprocessing.pool"})


def install() -> None:
    """Wrap ``Thread.start`` now, and the executor once it is imported."""
    from ._import_hook import when_imported

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


def _carry(thread: threading.Thread) -> None:
    """Make ``thread`` run in a copy of the current context (see the module doc)."""
    target = getattr(thread, "_target", None)
    if getattr(target, "__module__", None) in _POOL_MODULES:
        return
    if hasattr(thread, "_context"):
        # Python 3.14+: Thread(context=...) runs the thread in that context; None
        # means "the default", which is what we decide here.
        if thread._context is None:
            thread._context = copy_context()
        return
    run = thread.run
    thread.run = functools.partial(copy_context().run, run)  # type: ignore[method-assign]


def patch_executor() -> None:
    """Wrap ``ThreadPoolExecutor.submit`` (once per process)."""
    from concurrent.futures import thread

    original: Any = thread.ThreadPoolExecutor.submit
    if getattr(original, _MARK, False):
        return

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if STACK.get():
            return original(self, copy_context().run, fn, *args, **kwargs)
        return original(self, fn, *args, **kwargs)

    functools.update_wrapper(submit, original)
    setattr(submit, _MARK, True)
    thread.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
    from ._import_hook import when_imported

    # NOTE: Python 3.14's InterpreterPoolExecutor subclasses ThreadPoolExecutor but
    # runs tasks in other interpreters, which a context (or its bound ``run``)
    # cannot reach: it keeps the original ``submit``.
    when_imported(
        "concurrent.futures.interpreter",
        functools.partial(_exempt_interpreters, original),
        "work submitted to interpreter pools may fail",
    )


def _exempt_interpreters(original: Any) -> None:
    from concurrent.futures import interpreter  # type: ignore[attr-defined,unused-ignore]

    interpreter.InterpreterPoolExecutor.submit = original
