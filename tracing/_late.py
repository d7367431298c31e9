"""Spans that start or end after their document was sent: sent late, never lost.

A thread nobody joins (``pool.map`` without waiting, a fire-and-forget
``threading.Thread``, a transfer still running) can outlive the invocation that
started it: the invocation's document goes out when the handler returns, and the
thread's work goes on, in Lambda often only after the sandbox is thawed for the
*next* invocation. That work belongs to the first invocation's trace and must
never land in the next one's. Dropping it would hide what the function really
did, so it is sent late, as X-Ray documents it for work that outlives its parent:

* **Opened after the document was sent:** the span becomes the root of a
  :class:`~tracing._scope.LateScope`, an independent subsegment (``type:
  "subsegment"``, the same ``trace_id``, ``parent_id`` = the entity it was opened
  under), sent when it ends. Spans opened inside it nest in it as usual.
* **Open when the document was sent, ended since:** the document held it
  ``in_progress``; when it ends it is sent again, complete, as an independent
  subsegment with the same id, with what was opened in it meanwhile. X-Ray keeps
  the complete version of an entity sent twice (its documented in-progress
  pattern), and so does the local collector (``local/traces.py``).

Bounds: late spans count against the span budget of the document they came from
(``max_spans_per_invocation``); beyond it they are dropped, counted, and logged
once. Nothing is sent late into a trace that does not exist: not for init work
(re-stamped into the first invocation's trace, which is sent once) and not for
unsampled invocations. Nor after the deadline guard sent an invocation as a
timeout: that document says what the timeout interrupted (open spans sealed
``Timeout=true``), and Lambda ends the process at the deadline.

A late document waits in a buffered exporter's queue (``exporter="otlp"``) until
the next flush; the UDP exporters send it at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._runtime import get_runtime
from ._scope import LateScope, Scope
from ._span import Span

if TYPE_CHECKING:
    from ._scope import Node

__all__ = ["ended", "open_span", "over_budget"]

log = logging.getLogger("tracing")


def open_span(parent: Node, name: str) -> Span | None:
    """A new span under the recording ``parent``, or ``None`` when over budget.

    In ``parent``'s document while it is still to be sent; once it was sent, the
    root of a late document under ``parent`` (see the module doc).
    """
    scope = parent.scope
    if scope is None:  # a library span outside our documents
        span = Span(name)
        parent.adopt(span)
        return span
    if not scope.done:
        if not scope.admit():
            return None
        span = Span(name, scope)
        parent.adopt(span)
        return span
    if not scope.takes_late_work:
        return None
    if not scope.admit():
        over_budget(scope)
        return None
    if _sent_when_it_ends(parent, scope):
        span = Span(name, scope)
        parent.adopt(span)
        return span
    return LateScope(Span(name), scope, parent.id).root


def ended(span: Span) -> None:
    """``span`` just finished: send it now if its document is gone already.

    Cheap for the usual span (two attribute reads); never raises.
    """
    scope = span.scope
    if scope is None or not (scope.late or scope.done):
        return
    try:
        if scope.root is span:
            if scope.late:
                _send(scope)
            return  # the top of a sent document ends after it (a timed-out invocation)
        if not scope.done or not scope.takes_late_work:
            return  # in a late document still open: sent with it; or sent as a timeout
        parent = _parent_of(scope.root, span)
        if parent is None:
            log.debug("tracing: %s ended after its document was sent, detached", span.name)
            return
        if _sent_when_it_ends(parent, scope):
            return
        _send(LateScope(span, scope, parent.id))
    except Exception:
        log.debug("tracing: could not send a late span", exc_info=True)


def _send(scope: Scope) -> None:
    runtime = get_runtime()
    if runtime is None or not runtime.emit_scope(scope):
        return
    runtime.late_sent += 1
    runtime.note_once(
        logging.INFO,
        "late",
        "tracing: work outlived its invocation (a thread or pool task nobody waited "
        "for) and was sent late into that invocation's trace (logged once)",
    )


def _sent_when_it_ends(parent: Node, scope: Scope) -> bool:
    """Whether ``parent``, under a sent document, is still open and sent when it ends.

    A span of ours sent in progress goes out again, complete, when it ends; a
    library span (an aws-xray-sdk subsegment, an OTel span) is current, so open,
    and joins late when it ends. Work opened or ended under either goes with it.
    The top of a sent document is never sent again.
    """
    if isinstance(parent, Span):
        return parent.end_time is None and parent is not scope.root
    return True


def _parent_of(root: Span, target: Span) -> Span | None:
    """The span of ``root``'s tree that holds ``target`` (rare path: late work only)."""
    pending = [root]
    while pending:
        node = pending.pop()
        for child in list(node.children or ()):
            if child is target:
                return node
            if isinstance(child, Span):
                pending.append(child)
    return None


def over_budget(scope: Scope) -> None:
    runtime = get_runtime()
    if runtime is None:
        return
    runtime.late_dropped += 1
    runtime.note_once(
        logging.WARNING,
        "late-dropped",
        "tracing: work that outlived its invocation went over its span budget "
        "(max_spans_per_invocation=%d): the rest is dropped, and counted (logged once)",
        scope.limit,
    )
